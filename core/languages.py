"""Whisper's languages: codes, their English names, and what a person may type for one.

One table for every edge: a chat setting ("German", "de"), a one-off `!transcribe de`, the HTTP API's
`language` field, the CLI's `--language`, and the names OpenAI's verbose_json reports ("english").
"""

from __future__ import annotations

_TABLE = """
en english|zh chinese|de german|es spanish|ru russian|ko korean|fr french|ja japanese|pt portuguese
tr turkish|pl polish|ca catalan|nl dutch|ar arabic|sv swedish|it italian|id indonesian|hi hindi|fi finnish
vi vietnamese|he hebrew|uk ukrainian|el greek|ms malay|cs czech|ro romanian|da danish|hu hungarian|ta tamil
no norwegian|th thai|ur urdu|hr croatian|bg bulgarian|lt lithuanian|la latin|mi maori|ml malayalam|cy welsh
sk slovak|te telugu|fa persian|lv latvian|bn bengali|sr serbian|az azerbaijani|sl slovenian|kn kannada
et estonian|mk macedonian|br breton|eu basque|is icelandic|hy armenian|ne nepali|mn mongolian|bs bosnian
kk kazakh|sq albanian|sw swahili|gl galician|mr marathi|pa punjabi|si sinhala|km khmer|sn shona|yo yoruba
so somali|af afrikaans|oc occitan|ka georgian|be belarusian|tg tajik|sd sindhi|gu gujarati|am amharic
yi yiddish|lo lao|uz uzbek|fo faroese|ht haitian creole|ps pashto|tk turkmen|nn nynorsk|mt maltese
sa sanskrit|lb luxembourgish|my myanmar|bo tibetan|tl tagalog|mg malagasy|as assamese|tt tatar|haw hawaiian
ln lingala|ha hausa|ba bashkir|jw javanese|su sundanese|yue cantonese
"""

LANGUAGE_NAMES: dict[str, str] = dict(
    entry.strip().split(" ", 1) for entry in _TABLE.replace("\n", "|").split("|") if entry.strip()
)
"""Code -> lower-case English name, for every language Whisper knows."""

_BY_NAME = {name: code for code, name in LANGUAGE_NAMES.items()}


def language_name(code: str | None) -> str | None:
    """"de" -> "german"; an unknown code is returned as it is, None stays None."""
    if code is None:
        return None
    return LANGUAGE_NAMES.get(code, code)


def code_or_name(value: str) -> str | None:
    """The code for what a person typed, a code or an English name ("en", " German "); None if no language."""
    value = value.strip().lower()
    if value in LANGUAGE_NAMES:
        return value
    return _BY_NAME.get(value)


def display_name(code: str) -> str:
    """"de" -> "German (de)", for sentences shown to people."""
    name = LANGUAGE_NAMES.get(code)
    return f"{name.title()} ({code})" if name else code


_LOCALE_ALIASES = {"nb": "no", "iw": "he", "fil": "tl", "jv": "jw", "in": "id", "ji": "yi"}
"""Client language tags whose language Whisper knows under another code."""


def code_of_locale(tag: str | None) -> str | None:
    """Whisper's code for a platform's client language tag ("de", "pt-BR", "zh_TW", "nb"); None if unknown."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    code = _LOCALE_ALIASES.get(primary, primary)
    return code if code in LANGUAGE_NAMES else None
