"""``lookups.fetcher`` against a real HTTP server on loopback: every outcome of an
``http`` node's request becomes an ``HttpResponded``."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.core.actions import HttpRequest
from service.core.events import HttpResponded
from service.runtime.lookups import MAX_BODY_BYTES, Fetch, fetcher
from service.runtime.serving import serve

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(eq=False)
class Lookups:
    """A small lookup API that records what it was asked."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/customers/{number}", self.customer, methods=METHODS),
                Route("/broken", self.broken, methods=METHODS),
                Route("/slow", self.slow, methods=METHODS),
                Route("/huge", self.huge, methods=METHODS),
                Route("/exact", self.exact, methods=METHODS),
                Route("/text", self.text, methods=METHODS),
            ]
        )

    async def record(self, request: Request) -> None:
        self.seen.append(
            Seen(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                headers=dict(request.headers),
                body=await request.body(),
            )
        )

    async def customer(self, request: Request) -> Response:
        await self.record(request)
        number = request.path_params["number"]
        return JSONResponse({"customer": {"number": number, "name": "Ann", "tier": 3}})

    async def broken(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"error": "database down"}, status_code=500)

    async def slow(self, request: Request) -> Response:
        await self.record(request)
        await self.release.wait()  # set only once the client has given up
        return JSONResponse({"late": True})

    async def huge(self, request: Request) -> Response:
        await self.record(request)
        return Response(b"x" * (MAX_BODY_BYTES + 1), media_type="text/plain")

    async def exact(self, request: Request) -> Response:
        await self.record(request)
        return Response(b"y" * MAX_BODY_BYTES, media_type="text/plain")

    async def text(self, request: Request) -> Response:
        await self.record(request)
        return Response("<html>maintenance</html>", status_code=503, media_type="text/html")


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Lookups]:
    api = Lookups()
    async with serve(api.app()) as running:
        api.url = running.url
        yield api


@pytest.fixture
async def lookups(server: Lookups) -> AsyncIterator[Lookups]:
    server.seen.clear()
    try:
        yield server
    finally:
        server.release.set()  # lets a slow answer finish, so that the server can stop
        server.release = asyncio.Event()


@pytest.fixture
async def fetch() -> AsyncIterator[Fetch]:
    async with httpx.AsyncClient() as client:
        yield fetcher(client)


def request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout_ms: int = 2000,
) -> HttpRequest:
    return HttpRequest(method, url, headers or {}, body, timeout_ms)


async def test_a_json_answer_comes_back_with_its_status_and_body(
    lookups: Lookups, fetch: Fetch
) -> None:
    answer = await fetch(request(f"{lookups.url}/customers/31612345678?src=ivr"))
    assert answer.status == 200
    assert answer.error is None
    assert json.loads(answer.body) == {
        "customer": {"number": "31612345678", "name": "Ann", "tier": 3}
    }
    (seen,) = lookups.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/customers/31612345678", "src=ivr")
    assert seen.body == b""
    assert "content-type" not in seen.headers


async def test_the_server_receives_method_headers_and_json_body(
    lookups: Lookups, fetch: Fetch
) -> None:
    body = {"caller": "+31612345678", "items": [{"pin": "1234"}, 3, True, None], "n": 5}
    answer = await fetch(
        request(
            f"{lookups.url}/customers/42",
            method="POST",
            headers={"Authorization": "Bearer secret-token", "X-Call-Id": "call-1"},
            body=body,
        )
    )
    assert answer.status == 200
    (seen,) = lookups.seen
    assert seen.method == "POST"
    assert seen.headers["authorization"] == "Bearer secret-token"
    assert seen.headers["x-call-id"] == "call-1"
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == body


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_methods_are_sent_as_asked(lookups: Lookups, fetch: Fetch, method: str) -> None:
    answer = await fetch(request(f"{lookups.url}/customers/7", method=method, body={"a": 1}))
    assert answer.status == 200
    (seen,) = lookups.seen
    assert seen.method == method
    assert json.loads(seen.body) == {"a": 1}


async def test_a_server_error_is_an_answer_with_its_status(lookups: Lookups, fetch: Fetch) -> None:
    answer = await fetch(request(f"{lookups.url}/broken"))
    assert answer.status == 500
    assert answer.error is None
    assert json.loads(answer.body) == {"error": "database down"}


async def test_a_non_json_answer_is_passed_on_as_bytes(lookups: Lookups, fetch: Fetch) -> None:
    answer = await fetch(request(f"{lookups.url}/text"))
    assert answer == HttpResponded(503, b"<html>maintenance</html>")


async def test_a_slow_answer_times_out(lookups: Lookups, fetch: Fetch) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await fetch(request(f"{lookups.url}/slow", timeout_ms=200))
    elapsed = loop.time() - started
    assert answer == HttpResponded(None, b"", error="timed out after 200 ms")
    assert len(lookups.seen) == 1, "the request reached the server"
    assert elapsed < 5, "the request's own timeout was not used"


async def test_an_answer_over_the_size_limit_is_an_error(lookups: Lookups, fetch: Fetch) -> None:
    answer = await fetch(request(f"{lookups.url}/huge"))
    assert answer.status is None
    assert answer.body == b""
    assert answer.error == f"answer larger than {MAX_BODY_BYTES} bytes"


async def test_an_answer_of_exactly_the_size_limit_is_kept(lookups: Lookups, fetch: Fetch) -> None:
    answer = await fetch(request(f"{lookups.url}/exact"))
    assert answer.status == 200
    assert answer.error is None
    assert answer.body == b"y" * MAX_BODY_BYTES


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_an_error(fetch: Fetch) -> None:
    answer = await fetch(request(f"http://127.0.0.1:{closed_port()}/customers/1"))
    assert answer.status is None
    assert answer.body == b""
    assert answer.error is not None
    assert answer.error.startswith("ConnectError: ")
