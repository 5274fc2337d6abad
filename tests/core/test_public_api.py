"""The public API: `chatscribe.core` and its subpackages name what bots and adapters may reach, with `__all__`."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import chatscribe.core
from chatscribe.core.engines import (
    Batcher,
    FasterWhisperEngine,
    TransformersWhisperEngine,
    batches_inputs,
    batches_windows,
    make_batcher,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chatscribe.core", "chatscribe.core.engines", "chatscribe.core.jobs", "chatscribe.core.delivery")
"""What `import chatscribe.core` may bring along."""
OPTIONAL = ("torch", "transformers", "redis", "taskiq", "taskiq_redis")
"""Extras a deployment may leave out: importing the core must not need them."""


def _imports_from_core() -> list[tuple[str, str, str]]:
    """(file, module, name) for each `from chatscribe.core[.<module>] import name` in bots/ and adapters/."""
    taken = []
    for folder in ("bots", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chatscribe.core"):
                    taken += [(path.name, node.module, alias.name) for alias in node.names]
    return taken


def test_bots_and_adapters_reach_the_core_through_its_public_api() -> None:
    taken = _imports_from_core()
    assert taken, "no imports found: the scan looks in the wrong place"
    top_level = {f"chatscribe.core.{p.stem}" for p in (ROOT / "core").glob("*.py")} - {"chatscribe.core.__init__"}
    private = sorted(f"{file}: from {module} import {name}" for file, module, name in taken if module in top_level)
    assert not private, "import these from chatscribe.core instead:\n" + "\n".join(private)
    unknown = sorted(f"{file}: {module}.{name}" for file, module, name in taken
                     if module == "chatscribe.core" and name not in chatscribe.core.__all__)
    assert not unknown, "not in chatscribe.core.__all__:\n" + "\n".join(unknown)


@pytest.mark.parametrize("package", [*PACKAGES, "chatscribe.core.scaleout"])
def test_each_public_name_is_there_once(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names)), f"{package}.__all__ names something twice"
    absent = [name for name in names if not hasattr(module, name)]
    assert not absent, f"{package}.__all__ names what it does not have: {absent}"


def test_importing_the_core_needs_no_optional_extra() -> None:
    code = (
        "import sys\n"
        f"import {', '.join(PACKAGES)}\n"
        "from chatscribe.core import *\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing the core loaded {done.stdout.strip()}"


def test_engines_declare_how_they_batch_and_get_the_batcher_for_it(tiny_engine: FasterWhisperEngine) -> None:
    assert TransformersWhisperEngine.batching == "inputs"  # declared on the class: no torch needed to read it
    assert batches_windows(tiny_engine)
    assert not batches_inputs(tiny_engine)
    assert isinstance(make_batcher(tiny_engine, "auto"), Batcher)
    assert make_batcher(tiny_engine, "off") is None
