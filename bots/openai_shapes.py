"""The OpenAI API's answer shapes built from a transcript: verbose_json, logprobs, token usage, gaps.

bots/openai_api.py answers with them; bots/openai_speakers.py holds the speaker-labelled shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from chatscribe.core import Segment, TranscribeOptions, Transcript, gap_note, language_name, speakers_of

AUDIO_TOKENS_PER_S = 50
"""Whisper's encoder gives 1500 positions for each 30 s of audio: the usage's audio tokens."""


def verbose_json(transcript: Transcript, options: TranscribeOptions, words: bool) -> dict[str, Any]:
    """OpenAI's verbose_json: the full language name, segments with their decoding statistics, their
    tokens and the temperature each was decoded at (after Whisper's fallback; the requested one where the
    decoder did not say, as for a note decoded in a batch, whose tokens are then empty too). Where several
    speakers were told apart, each segment carries its `speaker` (the label, as diarized_json gives it)."""
    speaker_of = speakers_of(transcript)
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": language_name(transcript.language),
        "language_reason": transcript.language_reason,  # why this language (README: "Which language")
        "duration": round(transcript.duration_s, 3),
        "text": transcript.text,
        "segments": [
            {
                "id": index,
                "seek": round(seg.start * 100),  # Whisper's seek counts 10 ms mel frames
                "start": round(seg.start, 3),
                "end": round(seg.end, 3),
                "text": seg.text,
                "tokens": list(seg.tokens),
                "temperature": seg.temperature if seg.temperature is not None else options.temperature or 0.0,
                "avg_logprob": round(seg.avg_logprob, 4),
                "compression_ratio": round(seg.compression_ratio, 4),
                "no_speech_prob": round(seg.no_speech_prob, 4),
                **({"speaker": speaker_of[id(seg)]} if id(seg) in speaker_of else {}),
            }
            for index, seg in enumerate(transcript.segments)
        ],
    }
    if words:
        body["words"] = [
            {"word": w.text.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for seg in transcript.segments for w in seg.words
        ]
    if transcript.truncated:
        body["truncated"] = True  # the file ended early (a cut download): the text is what was there
    return body


def word_logprobs(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """OpenAI's logprobs, one entry per word (see the module's docstring for why words)."""
    return [
        {"token": w.text, "logprob": round(math.log(max(w.probability, 1e-12)), 6), "bytes": list(w.text.encode())}
        for seg in segments for w in seg.words
    ]


def token_usage(transcript: Transcript) -> dict[str, Any]:
    """The streamed answer's usage in OpenAI's token shape: audio tokens (the encoder's positions) in,
    the decoder's text tokens out (0 where they are not known: a batched note)."""
    audio = math.ceil(transcript.duration_s * AUDIO_TOKENS_PER_S)
    out = sum(len(seg.tokens) for seg in transcript.segments)
    return {"type": "tokens", "input_tokens": audio, "output_tokens": out, "total_tokens": audio + out,
            "input_token_details": {"audio_tokens": audio, "text_tokens": 0}}


def notices(transcript: Transcript) -> dict[str, Any]:
    """What every JSON answer adds where it applies: speech that could not be transcribed (core/coverage.py),
    its times and the sentence saying so, and the sentence saying speakers could not be told apart."""
    said: dict[str, Any] = {}
    if transcript.gaps:
        said["gaps"] = [{"start": round(g.start, 3), "end": round(g.end, 3)} for g in transcript.gaps]
        said["notice"] = gap_note(transcript)
    if transcript.speaker_note:
        said["speaker_note"] = str(transcript.speaker_note)
    return said
