"""Overload, over real HTTP and a real Redis: past ``IVR_MAX_IN_FLIGHT`` deliveries at
once, or with no Redis connection free within ``REDIS_POOL_TIMEOUT_S``, a delivery is
answered 503 "overloaded" (``Retry-After: 1``) at once and changes nothing; Bird
delivers it again and it is applied. A Redis that is away is still "call state store
unavailable". The health, readiness and metrics endpoints answer meanwhile; the
operator API answers the same two 503s."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from service.graphs.loader import load_directory
from service.runtime import metrics
from service.runtime.redis_client import WaitingPool, connect
from service.runtime.serving import bind, serve, url_of
from service.runtime.store import CallStore
from service.server import webhooks
from service.server.app import create_app
from service.server.webhooks import RefusalLog
from tests.paths import SHIPPED_GRAPHS
from tests.support import RecordingBird, call_delivery, settings, signed_headers

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")


@dataclass
class HeldBird:
    """Bird on loopback that answers a command only once ``release`` is set; ``calls``
    has the call id of every command that came, ``arrived`` is set when ``expect``
    commands have."""

    expect: int
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)

    async def command(self, request: Request) -> Response:
        path = request.url.path.split("/")
        self.calls.append(path[path.index("calls") + 1] if "calls" in path else "")
        if len(self.calls) >= self.expect:
            self.arrived.set()
        await self.release.wait()
        return JSONResponse({"id": str(uuid.uuid4()), "status": "queued"}, status_code=202)

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.command, methods=methods)])


def deliveries(outcome: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "ivr_webhook_deliveries_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


@contextlib.asynccontextmanager
async def every_connection_held(redis_url: str) -> AsyncIterator[Redis]:
    """A client of one connection, which another user holds the whole time."""
    client = connect(redis_url, max_connections=1, pool_timeout_s=0.2)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    held = await pool.get_connection()
    try:
        yield client
    finally:
        await pool.release(held)
        await client.aclose()


async def deliver(http: httpx.AsyncClient, url: str, call_id: str) -> httpx.Response:
    webhook = url + "/webhooks/bird"
    body = call_delivery(call_id, "starting", updated=time.time())
    return await http.post(webhook, content=body, headers=signed_headers(webhook, body))


def overloaded_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "webhook_overloaded"]


async def test_past_max_in_flight_a_delivery_is_refused_at_once_and_applied_when_redelivered(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "LOG_EVERY_S", 0.2)
    logged = asyncio.Event()
    flush = RefusalLog.flush

    def flush_and_tell(self: RefusalLog) -> None:
        flush(self)
        logged.set()

    monkeypatch.setattr(RefusalLog, "flush", flush_and_tell)
    bird = HeldBird(expect=2)
    async with serve(bird.app()) as bird_server:
        sock = bind()
        limited = replace(settings(url_of(sock), bird_server.url), ivr_max_in_flight=2)
        app = create_app(limited, redis=redis, graphs=GRAPHS)
        held_ids, refused_id = [str(uuid.uuid4()) for _ in range(2)], str(uuid.uuid4())
        before = deliveries("overloaded", "max_in_flight")
        with capture_logs() as logs:
            async with serve(app, sock=sock) as service, httpx.AsyncClient(timeout=10) as http:
                held = [asyncio.create_task(deliver(http, service.url, c)) for c in held_ids]
                await asyncio.wait_for(bird.arrived.wait(), timeout=10)  # both inside

                started = time.perf_counter()
                refused = [await deliver(http, service.url, refused_id) for _ in range(5)]
                took = time.perf_counter() - started
                during = {
                    path: (await http.get(service.url + path)).status_code
                    for path in ("/healthz", "/readyz", "/metrics")
                }
                nothing_yet = [k async for k in redis.scan_iter(match=f"*{refused_id}*")]

                bird.release.set()
                answered = await asyncio.gather(*held)
                again = await deliver(http, service.url, refused_id)  # Bird's redelivery
            while sum(line["refused"] for line in overloaded_lines(logs)) < 5:
                logged.clear()  # the line for the refusals after the first
                await asyncio.wait_for(logged.wait(), timeout=5)

    for answer in refused:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "overloaded"
        assert "IVR_MAX_IN_FLIGHT" in answer.json()["reason"]
    assert took < 5  # at once, not after the held deliveries
    assert during == {"/healthz": 200, "/readyz": 200, "/metrics": 200}
    assert nothing_yet == []  # a refused delivery changed nothing
    assert deliveries("overloaded", "max_in_flight") - before == 5
    # A warning at the first refusal; the others counted, and told on the next line.
    lines = overloaded_lines(logs)
    assert {line["log_level"] for line in lines} == {"warning"}
    assert (lines[0]["reason"], lines[0]["refused"], lines[0]["max_in_flight"]) == (
        "max_in_flight", 1, 2,
    )  # fmt: skip
    assert sum(line["refused"] for line in lines) == 5
    assert len(lines) < 5

    assert [a.json()["status"] for a in answered] == ["applied", "applied"]
    assert again.status_code == 200
    assert again.json()["status"] == "applied"
    assert bird.calls.count(refused_id) == 1  # the call was answered: nothing lost
    state = await CallStore(redis, ended_ttl_s=600, channel_id=limited.bird_channel_id).load(
        refused_id
    )
    assert state is not None
    assert state.graph == "support-line"  # the call started its graph


async def test_refusals_are_logged_once_a_second_with_how_many_there_were() -> None:
    now = [100.0]
    refusals = RefusalLog("max_in_flight", every_s=0.05, clock=lambda: now[0])
    flushed = asyncio.Event()
    flush = refusals.flush

    def flush_and_tell() -> None:
        flush()
        flushed.set()

    refusals.flush = flush_and_tell  # type: ignore[method-assign]
    with capture_logs() as logs:
        for _ in range(4):
            refusals.refused(max_in_flight=2)
        first = [line["refused"] for line in overloaded_lines(logs)]
        flushed.clear()
        await asyncio.wait_for(flushed.wait(), timeout=5)  # the line for the other three
        after_the_timer = [line["refused"] for line in overloaded_lines(logs)]
        now[0] += 0.05  # a while later, one more: logged at once
        refusals.refused(max_in_flight=2)
    assert first == [1]
    assert after_the_timer == [1, 3]
    assert [line["refused"] for line in overloaded_lines(logs)] == [1, 3, 1]


async def test_with_every_redis_connection_held_a_delivery_is_overloaded_not_unavailable(
    redis_url: str,
) -> None:
    before = deliveries("overloaded", "redis_pool")
    async with every_connection_held(redis_url) as client:
        sock = bind()
        app = create_app(settings(url_of(sock)), redis=client, graphs=GRAPHS,
                         bird_transport=httpx.MockTransport(bird := RecordingBird()))  # fmt: skip
        with capture_logs() as logs:
            async with serve(app, sock=sock) as service, httpx.AsyncClient(timeout=10) as http:
                answer = await deliver(http, service.url, str(uuid.uuid4()))
                health = await http.get(service.url + "/healthz")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "overloaded"
    assert "REDIS_POOL_TIMEOUT_S" in answer.json()["reason"]
    assert health.status_code == 200
    assert bird.requests == []
    assert deliveries("overloaded", "redis_pool") - before == 1
    (line,) = overloaded_lines(logs)
    assert (line["log_level"], line["reason"], line["refused"]) == ("warning", "redis_pool", 1)
    assert "pool exhausted" in line["error"]
    assert not [entry for entry in logs if entry["event"] == "webhook_failed"]


async def test_a_redis_that_is_away_is_still_call_state_store_unavailable() -> None:
    away = connect("redis://127.0.0.1:9/0", max_connections=8, pool_timeout_s=0.2)  # discard port
    sock = bind()
    app = create_app(settings(url_of(sock)), redis=away, graphs=GRAPHS,
                     bird_transport=httpx.MockTransport(RecordingBird()))  # fmt: skip
    before = deliveries("rejected", "unavailable")
    with capture_logs() as logs:
        async with serve(app, sock=sock) as service, httpx.AsyncClient(timeout=10) as http:
            answer = await deliver(http, service.url, str(uuid.uuid4()))
    await away.aclose()
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "unavailable", "reason": "call state store unavailable; retry later"
    }  # fmt: skip
    assert "retry-after" not in answer.headers
    assert deliveries("rejected", "unavailable") - before == 1
    failed = [entry for entry in logs if entry["event"] == "webhook_failed"]
    assert [entry["reason"] for entry in failed] == ["redis unavailable"]
    assert overloaded_lines(logs) == []


REMINDER = {"name": "Ada", "date": "2026-12-01", "time": "10:00"}
TOKEN = "right-token-123456"
API_REQUESTS = [
    ("POST", "/calls", {"to": "+31612345678", "graph": "appointment-reminder", "vars": REMINDER}),
    ("GET", "/admin/calls", None),
    ("GET", "/admin/calls/a-call-id", None),
    ("GET", "/agents", None),
    ("GET", "/queues", None),
]
# What each of API_REQUESTS logs when its Redis work fails.
API_EVENTS = ["outbound_failed", "calls_api_failed", "calls_api_failed", "agents_api_failed",
              "queues_api_failed"]  # fmt: skip


async def ask_every_endpoint(client: Redis) -> tuple[list[httpx.Response], Any, RecordingBird]:
    sock = bind()
    guarded = replace(settings(url_of(sock)), ivr_admin_token=TOKEN)
    bird = RecordingBird()
    app = create_app(guarded, redis=client, graphs=GRAPHS, bird_transport=httpx.MockTransport(bird))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with capture_logs() as logs:
        async with serve(app, sock=sock) as service, httpx.AsyncClient(timeout=10) as http:
            answers = [
                await http.request(method, service.url + path, json=body, headers=headers)
                for method, path, body in API_REQUESTS
            ]
    return answers, logs, bird


async def test_with_every_redis_connection_held_the_api_is_overloaded_not_unavailable(
    redis_url: str,
) -> None:
    async with every_connection_held(redis_url) as client:
        answers, logs, bird = await ask_every_endpoint(client)
    for (method, path, _), answer in zip(API_REQUESTS, answers, strict=True):
        assert (method, path, answer.status_code) == (method, path, 503)
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "overloaded"
        assert "REDIS_POOL_TIMEOUT_S" in answer.json()["reason"]
    failed = [line for line in logs if line["event"] in API_EVENTS]
    assert [(line["event"], line["log_level"], line["reason"]) for line in failed] == [
        (event, "warning", "overloaded") for event in API_EVENTS
    ]
    assert all("pool exhausted" in line["error"] for line in failed)
    assert bird.requests == []  # the outbound call was not placed


async def test_with_redis_away_the_api_says_which_store_is_unavailable() -> None:
    away = connect("redis://127.0.0.1:9/0", max_connections=8, pool_timeout_s=0.2)  # discard port
    try:
        answers, logs, _ = await ask_every_endpoint(away)
    finally:
        await away.aclose()
    assert [(answer.status_code, answer.json()) for answer in answers] == [
        (503, {"error": "unavailable", "reason": f"{store} unavailable; retry later"})
        for store in ("call state store", "call state store", "call state store",
                      "agent store", "the line's store")
    ]  # fmt: skip
    assert all("retry-after" not in answer.headers for answer in answers)
    failed = [line for line in logs if line["event"] in API_EVENTS]
    assert [(line["event"], line["log_level"], line["reason"]) for line in failed] == [
        (event, "error", "redis unavailable") for event in API_EVENTS
    ]
