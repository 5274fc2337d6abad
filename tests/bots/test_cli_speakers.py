"""`chatscribe transcribe --speakers` as a person runs it: a real subprocess, the real tiny.en, the shared
two-channel call, and what lands on the terminal."""

from __future__ import annotations

from pathlib import Path

from chatscribe.core.options import MAX_SPEAKERS
from chatscribe.core.sentences import speaker_counts_refused
from tests.bots.test_cli_commands import _chatscribe, _copy
from tests.wer import wer


def test_speakers_labels_each_turn_of_a_two_channel_call(
    tmp_path: Path, audio_dir: Path, references: dict[str, dict[str, object]]
) -> None:
    call = _copy(audio_dir, "stereo_diarization.wav", tmp_path / "call.wav")
    expected = references["stereo_diarization.wav"]

    # `--speakers` right before the file: the file is not taken for the flag's optional value
    done = _chatscribe(["transcribe", "--speakers", str(call)], tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    turns = dict(turn.split(": ", 1) for turn in done.stdout.strip().split("\n\n"))
    assert sorted(turns) == ["Left", "Right"], done.stdout
    assert wer(str(expected["text_left"]), turns["Left"]) < 0.3, done.stdout
    assert wer(str(expected["text_right"]), turns["Right"]) < 0.3, done.stdout


def test_a_speaker_count_out_of_range_is_one_sentence_before_the_model_loads(tmp_path: Path) -> None:
    done = _chatscribe(["transcribe", "--min-speakers", "3", "--max-speakers", "2", "nothing.wav"], tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip() == str(speaker_counts_refused(3, 2, MAX_SPEAKERS))
    assert "Traceback" not in done.stderr


def test_doctor_says_whether_voices_can_be_told_apart(tmp_path: Path) -> None:
    from chatscribe.core.speakers import unavailable_reason

    done = _chatscribe(["doctor"], tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("speakers ")]
    reason = unavailable_reason()
    if reason is None:
        assert line.split(None, 1)[1].startswith("available: by channel and by voice"), line
    else:
        assert line.split(None, 1)[1] == f"by channel only: voices cannot be told apart ({reason})", line
