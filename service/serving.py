"""Serving ASGI apps with uvicorn inside a running event loop, on loopback
sockets bound beforehand (so every URL is known before anything starts).

Used by the demo, which runs the simulator and the service side by side, and
by the tests, which talk to real HTTP servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp


def bound_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``host`` on a free port (or ``port``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server with an event set once it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """The embedding program owns the signals (Ctrl-C cancels its tasks)."""
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve ``app`` until the block ends; yields its base URL once it is accepting."""
    sock = sock or bound_socket()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    try:
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            await task  # raises what stopped it
            raise RuntimeError("the server stopped before it was ready")
        yield url_of(sock)
    finally:
        ready.cancel()
        server.should_exit = True
        with contextlib.suppress(SystemExit):
            await task
        sock.close()
