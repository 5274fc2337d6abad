"""`chatscribe models`: the models the data dir holds, with sizes; `chatscribe models remove NAME` frees one."""

from __future__ import annotations

from chatscribe.core import Settings
from chatscribe.core.engines import StoredModel, remove_stored, stored_models


def list_models(settings: Settings) -> int:
    found = stored_models(settings.data_dir)
    where = settings.data_dir.resolve()
    if not found:
        print(f"no models stored in {where / 'models'} or {where / 'hub'} yet")
        return 0
    width = max(len(model.name) for model in found)
    print(f"models in {where / 'models'} and {where / 'hub'}:")
    for model in found:
        print(f"  {model.name:<{width}}  {_size(model.size_bytes):>8}  {model.kind}: {model.detail}")
    print(f"total {_size(sum(model.size_bytes for model in found))}; `chatscribe models remove NAME` frees one "
          "(what is needed again is assembled, converted or downloaded again at the next start)")
    return 0


def remove_model(settings: Settings, name: str) -> int:
    removed: StoredModel = remove_stored(settings.data_dir, name)
    print(f"removed {removed.name} ({removed.kind}, {_size(removed.size_bytes)} freed): "
          f"{', '.join(str(path) for path in removed.paths)}")
    return 0


def _size(size: int) -> str:
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    if size >= 1e6:
        return f"{size / 1e6:.0f} MB"
    return f"{size / 1e3:.0f} kB"
