"""GET /metrics over real HTTP on loopback: no token needed, deliveries and Bird's
requests counted, the gauges read from Redis, every worker process added up, and
calls through the simulator counted as they happened."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.cli.demo import ANN
from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.serving import bind, serve, url_of
from service.runtime.settings import Settings
from service.server.app import create_app
from service.sim import CallerScript
from tests.e2e.test_e2e import NUMBER, stack
from tests.paths import ROOT, SHIPPED_GRAPHS
from tests.support import RecordingBird, call_delivery, settings, signed_headers

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a /metrics answer, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the series that have these labels."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def by(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    """``name``'s values by one label (series with these labels), zeros left out."""
    wanted = set(labels.items())
    found: dict[str, float] = {}
    for (n, series), v in samples.items():
        if n == name and wanted <= series and v:
            key = dict(series)[label]
            found[key] = found.get(key, 0.0) + v
    return found


def minus(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@dataclass
class Service:
    url: str
    settings: Settings
    bird: RecordingBird
    http: httpx.AsyncClient

    async def metrics(self) -> Samples:
        answer = await self.http.get(self.url + "/metrics")
        assert answer.status_code == 200, answer.text
        return parse(answer.text)

    async def deliver(self, body: bytes, **headers: str) -> httpx.Response:
        url = self.url + "/webhooks/bird"
        sent = signed_headers(url, body)
        sent.update(headers)
        return await self.http.post(url, content=body, headers=sent)


@pytest.fixture
async def service(redis: Redis) -> AsyncIterator[Service]:
    sock = bind()
    bird = RecordingBird()
    configured = replace(settings(url_of(sock)), ivr_admin_token="an-admin-token-of-24-chars")
    app = create_app(configured, redis=redis, graphs=GRAPHS,
                     bird_transport=httpx.MockTransport(bird))  # fmt: skip
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        yield Service(running.url, configured, bird, http)


async def test_metrics_are_served_without_the_admin_token(service: Service) -> None:
    answer = await service.http.get(service.url + "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE ivr_webhook_deliveries_total counter" in answer.text
    assert "ivr_redis_up 1.0" in answer.text
    # The operator API next to it still wants the token.
    assert (await service.http.get(service.url + "/agents")).status_code == 401


async def test_a_scraper_asking_for_openmetrics_gets_it(service: Service) -> None:
    answer = await service.http.get(
        service.url + "/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


async def test_deliveries_are_counted_by_outcome_and_bird_requests_by_command(
    service: Service,
) -> None:
    before = await service.metrics()
    call_id = str(uuid.uuid4())
    first = call_delivery(call_id, "starting", updated=time.time())
    assert (await service.deliver(first)).json()["status"] == "applied"
    assert (await service.deliver(first)).json()["status"] == "duplicate"
    unsigned = await service.http.post(service.url + "/webhooks/bird", content=first)
    assert unsigned.status_code == 401
    assert (await service.deliver(b"{not json")).status_code == 400
    huge = b"x" * (service.settings.max_body_bytes + 1)
    assert (await service.deliver(huge)).status_code == 413
    after = await service.metrics()
    name = "ivr_webhook_deliveries_total"
    counted = {
        (outcome, reason): get(after, name, outcome=outcome, reason=reason)
        - get(before, name, outcome=outcome, reason=reason)
        for outcome, reason in [
            ("applied", ""),
            ("duplicate", ""),
            ("rejected", "unauthorized"),
            ("rejected", "bad_request"),
            ("rejected", "too_large"),
            ("rejected", "unavailable"),
        ]
    }
    assert counted == {
        ("applied", ""): 1,
        ("duplicate", ""): 1,
        ("rejected", "unauthorized"): 1,
        ("rejected", "bad_request"): 1,
        ("rejected", "too_large"): 1,
        ("rejected", "unavailable"): 0,
    }
    timed = get(after, "ivr_webhook_seconds_count") - get(before, "ivr_webhook_seconds_count")
    assert timed == 5
    assert service.bird.commands == ["answer"]
    requests = "ivr_bird_requests_total"
    assert (
        get(after, requests, command="answer", result="2xx")
        - get(before, requests, command="answer", result="2xx")
        == 1
    )
    assert call_id not in json.dumps([sorted(labels) for _, labels in after])


async def test_redis_away_is_a_503_to_bird_counted_as_unavailable(redis_url: str) -> None:
    sock = bind()
    away = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    app = create_app(settings(url_of(sock)), redis=away, graphs=GRAPHS)
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        service = Service(running.url, settings(running.url), RecordingBird(), http)
        before = await service.metrics()
        body = call_delivery(str(uuid.uuid4()), "starting", updated=time.time())
        assert (await service.deliver(body)).status_code == 503
        after = await service.metrics()
    await away.aclose()
    name = "ivr_webhook_deliveries_total"
    labels = {"outcome": "rejected", "reason": "unavailable"}
    assert get(after, name, **labels) - get(before, name, **labels) == 1
    assert get(after, "ivr_redis_up") == 0  # and /metrics still answers


async def test_the_gauges_show_the_channel_s_live_calls_and_pending_commands(
    service: Service, redis: Redis
) -> None:
    channel = service.settings.bird_channel_id
    live = {
        str(uuid.uuid4()): {"graph": "support-line", "node": "main-menu"},
        str(uuid.uuid4()): {"graph": "support-line", "node": "main-menu"},
        str(uuid.uuid4()): {"graph": "support-line", "node": "billing"},
    }
    await redis.hset(keys.live_calls(channel), mapping={
        call_id: json.dumps({**where, "phase": "running", "direction": "inbound",
                             "caller": "+31612345678", "called": NUMBER})
        for call_id, where in live.items()
    })  # fmt: skip
    for call_id in live:
        await redis.hset(keys.call(call_id), "v", 1)
    now_ms = int(time.time() * 1000)
    await redis.zadd(keys.timers(channel), {
        **{call_id: now_ms + 60_000 for call_id in live},
        keys.timer_member("agent", "ann"): now_ms + 60_000,
    })  # fmt: skip
    answer = await service.http.get(service.url + "/metrics")
    samples = parse(answer.text)
    assert by(samples, "ivr_calls_live", "node", graph="support-line") == {
        "main-menu": 2,
        "billing": 1,
    }
    assert get(samples, "ivr_commands_pending") == 3  # the agent's timer is no command
    assert get(samples, "ivr_timers_due") == 0
    assert set(by(samples, "ivr_queue_callers_waiting", "queue")) <= {"billing", "support"}
    assert {q for (n, s), _ in samples.items() if n == "ivr_queue_longest_wait_seconds"
            for k, q in s if k == "queue"} == {"billing", "support"}  # fmt: skip
    # Counts only: no call id, no phone number.
    assert not any(call_id in answer.text for call_id in live)
    assert re.search(r"\+\d{6}", answer.text) is None
    await redis.delete(keys.live_calls(channel), keys.timers(channel),
                       *(keys.call(call_id) for call_id in live))  # fmt: skip


WORKER = """
import sys
from service.runtime import metrics
for _ in range(int(sys.argv[2])):
    metrics.call_started(sys.argv[1], "inbound")
metrics.bird_request("answer", "2xx", 0.05)
"""


async def test_every_worker_process_is_counted_with_a_multiprocess_directory(
    redis: Redis, tmp_path: Path
) -> None:
    graph = f"g-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, graph, str(count), env=env, cwd=ROOT
        )
        for count in (3, 4)
    ]
    async with asyncio.timeout(60):
        codes = [await worker.wait() for worker in workers]
    assert codes == [0, 0]
    files = await asyncio.to_thread(lambda: list(tmp_path.glob("*.db")))
    assert len(files) >= 2  # each process wrote its own files
    sock = bind()
    configured = replace(settings(url_of(sock)), prometheus_multiproc_dir=tmp_path)
    app = create_app(configured, redis=redis, graphs=GRAPHS)
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        samples = parse((await http.get(running.url + "/metrics")).text)
    assert get(samples, "ivr_calls_started_total", graph=graph, direction="inbound") == 7
    assert get(samples, "ivr_bird_request_seconds_count", command="answer") == 2
    assert get(samples, "ivr_redis_up") == 1  # the gauges read from Redis, once


# The simulator's operations (its RecordedRequest.operation) as the metrics name them.
COMMAND_OF = {
    "answerCall": "answer",
    "hangupCall": "hangup",
    "createCall": "create_call",
    "getCall": "get_call",
    "say": "say",
    "playback": "playback",
    "gather": "gather",
    "record": "record",
    "bridge": "bridge",
}


async def test_calls_through_the_simulator_show_in_the_metrics(redis: Redis) -> None:
    async with stack(redis, seated=(ANN,)) as s, httpx.AsyncClient() as http:

        async def scrape() -> Samples:
            return parse((await http.get(s.service_url + "/metrics")).text)

        before = await scrape()
        silent = CallerScript("silence until the menu gives up", "+31611122233", NUMBER, ())
        billing = CallerScript("billing: Ann", "+31687654321", NUMBER, ("1", "12345678#"))
        placed = [await s.sim.place_inbound_call(script) for script in (silent, billing)]
        for call_id in placed:
            await s.sim.wait_ended(call_id, timeout_s=60)
        after = await scrape()
        outcomes: Counter[str] = Counter()
        for call_id in placed:
            stored = await s.store.load(call_id)
            assert stored is not None
            assert stored.ended
            outcomes[str(stored.outcome)] += 1
        sent = Counter(COMMAND_OF[r.operation or ""] for r in s.sim.requests if r.accepted)
        deliveries = s.sim.deliveries

    def delta(name: str, label: str, **labels: str) -> dict[str, float]:
        return minus(by(after, name, label, **labels), by(before, name, label, **labels))

    assert delta("ivr_calls_started_total", "direction", graph="support-line") == {"inbound": 2}
    assert delta("ivr_calls_ended_total", "outcome", graph="support-line") == dict(outcomes)
    assert dict(outcomes) == {"hangup_node": 1, "agent_connected": 1}
    # Every delivery the simulator made was answered, most of them applied.
    handled = delta("ivr_webhook_deliveries_total", "outcome")
    assert sum(handled.values()) == len(deliveries)
    assert handled.get("applied", 0) >= 2
    assert "rejected" not in handled
    # Every request Bird accepted, by command.
    assert delta("ivr_bird_requests_total", "command", result="2xx") == dict(sent)
    assert {"answer", "gather", "bridge"} <= set(sent)
    # Ann took the billing caller.
    assert delta("ivr_agent_events_total", "event", queue="billing").get("in_call") == 1
