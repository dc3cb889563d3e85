"""POST /webhooks/bird over real HTTP: signatures, malformed bodies, what changes in Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.serving import bind, serve, url_of
from service.runtime.store import connect
from service.server.app import create_app
from tests.paths import SHIPPED_GRAPHS
from tests.support import RecordingBird, call_delivery, settings, signed_headers

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")


@dataclass
class Service:
    url: str
    bird: RecordingBird
    http: httpx.AsyncClient

    @property
    def webhook(self) -> str:
        return self.url + "/webhooks/bird"

    async def deliver(self, body: bytes, **headers: str) -> httpx.Response:
        sent = signed_headers(self.webhook, body)
        sent.update(headers)
        return await self.http.post(self.webhook, content=body, headers=sent)


@pytest.fixture
async def service(redis: Redis) -> AsyncIterator[Service]:
    sock = bind()
    bird = RecordingBird()
    app = create_app(
        settings(url_of(sock)), redis=redis, graphs=GRAPHS, bird_transport=httpx.MockTransport(bird)
    )
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        yield Service(running.url, bird, http)


async def keys_of(redis: Redis, call_id: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=f"*{call_id}*")]


async def test_a_signed_new_call_is_answered_and_its_state_kept(
    service: Service, redis: Redis
) -> None:
    call_id = str(uuid.uuid4())

    response = await service.deliver(call_delivery(call_id, "starting", updated=time.time()))
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    assert service.bird.commands == ["answer"]
    assert sorted(await keys_of(redis, call_id)) == [
        keys.call(call_id).encode(), keys.call_journal(call_id).encode()
    ]  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {"messagebird-signature": ""},
        {"messagebird-signature": "AAAA"},
        {"messagebird-request-timestamp": "100"},
        {"messagebird-request-timestamp": ""},
    ],
)
async def test_unsigned_or_wrongly_signed_deliveries_get_401_and_change_nothing(
    service: Service, redis: Redis, headers: dict[str, str]
) -> None:
    call_id = str(uuid.uuid4())

    response = await service.deliver(
        call_delivery(call_id, "starting", updated=time.time()), **headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.json()["reason"]
    assert await keys_of(redis, call_id) == []
    assert service.bird.commands == []


async def test_a_delivery_signed_with_another_key_or_for_another_url_is_refused(
    service: Service, redis: Redis
) -> None:

    call_id = str(uuid.uuid4())
    body = call_delivery(call_id, "starting", updated=time.time())
    wrong_key = signed_headers(service.webhook, body, key="someone-else")
    assert (
        await service.http.post(service.webhook, content=body, headers=wrong_key)
    ).status_code == 401
    wrong_url = signed_headers("https://elsewhere.example.com/webhooks/bird", body)
    assert (
        await service.http.post(service.webhook, content=body, headers=wrong_url)
    ).status_code == 401
    assert await keys_of(redis, call_id) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "not JSON"),
        (
            json.dumps({"service": "channels", "event": "voice.inbound", "payload": {}}).encode(),
            "call id",
        ),
    ],
)
async def test_malformed_deliveries_get_400_with_the_reason(
    service: Service, body: bytes, reason: str
) -> None:
    response = await service.deliver(body)
    assert response.status_code == 400
    assert reason in response.json()["reason"]


async def test_events_the_service_does_not_handle_get_2xx(service: Service) -> None:
    body = json.dumps({"service": "channels", "event": "sms.outbound", "payload": {}}).encode()
    response = await service.deliver(body)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


async def test_health_and_readiness(service: Service) -> None:
    assert (await service.http.get(service.url + "/healthz")).json() == {"status": "ok"}
    ready = await service.http.get(service.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "graphs": "2 loaded"}


async def test_readiness_fails_when_redis_is_unreachable() -> None:
    sock = bind()
    dead = connect("redis://127.0.0.1:1")
    app = create_app(settings(url_of(sock)), redis=dead, graphs=GRAPHS)
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        url = running.url
        ready = await http.get(url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("unreachable")
        # And a delivery is refused with 503 so that Bird delivers it again later.

        body = call_delivery(str(uuid.uuid4()), "starting", updated=time.time())
        webhook = url + "/webhooks/bird"
        response = await http.post(webhook, content=body, headers=signed_headers(webhook, body))
        assert response.status_code == 503
    await dead.aclose()


async def test_operator_endpoints_are_off_without_an_admin_token(service: Service) -> None:
    for method, path in (("GET", "/admin/graphs"), ("POST", "/admin/graphs/reload"),
                         ("POST", "/calls")):  # fmt: skip
        answer = await service.http.request(method, service.url + path, json={})
        assert answer.status_code == 403
        assert answer.json()["reason"] == "set IVR_ADMIN_TOKEN to use this endpoint"


async def test_a_signed_delivery_naming_a_path_for_its_call_id_gets_400_and_no_request(
    service: Service, redis: Redis
) -> None:
    body = call_delivery("../../../../../workspaces/x/channels/y/calls", "starting",
                         updated=time.time())  # fmt: skip
    response = await service.deliver(body)
    assert response.status_code == 400
    assert "not a call id" in response.json()["reason"]
    assert service.bird.requests == []


@pytest.mark.parametrize("token", ["\xe9", "caf\xe9", "\xff" * 40])
async def test_a_bearer_token_outside_ascii_is_a_wrong_token_not_a_500(
    redis: Redis, token: str
) -> None:
    sock = bind()
    guarded = replace(settings(url_of(sock)), ivr_admin_token="right-token")
    app = create_app(guarded, redis=redis, graphs=GRAPHS)
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        for method, path in (("GET", "/admin/graphs"), ("POST", "/calls"), ("GET", "/agents")):
            answer = await http.request(method, running.url + path, json={},
                                        headers={b"Authorization": f"Bearer {token}".encode(
                                            "latin-1")})  # fmt: skip
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["error"] == "unauthorized"


# -- bodies over the limit, JSON bombs, clients that go away --------------------------------


async def test_a_webhook_body_over_the_limit_is_413_before_it_is_read(
    redis: Redis,
) -> None:
    sock = bind()
    small = replace(settings(url_of(sock)), max_body_bytes=8192)
    app = create_app(small, redis=redis, graphs=GRAPHS)
    declared = b"x" * 9000

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(10_000):  # 80 MB, if it were all read
            yield b"y" * 8192

    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        url = running.url + "/webhooks/bird"
        for content in (declared, endless()):
            answer = await http.post(url, content=content)
            assert answer.status_code == 413
            assert answer.json() == {"error": "too_large", "reason": "the body is over 8 KiB"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"to": ' + b"9" * 5000 + b"}", "the body is not JSON we can read"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is nested too deeply"),
        (b'{"to": "\\ud800"}', "the body holds a lone surrogate"),
        (b"{oops", "the body is not JSON"),
    ],
    ids=["5000 digits", "deep nesting", "lone surrogate", "not json"],
)
async def test_post_calls_with_a_json_bomb_gets_422_with_the_reason(
    redis: Redis, content: bytes, reason: str
) -> None:
    sock = bind()
    guarded = replace(settings(url_of(sock)), ivr_admin_token="right-token-123456")
    app = create_app(guarded, redis=redis, graphs=GRAPHS)
    headers = {"Authorization": "Bearer right-token-123456"}
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        answer = await http.post(running.url + "/calls", content=content, headers=headers)
    assert answer.status_code == 422  # a bad request, as the README says
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["reason"].startswith(reason)
    assert answer.json()["problems"] == ["/: " + answer.json()["reason"]]


async def test_post_calls_with_redis_away_is_503_like_the_webhook() -> None:
    sock = bind()
    guarded = replace(settings(url_of(sock)), ivr_admin_token="right-token-123456")
    away = connect("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    app = create_app(guarded, redis=away, graphs=GRAPHS, bird_transport=httpx.MockTransport(
        RecordingBird()))  # fmt: skip
    headers = {"Authorization": "Bearer right-token-123456"}
    body = {"to": "+31612345678", "graph": "appointment-reminder",
            "vars": {"name": "Ann", "date": "1 December", "time": "10:00"}}  # fmt: skip
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        answer = await http.post(running.url + "/calls", json=body, headers=headers)
    await away.aclose()
    assert answer.status_code == 503
    assert answer.json()["error"] == "unavailable"


async def test_a_client_gone_mid_body_is_one_log_line_not_a_traceback(redis: Redis) -> None:
    sock = bind()
    app = create_app(settings(url_of(sock)), redis=redis, graphs=GRAPHS)
    abandoned_logged = asyncio.Event()

    def watch(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event.get("event") == "request_abandoned":
            abandoned_logged.set()
        return event

    async with serve(app, sock=sock) as running:
        host, port = running.url.removeprefix("http://").split(":")
        with capture_logs(processors=[watch]) as logged:
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /webhooks/bird HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                         b"\r\n" + b"{" * 10)  # fmt: skip
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(abandoned_logged.wait(), timeout=5)
    abandoned = [e for e in logged if e["event"] == "request_abandoned"]
    assert abandoned[0]["path"] == "/webhooks/bird"
    assert abandoned[0]["log_level"] == "info"
    assert not [e for e in logged if e.get("exc_info") or e["log_level"] == "error"]


@pytest.mark.parametrize("query", ["?ref=..%2F..%2Fx", "?offer=o1%0A", "?ref=" + "a" * 5000])
async def test_a_reference_this_service_never_gives_gets_400(
    service: Service, redis: Redis, query: str
) -> None:
    call_id = str(uuid.uuid4())
    body = call_delivery(call_id, "starting", updated=time.time())
    url = service.webhook + query
    answer = await service.http.post(url, content=body, headers=signed_headers(url, body))
    assert answer.status_code == 400
    assert "is not a reference this service gives" in answer.json()["reason"]
    assert await keys_of(redis, call_id) == []
