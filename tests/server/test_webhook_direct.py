"""``POST /webhooks/bird`` goes straight to its endpoint (``service.server.app.App``),
past Starlette's routing: it answers as the route does, other methods still get the
route's 405, an exception is a 500 and counted, and the URL the signature covers is
the one Starlette's ``Request.url`` gives."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.types import Scope

from service.graphs.loader import load_directory
from service.runtime import metrics
from service.runtime.calls import CallHandler
from service.runtime.serving import bind, serve, url_of
from service.server import webhooks
from service.server.app import create_app
from tests.paths import SHIPPED_GRAPHS
from tests.support import RecordingBird, call_delivery, settings, signed_headers

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")
BASE = "https://ivr.example.com"


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient

    async def deliver(self, path: str = webhooks.PATH, query: str = "") -> httpx.Response:
        url = self.url + path + query
        body = call_delivery(str(uuid.uuid4()), "starting", updated=time.time())
        return await self.http.post(url, content=body, headers=signed_headers(url, body))


@pytest.fixture
async def served(redis: Redis) -> AsyncIterator[Served]:
    sock = bind()
    app = create_app(settings(url_of(sock)), redis=redis, graphs=GRAPHS,
                     bird_transport=httpx.MockTransport(RecordingBird()))  # fmt: skip
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        yield Served(running.url, http)


def counted(outcome: str, reason: str) -> float:
    labels = {"outcome": outcome, "reason": reason}
    return metrics.REGISTRY.get_sample_value("ivr_webhook_deliveries_total", labels) or 0.0


async def test_a_delivery_is_applied_and_other_methods_get_the_route_s_405(
    served: Served,
) -> None:
    answer = await served.deliver()
    assert answer.status_code == 200
    assert answer.json()["status"] == "applied"
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)
    for method in ("GET", "PUT", "DELETE"):
        refused = await served.http.request(method, served.url + webhooks.PATH)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"
    # Another path is the router's.
    elsewhere = await served.http.post(served.url + "/webhooks/birds", content=b"{}")
    assert elsewhere.status_code == 404


async def test_an_exception_is_a_500_counted_and_the_next_delivery_is_handled(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = CallHandler.handle

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    before = counted("rejected", "error")
    monkeypatch.setattr(CallHandler, "handle", broken)
    answer = await served.deliver()
    assert answer.status_code == 500
    assert answer.text == "Internal Server Error"
    assert answer.headers["content-type"].startswith("text/plain")
    assert counted("rejected", "error") - before == 1

    monkeypatch.setattr(CallHandler, "handle", handle)
    again = await served.deliver()  # the delivery in flight was let go
    assert again.status_code == 200


def scope_of(path: str, query: bytes, root_path: str = "") -> Scope:
    return {
        "type": "http", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "root_path": root_path, "query_string": query,
        "server": ("127.0.0.1", 8080), "headers": [(b"host", b"127.0.0.1:8080")],
    }  # fmt: skip


@given(st.binary(max_size=40))
def test_the_url_signed_is_the_one_the_request_s_url_gives(query: bytes) -> None:
    config = settings(BASE)
    for scope in (scope_of(webhooks.PATH, query), scope_of("/x/webhooks/bird", query, "/x")):
        try:
            expected = webhooks.public_url(config, Request(scope))
        except UnicodeDecodeError:
            with pytest.raises(UnicodeDecodeError):
                webhooks._public_url(config, scope)
            continue
        assert webhooks._public_url(config, scope) == expected


def test_of_a_header_sent_twice_the_first_counts() -> None:
    scope = scope_of(webhooks.PATH, b"")
    scope["headers"] = [(b"x-a", b"1"), (b"content-length", b"5"), (b"x-a", b"2")]
    assert webhooks._headers(scope) == {b"x-a": b"1", b"content-length": b"5"}
    assert Request(scope).headers.get("x-a") == "1"
