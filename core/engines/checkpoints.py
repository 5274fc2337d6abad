"""Whisper checkpoints as training leaves them: the transformers layout, and PEFT LoRA adapters.

A fine-tuned checkpoint (config.json, model.safetensors or pytorch_model.bin, the tokenizer and the
preprocessor config) is converted once into the data dir with CTranslate2's own converter for the
faster-whisper engine; the transformers engine reads it as it is. A LoRA adapter (adapter_config.json and
its weights) is merged into its base once (peft's merge_and_unload) and is then a checkpoint like any other.

Each result is keyed by the content of its sources (sha256 of the files that make the model), so a changed
checkpoint converts again and an unchanged one is reused at the next start. Results are written beside
their place and renamed into it, so a crash or a full disk never leaves a half-written model to be used.
Nothing here imports torch, transformers or peft until a conversion or a merge really runs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConverterMissing, ModelTooLarge, ModelUnavailable, NotAWhisperModel
from ..private import DIR_MODE, FILE_MODE, private_dir
from ..sentences import adapter_without_base, conversion_failed
from .convert import MULTILINGUAL_VOCAB_SIZE

log = logging.getLogger(__name__)

Stage = Callable[[str], None]
"""Told "converting model" when a conversion or merge starts and "model loading" when it ends (/readyz)."""

HASHES = ".hashes"
"""Beside the converted models: each source file's sha256 by its size and time (see content_key)."""
MARK = "chatscribe-source.json"
"""In every folder this module writes: what it was made from, its key, and how (for `chatscribe models`)."""

_SOURCE_FILES = (
    "config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "normalizer.json",
    "model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json",
    "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
)
"""The files that make a model: what its key hashes (optimizer states and logs of a training run do not)."""
_WEIGHTS = ("model*.safetensors", "pytorch_model*.bin")
_PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "added_tokens.json", "vocab.json", "merges.txt", "normalizer.json", "generation_config.json")
_QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
_HEARTBEAT_S = 15.0
_CONVERSION_FACTOR = 2.5
"""Peak memory of a conversion per float32 byte of weights: the model loaded in float32, plus the converter's
copy of each variable as it quantizes it, plus what the interpreter and libraries hold."""

Layout = Literal["checkpoint", "adapter"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A folder in transformers' layout (a full checkpoint) or a PEFT adapter."""

    path: Path
    layout: Layout


def classify(folder: Path) -> Checkpoint | None:
    """A checkpoint or an adapter; None when the folder holds neither (it may be a CTranslate2 model).

    Raises NotAWhisperModel for a transformers model that is not Whisper, or a Whisper config without weights.
    """
    if (folder / "adapter_config.json").is_file():
        return Checkpoint(folder, "adapter")
    config_file = folder / "config.json"
    if not config_file.is_file() or (folder / "model.bin").is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAWhisperModel(folder, "its config.json cannot be read") from exc
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind is None:
        return None  # not a transformers config: the caller says what is missing
    if kind != "whisper":
        raise NotAWhisperModel(folder, f"its config.json describes a {kind} model")
    if not _matching(folder, _WEIGHTS):
        raise NotAWhisperModel(folder, "it has a Whisper config.json but no model.safetensors or pytorch_model.bin")
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        raise NotAWhisperModel(folder, "it has no tokenizer (tokenizer.json, or vocab.json and merges.txt): save "
                                       "the processor beside the model")
    return Checkpoint(folder, "checkpoint")


def content_key(*folders: Path, memo: Path) -> str:
    """sha256 over the model files of each folder, names included: what a conversion is keyed by.

    Each file's own sha256 is remembered in `memo` by its size and modification time: hashing gigabytes of
    weights at every start would delay it by seconds, while any edit changes the time and hashes it again.
    """
    digest = hashlib.sha256()
    for folder in folders:
        for file in _matching(folder, _SOURCE_FILES):
            digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
            digest.update(_file_sha256(file, memo).encode())
    return digest.hexdigest()


def quantization_for(compute_type: str) -> str:
    """What the converted weights are stored as: the compute type the engine will use, when it is one.

    Stored as computed, a model loads without requantizing and takes the least disk; the folder is named
    with it, so moving to another device (int8 on the CPU, float16 on CUDA) converts again rather than lose precision.
    """
    return compute_type if compute_type in _QUANTIZATIONS else "float16"


def to_ctranslate2(checkpoint: Path, target_dir: Path, *, name: str, quantization: str,
                   stage: Stage | None = None) -> tuple[Path, bool]:
    """The CTranslate2 folder for `checkpoint` in `target_dir` (converted now, or found from before).

    Returns (folder, converted now). Raises ConverterMissing, ModelTooLarge or ModelUnavailable.
    """
    key = content_key(checkpoint, memo=target_dir / HASHES)
    target = target_dir / f"{_label(name)}.ct2-{quantization}-{key[:12]}"
    if (target / MARK).is_file() and (target / "model.bin").is_file():
        return target, False
    require_packages(name, "torch", "transformers")
    ensure_fits(checkpoint, name)
    with _converting(name, f"{name} to CTranslate2 ({quantization})", target, stage) as partial:
        from ctranslate2.converters import TransformersConverter

        copied = [f for f in ("tokenizer.json", "preprocessor_config.json") if (checkpoint / f).is_file()]
        converter = TransformersConverter(str(checkpoint), copy_files=copied)
        converter.convert(str(partial), quantization=quantization, force=True)
        _complete_for_faster_whisper(checkpoint, partial)
        _mark(partial, kind="converted", source=checkpoint, key=key, quantization=quantization)
    _drop_older(target_dir, target, checkpoint)
    return target, True


def merge_adapter(adapter: Path, base: Path, target_dir: Path, *, name: str,
                  stage: Stage | None = None) -> tuple[Path, bool]:
    """The adapter merged into its base (a transformers checkpoint), once. Returns (folder, merged now)."""
    key = content_key(adapter, base, memo=target_dir / HASHES)
    target = target_dir / f"{_label(name)}.merged-{key[:12]}"
    if (target / MARK).is_file():
        return target, False
    require_packages(name, "torch", "transformers", "peft")
    ensure_fits(base, name)
    with _converting(name, f"the LoRA adapter {name} into {base}", target, stage) as partial:
        import torch
        from peft import PeftModel
        from transformers import WhisperForConditionalGeneration

        model = WhisperForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        merged.save_pretrained(partial)
        for file in _PROCESSOR_FILES:  # the adapter's own tokenizer (added tokens) wins over the base's
            source = adapter / file if (adapter / file).is_file() else base / file
            if source.is_file():
                shutil.copyfile(source, partial / file)
        _mark(partial, kind="merged", source=adapter, key=key, base=str(base))
    _drop_older(target_dir, target, adapter)
    return target, True


def adapter_base(adapter: Path, configured: str) -> str:
    """The base model's name or folder: CHATSCRIBE_BASE_MODEL, else the adapter's base_model_name_or_path."""
    if configured:
        return configured
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAWhisperModel(adapter, "its adapter_config.json cannot be read") from exc
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base.strip():
        raise ModelUnavailable(adapter_without_base(str(adapter)))
    return base.strip()


def ensure_fits(checkpoint: Path, name: str, *, free_bytes: int | None = None) -> None:
    """Refuse, with the sentence, a conversion that would need more memory than the machine has free."""
    free = available_memory() if free_bytes is None else free_bytes
    if free is None:  # not measurable here (not Linux): let the conversion try
        return
    need = int(parameter_count(checkpoint) * 4 * _CONVERSION_FACTOR)
    if need > free:
        raise ModelTooLarge(name, need, free)


def parameter_count(checkpoint: Path) -> int:
    """From the safetensors headers (shapes, no weights read); for .bin files, their size in float32."""
    total = 0
    for file in _matching(checkpoint, _WEIGHTS):
        try:
            total += _safetensors_parameters(file) if file.suffix == ".safetensors" else file.stat().st_size // 4
        except (ValueError, struct.error, UnicodeDecodeError):  # a damaged header: the converter will say so
            total += file.stat().st_size // 4
    return total


def available_memory() -> int | None:
    """Bytes the system could give now: MemAvailable, bounded by a cgroup (container) limit when set."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    free = next((int(line.split()[1]) * 1024 for line in meminfo.splitlines() if line.startswith("MemAvailable:")),
                None)
    if free is None:
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            free = min(free, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return free


def require_packages(name: str, *modules: str) -> None:
    """ConverterMissing for the model `name` unless each module imports, named as pip knows it ("PyTorch")."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConverterMissing(name, {"torch": "PyTorch"}.get(module, module)) from exc


@contextmanager
def _converting(name: str, what: str, target: Path, stage: Stage | None) -> Iterator[Path]:
    """A partial folder beside `target`, renamed into place when the body succeeds; progress in the log."""
    private_dir(target.parent)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=DIR_MODE)
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(_HEARTBEAT_S):
            log.info("still converting %s (%.0f s so far)", what, time.monotonic() - started)

    log.info("converting %s into %s: once, it takes about a minute per GB of weights", what, target)
    if stage:
        stage("converting model")
    beat = threading.Thread(target=heartbeat, name="model-conversion-progress", daemon=True)
    beat.start()
    try:
        yield partial
        _private_files(partial)
        try:
            os.rename(partial, target)
        except OSError:  # another process finished the same conversion first: keep its copy
            if not (target / MARK).is_file():
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except (ModelUnavailable, MemoryError):
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except Exception as exc:  # the libraries raise many types (a shape mismatch, a missing key): say it once
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelUnavailable(conversion_failed(name, f"{type(exc).__name__}: {exc}"[:300]),
                               detail=repr(exc)) from exc
    finally:
        done.set()
        if stage:
            stage("model loading")
    log.info("converted %s in %.0f s (%.0f MB in %s)", what, time.monotonic() - started, _size(target) / 1e6, target)


def _complete_for_faster_whisper(checkpoint: Path, folder: Path) -> None:
    """faster-whisper reads the mel bins from preprocessor_config.json (128 for large-v3 and its fine-tunes)
    and the text from tokenizer.json: write them when the checkpoint has only the slow tokenizer or no
    preprocessor config."""
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    mels = int(config.get("num_mel_bins", 80))
    preprocessor = folder / "preprocessor_config.json"
    settings = json.loads(preprocessor.read_text(encoding="utf-8")) if preprocessor.is_file() else {}
    if settings.get("feature_size") != mels:
        settings["feature_size"] = mels
        preprocessor.write_text(json.dumps(settings, indent=2))
    if not (folder / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(checkpoint).backend_tokenizer.save(str(folder / "tokenizer.json"))
    _language_ids(folder, int(config.get("vocab_size", 0)))


def _language_ids(folder: Path, vocab_size: int) -> None:
    """A multilingual model whose generation config lacks lang_to_id (and a tokenizer that lists no additional
    special tokens) converts with no language tokens, and faster-whisper then cannot detect a language: take
    them from the tokenizer, where Whisper keeps them between <|startoftranscript|> and <|translate|>."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("lang_ids") or vocab_size < MULTILINGUAL_VOCAB_SIZE:  # English-only ones have no language tokens
        return
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    start, end = tokenizer.token_to_id("<|startoftranscript|>"), tokenizer.token_to_id("<|translate|>")
    if start is None or end is None:
        return
    config["lang_ids"] = list(range(start + 1, end))
    config_file.write_text(json.dumps(config, indent=2))


def _mark(folder: Path, *, kind: str, source: Path, key: str, **more: str) -> None:
    (folder / MARK).write_text(json.dumps({"kind": kind, "source": str(source), "key": key, "made": time.time(),
                                           **more}, indent=2))


def read_mark(folder: Path) -> dict[str, Any] | None:
    try:
        mark = json.loads((folder / MARK).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return mark if isinstance(mark, dict) else None


def _drop_older(target_dir: Path, current: Path, source: Path) -> None:
    """An earlier conversion of the same source (before it changed) only takes space now: remove it."""
    kind = current.name.rsplit("-", 1)[0]  # "<label>.ct2-int8" or "<label>.merged"
    for other in target_dir.iterdir():
        if other == current or not other.name.startswith(kind + "-"):
            continue
        mark = read_mark(other)
        if mark and mark.get("source") == str(source):
            log.info("removing %s: converted from an earlier version of %s", other, source)
            shutil.rmtree(other, ignore_errors=True)


def _private_files(folder: Path) -> None:
    folder.chmod(DIR_MODE)  # the converter recreates its output folder with the umask's mode
    for item in folder.iterdir():
        item.chmod(DIR_MODE if item.is_dir() else FILE_MODE)


def _label(name: str) -> str:
    """A folder name for a model named by a path or a hub id: its last part, kept to safe characters."""
    last = name.rstrip("/").replace("\\", "/").split("/")[-1] or "model"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in last).lstrip(".") or "model"


def _matching(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in patterns))


def _file_sha256(file: Path, memo_dir: Path) -> str:
    stat = file.stat()
    memo = memo_dir / hashlib.sha256(str(file.resolve()).encode()).hexdigest()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        saved = json.loads(memo.read_text())
        if saved.get("stamp") == stamp:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    try:
        private_dir(memo.parent)
        memo.write_text(json.dumps({"stamp": stamp, "sha256": digest.hexdigest()}))
        memo.chmod(FILE_MODE)
    except OSError:  # a data dir that refuses writes fails later with its own sentence; hash again then
        pass
    return digest.hexdigest()


def _safetensors_parameters(file: Path) -> int:
    with file.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info.get("shape", []):
            count *= int(dim)
        total += count
    return total


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
