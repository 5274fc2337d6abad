"""`chatscribe transcribe` and `chatscribe doctor` as a person runs them: a real subprocess, the real tiny.en,
a fresh data dir, and what lands on disk and on the terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatscribe.core.errors import UnacceptedFormat
from chatscribe.core.media import ACCEPTED_FORMATS

JFK_WORDS = ("fellow americans", "country")
SLACK_TOKEN = "xoxb-1111-2222-cli-doctor-secret"
SLACK_SECRET = "signing-secret-cli-doctor-0042"


def _chatscribe(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing of the caller's CHATSCRIBE_ or platform settings leaks in, and the
    # working directory holds no .env.
    platform_prefixes = ("CHATSCRIBE_", "TELEGRAM_", "DISCORD_", "SLACK_")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(platform_prefixes)}
    clean.update({"CHATSCRIBE_MODEL": "tiny.en", "CHATSCRIBE_DEVICE": "cpu",
                  "CHATSCRIBE_DATA_DIR": str(cwd / "data"), **env})
    return subprocess.run([sys.executable, "-m", "chatscribe", *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=600, check=False)


def _copy(audio_dir: Path, name: str, target: Path) -> Path:
    target.write_bytes((audio_dir / name).read_bytes())
    return target


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt", "json"])
def test_several_files_are_each_written_to_the_output_dir_in_the_chosen_format(
    tmp_path: Path, audio_dir: Path, fmt: str
) -> None:
    files = [_copy(audio_dir, "jfk_voice.ogg", tmp_path / "voice.ogg"),
             _copy(audio_dir, "jfk.m4a", tmp_path / "memo.m4a")]
    out = tmp_path / "out"

    done = _chatscribe(["transcribe", "--format", fmt, "--output-dir", str(out), *map(str, files)], tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""  # written to files, not printed
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.{fmt}" for p in files)
    for path in files:
        body = (out / f"{path.stem}.{fmt}").read_text(encoding="utf-8")
        assert f"{path} -> {out / f'{path.stem}.{fmt}'}" in done.stderr
        _assert_format(body, fmt)


def _assert_format(body: str, fmt: str) -> None:
    if fmt == "json":
        data = json.loads(body)
        text = json.dumps(data).lower()
        assert all(word in text for word in JFK_WORDS), body
        assert isinstance(data, dict), body
        assert data.get("segments"), body
        return
    lowered = body.lower()
    assert all(word in lowered for word in JFK_WORDS), body
    cue = r"\d\d:\d\d:\d\d[,.]\d\d\d --> \d\d:\d\d:\d\d[,.]\d\d\d"
    if fmt == "txt":
        assert not re.search(cue, body), body
    elif fmt == "srt":
        assert body.startswith("1\n"), body
        assert re.search(r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d", body), body
    else:  # vtt
        assert body.startswith("WEBVTT"), body
        assert re.search(r"\d\d:\d\d(:\d\d)?\.\d\d\d --> \d\d:\d\d(:\d\d)?\.\d\d\d", body), body


def test_a_bad_file_among_good_ones_exits_1_with_its_sentence_and_the_others_are_written(
    tmp_path: Path, audio_dir: Path
) -> None:
    good_first = _copy(audio_dir, "jfk_voice.ogg", tmp_path / "first.ogg")
    bad = audio_dir / "not_audio.ogg"
    good_last = _copy(audio_dir, "jfk.flac", tmp_path / "last.flac")
    out = tmp_path / "out"

    done = _chatscribe(["transcribe", "--output-dir", str(out), str(good_first), str(bad), str(good_last)],
                       tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    refusal = UnacceptedFormat(", ".join(ACCEPTED_FORMATS.values())).user_message  # a text file is no container
    assert f"{bad}: {refusal}" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["first.txt", "last.txt"]
    for name in ("first.txt", "last.txt"):
        text = (out / name).read_text(encoding="utf-8").lower()
        assert all(word in text for word in JFK_WORDS), text


def test_doctor_on_a_fresh_data_dir_names_the_model_and_says_no_platform_is_configured(tmp_path: Path) -> None:
    done = _chatscribe(["doctor"], tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    assert "PROBLEM" not in output
    lines = _by_label(done.stdout)
    assert str((tmp_path / "data").resolve()) in lines["data dir"]
    assert lines["data dir"].endswith("(writable)")
    assert lines["model"].startswith("tiny.en")
    assert lines["cache"].startswith("0.0 MB")
    assert "jobs" not in lines  # no journal yet on a fresh data dir
    assert lines["broker"].startswith("none")
    assert lines["telegram"] == "not configured (set TELEGRAM_BOT_TOKEN)"
    assert lines["discord"] == "not configured (set DISCORD_BOT_TOKEN)"
    assert lines["slack"] == "not configured (set SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET)"


def test_doctor_names_a_configured_platform_and_never_prints_its_secrets(tmp_path: Path) -> None:
    done = _chatscribe(["doctor"], tmp_path, SLACK_BOT_TOKEN=SLACK_TOKEN, SLACK_SIGNING_SECRET=SLACK_SECRET)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    lines = _by_label(done.stdout)
    assert lines["slack"] == "configured"
    assert lines["telegram"].startswith("not configured")
    assert SLACK_TOKEN not in output
    assert SLACK_SECRET not in output
    assert "xoxb-" not in output


def _by_label(stdout: str) -> dict[str, str]:
    """doctor's lines by their label (the first 13 columns); continuation lines are left out."""
    lines = {}
    for line in stdout.splitlines():
        label, value = line[:13].strip(), line[13:].strip()
        if label and label not in lines:
            lines[label] = value
    return lines
