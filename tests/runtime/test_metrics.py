"""The service's metrics (service.runtime.metrics): what each recording function
counts, what the timers and Bird's client feed them, and the gauges read from a
real Redis at scrape time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.bird.client import BirdClient
from service.bird.commands import BirdCalls
from service.bird.errors import BirdNoAnswer, BirdServerError, BirdUnreachable
from service.core import actions
from service.core.queues import Agent, Membership, Queue
from service.runtime import keys, metrics
from service.runtime.agents import Agents
from service.runtime.line import Line
from service.runtime.settings import Settings, SettingsError
from service.runtime.timers import TimerLoop

REQUIRED = {
    "BIRD_ACCESS_KEY": "k",
    "BIRD_WORKSPACE_ID": "w",
    "BIRD_CHANNEL_ID": "c",
    "BIRD_SIGNING_KEY": "s",
    "PUBLIC_BASE_URL": "https://ivr.example.com",
}


def value(name: str, **labels: str) -> float:
    """A sample of this process's metrics (0 when it was never recorded)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def graph() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def test_calls_started_and_ended_are_counted_by_graph_direction_and_outcome() -> None:
    g = graph()
    metrics.call_started(g, "inbound")
    metrics.call_started(g, "inbound")
    metrics.call_started(g, "outbound")
    metrics.call_ended(g, "hangup_node")
    assert value("ivr_calls_started_total", graph=g, direction="inbound") == 2
    assert value("ivr_calls_started_total", graph=g, direction="outbound") == 1
    assert value("ivr_calls_ended_total", graph=g, outcome="hangup_node") == 1
    assert value("ivr_calls_ended_total", graph=g, outcome="ended_by_caller") == 0


def test_commands_retried_are_counted_by_action() -> None:
    before = value("ivr_commands_retried_total", action="bridge")
    metrics.command_retried("bridge")
    assert value("ivr_commands_retried_total", action="bridge") == before + 1


def test_an_agent_resting_or_put_on_break_is_an_offer_missed_in_its_queue() -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    for event in ("in_call", "wrap_up", "cooldown", "cooldown", "on_break", "released"):
        metrics.agent_event(event, queue)
    metrics.agent_event("idle", None)
    assert value("ivr_offers_missed_total", queue=queue) == 3
    assert value("ivr_agent_events_total", event="cooldown", queue=queue) == 2
    assert value("ivr_agent_events_total", event="in_call", queue=queue) == 1
    assert value("ivr_agent_events_total", event="idle", queue="") >= 1


def test_a_metric_that_fails_never_reaches_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def labels(self, **_: str) -> Any:
            raise RuntimeError("broken registry")

    monkeypatch.setattr(metrics, "CALLS_STARTED", Broken())
    metrics.call_started("support-line", "inbound")  # does not raise


def test_webhook_deliveries_are_counted_by_outcome_and_timed() -> None:
    before = value("ivr_webhook_deliveries_total", outcome="rejected", reason="unauthorized")
    count = value("ivr_webhook_seconds_count")
    metrics.webhook_delivery("rejected", "unauthorized", 0.004)
    assert value("ivr_webhook_deliveries_total", outcome="rejected",
                 reason="unauthorized") == before + 1  # fmt: skip
    assert value("ivr_webhook_seconds_count") == count + 1
    assert value("ivr_webhook_seconds_bucket", le="0.005") >= 1


def test_a_timer_member_names_its_kind() -> None:
    assert metrics.timer_kind("0b5e7a52-0b1c-4a52-9ad4-0d2c7f1e9b11") == "call"
    assert metrics.timer_kind(keys.timer_member("agent", "ann")) == "agent"
    assert metrics.timer_kind(keys.timer_member("offer", "ab12")) == "offer"
    assert metrics.timer_kind(keys.timer_member("callback", "support:cb1")) == "callback"


async def test_the_timer_loop_counts_what_fired_and_how_late(redis: Redis) -> None:
    channel = uuid.uuid4().hex
    now = 1_900_000_000.0
    due = {
        f"call-{uuid.uuid4().hex}": now - 2,
        keys.timer_member("agent", uuid.uuid4().hex): now - 5,
        keys.timer_member("offer", uuid.uuid4().hex): now - 1,
        keys.timer_member("callback", f"support:{uuid.uuid4().hex}"): now - 40,
    }
    later = f"call-{uuid.uuid4().hex}"
    await redis.zadd(keys.timers(channel), {m: int(at * 1000) for m, at in due.items()})
    await redis.zadd(keys.timers(channel), {later: int((now + 60) * 1000)})
    kinds = ("call", "agent", "offer", "callback")
    fired_before = {k: value("ivr_timers_fired_total", kind=k) for k in kinds}
    late_before = {k: value("ivr_timer_lateness_seconds_sum", kind=k) for k in kinds}
    slow_before = value("ivr_timer_lateness_seconds_bucket", kind="callback", le="30.0")
    handled: list[str] = []

    async def handle(member: str) -> None:
        handled.append(member)

    await TimerLoop(redis, handle, channel_id=channel, clock=lambda: now).fire_due()
    assert sorted(handled) == sorted(due)
    fired = {k: value("ivr_timers_fired_total", kind=k) - fired_before[k] for k in kinds}
    assert fired == {"call": 1, "agent": 1, "offer": 1, "callback": 1}
    late = {k: value("ivr_timer_lateness_seconds_sum", kind=k) - late_before[k] for k in kinds}
    assert late == pytest.approx({"call": 2, "agent": 5, "offer": 1, "callback": 40}, abs=0.01)
    # 40 s late is beyond the 30 s bucket.
    assert value("ivr_timer_lateness_seconds_bucket", kind="callback", le="30.0") == slow_before
    await redis.delete(keys.timers(channel))


# -- Bird's requests, through the client's observer hook -------------------------------


def bird_answering(*answers: int | type[httpx.TransportError]) -> httpx.MockTransport:
    """Answers requests with these statuses (or raises these transport errors), in turn."""
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        found = queue.pop(0)
        if isinstance(found, int):
            return httpx.Response(found, json={"id": "c1", "status": "ongoing"})
        raise found("simulated", request=request)

    return httpx.MockTransport(answer)


def client(transport: httpx.MockTransport, retries: int = 0) -> BirdClient:
    async def no_wait(_: float) -> None:
        return None

    return BirdClient(base_url="http://bird.invalid", access_key="k", workspace_id="w",
                      channel_id="c", transport=transport, retries=retries, sleep=no_wait,
                      observe=metrics.bird_request)  # fmt: skip


def requests(command: str) -> dict[str, float]:
    results = ("2xx", "4xx", "429", "5xx", "timeout", "connection_error")
    return {r: value("ivr_bird_requests_total", command=command, result=r) for r in results}


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


async def test_each_request_to_bird_is_counted_by_command_and_result() -> None:
    before = {c: requests(c) for c in ("say", "gather", "bridge", "get_call", "hangup")}
    seconds = value("ivr_bird_request_seconds_count", command="say")
    bird = client(bird_answering(429, 429, 202), retries=2)
    await bird.say("c1", "Hello.")
    await bird.aclose()
    bird = client(bird_answering(503))
    with pytest.raises(BirdServerError):
        await bird.gather("c1", max_num_keys=1)
    await bird.aclose()
    bird = client(bird_answering(httpx.ReadTimeout))
    with pytest.raises(BirdNoAnswer):
        await bird.bridge("c1", "+31201234567")
    await bird.aclose()
    bird = client(bird_answering(httpx.ConnectError))
    with pytest.raises(BirdUnreachable):
        await bird.hangup("c1")
    await bird.aclose()
    bird = client(bird_answering(404))
    with pytest.raises(Exception, match="404"):
        await bird.get_call("c1")
    await bird.aclose()
    after = {c: requests(c) for c in before}
    assert {c: delta(after[c], before[c]) for c in before} == {
        "say": {"429": 2, "2xx": 1},  # each retry is a request
        "gather": {"5xx": 1},
        "bridge": {"timeout": 1},
        "hangup": {"connection_error": 1},
        "get_call": {"4xx": 1},
    }
    assert value("ivr_bird_request_seconds_count", command="say") == seconds + 3


async def test_the_service_s_bird_calls_report_to_the_observer() -> None:
    seen: list[tuple[str, str]] = []
    calls = BirdCalls.for_channel(
        base_url="http://bird.invalid", access_key="k", workspace_id="w", channel_id="c",
        transport=bird_answering(202), observe=lambda c, r, s: seen.append((c, r)),
    )  # fmt: skip
    await calls.perform("c1", actions.Answer(), notification_url="https://ivr.example.com/w")
    await calls.aclose()
    assert seen == [("answer", "2xx")]


# -- gauges read from Redis at scrape time ---------------------------------------------


async def test_the_state_read_from_redis_counts_live_calls_timers_callers_and_agents(
    redis: Redis,
) -> None:
    channel = uuid.uuid4().hex
    now = 1_900_000_000.0
    clock = {"now": now}
    name = f"q-{uuid.uuid4().hex[:8]}"
    queues = {name: Queue(name=name)}
    line = Line(redis, channel_id=channel, clock=lambda: clock["now"])
    agents = Agents(redis, channel_id=channel, clock=lambda: clock["now"])
    await line.configure(queues)
    before = await metrics.read_state(redis, channel_id=channel, queues=queues,
                                      clock=lambda: now)  # fmt: skip
    assert before.redis_ok
    assert before.waiting == {name: 0}
    assert before.live_calls == {}
    prefix = uuid.uuid4().hex[:6]
    for index, status in enumerate(("available", "on_break"), start=1):
        agent = Agent(id=f"{prefix}-{index}", name=f"A{index}", address=f"+3161000{index:04d}",
                      queues={name: Membership()})  # fmt: skip
        await agents.put(agent, status=status)  # type: ignore[arg-type]
    for call in ("c1", "c2"):
        assert (await line.ask(f"{prefix}-{call}", name, 0)).joined
        clock["now"] += 4
    where = [
        ("support-line", "main-menu"),
        ("support-line", "main-menu"),
        ("support-line", "billing"),
        ("support-line", None),  # being answered
        ("appointment-reminder", "confirm"),
    ]
    live = {f"{prefix}-live-{i}": at for i, at in enumerate(where)}
    expired = f"{prefix}-expired"  # its state expired, its end never delivered
    await redis.hset(keys.live_calls(channel), mapping={
        call_id: json.dumps({"graph": graph, "node": node, "phase": "running"})
        for call_id, (graph, node) in {**live, expired: where[0]}.items()
    })  # fmt: skip
    for call_id in live:
        await redis.hset(keys.call(call_id), "v", 1)
    timers = keys.timers(channel)
    await redis.zadd(timers, {
        "call-1": (now - 12) * 1000,  # due 12 s ago
        "call-2": (now + 30) * 1000,
        keys.timer_member("agent", "x"): (now - 1) * 1000,
        keys.timer_member("offer", "y"): (now + 5) * 1000,
        keys.timer_member("callback", "support:z"): (now + 60) * 1000,
    })  # fmt: skip
    at = now + 10
    state = await metrics.read_state(redis, channel_id=channel, queues=queues, clock=lambda: at)
    assert state.redis_ok
    assert state.live_calls == {
        ("support-line", "main-menu"): 2,  # not the expired call's
        ("support-line", "billing"): 1,
        ("support-line", "none"): 1,
        ("appointment-reminder", "confirm"): 1,
    }
    assert (state.commands_pending, state.timers_due) == (2, 3)  # the offer is due too
    assert state.oldest_due_s == pytest.approx(22)
    assert state.waiting == {name: 2}
    assert state.longest_wait_s == {name: pytest.approx(10)}
    added = {k: v - before.agents.get(k, 0) for k, v in state.agents.items()}
    assert {k: v for k, v in added.items() if v} == {
        ("available", "idle"): 1,
        ("on_break", "idle"): 1,
    }
    for index in (1, 2):
        await agents.set_status(f"{prefix}-{index}", "offline")
        await agents.delete(f"{prefix}-{index}")
    await redis.delete(keys.live_calls(channel), timers, *(keys.call(c) for c in live))


async def test_redis_away_at_scrape_time_shows_as_redis_down_not_an_error() -> None:
    away = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    state = await metrics.read_state(away, channel_id="c", queues={})
    await away.aclose()
    assert not state.redis_ok
    text = generate_latest(metrics.registry_for(state)).decode()
    assert "ivr_redis_up 0.0" in text
    assert "ivr_calls_live" not in text


def test_the_multiprocess_directory_is_a_setting(tmp_path: Path) -> None:
    assert Settings.from_env(REQUIRED).prometheus_multiproc_dir is None
    found = Settings.from_env({**REQUIRED, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert found.prometheus_multiproc_dir == tmp_path
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError, match=r"PROMETHEUS_MULTIPROC_DIR .* is not a directory"):
        Settings.from_env({**REQUIRED, "PROMETHEUS_MULTIPROC_DIR": str(missing)})


def test_bird_requests_are_counted_by_command_and_result_and_timed() -> None:
    before = value("ivr_bird_requests_total", command="gather", result="2xx")
    count = value("ivr_bird_request_seconds_count", command="gather")
    for _ in range(2):
        metrics.bird_request("gather", "2xx", 0.02)
    metrics.bird_request("gather", "429", 0.02)
    assert value("ivr_bird_requests_total", command="gather", result="2xx") == before + 2
    assert value("ivr_bird_request_seconds_count", command="gather") == count + 3


def test_a_delivery_s_metric_that_fails_never_reaches_the_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        def observe(self, _: float) -> None:
            raise RuntimeError("broken registry")

    monkeypatch.setattr(metrics, "WEBHOOK_SECONDS", Broken())
    metrics.webhook_delivery("applied", "", 0.004)  # does not raise
