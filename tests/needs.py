"""What a test module needs that a developer's machine may lack: skipped locally, a failure in CI.

CI (CI=true) installs everything the suite uses, so a missing package or folder there means the run is
broken, never that its tests may quietly skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(module: str, reason: str, *, in_ci_too: bool = True) -> ModuleType:
    """Import an optional third-party module, or skip the calling module (fail it in CI)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if in_ci() and in_ci_too:
            pytest.fail(f"{reason}: {exc} (CI installs it, so this is a broken run)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
