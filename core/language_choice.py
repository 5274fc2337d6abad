"""Which language a note is transcribed in, when nobody said: detection, helped by what the conversation tells.

Whisper guesses the language from the first seconds it hears, and on a clip of a few seconds it often
guesses wrong ("Continue" as Korean, a short German "Ja, genau" as Dutch). When that guess is not
confident, what the conversation tells is a better guide. The order, most trusted first:

1. the language set for the chat (its setting, a command's language, the API's `language`): used as it is,
   no detection (reason "requested");
2. the languages this conversation's recent notes were confidently detected in ("recent_notes");
3. the sender's client language, where the platform says it ("sender_language");
4. CHATSCRIBE_LANGUAGES, which always restricts detection to the operator's languages
   ("operator_languages" when that changed the guess).

How hints count: on a clip shorter than SHORT_CLIP_S whose most likely language has less than CONFIDENT
probability, each hinted language's probability is multiplied by its source's weight (WEIGHTS; a language
named by two sources takes the larger), and the most likely language after that wins. A hint never
overrules clear speech: a language the audio makes unlikely stays unlikely, however it is weighted. The
choice is pure (no model here), so it is tested and benchmarked on its own (bench/bench_language.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .options import TranscribeOptions

Reason = Literal["requested", "detected", "recent_notes", "sender_language", "operator_languages", "english_only"]
"""Why a transcript is in its language; JSON output and the DEBUG log name it."""
HintSource = Literal["recent_notes", "sender_language"]

SHORT_CLIP_S = 10.0
"""Clips up to this long may take a hinted language; longer ones give detection enough to go on."""
CONFIDENT = 0.9
"""A detection at least this probable is kept whatever the hints, and only such a detection is recorded as a
conversation's recent language."""
WEIGHTS: dict[str, float] = {"recent_notes": 10_000.0, "sender_language": 3_000.0}
"""How much more likely a hinted language is taken to be than detection alone says (measured in
docs/benchmarks.md, "Language of short clips")."""
RECENT_LIMIT = 3
"""Languages remembered per conversation (the most recent first)."""


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    language: str
    probability: float
    """Detection's probability of the chosen language (1.0 when it was requested)."""
    reason: Reason


def choose(
    ranked: Sequence[tuple[str, float]], *, duration_s: float, expected: Iterable[str] = (),
    hints: Sequence[tuple[str, str]] = (), confident: float = CONFIDENT, weights: Mapping[str, float] = WEIGHTS,
) -> LanguageChoice:
    """The language for a clip from detection's probabilities (`ranked`, every language, any order).

    `expected`: CHATSCRIBE_LANGUAGES (empty: any); `hints`: (source, code) pairs, most trusted first.
    `confident` and `weights` are the module's constants, given here only by the benchmark.
    """
    scores = sorted(((code, float(p)) for code, p in ranked), key=lambda item: -item[1])
    allowed = set(expected)
    candidates = [item for item in scores if item[0] in allowed] if allowed else scores
    if not candidates:  # the operator's languages are not Whisper's: detection as it is
        candidates = scores
    top_code, top_p = scores[0]
    best_code, best_p = candidates[0]
    reason: Reason = "detected" if best_code == top_code else "operator_languages"
    if duration_s > SHORT_CLIP_S or best_p >= confident or not hints:
        return LanguageChoice(best_code, best_p, reason)
    weight = _weights(hints, weights)
    probability = dict(candidates)
    weighted = max(candidates, key=lambda item: item[1] * weight.get(item[0], (1.0, reason))[0])
    code = weighted[0]
    if code == best_code:
        return LanguageChoice(best_code, best_p, reason)
    return LanguageChoice(code, probability[code], weight[code][1])


def _weights(hints: Sequence[tuple[str, str]], by_source: Mapping[str, float]) -> dict[str, tuple[float, Reason]]:
    """Each hinted language's weight and the source it comes from (the heavier one, when two name it)."""
    weights: dict[str, tuple[float, Reason]] = {}
    for source, code in hints:
        weight = by_source.get(source)
        if weight is None:
            continue
        if code not in weights or weight > weights[code][0]:
            weights[code] = (weight, source)  # type: ignore[assignment]
    return weights


def remembered(recent: Sequence[str], language: str) -> tuple[str, ...]:
    """A conversation's recent languages after a note confidently detected in `language`: most recent first,
    at most RECENT_LIMIT."""
    return (language, *(code for code in recent if code != language))[:RECENT_LIMIT]


def hints_for(recent: Sequence[str], sender_language: str | None) -> tuple[tuple[str, str], ...]:
    """The (source, code) hints of a note, most trusted first."""
    hints: list[tuple[str, str]] = [("recent_notes", code) for code in recent]
    if sender_language:
        hints.append(("sender_language", sender_language))
    return tuple(hints)


def reason_of(options: TranscribeOptions, multilingual: bool) -> Reason:
    """The reason where no choice was made: the language was given, the model knows only English, or
    Whisper detected it on its own."""
    if not multilingual:
        return "english_only"
    return "requested" if options.language else "detected"


def is_confident(probability: float) -> bool:
    return probability >= CONFIDENT
