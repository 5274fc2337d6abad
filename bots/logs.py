"""Logging set-up: text or JSON lines, and no secret ever written out.

Platform libraries log request URLs, and Telegram's contain the bot token (`/bot<token>/getUpdates`),
so every record passes a filter that replaces known secrets before any handler formats it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings

# Telegram and Slack tokens have fixed shapes: redact them even when nobody registered them as secrets.
_TOKEN_SHAPES = re.compile(
    r"\d{6,12}:[A-Za-z0-9_-]{30,}"  # Telegram bot token
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"  # Slack tokens
)
# Discord's interaction and webhook tokens: in REST paths and in gateway payloads (discord.py logs both).
_TOKEN_IN_PATH = re.compile(r"/(webhooks|interactions)/(\d+)/[^/\s?'\"]+")
_TOKEN_IN_PAYLOAD = re.compile(r"""(['"]token['"]:\s*['"])[^'"]+""")
_NOISY = ("httpx", "httpcore", "telegram.ext.ExtBot", "discord.http", "discord.gateway", "slack_sdk",
          "slack_bolt", "aiohttp.access", "faster_whisper")
_NOISY_PREFIXES = tuple(f"{name}." for name in _NOISY) + _NOISY


class RedactSecrets:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if len(s) >= 6]

    def add(self, *secrets: str) -> None:
        self.secrets.extend(s for s in secrets if len(s) >= 6 and s not in self.secrets)
        self.secrets.sort(key=len, reverse=True)  # a URL before the password inside it

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        text = _TOKEN_IN_PATH.sub(r"/\1/\2/[redacted]", text)
        text = _TOKEN_IN_PAYLOAD.sub(r"\1[redacted]", text)
        return _TOKEN_SHAPES.sub("[redacted]", text)


class RedactingFilter(logging.Filter):
    """The same redaction on one library's loggers, for records that reach handlers other than ours."""

    def __init__(self, redact: RedactSecrets) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _QuietLibraries(logging.Filter):
    """Library records below WARNING are dropped at the handler: slack-bolt gives each logger it makes the
    root's level, so the WARNING set on "slack_bolt" never reaches "slack_bolt.RequestVerification"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(_NOISY_PREFIXES)


class _Redacting(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included."""

    def __init__(self, inner: logging.Formatter, redact: RedactSecrets) -> None:
        super().__init__()
        self._inner, self._redact = inner, redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact.redact(self._inner.format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = re.search(r"job=(\w+)", entry["message"])
        if job:
            entry["job_id"] = job.group(1)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> RedactSecrets:
    """Install one stderr handler with the redaction filter; returns the filter to add secrets to."""
    redact = RedactSecrets()
    handler = logging.StreamHandler(sys.stderr)
    inner = JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(_Redacting(inner, redact))
    handler.addFilter(_QuietLibraries())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return redact


def secrets_of(settings: BaseSettings) -> list[str]:
    """Every secret a settings object holds: each SecretStr field, each key of a comma-separated list of
    them (the API keys), and the password inside a URL (CHATSCRIBE_BROKER_URL's Redis password)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if not isinstance(value, SecretStr) or not value.get_secret_value():
            continue
        secret = value.get_secret_value()
        found.append(secret)
        found.extend(part.strip() for part in secret.split(",") if "," in secret and part.strip())
        if "://" in secret:
            try:
                password = urlsplit(secret).password
            except ValueError:
                password = None
            if password:
                found.extend({password, unquote(password)})
    return found
