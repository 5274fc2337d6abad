"""Who is there: the heartbeats workers and front ends leave in Redis (schema.WORKERS, schema.FRONTENDS)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .schema import SEEN_TTL_S


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    name: str
    model_id: str
    slots: int
    busy: int
    done: int
    seen: float
    """Wall-clock time of the worker's last heartbeat."""


@dataclass(frozen=True, slots=True)
class FrontendInfo:
    active: int
    """Jobs the front end accepted and has not answered yet."""
    seen: float


def worker_record(info: WorkerInfo, pid: int) -> str:
    """A worker's value in the `workers` hash (its name is the field)."""
    data: dict[str, Any] = asdict(info)
    data.pop("name")
    return json.dumps({**data, "pid": pid})


def parse_workers(raw: Mapping[Any, Any], now: float | None = None) -> list[WorkerInfo]:
    """The workers heard from recently, from the `workers` hash."""
    now = time.time() if now is None else now
    alive = []
    for name, body in raw.items():
        data = json.loads(body)
        info = WorkerInfo(text(name), data["model_id"], int(data["slots"]), int(data.get("busy", 0)),
                          int(data.get("done", 0)), float(data["seen"]))
        if now - info.seen <= SEEN_TTL_S:
            alive.append(info)
    return sorted(alive, key=lambda w: w.name)


def frontend_record(info: FrontendInfo) -> str:
    return json.dumps(asdict(info))


def parse_frontends(raw: Mapping[Any, Any], now: float) -> dict[str, FrontendInfo]:
    """The front ends heard from recently, from the `frontends` hash."""
    alive = {}
    for name, body in raw.items():
        data = json.loads(body)
        info = FrontendInfo(int(data["active"]), float(data["seen"]))
        if now - info.seen <= SEEN_TTL_S:
            alive[text(name)] = info
    return alive


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
