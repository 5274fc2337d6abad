"""`chatscribe doctor`: what a person needs to see when something is off."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from chatscribe import __version__
from chatscribe.core import ChatscribeError, Settings
from chatscribe.core.jobs import UNFINISHED, Journal

from .platforms import platform_status


async def doctor(settings: Settings) -> int:
    problems = 0
    print(f"chatscribe {__version__}")
    print(f"data dir      {settings.data_dir.resolve()} ({_writable(settings.data_dir)})")
    try:
        from .engine_loader import build_engine, prepare_model

        model = await asyncio.to_thread(prepare_model, settings)
        print(f"model         {model.name} from {model.source}\n              {model.path}")
        if model.checkpoint is not None and model.checkpoint != model.path:
            when = "converted now" if model.converted_now else "converted once, reused"
            print(f"converted     from {model.checkpoint}\n              to {model.path} ({when}; "
                  "`chatscribe models` lists the copies)")
        engine = await asyncio.to_thread(build_engine, settings, model)
        print(f"device        {engine.device.device}, compute type {engine.device.compute_type}")
        print(f"              why: {engine.device.reason}")
        kind = "transformers" if "transformers" in engine.model_id else "faster-whisper"
        print(f"engine        {kind} ({engine.model_id}); CHATSCRIBE_ENGINE={settings.engine}")
    except ChatscribeError as exc:
        problems += 1
        print(f"model         {settings.model}: PROBLEM: {exc.user_message}")
    cache = settings.data_dir / "cache.sqlite3"
    print(f"cache         {_size(cache)} of {settings.cache_max_mb:g} MB allowed ({cache})")
    journal_path = settings.data_dir / "jobs.sqlite3"
    if journal_path.exists():
        journal = Journal(journal_path)
        print(f"jobs          {journal.count(*UNFINISHED)} unfinished in the journal")
        journal.close()
    print(f"http          {settings.http_host}:{settings.http_port}"
          f"{' (API keys set)' if settings.api_key_list else ''}")
    problems += await _broker(settings)
    for name, status in platform_status().items():
        print(f"{name:<13} {status}")
    print(f"speakers      {_speakers()}")
    return 1 if problems else 0


def _speakers() -> str:
    """Whether speaker labels can tell voices apart here; channels that differ are told apart without the extra."""
    try:
        from chatscribe.core.speakers import unavailable_reason
    except ImportError as exc:
        return f"by channel only: voices cannot be told apart ({exc})"
    reason = unavailable_reason()
    if reason:
        return f"by channel only: voices cannot be told apart ({reason})"
    return "available: by channel and by voice (the speakers extra, its encoder's weights checked)"


async def _broker(settings: Settings) -> int:
    """The Redis shared with `chatscribe worker` processes: reachable, workers seen, queue depth."""
    url = settings.broker_url.get_secret_value()
    if not url:
        print("broker        none: transcription runs in this process (CHATSCRIBE_BROKER_URL shares it with workers)")
        return 0
    try:
        from chatscribe.core.scaleout.connection import describe_url
        from chatscribe.core.scaleout.runner import ping
    except ImportError:
        print("broker        PROBLEM: CHATSCRIBE_BROKER_URL is set but the scale-out packages are missing: "
              "pip install 'chatscribe[scaleout]'")
        return 1
    state = await ping(url)
    if not state["reachable"]:
        print(f"broker        {describe_url(url)}: PROBLEM: unreachable ({state['error']})")
        return 1
    print(f"broker        {describe_url(url)}: {state['waiting']} job(s) waiting, {state['running']} held by "
          f"workers, {state['transcribed']} transcribed so far")
    workers = state["workers"]
    if not workers:
        print("workers       none seen: start `chatscribe worker` (jobs wait until one runs)")
    for index, worker in enumerate(workers):
        label = "workers" if index == 0 else ""
        print(f"{label:<13} {worker.name}: model {worker.model_id}, {worker.busy} of {worker.slots} busy, "
              f"{worker.done} done, seen {max(0.0, time.time() - worker.seen):.0f} s ago")
    return 0


def _writable(path: Path) -> str:
    target = path if path.exists() else path.parent
    return "writable" if os.access(target.resolve(), os.W_OK) else "NOT WRITABLE"


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) if path.parent.exists() else 0
    return f"{total / 1_000_000:.1f} MB"
