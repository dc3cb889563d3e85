"""Serving ASGI apps with uvicorn inside a running event loop, on sockets bound
beforehand: every URL is known before anything starts (port 0 picks a free one)
and connections made before uvicorn accepts wait in the listen backlog.

Used by ``ivr serve``, the demo (simulator and service side by side), ``ivr sim``
and the tests.

HTTP/1.1 is parsed by httptools (uvicorn's fast parser; :data:`HTTP_PARSERS`), and
:func:`run` runs a program on uvloop's event loop when it is installed (``ivr serve``,
``ivr sim``, ``ivr demo``): both are what ``uvicorn[standard]`` brings, and together
they take about a fifth of the CPU time of a delivery off (bench/README.md).

Slow clients: a connection must send a request's headers within
:data:`HEADER_TIMEOUT_S` of opening (or of its previous answer) or it is closed
(:class:`_GuardedHttpTools`, :class:`_GuardedH11`: uvicorn itself waits forever for
headers that trickle in);
a body must arrive within ``service.server.bodies.BODY_TIMEOUT_S``. Idle keep-alive
connections close after uvicorn's ``timeout_keep_alive``. Connections are cheap
tasks on one event loop: thousands of slow clients do not keep ``/healthz`` from
answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0

T = TypeVar("T")


class _GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 with a deadline for each request's headers: a client that
    opens a connection (or keeps one after an answer) and sends its headers too
    slowly is disconnected."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def _await_headers(self) -> None:
        waiting_since = self.cycle
        self._headers_due = self.loop.call_later(
            self.header_timeout_s, self._headers_late, waiting_since
        )

    def _headers_late(self, waiting_since: object) -> None:
        if self.cycle is waiting_since and not self.transport.is_closing():
            self.logger.info("Closing a connection whose request headers came too slowly.")
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._headers_due.cancel()  # a request started: its headers came

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # no pipelined request
        if idle and not self.transport.is_closing():
            self._headers_due.cancel()
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_due.cancel()
        super().connection_lost(exc)


class _GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 with the same deadline for each request's headers
    as :class:`_GuardedH11`."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def _await_headers(self) -> None:
        self._headers_due = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        if not self.transport.is_closing():
            self.logger.info("Closing a connection whose request headers came too slowly.")
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._headers_due.cancel()  # a request started: its headers came
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # No pipelined request waiting: the next one's headers are awaited from now.
        if not self.pipeline and not self.transport.is_closing():
            self._headers_due.cancel()
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_due.cancel()
        super().connection_lost(exc)


HttpParser = Literal["httptools", "h11"]
HTTP_PARSERS: dict[HttpParser, type[asyncio.Protocol]] = {
    "httptools": _GuardedHttpTools,
    "h11": _GuardedH11,
}
"""The HTTP/1.1 implementations :func:`serve` offers, each with the header deadline:
httptools (the default: a C parser) and h11 (pure Python)."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (``uvicorn[standard]`` brings it on
    the platforms it supports), else None: asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop's event loop when it is installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


class _Forwarded:
    """What uvicorn's ``ProxyHeadersMiddleware`` does, the same way: for a request from
    a trusted proxy (``FORWARDED_ALLOW_IPS``, by default the loopback's), the scheme of
    its ``X-Forwarded-Proto`` and the client of its ``X-Forwarded-For``. But the request
    runs as the app's own coroutine: uvicorn's middleware is a coroutine of its own,
    that a request goes through again each time it resumes (a delivery, about ten
    times: about 1 % of its CPU time)."""

    def __init__(self, app: ASGIApp, trusted_hosts: list[str] | str) -> None:
        self.app = app
        self.trusted_hosts = _TrustedHosts(trusted_hosts)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "lifespan":
            client = scope.get("client")
            if (client[0] if client else None) in self.trusted_hosts:
                self._forwarded(scope)
        return self.app(scope, receive, send)

    def _forwarded(self, scope: Scope) -> None:
        proto: bytes | None = None
        forwarded_for: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
        if proto is not None:
            scheme = proto.decode("latin1").strip()
            if scheme in {"http", "https", "ws", "wss"}:
                websocket = scope["type"] == "websocket"
                scope["scheme"] = scheme.replace("http", "ws") if websocket else scheme
        if forwarded_for:
            hosts = b", ".join(forwarded_for).decode("latin1")
            host, port = self.trusted_hosts.get_trusted_client_address(hosts)
            if host:
                scope["client"] = (host, port)


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
        sock.listen(1024)
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
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    http: HttpParser = "httptools",
) -> AsyncIterator[RunningServer]:
    """Run ``app`` (on ``sock``, or a new socket on ``host:port``) until the block
    exits; yields where it listens once uvicorn has started. ``http``: the HTTP/1.1
    implementation (:data:`HTTP_PARSERS`)."""
    sock = sock or bind(host, port)
    # uvicorn's own proxy headers, done by _Forwarded; every app served is ASGI 3 (an
    # app may answer a request by returning its coroutine: uvicorn would take it for
    # ASGI 2).
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="auto",
        http=HTTP_PARSERS[http], timeout_keep_alive=5, proxy_headers=False, interface="asgi3",
    )  # fmt: skip
    config.app = _Forwarded(app, config.forwarded_allow_ips)
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
