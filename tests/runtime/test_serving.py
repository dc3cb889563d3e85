"""Serving over real sockets with slow clients: headers and bodies that trickle in are
cut off, and many such clients at once do not keep /healthz from answering."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from service.graphs.loader import load_directory
from service.runtime import serving
from service.runtime.serving import serve
from service.server import bodies
from service.server.app import create_app
from tests.paths import SHIPPED_GRAPHS
from tests.support import settings

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_headers_that_trickle_in_are_cut_off(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, http: serving.HttpParser
) -> None:
    monkeypatch.setattr(serving.HTTP_PARSERS[http], "header_timeout_s", 0.3)
    app = create_app(settings("http://127.0.0.1"), redis=redis, graphs=GRAPHS)
    async with serve(app, http=http) as running:
        reader, writer = await asyncio.open_connection(*host_port(running.url))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        await writer.drain()
        closed = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
    assert closed == b""  # the server hung up without an answer


async def test_a_body_that_trickles_in_gets_408(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "BODY_TIMEOUT_S", 0.3)
    app = create_app(settings("http://127.0.0.1"), redis=redis, graphs=GRAPHS)
    async with serve(app) as running:
        reader, writer = await asyncio.open_connection(*host_port(running.url))
        writer.write(b"POST /webhooks/bird HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))  # fmt: skip
        body = await reader.readexactly(length)
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"the body did not come within 0.3 s" in body


async def test_many_slow_clients_do_not_keep_healthz_from_answering(redis: Redis) -> None:
    app = create_app(settings("http://127.0.0.1"), redis=redis, graphs=GRAPHS)
    async with serve(app) as running:
        slow = [await asyncio.open_connection(*host_port(running.url)) for _ in range(300)]
        for _, writer in slow:
            writer.write(b"POST /webhooks/bird HTTP/1.1\r\nHost: x\r\n")
        await asyncio.gather(*(writer.drain() for _, writer in slow))
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(running.url + "/healthz")
        for _, writer in slow:
            writer.close()
    assert answer.status_code == 200


# -- proxy headers: what uvicorn's middleware does, without its coroutine ---------------

CLIENTS = [("127.0.0.1", 5000), ("10.1.2.3", 6000), ("::1", 7000), None]
HEADER_SETS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"x-forwarded-proto", b"https")],
    [(b"x-forwarded-proto", b" wss "), (b"x-forwarded-for", b"203.0.113.7")],
    [(b"x-forwarded-proto", b"gopher"), (b"x-forwarded-for", b"203.0.113.7:4430")],
    [(b"x-forwarded-for", b"198.51.100.1, 127.0.0.1"), (b"x-forwarded-for", b"10.1.2.3")],
    [(b"x-forwarded-for", b"[2001:db8::1]:443"), (b"x-forwarded-proto", b"http")],
    [(b"x-forwarded-for", b"")],
]


async def proxied(middleware: Any, scope: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(inner: Scope, _: Receive, __: Send) -> None:
        seen.update(inner)

    async def nothing() -> Message:
        return {}

    async def ignore(_: Message) -> None:
        return None

    await middleware(app)(scope, nothing, ignore)
    return seen


@pytest.mark.parametrize("trusted", ["127.0.0.1,::1", "*", "10.0.0.0/8", "127.0.0.1"])
@pytest.mark.parametrize("kind", ["http", "websocket", "lifespan"])
async def test_forwarded_headers_are_read_as_uvicorn_reads_them(trusted: str, kind: str) -> None:
    for client in CLIENTS:
        for headers in HEADER_SETS:
            scope = {"type": kind, "scheme": "ws" if kind == "websocket" else "http",
                     "client": client, "headers": headers}  # fmt: skip
            ours = await proxied(lambda app: serving._Forwarded(app, trusted), dict(scope))
            theirs = await proxied(lambda app: ProxyHeadersMiddleware(app, trusted), dict(scope))
            assert ours == theirs, (client, headers)


async def test_a_request_s_scheme_comes_from_a_trusted_proxy_only() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen.append(scope["scheme"])
            await PlainTextResponse("ok")(scope, receive, send)

    async with serve(app) as running, httpx.AsyncClient() as http:
        await http.get(running.url + "/", headers={"x-forwarded-proto": "https"})
    assert seen == ["https"]  # from 127.0.0.1: FORWARDED_ALLOW_IPS' default
