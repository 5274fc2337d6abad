"""Kept for the bots' imports: the language table lives in core/languages.py."""

from __future__ import annotations

from chatscribe.core.languages import LANGUAGE_NAMES, code_or_name, language_name

language_code = code_or_name
"""A code from a code or an English name ("en", "English"); None when Whisper does not know it."""

__all__ = ["LANGUAGE_NAMES", "language_code", "language_name"]
