"""Serving ASGI apps with uvicorn inside a running event loop, on sockets bound
beforehand: every URL is known before anything starts (port 0 picks a free one)
and connections made before uvicorn accepts wait in the listen backlog.

Used by the demo (simulator and service side by side), ``ivr sim`` and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    """uvicorn with an event set once it accepts connections, and without its own
    signal handlers (the embedding program decides what Ctrl-C does)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@dataclass
class RunningServer:
    url: str
    """``http://host:port``, without a trailing slash."""
    task: asyncio.Task[None]
    """Ends when the server stops."""


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``OSError`` when that is taken)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
) -> AsyncIterator[RunningServer]:
    """Run ``app`` (on ``sock``, or a new socket on ``host:port``) until the block
    exits; yields where it listens once uvicorn has started."""
    sock = sock or bind(host, port)
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="auto"
    )
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    ready = asyncio.get_running_loop().create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        sock.close()
        with contextlib.suppress(SystemExit):
            await task
        raise RuntimeError(f"the HTTP server on {url_of(sock)} did not start")
    try:
        yield RunningServer(url=url_of(sock), task=task)
    finally:
        server.should_exit = True
        await task
        sock.close()
