"""Splitting long text into chat messages under a limit measured in the platform's own units.

Telegram counts UTF-16 code units, Discord and Slack characters. Cuts prefer paragraph, then sentence,
then word boundaries; a word is cut only when it alone exceeds the limit. Joining the parts gives back
the text exactly: nothing is lost, duplicated or reordered (the whitespace at a cut stays at the end of
the part before it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

Measure = Callable[[str], int]


def characters(text: str) -> int:
    return len(text)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# Each pattern matches the end of a unit; the cut goes after the match.
_BOUNDARIES = (
    re.compile(r"\n\s*\n\s*"),                   # paragraph
    re.compile(r"\n\s*"),                        # line
    re.compile(r"(?<=[.!?…。！？])[\"')\]»”]*\s+"),  # sentence
    re.compile(r"\s+"),                          # word
)


def split_text(text: str, limit: int, measure: Measure = characters) -> list[str]:
    """Split `text` into parts of at most `limit` units each; "".join(parts) == text."""
    if limit < 2:
        raise ValueError("limit must allow at least two units (one surrogate pair)")
    parts: list[str] = []
    rest = text
    while measure(rest) > limit:
        cut = _cut(rest, limit, measure)
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def _cut(text: str, limit: int, measure: Measure) -> int:
    """The index to cut `text` at so that text[:index] fits and is as natural a piece as possible."""
    fit = _longest_fitting_prefix(text, limit, measure)
    window = text[:fit]
    for boundary in _BOUNDARIES:
        ends = [m.end() for m in boundary.finditer(window) if m.end() < len(text)]
        # a boundary in the first quarter makes a needlessly short message; prefer a finer one later
        good = [end for end in ends if end >= fit // 4]
        if good:
            return good[-1]
    return _safe_hard_cut(text, fit)


def _longest_fitting_prefix(text: str, limit: int, measure: Measure) -> int:
    low, high = 1, len(text)
    while low < high:  # binary search: measure may not be additive per character
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _safe_hard_cut(text: str, fit: int) -> int:
    """Inside one over-long word: avoid cutting before a combining mark or joiner."""
    cut = fit
    while cut > 1 and (_is_combining(text[cut]) if cut < len(text) else False):
        cut -= 1
    return cut


def _is_combining(char: str) -> bool:
    import unicodedata

    return unicodedata.combining(char) != 0 or char in "\u200d\ufe0f\ufe0e" or 0x1F3FB <= ord(char) <= 0x1F3FF
