"""A running HTTP server on 127.0.0.1 with the real service and the real tiny.en model."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from chatscribe.bots.http import HttpServer, create_app
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.service import TranscriptionService

API_KEY = "test-key-123"


@dataclass(frozen=True)
class Running:
    url: str
    service: TranscriptionService

    def client(self, api_key: str = API_KEY) -> AsyncOpenAI:
        # No retries: a test must see the first answer (the client retries 429 and 5xx by default).
        return AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data", "model": "tiny.en", "device": "cpu", "http_port": 0,
            "api_keys": API_KEY, "user_rate": "",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@contextlib.asynccontextmanager
async def running_server(settings: Settings, engine: FasterWhisperEngine) -> AsyncIterator[Running]:
    """A service and the whole HTTP app on a free port of 127.0.0.1, closed on the way out."""
    async with TranscriptionService(settings=settings, engine=engine) as service:
        http = HttpServer(create_app(service=service, settings=settings), settings.http_host, 0)
        await http.start()
        try:
            yield Running(f"http://127.0.0.1:{http.port}", service)
        finally:
            await http.stop()


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine
) -> AsyncIterator[Running]:
    async with running_server(make_settings(), tiny_engine) as running:
        yield running
