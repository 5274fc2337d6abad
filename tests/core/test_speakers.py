"""Speaker labels on real recordings through the real pipeline (LocalRunner: decode, tiny.en, quality pass,
coverage check, speaker step) with Resemblyzer's real encoder: by channel, by voice, named, and without the extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from chatscribe.core import sentences
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.jobs.runner import LocalRunner, Work
from chatscribe.core.media import SAMPLE_RATE, decode_audio, decode_channels
from chatscribe.core.metrics import Metrics
from chatscribe.core.options import KnownSpeaker, TranscribeOptions
from chatscribe.core.quality import normalize
from chatscribe.core.speakers import Voices, find_voices, unavailable_reason
from chatscribe.core.speakers.encoder import EMBEDDING_SIZE, shared_encoder
from chatscribe.core.transcript import Transcript
from tests.audio_tools import to_wav
from tests.needs import in_ci, require

require("torch", "the speakers extra (pip install -e '.[speakers]') is needed for speaker labels")
if (missing := unavailable_reason()) is not None:
    if in_ci():
        pytest.fail(f"the speakers extra is incomplete: {missing} (CI installs it, so this is a broken run)",
                    pytrace=False)
    pytest.skip(missing, allow_module_level=True)

HOUR = 3600.0


def _runner(engine: FasterWhisperEngine, **kwargs: float) -> LocalRunner:
    return LocalRunner(engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batching="off", **kwargs)


async def _run(runner: LocalRunner, data: bytes, options: TranscribeOptions) -> Transcript:
    duration = len(decode_audio(data, max_duration_s=HOUR).samples) / SAMPLE_RATE
    return await runner.run(Work("speakers", data, duration, options))


def _stereo_wav(left: np.ndarray, right: np.ndarray) -> bytes:
    return to_wav(np.stack([left, right], axis=1))


def _words(text: str) -> set[str]:
    return set(normalize(text).split())


@pytest.fixture(scope="module")
def two_voices(audio: Callable[[str], bytes]) -> tuple[bytes, list[tuple[float, float, str]], bytes]:
    """A mono conversation: the English speaker of multilingual.mp3 and JFK taking turns (turns of 5–12 s with
    short pauses), its reference turns, and a clip of JFK that is not in it (a known speaker's reference)."""
    english = decode_audio(audio("multilingual.mp3"), max_duration_s=HOUR).samples[: 29 * SAMPLE_RATE]
    jfk = decode_audio(audio("jfk.flac"), max_duration_s=HOUR).samples
    pause = np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32)
    s = SAMPLE_RATE
    pieces = [("english", english[: 10 * s]), ("jfk", jfk[: int(7.6 * s)]), ("english", english[10 * s : 20 * s]),
              ("jfk", jfk[: int(7.6 * s)] * 0.8), ("english", english[20 * s : 29 * s])]
    out, turns, at = [], [], 0
    for speaker, piece in pieces:
        out += [piece, pause]
        turns.append((at / s, (at + len(piece)) / s, speaker))
        at += len(piece) + len(pause)
    return to_wav(np.concatenate(out)), turns, to_wav(jfk[int(7.6 * s) :])


def _share_right(transcript: Transcript, turns: list[tuple[float, float, str]]) -> float:
    """Words whose label is their reference speaker's, under the best map of labels to speakers."""
    pairs = []
    for segment in transcript.segments:
        for word in segment.words:
            middle = (word.start + word.end) / 2
            who = min(turns, key=lambda t: 0 if t[0] <= middle <= t[1] else min(abs(middle - t[0]),
                                                                                 abs(middle - t[1])))[2]
            pairs.append((segment.speaker, who))
    labels = sorted({label for label, _ in pairs if label})
    assert len(labels) == 2, labels
    straight = sum((label == labels[0]) == (who == "english") for label, who in pairs)
    return max(straight, len(pairs) - straight) / len(pairs)


async def test_a_call_with_a_voice_on_each_channel_is_labelled_by_channel(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes], references: dict[str, dict[str, object]],
) -> None:
    runner = _runner(tiny_engine)
    transcript = await _run(runner, audio("stereo_diarization.wav"), TranscribeOptions(speakers="on"))
    assert transcript.speakers == ("Left", "Right")
    said = {label: " ".join(s.text for s in transcript.segments if s.speaker == label) for label in transcript.speakers}
    reference = references["stereo_diarization.wav"]
    for label, key in (("Left", "text_left"), ("Right", "text_right")):
        expected = _words(str(reference[key]))
        assert len(_words(said[label]) & expected) >= 0.7 * len(expected), (label, said[label])
    assert not _words(said["Left"]) & {"horizon", "distant"}  # the other channel's words stay under its label
    assert not _words(said["Right"]) & {"wizard", "curtain", "complaint"}
    assert [s.start for s in transcript.segments] == sorted(s.start for s in transcript.segments)
    assert all(not s.words for s in transcript.segments)  # word times were not asked for
    assert transcript.speaker_note is None
    assert runner.metrics.speaker_steps.labels("channels")._value.get() == 1


async def test_the_same_signal_on_both_channels_is_one_speaker(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes],
) -> None:
    channels = decode_channels(audio("stereo_diarization.wav"), max_duration_s=HOUR)
    assert channels is not None
    left = channels.samples[0]
    runner = _runner(tiny_engine)
    transcript = await _run(runner, _stereo_wav(left, left), TranscribeOptions(speakers="on"))
    assert transcript.speakers == ()
    assert {s.speaker for s in transcript.segments} == {None}
    assert {"wizard", "curtain"} <= _words(transcript.text)
    assert transcript.speaker_note is None
    # The step ran, found the channels alike and heard one voice on the mixed-down audio.
    assert runner.metrics.speaker_steps.labels("channels")._value.get() == 0
    assert runner.metrics.speaker_steps.labels("one")._value.get() == 1


async def test_two_voices_on_mono_get_two_labels_and_their_own_words(
    tiny_engine: FasterWhisperEngine, two_voices: tuple[bytes, list[tuple[float, float, str]], bytes],
) -> None:
    data, turns, _ = two_voices
    transcript = await _run(_runner(tiny_engine), data, TranscribeOptions(speakers="on", word_timestamps=True))
    assert transcript.speakers == ("A", "B")
    assert _share_right(transcript, turns) >= 0.9
    # The turns come back in order: English first, JFK second.
    jfk = [s.speaker for s in transcript.segments if "fellow americans" in normalize(s.text)]
    assert jfk == ["B", "B"]
    assert transcript.segments[0].speaker == "A"


async def test_a_known_speaker_names_the_voice_that_matches(
    tiny_engine: FasterWhisperEngine, two_voices: tuple[bytes, list[tuple[float, float, str]], bytes],
) -> None:
    data, turns, jfk_clip = two_voices
    options = TranscribeOptions(speakers="on", known_speakers=(KnownSpeaker("Kennedy", jfk_clip),))
    transcript = await _run(_runner(tiny_engine), data, options)
    assert set(transcript.speakers) == {"A", "Kennedy"}
    jfk_words = normalize(" ".join(s.text for s in transcript.segments if s.speaker == "Kennedy"))
    assert "fellow americans" in jfk_words
    assert "permission" not in jfk_words


async def test_one_voice_with_speakers_auto_has_no_labels(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes],
) -> None:
    note = audio("jfk_voice.ogg")
    below = _runner(tiny_engine)  # the default: only recordings of 60 s and more
    plain = await _run(below, note, TranscribeOptions(speakers="auto"))
    assert plain.speakers == ()
    assert plain.speaker_note is None
    assert below.metrics.speaker_steps.labels("one")._value.get() == 0
    asked = _runner(tiny_engine, speakers_auto_min_s=5.0)  # long enough: the step runs and hears one voice
    transcript = await _run(asked, note, TranscribeOptions(speakers="auto"))
    assert asked.metrics.speaker_steps.labels("one")._value.get() == 1
    assert transcript.speakers == ()
    assert {s.speaker for s in transcript.segments} == {None}
    assert transcript.text == plain.text
    assert transcript.speaker_note is None


def test_without_the_extra_the_plain_transcript_comes_with_the_sentence(
    two_voices: tuple[bytes, list[tuple[float, float, str]], bytes], model_dir: Path, tmp_path: Path,
) -> None:
    # A fresh interpreter in which the speakers extra cannot be imported (torch and resemblyzer blocked at
    # the import system, as on an install without chatscribe[speakers]); the same model and recording.
    data, _, _ = two_voices
    (tmp_path / "note.wav").write_bytes(data)
    script = textwrap.dedent(f"""
        import asyncio, importlib.abc, json, sys
        from pathlib import Path

        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "resemblyzer"):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
                return None

        sys.meta_path.insert(0, Blocked())
        from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
        from chatscribe.core.engines.models import resolve_model
        from chatscribe.core.jobs.runner import LocalRunner, Work
        from chatscribe.core.metrics import Metrics
        from chatscribe.core.options import TranscribeOptions

        engine = FasterWhisperEngine(resolve_model("tiny.en", Path({str(model_dir)!r})), device="cpu", workers=1)
        runner = LocalRunner(engine, slots=1, max_duration_s=3600, metrics=Metrics(), batching="off")
        data = Path({str(tmp_path / "note.wav")!r}).read_bytes()
        transcript = asyncio.run(runner.run(Work("c", data, 45.0, TranscribeOptions(speakers="on"))))
        print(json.dumps({{"text": transcript.text, "speakers": transcript.speakers, "note": transcript.speaker_note,
                           "labels": [s.speaker for s in transcript.segments]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]


    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["note"] == sentences.SPEAKERS_UNAVAILABLE
    assert answer["speakers"] == []
    assert set(answer["labels"]) == {None}
    assert "fellow americans" in normalize(answer["text"])
    assert "permission is hereby granted" in normalize(answer["text"])


def test_the_requests_least_and_most_speakers_bound_the_count(
    two_voices: tuple[bytes, list[tuple[float, float, str]], bytes],
) -> None:
    samples = decode_audio(two_voices[0], max_duration_s=HOUR).samples
    assert find_voices(samples, shared_encoder()).count == 2  # estimated
    assert find_voices(samples, shared_encoder(), most=1).count == 1
    assert find_voices(samples, shared_encoder(), least=3).count == 3


async def test_a_call_with_crosstalk_gives_each_sides_words_once(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes],
) -> None:
    # One side on each channel, each leaking into the other at -26 dB (a headset's crosstalk): heard on both
    # channels, the words would come twice, under both labels.
    english = decode_audio(audio("multilingual.mp3"), max_duration_s=HOUR).samples[: 12 * SAMPLE_RATE]
    jfk = decode_audio(audio("jfk.flac"), max_duration_s=HOUR).samples
    first, second = np.zeros(len(english) + len(jfk), np.float32), np.zeros(len(english) + len(jfk), np.float32)
    first[: len(english)], second[len(english) :] = english, jfk
    data = _stereo_wav(first + 0.05 * second, second + 0.05 * first)
    transcript = await _run(_runner(tiny_engine), data, TranscribeOptions(speakers="on"))
    assert transcript.speakers == ("Left", "Right")
    left = normalize(" ".join(s.text for s in transcript.segments if s.speaker == "Left"))
    right = normalize(" ".join(s.text for s in transcript.segments if s.speaker == "Right"))
    assert "permission is hereby granted" in left
    assert "fellow americans" in right
    assert "permission" not in right
    assert "americans" not in left


async def test_a_failing_speaker_step_still_answers_the_whole_transcript_with_the_sentence(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes],
) -> None:
    # Any failure while telling voices apart (here the diarizer seam, as a deployment's pyannote could fail)
    # costs the labels only: the text goes out whole, saying why it has none.
    def broken(samples: np.ndarray, least: int, most: int | None) -> Voices:
        raise RuntimeError("the diarizer fell over")

    note = audio("jfk_voice.ogg")
    runner = LocalRunner(tiny_engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batching="off",
                         voice_finder=broken)
    transcript = await _run(runner, note, TranscribeOptions(speakers="on"))
    assert transcript.speaker_note == sentences.SPEAKERS_NOT_TOLD_APART
    assert transcript.speakers == ()
    assert "fellow americans" in normalize(transcript.text)
    assert runner.metrics.speaker_steps.labels("failed")._value.get() == 1


async def test_a_diarizer_giving_turns_without_voice_vectors_still_labels_and_names_the_speakers(
    tiny_engine: FasterWhisperEngine, two_voices: tuple[bytes, list[tuple[float, float, str]], bytes],
) -> None:
    """The VoiceFinder seam (a deployment's pyannote) may give turns only: the voices are counted from the
    turns, and known speakers are matched with the bundled encoder's vector of each voice's turns."""
    from chatscribe.core.speakers.voices import Turn

    data, turns, jfk_clip = two_voices
    order = {"english": 0, "jfk": 1}

    def turns_only(samples: np.ndarray, least: int, most: int | None) -> Voices:
        turns_of = tuple(Turn(start, end, order[who]) for start, end, who in turns)
        return Voices(turns_of, np.zeros((0, EMBEDDING_SIZE), np.float32))

    runner = LocalRunner(tiny_engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batching="off",
                         voice_finder=turns_only)
    labelled = await _run(runner, data, TranscribeOptions(speakers="on", word_timestamps=True))
    assert len(labelled.speakers) == 2, labelled.speakers
    assert _share_right(labelled, turns) >= 0.95
    kennedy = (KnownSpeaker("Kennedy", jfk_clip),)
    named = await _run(runner, data, TranscribeOptions(speakers="on", known_speakers=kennedy))
    assert "Kennedy" in named.speakers
    jfk_words = normalize(" ".join(s.text for s in named.segments if s.speaker == "Kennedy"))
    assert "fellow americans" in jfk_words
    assert "permission" not in jfk_words
