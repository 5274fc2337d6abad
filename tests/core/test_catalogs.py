"""The reply catalogs are complete: every sentence the code marks is in each language, with the same values.

The sentences are extracted from the code with Babel's own extractor, the way `pybabel extract` does it
(babel.cfg, chatscribe.core.i18n.KEYWORDS), so a new `Sentence("...")` left out of a catalog fails here.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from chatscribe.core import REPLY_LANGUAGES, localize, sentences
from chatscribe.core.errors import ChatscribeError, MediaTooLong
from chatscribe.core.i18n import KEYWORDS, LOCALE_DIR, Sentence, from_json, to_json
from chatscribe.core.jobs.journal import Journal
from chatscribe.core.media import Fetch, MediaRequest
from chatscribe.core.options import TranscribeOptions

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [code for code in REPLY_LANGUAGES if code != "en"]
_FIELD = re.compile(r"\{(\w+)")


def _extracted() -> dict[str, tuple[str, ...]]:
    """msgid -> every English form (one, or singular and plural), from core, adapters and bots."""
    found: dict[str, tuple[str, ...]] = {}
    for folder in ("core", "adapters", "bots"):
        for _file, _line, message, _comments, _context in extract_from_dir(
                ROOT / folder, method_map=[("**.py", "python")], keywords=dict(KEYWORDS), comment_tags=()):
            forms = message if isinstance(message, tuple) else (message,)
            found[forms[0]] = tuple(forms)
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.fixture(scope="module")
def extracted() -> dict[str, tuple[str, ...]]:
    found = _extracted()
    assert sentences.NO_SPEECH in found
    assert "{n} setting" in found
    return found


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_catalog_has_every_sentence_with_the_same_values(language: str,
                                                               extracted: dict[str, tuple[str, ...]]) -> None:
    path = LOCALE_DIR / language / "LC_MESSAGES" / "chatscribe.po"
    assert path.is_file(), f"no catalog for {language}: pybabel init (README, Reply languages)"
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    problems = []
    for msgid, forms in extracted.items():
        entry = catalog.get(msgid)
        if entry is None or entry.fuzzy:
            problems.append(f"missing{' (fuzzy)' if entry else ''}: {msgid!r}")
            continue
        translations = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set().union(*(_fields(form) for form in forms))
        for translation in translations:
            if not translation:
                problems.append(f"untranslated: {msgid!r}")
            elif _fields(translation) != wanted:
                problems.append(f"{msgid!r}: values {sorted(_fields(translation))}, the English has {sorted(wanted)}")
        if len(translations) != catalog.num_plurals and len(forms) > 1:
            problems.append(f"{msgid!r}: {len(translations)} plural forms, {language} has {catalog.num_plurals}")
    assert not problems, f"{language}: " + "\n".join(problems)


@pytest.mark.parametrize("language", TRANSLATED)
def test_a_sentence_reads_in_the_language_asked_for_and_english_otherwise(language: str) -> None:
    german_busy = localize(sentences.busy(sentences.RATE_LIMITED, 180), language)
    assert german_busy != str(sentences.busy(sentences.RATE_LIMITED, 180))
    assert "3" in german_busy
    assert "{" not in german_busy
    assert localize(sentences.NO_SPEECH, None) == localize(sentences.NO_SPEECH, "ja") == "No speech detected."


def test_platform_locales_map_onto_the_reply_languages() -> None:
    assert localize(sentences.NO_SPEECH, "pt-BR") == localize(sentences.NO_SPEECH, "pt") != "No speech detected."
    assert localize(sentences.NO_SPEECH, "de_DE") == "Keine Sprache erkannt."
    assert localize(sentences.NO_SPEECH, "en-GB") == "No speech detected."
    assert localize("a transcript, never translated", "de") == "a transcript, never translated"


def test_a_sentence_survives_the_journal_and_still_reads_in_any_language() -> None:
    """Errors are journaled (and cross Redis) as JSON; read back, they still render per reader."""
    original = sentences.busy(sentences.RATE_LIMITED, 60)
    restored = from_json(to_json(original) or {})
    assert isinstance(restored, Sentence)
    assert restored == original
    assert localize(restored, "ru") == localize(original, "ru") != str(original)


def test_a_journaled_job_keeps_its_reply_language_and_its_errors_sentence(tmp_path: Path) -> None:
    """After a restart the answer is still said in the language of whoever asked (the journal's row)."""
    async def never(max_bytes: int) -> bytes:
        raise AssertionError("not fetched")

    class Fetchers:
        def fetcher(self, reference: object) -> Fetch:
            return never

    path = tmp_path / "jobs.sqlite3"
    journal = Journal(path)
    job = journal.add(MediaRequest(platform="fake", chat_id="c", user_id="u", fetch=never, replies="uk"),
                      TranscribeOptions())
    journal.set_outcome(job.id, MediaTooLong(900, 600))
    journal.close()

    reopened = Journal(path)
    (entry,) = reopened.unfinished("fake", Fetchers())  # type: ignore[arg-type]
    reopened.close()
    assert entry.job.request.replies == "uk"
    assert isinstance(entry.outcome, ChatscribeError)
    said = localize(entry.outcome.user_message, entry.job.request.replies)
    assert said == "Цей запис задовгий (15 хв): межа — 10 хв."
