"""Handling deliveries against a real Redis: repeats, late arrivals and two workers
at once never advance a call twice nor send a command twice; commands Bird refuses
and outbound calls."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from service.bird.deliveries import Delivery, parse_delivery
from service.bird.errors import BirdRequestError
from service.core.graph import GraphSet
from service.core.state import Direction, Outcome, Phase
from service.graphs.loader import parse
from service.runtime import keys
from service.runtime.calls import Handled
from service.runtime.store import CallStore, connect
from tests.paths import SHIPPED_GRAPHS
from tests.sample_graphs import support_line_with_transfers
from tests.support import RecordingBird, call_delivery, handler_for, recording_bird_calls

GRAPHS = support_line_with_transfers()  # the handler's tests: a transfer, not a queue
T0 = time.time()
SUPPORT_LINE = (SHIPPED_GRAPHS / "support-line.json").read_text()


@pytest.fixture(autouse=True)
def _fresh_t0() -> None:
    """Deliveries are stamped from T0, and a new call's must be recent
    (``new_call_max_age_s``), however long the session ran before these tests."""
    global T0
    T0 = time.time()


def completed(command: str, *, updated: float, call_id: str, **result: Any) -> Delivery:
    return parse_delivery(
        call_delivery(
            call_id,
            "ongoing",
            updated=updated,
            command={
                "id": str(uuid.uuid4()),
                "callId": call_id,
                "callFlowId": None,
                "command": command,
                "status": "completed",
                "result": result,
            },
        )
    )


def status(
    call_id: str, value: str, *, updated: float, hangup_source: str | None = None
) -> Delivery:
    extra: dict[str, Any] = {"hangupSource": hangup_source} if hangup_source else {}
    return parse_delivery(call_delivery(call_id, value, updated=updated, **extra))


class Worker:
    """One service worker: its own Redis connection and Bird client."""

    def __init__(self, redis: Redis) -> None:
        self.bird = RecordingBird()
        self.bird_calls = recording_bird_calls(self.bird)
        self.redis = redis
        self.store = CallStore(redis, ended_ttl_s=600)
        self.handler = handler_for(redis, self.bird_calls, GRAPHS, store=self.store)


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[list[Worker]]:
    connections = [connect(redis_url) for _ in range(2)]
    made = [Worker(r) for r in connections]
    yield made
    for worker, connection in zip(made, connections, strict=True):
        await worker.bird_calls.aclose()
        await connection.aclose()


async def test_a_call_walks_to_a_transfer(workers: list[Worker]) -> None:
    worker = workers[0]
    call_id = str(uuid.uuid4())
    for delivery in (
        status(call_id, "starting", updated=T0),
        status(call_id, "ongoing", updated=T0 + 1),
        completed("answer", updated=T0 + 1.5, call_id=call_id),
        completed("say", updated=T0 + 2, call_id=call_id),
        completed("gather", updated=T0 + 3, call_id=call_id, keys="2"),
    ):
        assert (await worker.handler.handle(delivery)).status == "applied"
    assert worker.bird.commands == ["answer", "say", "gather", "bridge"]
    current = await worker.store.load(call_id)
    assert current is not None
    assert (current.node, current.phase) == ("tech", Phase.BRIDGING)


async def test_a_repeated_delivery_changes_nothing_and_sends_nothing(
    workers: list[Worker],
) -> None:
    worker = workers[0]
    call_id = str(uuid.uuid4())
    offer = status(call_id, "starting", updated=T0)
    answered = status(call_id, "ongoing", updated=T0 + 1)
    await worker.handler.handle(offer)
    await worker.handler.handle(answered)
    before = await worker.store.load(call_id)
    for repeat in (answered, offer, answered):
        assert (await worker.handler.handle(repeat)).status in ("duplicate", "stale")
    assert await worker.store.load(call_id) == before
    assert worker.bird.commands == ["answer", "say"]


async def test_a_delivery_older_than_what_was_seen_changes_nothing(
    workers: list[Worker],
) -> None:
    worker = workers[0]
    call_id = str(uuid.uuid4())
    await worker.handler.handle(status(call_id, "starting", updated=T0))
    await worker.handler.handle(status(call_id, "ongoing", updated=T0 + 5))
    before = await worker.store.load(call_id)
    late = status(call_id, "ringing", updated=T0 + 2)
    assert (await worker.handler.handle(late)).status == "stale"
    assert await worker.store.load(call_id) == before
    assert worker.bird.commands == ["answer", "say"]


async def test_the_same_delivery_at_two_workers_at_once_advances_the_call_once(
    workers: list[Worker],
) -> None:
    for _ in range(10):
        call_id = str(uuid.uuid4())
        await workers[0].handler.handle(status(call_id, "starting", updated=T0))
        answered = status(call_id, "ongoing", updated=T0 + 1)
        outcomes = await asyncio.gather(*(w.handler.handle(answered) for w in workers))
        assert sorted(o.status for o in outcomes) == ["applied", "duplicate"]
        sent = workers[0].bird.commands + workers[1].bird.commands
        assert sent.count("say") == 1
        workers[0].bird.requests.clear()
        workers[1].bird.requests.clear()


async def test_two_different_deliveries_at_once_are_both_applied_in_turn(
    workers: list[Worker],
) -> None:
    call_id = str(uuid.uuid4())
    await workers[0].handler.handle(status(call_id, "starting", updated=T0))
    answer_done = completed("answer", updated=T0 + 1.5, call_id=call_id)
    answered = status(call_id, "ongoing", updated=T0 + 1)
    outcomes = await asyncio.gather(
        workers[0].handler.handle(answered), workers[1].handler.handle(answer_done)
    )
    current = await workers[0].store.load(call_id)
    assert current is not None
    assert current.node == "welcome"
    # Whichever order they were applied in, the welcome prompt was sent once.
    sent = workers[0].bird.commands + workers[1].bird.commands
    assert sent.count("say") == 1
    assert sorted(o.status for o in outcomes) in (["applied", "applied"], ["applied", "stale"])


@pytest.mark.parametrize("answer_first", [True, False])
async def test_answered_status_and_answer_command_in_either_order_start_the_walk_once(
    workers: list[Worker], answer_first: bool
) -> None:
    worker = workers[0]
    call_id = str(uuid.uuid4())
    await worker.handler.handle(status(call_id, "starting", updated=T0))
    pair = [
        status(call_id, "ongoing", updated=T0 + 1),
        completed("answer", updated=T0 + 1.5, call_id=call_id),
    ]
    for delivery in pair if answer_first else reversed(pair):
        await worker.handler.handle(delivery)
    assert worker.bird.commands == ["answer", "say"]


async def test_a_new_call_first_delivered_long_after_it_started_is_not_answered(
    workers: list[Worker],
) -> None:
    worker = workers[0]
    call_id = str(uuid.uuid4())
    old = status(call_id, "starting", updated=T0 - 3600)
    assert (await worker.handler.handle(old)).status == "ignored"
    assert worker.bird.commands == []
    assert await worker.store.load(call_id) is None


async def test_deliveries_for_an_unknown_call_are_reported_not_acted_on(
    workers: list[Worker],
) -> None:
    worker = workers[0]
    outcome = await worker.handler.handle(status(str(uuid.uuid4()), "ongoing", updated=T0))
    assert outcome.status == "unknown_call"
    assert worker.bird.commands == []


async def test_the_caller_hanging_up_ends_the_state_with_a_ttl(workers: list[Worker]) -> None:
    worker = workers[0]
    call_id = str(uuid.uuid4())
    await worker.handler.handle(status(call_id, "starting", updated=T0))
    await worker.handler.handle(status(call_id, "ongoing", updated=T0 + 1))
    await worker.handler.handle(
        status(call_id, "completed", updated=T0 + 2, hangup_source="caller")
    )
    await worker.handler.handle(completed("say", updated=T0 + 3, call_id=call_id))
    current = await worker.store.load(call_id)
    assert current is not None
    assert current.ended
    assert current.outcome == "ended_by_caller"
    assert 0 < await worker.redis.ttl(keys.call(call_id)) <= 600
    assert worker.bird.commands == ["answer", "say"]


async def test_a_replica_that_never_loaded_a_calls_version_serves_it_from_redis(
    redis: Redis,
) -> None:
    """Replica A starts the call on version 1; replica B, which only knows version 2,
    handles its next delivery: the caller still hears version 1."""
    document = json.loads(SUPPORT_LINE)
    v1 = parse(document, "support-line.json")
    document["nodes"]["welcome"]["say"] = "Welcome to Acme, version two."
    v2 = parse(document, "support-line.json")
    bird = RecordingBird()
    bird_calls = recording_bird_calls(bird)
    a = handler_for(redis, bird_calls, GraphSet({"support-line": v1}, "support-line"))
    b = handler_for(redis, bird_calls, GraphSet({"support-line": v2}, "support-line"))
    await a._registry.publish()
    call_id = str(uuid.uuid4())
    await a.handle(status(call_id, "starting", updated=T0))
    await b.handle(status(call_id, "ongoing", updated=T0 + 1))
    await bird_calls.aclose()
    method, name, body = bird.requests[-1]
    assert (method, name) == ("POST", "say")
    assert body["text"] == "Thanks for calling Acme."


class RefusingBird(RecordingBird):
    """Refuses the ``refused`` command (400) and reports every call as ``status``."""

    def __init__(self, refused: str, status: str) -> None:
        super().__init__()
        self.refused = refused
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        accepted = super().__call__(request)
        name = self.requests[-1][1]
        if request.method == "GET":
            return httpx.Response(200, json={"id": name, "status": self.status})
        if name == self.refused:
            return httpx.Response(400, json={"code": "invalid", "message": "refused"})
        return accepted

    @property
    def posted(self) -> list[str]:
        return [name for method, name, _ in self.requests if method == "POST"]


async def answer_a_call(
    redis: Redis, bird: RefusingBird
) -> tuple[str, Handled, list[MutableMapping[str, Any]]]:
    """A new call answered, its first prompt sent to ``bird``: the call's id, what the
    handler made of the ``ongoing`` delivery, and the log lines of that delivery."""
    bird_calls = recording_bird_calls(bird)
    handler = handler_for(redis, bird_calls, GRAPHS)
    call_id = str(uuid.uuid4())
    await handler.handle(status(call_id, "starting", updated=T0))
    with capture_logs() as logged:
        outcome = await handler.handle(status(call_id, "ongoing", updated=T0 + 1))
    await bird_calls.aclose()
    return call_id, outcome, logged


async def test_a_command_bird_refuses_on_a_live_call_abandons_it(redis: Redis) -> None:
    bird = RefusingBird("say", status="ongoing")
    call_id, outcome, logged = await answer_a_call(redis, bird)
    assert outcome.status == "applied"
    assert bird.posted == ["answer", "say", "hangup"]
    current = await CallStore(redis, ended_ttl_s=600).load(call_id)
    assert current is not None
    assert (current.phase, current.outcome) == (Phase.ENDED, Outcome.BIRD_REFUSED)
    events = [(e["event"], e["log_level"]) for e in logged]
    assert ("bird_command_failed", "error") in events
    assert ("call_abandoned", "error") in events
    failed = next(e for e in logged if e["event"] == "bird_command_failed")
    assert (failed["action"], failed["call_id"]) == ("speak", call_id)


async def test_a_command_refused_because_the_call_ended_is_left_to_its_delivery(
    redis: Redis,
) -> None:
    bird = RefusingBird("say", status="completed")
    call_id, _, logged = await answer_a_call(redis, bird)
    assert bird.posted == ["answer", "say"]
    current = await CallStore(redis, ended_ttl_s=600).load(call_id)
    assert current is not None
    assert not current.ended
    ended = next(e for e in logged if e["event"] == "command_refused_call_ended")
    assert (ended["action"], ended["status"], ended["log_level"]) == ("speak", "completed", "info")


async def test_an_outbound_call_waits_for_its_answer_then_walks_the_graph(redis: Redis) -> None:
    bird = RecordingBird()
    bird_calls = recording_bird_calls(bird)
    handler = handler_for(redis, bird_calls, GRAPHS)
    call_id = await handler.place_outbound(
        GRAPHS.graphs["support-line"], to="+31612345678", from_=None, variables={},
        scheduled_for=None,
    )  # fmt: skip
    method, name, body = bird.requests[0]
    assert (method, name) == ("POST", "calls")
    assert body["to"] == "+31612345678"
    url, ref = body["notification"]["url"].split("?ref=")
    assert url == "https://ivr.example.com/webhooks/bird"
    assert await redis.get(keys.outbound(ref)) is not None
    store = CallStore(redis, ended_ttl_s=600)
    placed = await store.load(call_id)
    assert placed is not None
    assert (placed.direction, placed.phase) == (Direction.OUTBOUND, Phase.ANSWERING)
    outcome = await handler.handle(status(call_id, "ongoing", updated=T0), ref=ref)
    await bird_calls.aclose()
    assert outcome.status == "applied"
    assert bird.commands == ["calls", "say"]


async def test_an_outbound_call_bird_refuses_leaves_nothing_behind(redis: Redis) -> None:
    bird = RefusingBird("calls", status="ongoing")
    bird_calls = recording_bird_calls(bird)
    handler = handler_for(redis, bird_calls, GRAPHS)
    with pytest.raises(BirdRequestError):
        await handler.place_outbound(
            GRAPHS.graphs["support-line"], to="+31612345678", from_=None, variables={},
            scheduled_for=None,
        )  # fmt: skip
    await bird_calls.aclose()
    ref = bird.requests[0][2]["notification"]["url"].split("?ref=")[1]
    assert await redis.get(keys.outbound(ref)) is None
