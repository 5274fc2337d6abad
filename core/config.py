"""Settings of the transcription core, from the environment or `.env` (prefix CHATSCRIBE_).

Each bot owns the settings of its platform (bots/*_bot.py) in the same style; `load()` turns any
validation failure into one readable ConfigError naming the variables, checked once at start-up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError, UnknownLanguage

ENV_FILE = ".env"
S = TypeVar("S", bound=BaseSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATSCRIBE_", env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("data")
    """Where models, the cache, the job journal and per-chat settings live."""
    model: str = "base"
    """Whisper size name (tiny … large-v3, turbo, distil-*), a CTranslate2 model folder, a transformers
    checkpoint or LoRA adapter folder (converted once into the data dir), or a hub repo id of either."""
    base_model: str = ""
    """For a LoRA adapter: the model it was trained on; empty = the adapter's base_model_name_or_path."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    """auto = float16 on CUDA, int8 on CPU; or any CTranslate2 compute type."""
    engine: Literal["auto", "faster-whisper", "transformers"] = "auto"
    max_file_mb: float = Field(default=100, gt=0)
    max_duration_s: float = Field(default=3600, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    cache_max_mb: float = Field(default=200, ge=0)
    cache_ttl_h: float = Field(default=720, ge=0)
    """Hours a cached transcript is kept after it was made (default 30 days); 0 keeps none."""
    job_retention_h: float = Field(default=24, ge=0)
    """Hours an answered job's record (ids only, no transcript) is kept for de-duplication, then deleted."""
    workers: int = Field(default=0, ge=0)
    """Concurrent transcriptions; 0 picks from the device (1 on CPU, 2 on GPU)."""
    cpu_threads: int = Field(default=0, ge=0)
    """CTranslate2 threads per transcription; 0 = all cores."""
    user_rate: str = "20/min"
    """Per-person limit, N/sec|min|hour; empty disables it."""
    queue_max: int = Field(default=200, ge=1)
    shutdown_grace_s: float = Field(default=10, ge=0, le=14)
    languages: str = ""
    """Comma-separated languages to expect (e.g. "en,de"); detection picks among them. Empty = any."""
    beam_size: int = Field(default=5, ge=1, le=10)
    vad: bool = True
    max_parts: int = Field(default=3, ge=1, le=20)
    """Chat messages one transcript may take before it is sent as a file with a preview."""
    speakers_auto_min_s: float = Field(default=60, ge=0)
    """`speakers auto` (a conversation's setting, the API's `speakers`): label only recordings at least this long."""
    api_keys: SecretStr = SecretStr("")
    """Comma-separated Bearer keys for the HTTP API; required when binding to a non-loopback address."""
    http_max_body_kb: float = Field(default=1024, gt=0)
    """Largest body a route other than an upload (Slack, Telegram webhooks) reads; uploads have max_file_mb."""
    http_header_timeout_s: float = Field(default=15, gt=0)
    """A connection must send a whole request head within this (also how long an idle keep-alive stays open)."""
    http_body_timeout_s: float = Field(default=15, gt=0)
    """Grace for a request body; after it, the body must have arrived at http_min_body_kbps on average."""
    http_min_body_kbps: float = Field(default=16, gt=0)
    """Slowest average upload speed (KB/s) accepted once http_body_timeout_s has passed."""
    realtime_max_session_s: float = Field(default=1800, gt=0)
    """Longest a live transcription session (/v1/realtime) stays open; then it is closed with an error event."""
    realtime_idle_timeout_s: float = Field(default=60, gt=0)
    """A live session that sends nothing for this long is closed."""
    realtime_max_event_kb: float = Field(default=1024, gt=0)
    """Largest client event (KB) a live session takes; a bigger one gets an error event."""
    media_memory_mb: float = Field(default=1024, gt=0)
    """Media bytes held in memory by work in flight; beyond it new work gets the busy answer."""
    broker_url: SecretStr = SecretStr("")
    """redis://… to share work with `chatscribe worker` processes; empty keeps everything in-process."""
    visibility_timeout_s: float = Field(default=60, gt=0)
    """With a broker: a job held by a worker silent for this long is taken over by another worker."""
    shared_cache_ttl_s: int = Field(default=7 * 86400, ge=60)
    """With a broker: how long transcripts stay in the cache shared through Redis."""
    batch_window_ms: float = Field(default=30, ge=0, le=1000)
    pack_across_conversations: bool = False
    """Let notes of different conversations share a packed decoding window (faster bursts on a CPU);
    one conversation's words may then shape another's transcript: for a single-tenant deployment only."""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("user_rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        if value and not _RATE.fullmatch(value.strip()):
            raise ValueError("expected N/sec, N/min or N/hour, e.g. 20/min")
        return value.strip()

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: str) -> str:
        from .options import checked_language_code

        try:
            return ",".join(checked_language_code(code) for code in value.split(",") if code.strip())
        except UnknownLanguage as exc:
            raise ValueError(f"{exc.value.strip()!r} is not a Whisper language code (e.g. en,de,fr)") from None

    @property
    def cache_ttl_s(self) -> float:
        return self.cache_ttl_h * 3600

    @property
    def job_retention_s(self) -> float:
        return self.job_retention_h * 3600

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)

    @property
    def media_memory_bytes(self) -> int:
        return int(self.media_memory_mb * 1_000_000)

    @property
    def http_max_body_bytes(self) -> int:
        return int(self.http_max_body_kb * 1024)

    @property
    def expected_languages(self) -> tuple[str, ...]:
        return tuple(x.strip().lower() for x in self.languages.split(",") if x.strip())

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())

    @property
    def rate_per_s(self) -> tuple[int, float] | None:
        """(count, window seconds), or None when unlimited."""
        match = _RATE.fullmatch(self.user_rate)
        if not match:
            return None
        return int(match["count"]), _WINDOWS[match["unit"]]


_RATE = re.compile(r"(?P<count>\d+)\s*/\s*(?P<unit>s|sec|second|m|min|minute|h|hour)")
_WINDOWS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}


def load(cls: type[S], **overrides: Any) -> S:
    """Build a settings class, naming every wrong variable in one readable sentence."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(cls, exc)) from None


def _describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        info = cls.model_fields.get(field)
        alias = info.validation_alias if info else None
        name = alias if isinstance(alias, str) else f"{prefix}{field}".upper()
        problems.append(f"{name}: {error['msg']}")
    return "Invalid configuration: " + "; ".join(problems)
