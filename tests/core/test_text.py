"""split_text: what a chat user would notice if it went wrong (lost, repeated or cut words, long messages)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatscribe.core.text import characters, split_text, utf16_units

MEASURES = {"characters": characters, "utf16_units": utf16_units}
_WORD = re.compile(r"\S+")

# Pieces a transcript or a chat message really contains, mixed freely by the strategies below.
_EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "❤️", "🇩🇪", "🧑🏿\u200d💻"]
_CJK = ["日本語", "中文字", "한국어", "。", "、", "！", "？", "漢"]
_RTL = ["مرحبا", "بالعالم", "שלום", "עולם", "،", "؟"]
_COMBINING = ["e\u0301", "n\u0303", "a\u0308\u0304", "\u0915\u094d\u0937", "Z\u0351\u0352\u0357"]
_LATIN = ["word", "a", "speech", "Ask", "not", "country,", "you.", "Hello!", "why?", "“quoted.”", "(aside.)"]
_SPACE = [" ", "  ", "\n", "\n\n", "\t", " \n \n ", "\u00a0", "\u3000"]
_LONG = ["x" * 70, "😀" * 40, "漢" * 90, "e\u0301" * 35, "ab" * 50]

token = st.sampled_from(_EMOJI + _CJK + _RTL + _COMBINING + _LATIN + _SPACE + _LONG)
mixed_text = st.lists(token, max_size=80).map("".join)
any_text = st.one_of(mixed_text, st.text(max_size=400), st.text(alphabet=" \n\t\u3000", max_size=60))
limits = st.integers(min_value=2, max_value=120)
measure_names = st.sampled_from(sorted(MEASURES))


def assert_split_ok(text: str, limit: int, measure_name: str) -> list[str]:
    measure = MEASURES[measure_name]
    parts = split_text(text, limit, measure)
    assert "".join(parts) == text, "text was lost, duplicated or reordered"
    for part in parts:
        assert measure(part) <= limit, f"part of {measure(part)} {measure_name} over the limit {limit}"
    if text:
        assert all(parts), "an empty message would be sent"
    cuts, position = [], 0
    for part in parts[:-1]:
        position += len(part)
        cuts.append(position)
    for match in _WORD.finditer(text):
        inside = [cut for cut in cuts if match.start() < cut < match.end()]
        if inside:
            assert measure(match.group()) > limit, (
                f"the word {match.group()!r} ({measure(match.group())} units) fits in {limit} but was cut"
            )
    return parts


@settings(max_examples=400, deadline=None)
@given(text=any_text, limit=limits, measure_name=measure_names)
@example(text="a " + "b" * 19 + " c", limit=20, measure_name="characters")
@example(text="😀" * 3, limit=2, measure_name="utf16_units")
@example(text="", limit=5, measure_name="characters")
def test_parts_fit_rejoin_and_keep_words(text: str, limit: int, measure_name: str) -> None:
    assert_split_ok(text, limit, measure_name)


@settings(max_examples=150, deadline=None)
@given(words=st.lists(st.sampled_from(_LATIN + _RTL + _EMOJI[:3]), min_size=1, max_size=120), limit=limits)
def test_space_separated_words_are_never_cut_when_each_fits(words: list[str], limit: int) -> None:
    # Every word here is far shorter than the limit once the limit is at least the longest word.
    limit = max(limit, max(utf16_units(w) for w in words))
    parts = assert_split_ok(" ".join(words), limit, "utf16_units")
    assert [w for part in parts for w in part.split()] == words


def test_empty_text_gives_one_empty_part() -> None:
    assert split_text("", 10) == [""]


def test_text_within_the_limit_is_one_part() -> None:
    text = "Ask not what your country can do for you."
    assert split_text(text, len(text)) == [text]


def test_whitespace_only_text_is_kept_exactly() -> None:
    text = " \n\n \t " * 20
    parts = assert_split_ok(text, 7, "characters")
    assert len(parts) > 1


def test_utf16_counts_astral_characters_twice() -> None:
    text = "😀" * 10  # 20 UTF-16 units: Telegram would reject one message of it with a limit of 10
    parts = split_text(text, 10, utf16_units)
    assert parts == ["😀" * 5, "😀" * 5]
    assert split_text(text, 10, characters) == [text]


def test_paragraph_boundary_preferred_over_a_later_sentence() -> None:
    first = "The first paragraph has a sentence. And it has another one here."
    second = "The second paragraph. It continues for a while with more words."
    text = f"{first}\n\n{second}"
    parts = split_text(text, len(first) + 30, characters)
    assert parts == [f"{first}\n\n", second]


def test_sentence_boundary_preferred_over_a_later_word() -> None:
    text = "Ask not what your country can do for you. Ask what you can do for your country, fellow citizens."
    parts = split_text(text, 60, characters)
    assert parts[0] == "Ask not what your country can do for you. "
    assert "".join(parts) == text


def test_sentence_boundary_after_closing_quote() -> None:
    text = '"He said so." Then another sentence follows that is long enough to need a cut somewhere.'
    parts = split_text(text, 40, characters)
    assert parts[0] == '"He said so." '


def test_over_long_word_is_cut_without_splitting_a_combining_sequence() -> None:
    word = "e\u0301" * 30  # 60 code points, 30 user-visible letters
    parts = assert_split_ok(word, 7, "characters")
    for part in parts:
        assert not part.startswith("\u0301"), "an accent was separated from its letter"


def test_over_long_emoji_run_is_cut_between_whole_skin_toned_emoji() -> None:
    text = "👍🏽" * 20
    parts = assert_split_ok(text, 9, "utf16_units")
    for part in parts:
        assert not part.startswith("\U0001f3fd"), "a skin-tone modifier was separated from its emoji"


def test_cjk_text_without_spaces_prefers_sentence_ends() -> None:
    sentence = "今日は良い天気です。"  # 10 characters, no spaces between words in Japanese
    text = sentence * 6
    parts = assert_split_ok(text, 25, "characters")
    assert all(part.endswith("。") for part in parts)


def test_rtl_text_round_trips() -> None:
    text = "مرحبا بالعالم. " * 12 + "שלום עולם! " * 12
    parts = assert_split_ok(text, 40, "utf16_units")
    assert len(parts) > 1


@pytest.mark.parametrize("limit", [0, 1])
def test_limit_too_small_for_a_surrogate_pair_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        split_text("text", limit)


def test_over_long_run_of_zwj_families_is_cut_between_whole_families() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"  # 7 code points, one picture
    parts = assert_split_ok(family * 5, 10, "characters")
    assert parts == [family] * 5


def test_over_long_run_of_flags_is_cut_between_whole_flags() -> None:
    flags = "🇩🇪🇫🇷🇯🇵" * 4  # regional indicators pair up into flags
    parts = assert_split_ok(flags, 7, "characters")
    assert all(len(part) % 2 == 0 for part in parts), "a flag was split into two letters"


def test_a_word_that_fills_the_limit_exactly_is_not_cut_at_its_punctuation() -> None:
    assert split_text("0000000000?0\r", 12) == ["0000000000?0", "\r"]
