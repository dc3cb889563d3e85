"""Every Prometheus metric of the service, defined in one place (``GET /metrics``).

Two kinds:

- **Counted as it happens** (counters and histograms): deliveries, Bird requests,
  timers fired, calls started and ended, agents' events. The module-level functions
  below record them; they are cheap and never raise (a metric must never break a
  call). With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes behind one
  port), prometheus-client keeps them in files of that directory and ``/metrics``
  adds up every process's (:func:`registry_for`).
- **Read at scrape time** from Redis (gauges): live calls by graph and node, commands
  pending, timers due, callers waiting and the longest wait per queue, agents by
  status and state. :func:`read_state` reads them asynchronously when ``/metrics`` is
  asked, once, by the process that answers: they describe the whole channel (every
  replica sees the same Redis), so a dashboard takes their ``max``, not their sum,
  across replicas.

Labels never hold a phone number or a call id: graphs, nodes, queues, commands,
outcomes and reasons only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from service.core.queues import AGENT_STATES, AGENT_STATUSES, Queue
from service.runtime import keys, live
from service.runtime.board import Board

log = structlog.get_logger("metrics")

# No ``*_created`` series: dashboards and alerts use rates, which need none.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The registry of this process's counters and histograms. Not prometheus-client's
# global one: what /metrics shows is this service's, whatever else is imported.
REGISTRY = CollectorRegistry(auto_describe=True)

# Webhook handling: a few ms when Redis is near, up to Bird's timeouts when it is not.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BIRD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Timers are polled every 0.5 s: lateness under a second is normal.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

WEBHOOK_DELIVERIES = Counter(
    "ivr_webhook_deliveries",
    "Deliveries to POST /webhooks/bird by outcome: what the call handler did "
    "(applied, duplicate, stale, ignored, unknown_call, contended), overloaded (503, "
    "Bird delivers again; reason max_in_flight: over IVR_MAX_IN_FLIGHT, redis_pool: no "
    "Redis connection came free in time) or rejected, with the reason of a rejection "
    "(unauthorized, bad_request, too_large, too_slow, unavailable, error).",
    ["outcome", "reason"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "ivr_webhook_seconds",
    "Time to answer a delivery to POST /webhooks/bird, body read included.",
    buckets=WEBHOOK_BUCKETS,
    registry=REGISTRY,
)
BIRD_REQUESTS = Counter(
    "ivr_bird_requests",
    "Requests to Bird's Voice API by command (answer, say, gather, bridge, ...) and "
    "result (2xx, 3xx, 4xx, 429, 5xx, timeout, connection_error); each retry counts.",
    ["command", "result"],
    registry=REGISTRY,
)
BIRD_REQUEST_SECONDS = Histogram(
    "ivr_bird_request_seconds",
    "Time of one request to Bird's Voice API, by command (rate limiting's wait excluded).",
    ["command"],
    buckets=BIRD_BUCKETS,
    registry=REGISTRY,
)
COMMANDS_RETRIED = Counter(
    "ivr_commands_retried",
    "Commands of calls sent to Bird again (after a 429, a 5xx, no answer), by action.",
    ["action"],
    registry=REGISTRY,
)
TIMERS_FIRED = Counter(
    "ivr_timers_fired",
    "Timers fired by kind: call (a pending command due), agent (wrap-up or cooldown "
    "over), offer (an offer's lease), callback (a callback tried again).",
    ["kind"],
    registry=REGISTRY,
)
TIMER_LATENESS = Histogram(
    "ivr_timer_lateness_seconds",
    "How late timers fire: when claimed minus when they were due, by kind.",
    ["kind"],
    buckets=LATENESS_BUCKETS,
    registry=REGISTRY,
)
CALLS_STARTED = Counter(
    "ivr_calls_started",
    "Calls started, by graph and direction (inbound, outbound).",
    ["graph", "direction"],
    registry=REGISTRY,
)
CALLS_ENDED = Counter(
    "ivr_calls_ended",
    "Calls ended, by graph and outcome.",
    ["graph", "outcome"],
    registry=REGISTRY,
)
AGENT_EVENTS = Counter(
    "ivr_agent_events",
    "What the line did to agents, by event (in_call, wrap_up, cooldown, on_break, "
    "released, idle) and queue.",
    ["event", "queue"],
    registry=REGISTRY,
)
OFFERS_MISSED = Counter(
    "ivr_offers_missed",
    "Offers of a caller to an agent that the agent did not take (no answer, busy, "
    "failed), by queue.",
    ["queue"],
    registry=REGISTRY,
)

# The line's agent events (service.runtime.line's notes) that follow a missed offer:
# the agent rests (``cooldown``) or, after too many in a row, is put ``on_break``.
MISSED_OFFER_EVENTS = frozenset({"cooldown", "on_break"})

# Longest a scrape waits for Redis (Prometheus' default scrape timeout is 10 s).
READ_TIMEOUT_S = 5.0

# Timer members that are not calls (keys.timer_member): their prefix is their kind.
TIMER_KINDS = ("agent", "offer", "callback")


def _safe(record: Callable[[], None]) -> None:
    try:
        record()
    except Exception as exc:  # a metric must never break a call
        _failed(exc)


def _failed(exc: Exception) -> None:
    log.warning("metric_failed", error=repr(exc), call_id=None, graph=None, node=None)


class _Children:
    """A labelled metric's children, kept by their label values (in the order of its
    label names): ``labels()`` takes a lock and checks the values every time, and the
    metrics recorded for every delivery have a few label values each."""

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._known: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self._metric.labels(*values)
        return child


_DELIVERIES = _Children(WEBHOOK_DELIVERIES)
_BIRD_REQUESTS = _Children(BIRD_REQUESTS)
_BIRD_REQUEST_SECONDS = _Children(BIRD_REQUEST_SECONDS)


# -- recorded as it happens ---------------------------------------------------------


def call_started(graph: str, direction: str) -> None:
    """A call of ``graph`` started (``direction``: inbound or outbound)."""
    _safe(lambda: CALLS_STARTED.labels(graph=graph, direction=direction).inc())


def call_ended(graph: str, outcome: str) -> None:
    """A call of ``graph`` ended with ``outcome``."""
    _safe(lambda: CALLS_ENDED.labels(graph=graph, outcome=outcome).inc())


def command_retried(action: str) -> None:
    """A call's command (``action``: say, gather, bridge, ...) is sent to Bird again."""
    _safe(lambda: COMMANDS_RETRIED.labels(action=action).inc())


def agent_event(event: str, queue: str | None) -> None:
    """What a line script did to an agent (``LineResult.agents``' event and queue);
    a ``cooldown`` or ``on_break`` is an offer the agent missed."""

    def record() -> None:
        AGENT_EVENTS.labels(event=event, queue=queue or "").inc()
        if event in MISSED_OFFER_EVENTS:
            OFFERS_MISSED.labels(queue=queue or "").inc()

    _safe(record)


def webhook_delivery(outcome: str, reason: str, seconds: float) -> None:
    """A delivery answered: its ``outcome`` (``Handled.status``, ``overloaded`` or
    ``rejected``), the ``reason`` of a refusal ("" otherwise) and how long it took."""
    try:
        _DELIVERIES(outcome, reason).inc()
        WEBHOOK_SECONDS.observe(seconds)
    except Exception as exc:  # a metric must never break a call
        _failed(exc)


def bird_request(command: str, result: str, seconds: float) -> None:
    """One request to Bird (the ``observe`` hook of ``service.bird.client.BirdClient``)."""
    try:
        _BIRD_REQUESTS(command, result).inc()
        _BIRD_REQUEST_SECONDS(command).observe(seconds)
    except Exception as exc:  # a metric must never break a call
        _failed(exc)


def timer_kind(member: str) -> str:
    """The kind of a member of ``keys.timers``: ``call`` unless it names another."""
    prefix = member.split(":", 1)[0]
    return prefix if prefix in TIMER_KINDS and ":" in member else "call"


def timer_fired(member: str, late_s: float) -> None:
    """A timer fired ``late_s`` seconds after it was due."""

    def record() -> None:
        kind = timer_kind(member)
        TIMERS_FIRED.labels(kind=kind).inc()
        TIMER_LATENESS.labels(kind=kind).observe(max(0.0, late_s))

    _safe(record)


# -- read at scrape time ------------------------------------------------------------


@dataclass
class State:
    """The channel's state as ``/metrics`` shows it, read from Redis."""

    redis_ok: bool = True
    live_calls: Mapping[tuple[str, str], int] = field(default_factory=dict)
    commands_pending: int = 0
    timers_due: int = 0
    oldest_due_s: float = 0.0
    waiting: Mapping[str, int] = field(default_factory=dict)
    longest_wait_s: Mapping[str, float] = field(default_factory=dict)
    callbacks_pending: Mapping[str, int] = field(default_factory=dict)
    agents: Mapping[tuple[str, str], int] = field(default_factory=dict)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _live_calls(redis: Redis, channel_id: str) -> dict[tuple[str, str], int]:
    """The live calls by graph and node, as ``GET /admin/calls`` lists them (a call
    whose state expired without its end being delivered is not counted); ``none``: a
    call not yet at a node (being answered)."""
    calls = await live.live_calls(redis, channel_id)
    return dict(Tally((call.graph, call.node or "none") for call in calls))


async def _timers(redis: Redis, channel_id: str, now: float) -> tuple[int, int, float]:
    """Commands pending (calls among the timers), timers due, and how long ago the
    oldest due one was due."""
    key = keys.timers(channel_id)
    pending = 0
    async for member, _ in redis.zscan_iter(key, count=500):
        if timer_kind(_s(member)) == "call":
            pending += 1
    now_ms = int(now * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(key, "-inf", now_ms)
        pipe.zrangebyscore(key, "-inf", now_ms, start=0, num=1, withscores=True)
        due, oldest = await pipe.execute()
    oldest_s = max(0.0, (now_ms - float(oldest[0][1])) / 1000) if oldest else 0.0
    return int(due), pending, oldest_s


async def _agents(redis: Redis) -> dict[tuple[str, str], int]:
    ids = sorted(_s(i) for i in await redis.hkeys(keys.agents()))
    counts: Tally[tuple[str, str]] = Tally()
    if not ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for agent_id in ids:
            pipe.hmget(keys.agent(agent_id), ["status", "state"])
        for status, state in await pipe.execute():
            counts[(_s(status) if status else "offline", _s(state) if state else "idle")] += 1
    return dict(counts)


async def read_state(
    redis: Redis,
    *,
    channel_id: str,
    queues: Mapping[str, Queue],
    clock: Callable[[], float] = time.time,
    timeout_s: float = READ_TIMEOUT_S,
) -> State:
    """The scrape-time gauges, read from Redis (``redis_ok`` False when it cannot be
    read within ``timeout_s``: the counters are still shown)."""
    now = clock()
    try:
        async with asyncio.timeout(timeout_s):
            live_calls = await _live_calls(redis, channel_id)
            due, pending, oldest = await _timers(redis, channel_id, now)
            boards = await Board(redis, clock=lambda: now).read(queues)
            agents = await _agents(redis)
    except Exception as exc:  # Redis away, or a key of an unexpected type
        log.warning("metrics_state_unreadable", error=str(exc), call_id=None, graph=None,
                    node=None)  # fmt: skip
        return State(redis_ok=False)
    return State(
        live_calls=live_calls,
        commands_pending=pending,
        timers_due=due,
        oldest_due_s=oldest,
        waiting={name: len(b.waiting) for name, b in boards.items()},
        longest_wait_s={name: b.longest_wait_s for name, b in boards.items()},
        callbacks_pending={name: b.callbacks_pending for name, b in boards.items()},
        agents=agents,
    )


class StateCollector(Collector):
    """The gauges of one :class:`State` (one scrape)."""

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self._state
        up = GaugeMetricFamily(
            "ivr_redis_up", "1 when /metrics could read the call state from Redis, else 0."
        )
        up.add_metric([], 1.0 if s.redis_ok else 0.0)
        yield up
        if not s.redis_ok:
            return
        live = GaugeMetricFamily(
            "ivr_calls_live",
            "Calls in progress, by graph and the node they are at (none: being answered).",
            labels=["graph", "node"],
        )  # fmt: skip
        for (graph, node), count in sorted(s.live_calls.items()):
            live.add_metric([graph, node], count)
        yield live
        yield _gauge(
            "ivr_commands_pending",
            "Calls with a command stored and not yet settled (sent and awaiting Bird, or "
            "waiting to be sent again).",
            s.commands_pending,
        )
        yield _gauge("ivr_timers_due", "Timers due now and not yet claimed.", s.timers_due)
        yield _gauge(
            "ivr_timers_oldest_due_seconds",
            "How long ago the oldest timer still due was due (0: none due).",
            s.oldest_due_s,
        )
        yield _by_queue(
            "ivr_queue_callers_waiting", "Callers in line per queue (ringing included).",
            s.waiting,
        )  # fmt: skip
        yield _by_queue(
            "ivr_queue_longest_wait_seconds", "The longest wait of a caller in line per queue.",
            s.longest_wait_s,
        )  # fmt: skip
        yield _by_queue(
            "ivr_queue_callbacks_pending", "Callbacks booked and not yet done per queue.",
            s.callbacks_pending,
        )  # fmt: skip
        agents = GaugeMetricFamily(
            "ivr_agents", "Agents by status (available, on_break, offline) and state.",
            labels=["status", "state"],
        )  # fmt: skip
        for status in AGENT_STATUSES:
            for state in AGENT_STATES:
                agents.add_metric([status, state], s.agents.get((status, state), 0))
        for (status, state), count in sorted(s.agents.items()):
            if status not in AGENT_STATUSES or state not in AGENT_STATES:
                agents.add_metric([status, state], count)
        yield agents


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation)
    gauge.add_metric([], value)
    return gauge


def _by_queue(name: str, documentation: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["queue"])
    for queue, value in sorted(values.items()):
        gauge.add_metric([queue], value)
    return gauge


class _Collectors(Collector):
    def __init__(self, collectors: Iterable[Any]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Any]:
        for collector in self._collectors:
            yield from collector.collect()


def registry_for(state: State, multiproc_dir: Path | None = None) -> CollectorRegistry:
    """What one scrape shows: this process's counters and histograms (or, with
    ``multiproc_dir``, every worker process's, added up) and ``state``'s gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiproc_dir is not None:
        MultiProcessCollector(registry, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Collectors([REGISTRY]))
    registry.register(StateCollector(state))
    return registry
