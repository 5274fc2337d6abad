"""Helpers for the scale-out tests: a real redis-server, `chatscribe worker` processes, front ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from chatscribe.core.config import Settings
from chatscribe.core.scaleout.presence import parse_workers
from chatscribe.core.scaleout.runner import RedisRunner, attach
from chatscribe.core.scaleout.schema import WORKERS
from chatscribe.core.service import TranscriptionService
from tests.fakes.collector import Collector
from tests.ports import free_port  # noqa: F401  (the scale-out tests import it from here)
from tests.waiting import until as await_until  # noqa: F401  (the scale-out tests import it from here)
from tests.waiting import wait_until

REDIS_SERVER = shutil.which("redis-server")
VISIBILITY_S = 3.0
"""Short, so a killed worker's job is taken over quickly."""
WORKER_ENV = {
    "CHATSCRIBE_MODEL": "tiny.en",
    "CHATSCRIBE_DEVICE": "cpu",
    "CHATSCRIBE_BEAM_SIZE": "1",
    "CHATSCRIBE_WORKERS": "1",
    "CHATSCRIBE_CPU_THREADS": "1",
    "CHATSCRIBE_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
    "CHATSCRIBE_SHUTDOWN_GRACE_S": "2",
}


@dataclass
class RedisServer:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=log, stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_until(lambda: _pings(client), "redis-server to answer", timeout=10)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@dataclass
class Workers:
    redis: RedisServer
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, count: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSCRIBE_")}
        env.update(WORKER_ENV, CHATSCRIBE_BROKER_URL=self.redis.url, CHATSCRIBE_DATA_DIR=str(self.logs / "worker-data"))
        for _ in range(count):
            log = (self.logs / f"worker-{len(self.processes)}.log").open("ab")
            self.processes.append(subprocess.Popen([sys.executable, "-m", "chatscribe", "worker"], env=env,
                                                   stdout=log, stderr=subprocess.STDOUT))
        client = self.redis.client()
        wait_until(lambda: len(parse_workers(client.hgetall(WORKERS))) >= len(self.alive()),
                   f"{count} workers to register", timeout=90, every=0.2)
        client.close()

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def by_name(self, name: str) -> subprocess.Popen[bytes] | None:
        pid = int(name.rsplit("-", 1)[1])
        return next((p for p in self.processes if p.pid == pid), None)

    def stop(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("worker-*.log")))


@dataclass
class FrontEnd:
    service: TranscriptionService
    runner: RedisRunner
    collector: Collector


def front_end_settings(redis_server: RedisServer, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"user_rate": "", "queue_max": 500, **overrides}
    return Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, model="tiny.en", device="cpu", beam_size=1,
        broker_url=redis_server.url, visibility_timeout_s=VISIBILITY_S, shutdown_grace_s=1, **values,
    )


@contextlib.asynccontextmanager
async def front_end(redis_server: RedisServer, data_dir: Path, **overrides: object) -> AsyncIterator[FrontEnd]:
    """A front end as `chatscribe run` builds it with CHATSCRIBE_BROKER_URL set, answering into a Collector."""
    settings = front_end_settings(redis_server, data_dir, **overrides)
    service = TranscriptionService(settings=settings)
    runner = attach(service, settings)
    collector = Collector()
    service.register("fake", collector)
    try:
        yield FrontEnd(service, runner, collector)
    finally:
        await service.aclose(grace_s=1)
        await runner.aclose()
