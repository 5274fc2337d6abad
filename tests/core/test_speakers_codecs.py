"""Speaker options and labels written down and read back (journal, cache, Redis), and in the cache key."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from chatscribe.core.codecs import decode_options, dumps_outcome, encode_options, loads_transcript
from chatscribe.core.errors import SpeakerOptionsRefused
from chatscribe.core.keys import options_digest
from chatscribe.core.options import KnownSpeaker, TranscribeOptions
from chatscribe.core.speakers.encoder import PINNED
from chatscribe.core.transcript import Segment, Transcript


def test_speaker_options_survive_json_and_join_the_digest() -> None:
    clip = b"RIFF\x00\x01fake clip bytes \xff"
    options = TranscribeOptions(speakers="on", min_speakers=2, max_speakers=3,
                                known_speakers=(KnownSpeaker("Ann", clip), KnownSpeaker("Bo", b"\x01\x02")))
    back = decode_options(json.loads(json.dumps(encode_options(options))))
    assert back == options
    assert back.known_speakers[0].audio == clip
    plain = options_digest(TranscribeOptions())
    assert options_digest(TranscribeOptions(speakers="on")) != plain
    assert options_digest(TranscribeOptions(speakers="auto")) != options_digest(TranscribeOptions(speakers="on"))
    assert options_digest(TranscribeOptions(speakers="on", max_speakers=2)) != options_digest(
        TranscribeOptions(speakers="on"))
    other_clip = TranscribeOptions(speakers="on", min_speakers=2, max_speakers=3,
                                   known_speakers=(KnownSpeaker("Ann", clip + b"!"), KnownSpeaker("Bo", b"\x01\x02")))
    assert options_digest(other_clip) != options_digest(options)


def test_options_without_speakers_keep_the_digest_caches_hold() -> None:
    # Written before speaker fields existed: no speaker key in the stored form, the same digest.
    assert "speakers" not in encode_options(TranscribeOptions(language="de"))
    assert decode_options({"language": "de", "task": "transcribe"}) == TranscribeOptions(language="de")


def test_transcripts_keep_their_speakers_and_note() -> None:
    transcript = Transcript(
        segments=(Segment(0.0, 2.0, " Hello.", speaker="A"), Segment(2.0, 4.0, " Hi there.", speaker="B")),
        language="en", language_probability=0.9, duration_s=4.0, model="base", speakers=("A", "B"))
    back = loads_transcript(dumps_outcome(transcript))
    assert back == transcript
    assert [s.speaker for s in back.segments] == ["A", "B"]
    assert back.speakers == ("A", "B")
    noted = Transcript(segments=(Segment(0.0, 1.0, " Hi."),), language="en", language_probability=1.0,
                       duration_s=1.0, model="base", speaker_note="Speakers could not be told apart.")
    assert loads_transcript(dumps_outcome(noted)).speaker_note == noted.speaker_note
    older = json.loads(dumps_outcome(transcript))
    older.pop("speakers"), older.pop("speaker_note")
    for segment in older["segments"]:
        segment.pop("speaker")
    assert loads_transcript(json.dumps(older)).speakers == ()


@pytest.mark.parametrize("options", [
    {"speakers": "maybe"}, {"min_speakers": 0}, {"min_speakers": 3, "max_speakers": 2}, {"max_speakers": 99},
    {"known_speakers": (KnownSpeaker("", b"x"),)}, {"known_speakers": (KnownSpeaker("A", b"x"),) * 2},
])
def test_unusable_speaker_options_are_refused_with_a_sentence(options: dict[str, object]) -> None:
    with pytest.raises(SpeakerOptionsRefused) as refused:
        TranscribeOptions(**options)  # type: ignore[arg-type]
    assert refused.value.user_message.endswith(".")


def test_the_speakers_extra_pins_the_package_whose_weights_are_checked() -> None:
    # The sha256 in core/speakers/encoder.py holds for one release of the package; the extra must install that one.
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert PINNED in project["project"]["optional-dependencies"]["speakers"]


def test_the_speakers_package_names_what_it_has_and_loads_no_torch_on_import() -> None:
    code = ("import sys, chatscribe.core.speakers as s\n"
            "assert all(hasattr(s, n) for n in s.__all__) and len(set(s.__all__)) == len(s.__all__)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'resemblyzer', 'librosa'}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
