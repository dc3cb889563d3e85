"""A callback's turn as the call handler takes it, against a real Redis and a recording
Bird: one follow-up call to the customer that takes the reserved agent's offer, and a
follow-up call placed for an offer the line took back meanwhile is hung up at once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from redis.asyncio import Redis

from service.cli.demo import OPEN
from service.core import line as changes
from service.core.queues import Agent, Membership
from service.core.state import CallState, Direction, Phase, Waiting
from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.agents import Agents
from service.runtime.clock import PinnedClock
from service.runtime.line import Line
from service.runtime.store import CallStore
from tests.runtime.test_line import Clock, text
from tests.support import RecordingBird, handler_for, recording_bird_calls

CUSTOMER = "+31611112222"
OURS = "+31970102030"
AGENT = "+31201234567"


def write_graph(directory: Path, queue: str) -> None:
    graph = {
        "id": "cb-line",
        "numbers": [OURS],
        "start": "call-back",
        "nodes": {
            "call-back": {"type": "callback", "queue": queue, "say": "Noted.", "next": "bye"},
            "bye": {"type": "hangup"},
        },
    }
    (directory / "cb-line.json").write_text(json.dumps(graph))
    (directory / "queues.json").write_text(json.dumps({"queues": {queue: {}}}))


class Setup:
    def __init__(self, redis: Redis, directory: Path, bird: RecordingBird) -> None:
        self.redis = redis
        self.queue = f"cbq-{uuid.uuid4().hex[:8]}"
        write_graph(directory, self.queue)
        self.graphs = load_directory(directory, "cb-line")
        self.clock = Clock()
        self.channel = uuid.uuid4().hex
        self.store = CallStore(redis, ended_ttl_s=600, channel_id=self.channel, clock=self.clock)
        self.bird = bird
        self.bird_calls = recording_bird_calls(bird)
        self.graph_clock = PinnedClock(OPEN)
        self.handler = handler_for(redis, self.bird_calls, self.graphs, store=self.store,
                                   clock=self.clock, graph_clock=self.graph_clock)  # fmt: skip
        self.line = Line(redis, channel_id=self.channel, clock=self.clock)
        self.agent_id = f"ann-{uuid.uuid4().hex[:6]}"

    async def ready(self) -> None:
        await self.line.configure(self.graphs.queues)
        agents = Agents(self.redis, channel_id=self.channel, clock=self.clock)
        ann = Agent(id=self.agent_id, name="Ann", address=AGENT,
                    queues={self.queue: Membership(1, 1)})  # fmt: skip
        await agents.put(ann, status="available")
        booked = CallState(f"caller-{uuid.uuid4().hex}", "cb-line", "v", CUSTOMER, OURS)
        book = changes.BookCallback(self.queue, CUSTOMER, OURS, 0, "cb-line", "call-back")
        done = await self.store.commit_changes(booked, expected_version=0, changes=(book,))
        assert done is not None

    async def agent_state(self) -> str:
        return text(await self.redis.hget(keys.agent(self.agent_id), "state"))


async def test_a_callbacks_turn_places_one_follow_up_call_that_takes_the_offer(
    redis: Redis, tmp_path: Path
) -> None:
    bird = RecordingBird()
    setup = Setup(redis, tmp_path, bird)
    await setup.ready()
    await setup.handler.dispatch(None, setup.queue)
    await setup.bird_calls.aclose()
    created = [body for method, name, body in bird.requests if (method, name) == ("POST", "calls")]
    assert len(created) == 1
    assert (created[0]["to"], created[0]["from"]) == (CUSTOMER, OURS)
    assert "?ref=" in created[0]["notification"]["url"]
    assert await setup.agent_state() == "offered"  # reserved for the follow-up call
    offer = text(await redis.hget(keys.agent(setup.agent_id), "offer"))
    assert (await redis.hget(keys.offer(offer), "status")) == b"taken"
    call = text(await redis.hget(keys.offer(offer), "call"))
    entry = await redis.hgetall(keys.queue_entry(setup.queue, call))
    follow_up = await setup.store.load(text(entry[b"call"]))
    assert follow_up is not None
    assert (follow_up.direction, follow_up.phase) == (Direction.OUTBOUND, Phase.ANSWERING)
    assert follow_up.caller == CUSTOMER
    assert follow_up.node == "call-back"
    assert follow_up.line is not None
    assert follow_up.line.waiting is Waiting.CALLING
    assert (follow_up.line.offer, follow_up.line.attempt) == (offer, 1)
    # The line keeps its times on the real clock; the call on the clock graphs see
    # (pinned to a Tuesday morning here, weeks before the real one).
    assert int(entry[b"joined"]) == int(setup.clock.now * 1000)
    assert abs(follow_up.line.joined_at - setup.graph_clock()) < 5


class ReapingBird(RecordingBird):
    """Bird whose answer to createCall comes after the offer's lease has passed and a
    replica has reaped it."""

    def __init__(self) -> None:
        super().__init__()
        self.setup: Setup | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        response = self(request)
        first = self.commands.count("calls") == 1
        if first and request.method == "POST" and request.url.path.endswith("/calls"):
            assert self.setup is not None
            offer = text(await self.setup.redis.hget(keys.agent(self.setup.agent_id), "offer"))
            self.setup.clock.now += 61
            await self.setup.line.reap(offer)
        return response


async def test_a_follow_up_call_for_an_offer_taken_back_is_hung_up_at_once(
    redis: Redis, tmp_path: Path
) -> None:
    bird = ReapingBird()
    setup = Setup(redis, tmp_path, bird)
    setup.bird_calls = recording_bird_calls(bird.handle)  # type: ignore[arg-type]
    setup.handler = handler_for(redis, setup.bird_calls, setup.graphs, store=setup.store,
                                clock=setup.clock)  # fmt: skip
    bird.setup = setup
    await setup.ready()
    await setup.handler.dispatch(None, setup.queue)
    await setup.bird_calls.aclose()
    orphan = bird.requests[0]
    assert orphan[:2] == ("POST", "calls")
    # The orphan is hung up before anybody talks on it; taken back, the callback was
    # at its place again with its attempt not counted, the agent free: the next
    # dispatch called the customer once more, and that call holds the offer.
    assert bird.commands == ["calls", "hangup", "calls"]
    offer = text(await redis.hget(keys.agent(setup.agent_id), "offer"))
    assert (await redis.hget(keys.offer(offer), "status")) == b"taken"
    call = text(await redis.hget(keys.offer(offer), "call"))
    entry = await redis.hgetall(keys.queue_entry(setup.queue, call))
    assert entry[b"attempts"] == b"1"
