"""The conversation settings every platform shares: what people may type, what is stored, what it means."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatscribe.core.errors import ChatscribeError, LanguageNotOffered, SettingRefused, UnknownLanguage
from chatscribe.core.preferences import Preferences
from chatscribe.core.settings import ConversationSettings, SettingChange, parse_setting, resolve_language


@pytest.mark.parametrize(("key", "typed", "expected"), [
    ("language", "auto", ("language", None)),
    ("language", "DE", ("language", "de")),
    ("language", " German ", ("language", "de")),
    ("translate", "on", ("translate", "on")),
    ("format", "txt", ("format", "text")),
    ("format", "VTT", ("format", "vtt")),
    ("timestamps", "off", ("timestamps", "off")),
    ("vocab", " Kubernetes, ComfyUI ", ("vocab", "Kubernetes, ComfyUI")),
    ("vocabulary", "", ("vocab", None)),
    ("auto", "ON", ("auto", "on")),
])
def test_values_as_typed_are_stored_in_one_form(key: str, typed: str, expected: tuple[str, str | None]) -> None:
    assert parse_setting(key, typed) == SettingChange(*expected)


@pytest.mark.parametrize(("key", "typed", "accepted"), [
    ("language", "", "auto, a code such as en or de, or an English name"),
    ("language", "klingon", "auto, a code such as en or de, or an English name"),
    ("translate", "maybe", "on or off"),
    ("format", "docx", "text, srt or vtt"),
    ("auto", "", "on or off"),
    ("vocab", "x" * 501, "at most 500 characters"),
    ("colour", "blue", "language, translate, vocab, format, timestamps, auto"),
])
def test_an_unknown_value_gets_one_sentence_naming_what_is_accepted(key: str, typed: str, accepted: str) -> None:
    with pytest.raises(ChatscribeError) as refused:
        parse_setting(key, typed)
    assert accepted in refused.value.user_message
    assert refused.value.user_message.count(". ") == 0, "one sentence"


def test_a_language_outside_chatscribe_languages_is_refused_naming_those_offered() -> None:
    with pytest.raises(LanguageNotOffered) as refused:
        parse_setting("language", "French", offered=("en", "de"))
    assert refused.value.user_message.endswith("use auto, English (en) or German (de).")
    assert parse_setting("language", "German", offered=("en", "de")) == SettingChange("language", "de")
    assert parse_setting("language", "auto", offered=("en",)) == SettingChange("language", None)
    with pytest.raises(UnknownLanguage):
        resolve_language("xx", ("en",))


def test_stored_settings_become_the_options_of_the_next_file() -> None:
    chat = ConversationSettings.from_stored(
        {"language": "de", "translate": "on", "vocab": "ComfyUI", "format": "srt", "auto": "on"})
    options = chat.options(("en", "de"))
    assert (options.language, options.task, options.vocabulary) == ("de", "translate", "ComfyUI")
    assert options.expected_languages == (), "a chosen language is not detected"
    assert (chat.format, chat.file_extension, chat.auto) == ("srt", "srt", True)
    assert ConversationSettings().options(("en", "de")).expected_languages == ("en", "de")
    assert ConversationSettings().auto_or(True)
    assert not ConversationSettings(auto=False).auto_or(True)


def test_a_one_off_override_wins_for_that_file_only() -> None:
    chat = ConversationSettings(language="de", translate=False)
    once = chat.options((), language="fr", translate=True)
    assert (once.language, once.task) == ("fr", "translate")
    assert chat.options(()).language == "de"


def test_a_stored_language_the_operator_no_longer_offers_falls_back_to_detection_among_those_offered() -> None:
    options = ConversationSettings(language="fr").options(("en", "de"))
    assert (options.language, options.expected_languages) == (None, ("en", "de"))


def test_later_layers_override_earlier_ones_key_by_key(tmp_path: Path) -> None:
    prefs = Preferences(tmp_path / "prefs.sqlite3")
    prefs.change("discord", "server", parse_setting("language", "de"))
    prefs.change("discord", "server", parse_setting("vocab", "Kubernetes"))
    prefs.change("discord", "channel", parse_setting("language", "en"))
    here = prefs.settings("discord", "server", "channel")
    assert (here.language, here.vocabulary) == ("en", "Kubernetes")
    assert prefs.settings("discord", "server").language == "de"
    prefs.close()
    reopened = Preferences(tmp_path / "prefs.sqlite3")
    assert reopened.settings("discord", "server", "channel").language == "en", "kept across restarts"
    reopened.close()


def test_confirmations_say_what_changed() -> None:
    assert parse_setting("language", "de").confirmation == "Language set to German (de)."
    assert parse_setting("language", "auto").confirmation == "Language set to auto-detect."
    assert parse_setting("translate", "on").confirmation == "Translation to English: on."
    assert parse_setting("vocab", "").confirmation == "Vocabulary cleared."
    assert isinstance(SettingRefused("x"), ChatscribeError)


def test_changes_made_at_once_from_many_threads_and_two_processes_are_all_kept(tmp_path: Path) -> None:
    """A conversation's recent languages are read, changed and written back as each note finishes: notes
    finishing at once, in threads or in processes sharing the data dir, must not lose each other's change."""
    import threading

    path = tmp_path / "prefs.sqlite3"
    handles = [Preferences(path), Preferences(path)]  # two connections: as two processes would have

    def add(handle: Preferences, token: str) -> None:
        handle.update("telegram", "42", "seen", lambda stored: ",".join(filter(None, (stored, token))))

    threads = [threading.Thread(target=lambda n=n: [add(handles[n % 2], f"{n}-{i}") for i in range(25)])
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = (handles[0].get("telegram", "42", "seen") or "").split(",")
    assert sorted(seen) == sorted(f"{n}-{i}" for n in range(8) for i in range(25))
    for handle in handles:
        handle.close()
