"""Session-wide fixtures: a real Redis server (REDIS_URL, else one started here)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog
from redis.asyncio import Redis

from service.runtime import logs
from service.runtime.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> Iterator[str]:
    """REDIS_URL when set (tests only write keys under fresh call ids), else a
    redis-server started for this session (for each worker of ``pytest -n``). Agents
    and queues are the whole Redis's, so with REDIS_URL each worker takes its own
    database: worker N the URL's database + N."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield _database_of_worker(configured, worker_id)
        return
    with EmbeddedRedis() as server:
        yield server.url


def _database_of_worker(url: str, worker_id: str) -> str:
    if not worker_id.startswith("gw"):  # not under pytest-xdist
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{base + int(worker_id[2:])}"))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A stream for the log lines of a test that sets logging up; what it set up
    (structlog's configuration, ``sys.excepthook``) is undone after it."""
    stream = io.StringIO()
    hook = sys.excepthook
    yield stream
    structlog.reset_defaults()
    sys.excepthook = hook


@pytest.fixture
def logged(captured: io.StringIO) -> io.StringIO:
    """The service's logging, as ``ivr serve`` configures it (JSON), into ``captured``."""
    logs.configure(log_format="json", stream=captured)
    return captured
