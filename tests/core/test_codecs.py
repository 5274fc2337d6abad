"""Options, transcripts and error outcomes written down and read back, as the journal, the cache and Redis do."""

from __future__ import annotations

import json

from chatscribe.core.codecs import (
    decode_options,
    dumps_outcome,
    encode_options,
    loads_failure,
    loads_transcript,
)
from chatscribe.core.errors import SetAside, UnreadableMedia
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.transcript import LOW_CONFIDENCE, Segment, Transcript, Word


def test_transcripts_keep_their_words_and_flags() -> None:
    words = (Word(0.0, 0.4, " Ask", 0.9), Word(0.4, 0.8, " not.", 0.8))
    transcript = Transcript(segments=(Segment(0.0, 2.5, " Ask not.", words=words, flags=frozenset({LOW_CONFIDENCE})),),
                            language="en", language_probability=0.9, duration_s=2.5, model="tiny.en", truncated=True)
    back = loads_transcript(dumps_outcome(transcript))
    assert back == transcript
    assert back.text == "Ask not."


def test_an_error_outcome_keeps_the_code_and_the_sentence_its_sender_sees() -> None:
    for error in (UnreadableMedia(), SetAside(3)):
        failure = loads_failure(dumps_outcome(error))
        assert (failure.code, failure.user_message) == (error.code, error.user_message)


def test_options_survive_json_and_older_records_without_expected_languages() -> None:
    options = TranscribeOptions(language="de", vocabulary="Kubernetes", expected_languages=("de", "en"),
                                temperature=0.0, word_timestamps=True)
    assert decode_options(json.loads(json.dumps(encode_options(options)))) == options
    older = {k: v for k, v in encode_options(TranscribeOptions(task="translate")).items() if k != "expected_languages"}
    assert decode_options(older) == TranscribeOptions(task="translate")
