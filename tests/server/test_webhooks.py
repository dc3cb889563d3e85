"""POST /webhooks/bird over real HTTP: signatures, malformed bodies, what changes in Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest
from redis.asyncio import Redis

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
    assert await keys_of(redis, call_id) == [keys.call(call_id).encode()]


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
