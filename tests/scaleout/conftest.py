"""Fixtures of the scale-out tests: a redis-server on a free port, `chatscribe worker` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.scaleout.cluster import RedisServer, Workers


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    from tests.scaleout.cluster import REDIS_SERVER, RedisServer, free_port

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server); scripts/test installs it")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    from tests.scaleout.cluster import Workers

    group = Workers(redis_server, tmp_path)
    yield group
    group.stop()
