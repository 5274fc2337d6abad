"""What a person asks for: languages as typed are normalized or refused with a sentence for them."""

from __future__ import annotations

import pytest

from chatscribe.core.errors import ChatscribeError, UnknownLanguage
from chatscribe.core.options import TranscribeOptions


@pytest.mark.parametrize(("typed", "code"), [("EN", "en"), (" de ", "de"), ("yue", "yue"), ("", None)])
def test_language_as_typed_is_normalized(typed: str, code: str | None) -> None:
    assert TranscribeOptions(language=typed).language == code


@pytest.mark.parametrize("typed", ["xx", "english", "en-US", "d e"])
def test_unknown_language_is_refused_with_a_user_sentence(typed: str) -> None:
    with pytest.raises(UnknownLanguage) as caught:
        TranscribeOptions(language=typed)
    assert isinstance(caught.value, ChatscribeError)
    assert typed.strip() in caught.value.user_message
    assert "such as en" in caught.value.user_message


def test_expected_languages_are_normalized_and_checked() -> None:
    assert TranscribeOptions(expected_languages=("EN", "De")).expected_languages == ("en", "de")
    with pytest.raises(UnknownLanguage):
        TranscribeOptions(expected_languages=("en", "klingon"))

