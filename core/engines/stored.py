"""What the data dir holds of models (`chatscribe models`): bundled, converted, merged, downloaded; and removal.

Everything listed can be removed: a bundled model is assembled again, a conversion made again and a
download fetched again the next time it is needed. Only names this listing gives are removed, so no name
reaches a folder outside the data dir's models and hub folders.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChatscribeError
from ..sentences import no_such_stored_model
from .checkpoints import HASHES, read_mark
from .convert import CONVERTED_MARK
from .models import BUNDLED, models_dir


@dataclass(frozen=True, slots=True)
class StoredModel:
    name: str
    """What `chatscribe models remove` takes."""
    kind: str
    """bundled, converted, merged, transformers copy, downloaded, model folder, unfinished."""
    detail: str
    size_bytes: int
    paths: tuple[Path, ...]


def stored_models(data_dir: Path) -> list[StoredModel]:
    found: list[StoredModel] = []
    folder = models_dir(data_dir)
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if entry.name == HASHES or not entry.is_dir() or entry.is_symlink():
                continue
            found.append(_describe(entry))
    hub = data_dir / "hub"
    if hub.is_dir():
        for entry in sorted(hub.glob("models--*")):
            repo = entry.name.removeprefix("models--").replace("--", "/")
            locks = hub / ".locks" / entry.name
            found.append(StoredModel(repo, "downloaded", "from the Hugging Face hub", _size(entry),
                                     (entry, locks) if locks.exists() else (entry,)))
    return found


def remove_stored(data_dir: Path, name: str) -> StoredModel:
    """Delete the stored model listed as `name`; raises ChatscribeError when nothing is listed by that name."""
    for model in stored_models(data_dir):
        if model.name == name:
            for path in model.paths:
                shutil.rmtree(path, ignore_errors=True)
            return model
    raise ChatscribeError(no_such_stored_model(name, str(models_dir(data_dir))))


def _describe(entry: Path) -> StoredModel:
    size, paths = _size(entry), (entry,)
    if entry.name.startswith(".") and entry.name.endswith(".partial"):
        return StoredModel(entry.name, "unfinished", "a conversion that did not finish (safe to remove)", size, paths)
    mark = read_mark(entry)
    if mark and mark.get("kind") == "converted":
        detail = f"CTranslate2 ({mark.get('quantization', '?')}) from {mark.get('source')}"
        return StoredModel(entry.name, "converted", detail, size, paths)
    if mark and mark.get("kind") == "merged":
        return StoredModel(entry.name, "merged", f"LoRA adapter {mark.get('source')} merged into {mark.get('base')}",
                           size, paths)
    if (entry / CONVERTED_MARK).is_file():
        try:
            source = json.loads((entry / CONVERTED_MARK).read_text()).get("source")
        except (OSError, ValueError, AttributeError):
            source = None
        return StoredModel(entry.name, "transformers copy", f"for the transformers engine, from {source}", size,
                           paths)
    if entry.name in BUNDLED:
        return StoredModel(entry.name, "bundled", "assembled from the bundled packages", size, paths)
    return StoredModel(entry.name, "model folder", "put here by hand", size, paths)


def _size(path: Path) -> int:
    """Bytes of the files under `path`, each counted once (the hub's snapshots are links to its blobs)."""
    total = 0
    for root, _, files in os.walk(path):
        for file in files:
            stat = os.lstat(os.path.join(root, file))
            if not os.path.islink(os.path.join(root, file)):
                total += stat.st_size
    return total
