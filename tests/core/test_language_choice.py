"""How a short clip's language is chosen from detection and what the conversation tells (pure: no model)."""

from __future__ import annotations

from chatscribe.core.language_choice import CONFIDENT, RECENT_LIMIT, SHORT_CLIP_S, choose, hints_for, remembered
from chatscribe.core.languages import code_of_locale
from chatscribe.core.options import TranscribeOptions

UNSURE = [("nl", 0.41), ("de", 0.30), ("en", 0.15), ("af", 0.08)]
"""A short German "Ja, genau" as Whisper hears it: Dutch first, not confidently."""


def test_an_unsure_short_clip_takes_the_language_of_the_chats_recent_notes() -> None:
    choice = choose(UNSURE, duration_s=2.0, hints=hints_for(("de",), None))
    assert (choice.language, choice.reason) == ("de", "recent_notes")
    assert choice.probability == 0.30  # what detection gave German, not the weighted score


def test_the_senders_client_language_helps_when_the_chat_has_no_history() -> None:
    choice = choose(UNSURE, duration_s=2.0, hints=hints_for((), "de"))
    assert (choice.language, choice.reason) == ("de", "sender_language")


def test_recent_notes_weigh_more_than_the_senders_language() -> None:
    ranked = [("nl", 0.40), ("de", 0.25), ("en", 0.25)]
    choice = choose(ranked, duration_s=2.0, hints=hints_for(("de",), "en"))
    assert (choice.language, choice.reason) == ("de", "recent_notes")


def test_a_confident_detection_or_a_long_clip_keeps_what_was_detected() -> None:
    confident = [("en", CONFIDENT + 0.05), ("de", 0.05)]
    assert choose(confident, duration_s=2.0, hints=hints_for(("de",), "de")).language == "en"
    long_clip = choose(UNSURE, duration_s=SHORT_CLIP_S + 1, hints=hints_for(("de",), "de"))
    assert (long_clip.language, long_clip.reason) == ("nl", "detected")


def test_a_hint_never_overrules_speech_that_is_clearly_another_language() -> None:
    ranked = [("en", 0.85), ("cy", 0.1), ("de", 0.00005)]  # English, just under the confidence bar
    assert choose(ranked, duration_s=3.0, hints=hints_for(("de",), "de")).language == "en"


def test_the_operators_languages_restrict_whatever_the_hints_say() -> None:
    choice = choose(UNSURE, duration_s=2.0, expected=("en", "fr"), hints=hints_for(("de",), None))
    assert (choice.language, choice.reason) == ("en", "operator_languages")
    assert choose(UNSURE, duration_s=2.0, expected=("de", "nl")).reason == "detected"


def test_without_hints_the_choice_is_plain_detection() -> None:
    choice = choose(list(reversed(UNSURE)), duration_s=2.0)  # any order in, the most probable out
    assert (choice.language, choice.probability, choice.reason) == ("nl", 0.41, "detected")


def test_recent_languages_are_bounded_most_recent_first() -> None:
    recent: tuple[str, ...] = ()
    for code in ("de", "en", "de", "fr", "uk"):
        recent = remembered(recent, code)
    assert recent == ("uk", "fr", "de")[:RECENT_LIMIT]


def test_platform_locales_become_whisper_codes() -> None:
    assert [code_of_locale(tag) for tag in ("de", "pt-BR", "zh_TW", "nb", "EN-us", "", None, "xx-YY")] == [
        "de", "pt", "zh", "no", "en", None, None, None]


def test_hints_ride_with_the_options_but_not_in_the_cache_digest() -> None:
    from chatscribe.core.codecs import decode_options, encode_options
    from chatscribe.core.keys import options_digest

    hinted = TranscribeOptions(language_hints=(("recent_notes", "de"), ("sender_language", "en")))
    assert decode_options(encode_options(hinted)) == hinted  # journaled and sent to workers with the job
    assert options_digest(hinted) == options_digest(TranscribeOptions())
    assert hinted.batch_key() != TranscribeOptions().batch_key()
    assert "language_hints" not in encode_options(TranscribeOptions())  # older stored options read the same
