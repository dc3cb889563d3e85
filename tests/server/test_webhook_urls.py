"""A 401 for a delivery signed for another URL says so in the log: the URL checked (from
PUBLIC_BASE_URL), the URL the request came to, and a hint."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from service.graphs.loader import load_directory
from service.runtime.serving import bind, serve, url_of
from service.server.app import create_app
from service.server.webhooks import URL_HINT
from tests.paths import SHIPPED_GRAPHS
from tests.support import SIGNING_KEY, RecordingBird, call_delivery, settings, signed_headers

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")


@dataclass
class Served:
    loopback: str  # http://127.0.0.1:PORT: where the test (or a simulator) posts
    public: str  # PUBLIC_BASE_URL: the same port, named http://localhost:PORT


@pytest.fixture
async def served(redis: Redis) -> AsyncIterator[Served]:
    sock = bind()
    loopback = url_of(sock)
    public = loopback.replace("127.0.0.1", "localhost")
    assert public != loopback
    app = create_app(settings(public), redis=redis, graphs=GRAPHS,
                     bird_transport=httpx.MockTransport(RecordingBird()))  # fmt: skip
    async with serve(app, sock=sock):
        yield Served(loopback, public)


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers=headers)


def rejected(logged: list[MutableMapping[str, Any]]) -> MutableMapping[str, Any]:
    (line,) = [e for e in logged if e["event"] == "webhook_rejected"]
    return line


async def test_a_delivery_signed_for_another_url_logs_both_urls_and_a_hint(
    served: Served,
) -> None:
    body = call_delivery(str(uuid.uuid4()), "starting", updated=time.time())
    url = served.loopback + "/webhooks/bird?ref=" + "a" * 32
    with capture_logs() as logged:
        answer = await post(url, body, signed_headers(url, body))
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized", "reason": "signature does not match"}
    line = rejected(logged)
    assert line["checked_url"] == served.public + "/webhooks/bird?ref=" + "a" * 32
    assert line["request_url"] == url
    assert line["hint"] == URL_HINT
    assert URL_HINT == (
        "the signature covers PUBLIC_BASE_URL's URL; is PUBLIC_BASE_URL the URL Bird (or the "
        "simulator) posts to?"
    )
    assert SIGNING_KEY not in repr(line)


async def test_a_wrong_key_for_the_right_url_logs_the_urls_without_the_hint(
    served: Served,
) -> None:
    body = call_delivery(str(uuid.uuid4()), "starting", updated=time.time())
    url = served.public + "/webhooks/bird"  # localhost: the request's URL is this one too
    with capture_logs() as logged:
        answer = await post(url, body, signed_headers(url, body, key="someone-else"))
    assert answer.status_code == 401
    line = rejected(logged)
    assert line["checked_url"] == line["request_url"] == url
    assert "hint" not in line


async def test_other_401s_name_no_url(served: Served) -> None:
    body = call_delivery(str(uuid.uuid4()), "starting", updated=time.time())
    url = served.loopback + "/webhooks/bird"
    headers = signed_headers(url, body)
    headers["messagebird-request-timestamp"] = "100"  # too old
    with capture_logs() as logged:
        answer = await post(url, body, headers)
    assert answer.status_code == 401
    line = rejected(logged)
    assert line["reason"] == "messagebird-request-timestamp is too old"
    assert "checked_url" not in line
