"""Splitting long text into chat messages under a limit measured in the platform's own units.

Telegram counts UTF-16 code units, Discord and Slack characters. Cuts prefer paragraph, then sentence,
then word boundaries; a word is cut only when it alone exceeds the limit. Joining the parts gives back
the text exactly: nothing is lost, duplicated or reordered (the whitespace at a cut stays at the end of
the part before it).
"""

from __future__ import annotations

import re
import unicodedata
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
    ends: list[int] = []
    for boundary in _BOUNDARIES:
        ends = [m.end() for m in boundary.finditer(window) if m.end() < len(text)]
        # a boundary in the first quarter makes a needlessly short message; prefer a finer one later
        good = [end for end in ends if end >= fit // 4]
        if good:
            return good[-1]
    if ends:
        # Only early word boundaries: a short message still beats cutting a word that would fit whole.
        return ends[-1]
    if text[fit].isspace():
        return fit  # one word fills the window exactly: its whitespace starts the next part
    # One word fills the window and goes on past it (it alone exceeds the limit): script without
    # spaces (CJK) still has sentence and clause marks to cut after.
    for mark in _UNSPACED_MARKS:
        good = [m.end() for m in mark.finditer(window) if fit // 4 <= m.end() < len(text)]
        if good:
            return good[-1]
    return _safe_hard_cut(text, fit)


_UNSPACED_MARKS = (
    re.compile(r"[。！？!?.…][」』）\"'”’)]*"),  # sentence
    re.compile(r"[、，,；;：:]"),  # clause
)


def _longest_fitting_prefix(text: str, limit: int, measure: Measure) -> int:
    # Both measures count at least one unit per code point, so no fitting prefix is longer than limit.
    low, high = 1, min(len(text), limit)
    while low < high:  # binary search: measure may not be additive per character
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _safe_hard_cut(text: str, fit: int) -> int:
    """Inside one over-long word: cut between whole user-visible characters where there is one."""
    cut = fit
    while cut > 0 and not _grapheme_boundary(text, cut):
        cut -= 1
    return cut or fit  # a single cluster longer than the limit: cutting it is the only way


def _grapheme_boundary(text: str, index: int) -> bool:
    """A simplified grapheme-cluster rule: never before a mark/modifier/joiner, never after a joiner."""
    if index >= len(text):
        return True
    if _extends(text[index]) or text[index - 1] == _ZWJ:
        return False
    # Flags are pairs of regional indicators: only cut after an even number of them.
    if _regional(text[index]) and _regional(text[index - 1]):
        run = 0
        while index - run - 1 >= 0 and _regional(text[index - run - 1]):
            run += 1
        return run % 2 == 0
    return True


_ZWJ = "\u200d"


def _extends(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char in "\u200d\ufe0f\ufe0e"
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag characters of subdivision flags
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
