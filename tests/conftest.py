"""Shared fixtures: the real shared audio, the real bundled tiny.en model, a service on a temp data dir."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from tests.needs import in_ci

AUDIO_DIR = Path(
    os.environ.get("CHATSCRIBE_TEST_AUDIO", Path(__file__).resolve().parents[1].parent / "shared" / "audio")
)


def pytest_configure(config: pytest.Config) -> None:
    # Locally the tests that need the shared audio skip with the reason; in CI its absence is a broken run.
    if in_ci() and not (AUDIO_DIR / "references.json").is_file():
        raise pytest.UsageError(f"the shared test audio is missing: expected {AUDIO_DIR} (../shared/audio beside "
                                "the project, or CHATSCRIBE_TEST_AUDIO); CI cannot run the suite without it")


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    if not (AUDIO_DIR / "references.json").is_file():
        pytest.skip(f"shared test audio not found at {AUDIO_DIR} (expected ../shared/audio beside the project)")
    return AUDIO_DIR


@pytest.fixture(scope="session")
def references(audio_dir: Path) -> dict[str, dict[str, object]]:
    return json.loads((audio_dir / "references.json").read_text())


@pytest.fixture(scope="session")
def audio(audio_dir: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (audio_dir / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir shared by the session so the bundled base model is assembled once."""
    return tmp_path_factory.mktemp("models-data")


@pytest.fixture(scope="session")
def tiny_engine(model_dir: Path) -> FasterWhisperEngine:
    return FasterWhisperEngine(resolve_model("tiny.en", model_dir), device="cpu", workers=2)


@pytest.fixture(scope="session")
def base_engine(model_dir: Path) -> FasterWhisperEngine:
    return FasterWhisperEngine(resolve_model("base", model_dir), device="cpu", workers=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", model="tiny.en", device="cpu")  # type: ignore[call-arg]


@pytest.fixture
async def service(settings: Settings, tiny_engine: FasterWhisperEngine) -> AsyncIterator[object]:
    from chatscribe.core.service import TranscriptionService

    async with TranscriptionService(settings=settings, engine=tiny_engine) as svc:
        yield svc
