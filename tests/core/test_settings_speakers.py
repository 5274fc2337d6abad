"""`speakers on|off|auto`, a conversation setting like the others: parsed the same on every platform, refused
with one sentence, stored, shown by `settings`, and turned into the options of the next file."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatscribe.core.errors import SettingRefused
from chatscribe.core.preferences import Preferences
from chatscribe.core.sentences import SPEAKER_MODE_CHOICES
from chatscribe.core.settings import ConversationSettings, SettingChange, parse_setting


@pytest.mark.parametrize(("typed", "stored"), [("on", "on"), (" AUTO ", "auto"), ("Off", "off")])
def test_speakers_takes_on_off_or_auto(typed: str, stored: str) -> None:
    assert parse_setting("speakers", typed) == SettingChange("speakers", stored)


@pytest.mark.parametrize("typed", ["", "yes", "2", "loud"])
def test_any_other_value_is_refused_naming_the_three(typed: str) -> None:
    with pytest.raises(SettingRefused) as refused:
        parse_setting("speakers", typed)

    assert refused.value.user_message == SPEAKER_MODE_CHOICES
    assert all(word in SPEAKER_MODE_CHOICES for word in ("on", "off", "auto"))


def test_the_stored_setting_becomes_the_next_files_options_and_shows_in_settings(tmp_path: Path) -> None:
    preferences = Preferences(tmp_path / "preferences.sqlite3")
    preferences.change("telegram", "42", parse_setting("speakers", "auto"))

    chosen = preferences.settings("telegram", "42")

    assert chosen.speakers == "auto"
    assert chosen.options().speakers == "auto"
    assert "Speaker labels: auto" in chosen.lines()
    assert "Speaker labels: off" in ConversationSettings().lines()
    assert ConversationSettings().options().speakers == "off"


def test_a_stored_value_no_longer_understood_means_off() -> None:
    assert ConversationSettings.from_stored({"speakers": "sometimes"}).speakers == "off"


@pytest.mark.parametrize(("mode", "says"), [("on", "on"), ("auto", "auto"), ("off", "off")])
def test_the_confirmation_says_what_the_next_recordings_get(mode: str, says: str) -> None:
    assert str(SettingChange("speakers", mode).confirmation).startswith(f"Speaker labels: {says}")
