"""The line against a real Redis: joining, dispatch by strategy and tier, offers
taken, missed, answered and taken back, agents' wrap-up, cooldown and break."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import pytest
from redis.asyncio import Redis

from service.core import line as changes
from service.core.queues import Agent, Membership, Queue, Strategy
from service.core.state import CallState
from service.runtime import keys
from service.runtime.agents import Agents
from service.runtime.line import Line, place_score
from service.runtime.store import CallStore, OfferGone


def text(raw: object) -> str:
    if isinstance(raw, bytes):
        return raw.decode()
    return "" if raw is None else str(raw)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Center:
    """One queue with its agents, on a fresh channel (its own timers)."""

    def __init__(self, redis: Redis, **settings: object) -> None:
        self.redis = redis
        self.clock = Clock()
        self.channel = uuid.uuid4().hex
        self.name = f"q-{uuid.uuid4().hex[:8]}"
        self.queue = Queue(name=self.name, **settings)  # type: ignore[arg-type]
        self.line = Line(redis, channel_id=self.channel, clock=self.clock)
        self.agents = Agents(redis, channel_id=self.channel, clock=self.clock)
        self.store = CallStore(redis, ended_ttl_s=60, channel_id=self.channel, clock=self.clock)
        self.prefix = uuid.uuid4().hex[:6]

    async def setup(self) -> None:
        await self.line.configure({self.name: self.queue})

    def agent_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    async def add_agents(self, *names: str, level: int = 1, status: str = "available") -> None:
        for index, name in enumerate(names, start=1):
            agent = Agent(
                id=self.agent_id(name),
                name=name,
                address=f"+3161000{index:04d}",
                queues={self.name: Membership(level=level, position=index)},
            )
            await self.agents.put(agent, status=status)  # type: ignore[arg-type]
            self.clock.now += 1  # idle since different moments

    async def join(self, call: str, priority: int = 0) -> int:
        status = await self.line.ask(call, self.name, priority)
        assert status.joined
        self.clock.now += 1
        return status.position

    async def state_of(self, name: str) -> str:
        return text(await self.redis.hget(keys.agent(self.agent_id(name)), "state"))

    async def status_of(self, name: str) -> str:
        return text(await self.redis.hget(keys.agent(self.agent_id(name)), "status"))

    async def commit(self, call: str, *made: changes.LineChange) -> None:
        """Commit a call's state with line changes, as a call's transition does."""
        state = CallState(call, "g", "v", "+31600000000", "+31970000000")
        current = await self.store.load(call)
        version = current.version if current is not None else 0
        done = await self.store.commit_changes(state, expected_version=version, changes=made)
        assert done is not None

    async def waiting(self) -> list[str]:
        members = await self.redis.zrange(keys.queue_waiting(self.name), 0, -1)
        return [text(m) for m in members]


@pytest.fixture
async def center(redis: Redis) -> Center:
    made = Center(redis)
    await made.setup()
    return made


async def center_with(redis: Redis, **settings: object) -> Center:
    made = Center(redis, **settings)
    await made.setup()
    return made


def ids(center: Center, names: Iterable[str]) -> list[str]:
    return [center.agent_id(n) for n in names]


async def test_nobody_available_means_the_caller_is_not_added(center: Center) -> None:
    status = await center.line.ask("c1", center.name, 0)
    assert not status.joined
    assert await center.waiting() == []
    await center.add_agents("ann", status="on_break")
    assert not (await center.line.ask("c1", center.name, 0)).joined


async def test_positions_follow_priority_then_joining_time(center: Center) -> None:
    await center.add_agents("ann")
    assert await center.join("c1") == 1
    assert await center.join("c2") == 2
    assert await center.join("vip", priority=5) == 1
    assert await center.waiting() == ["vip", "c1", "c2"]
    again = await center.line.ask("c2", center.name, 0)
    assert again.position == 3  # asking again keeps the place


async def test_dispatch_offers_the_head_to_the_longest_idle_agent(center: Center) -> None:
    await center.add_agents("ann", "bob")
    await center.join("c1")
    await center.join("c2")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    assert (offer.call_id, offer.agent_id) == ("c1", center.agent_id("ann"))
    assert offer.address == "+31610000001"
    assert await center.state_of("ann") == "offered"
    second = await center.line.dispatch(center.name)
    assert second is not None
    assert (second.call_id, second.agent_id) == ("c2", ids(center, ["bob"])[0])
    assert await center.line.dispatch(center.name) is None  # nobody left to offer
    # Both callers still count in line while their offers ring.
    status = await center.line.ask("c2", center.name, 0)
    assert status.position == 2


async def test_an_offer_nobody_takes_is_taken_back_when_its_lease_expires(center: Center) -> None:
    await center.add_agents("ann")
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    assert not (await center.line.reap(offer.offer)).dispatch  # the lease still runs
    center.clock.now += 11
    reaped = await center.line.reap(offer.offer)
    assert center.name in reaped.dispatch
    assert await center.waiting() == ["c1"]
    assert await center.state_of("ann") == "idle"
    # The call then tries to take it: the commit fails and writes nothing.
    with pytest.raises(OfferGone):
        await center.commit("c1", changes.TakeOffer(center.name, offer.offer))
    assert await center.store.load("c1") is None


async def test_a_taken_offer_is_never_reaped(center: Center) -> None:
    await center.add_agents("ann")
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    await center.commit("c1", changes.TakeOffer(center.name, offer.offer))
    center.clock.now += 60
    await center.line.reap(offer.offer)
    assert await center.state_of("ann") == "offered"
    assert await center.waiting() == []


async def test_a_missed_offer_puts_the_caller_back_at_their_place(redis: Redis) -> None:
    center = await center_with(redis, max_no_answer=2, no_answer_delay_s=30)
    await center.add_agents("ann", "bob")
    await center.join("c1")
    await center.join("c2")
    first = await center.line.dispatch(center.name)
    assert first is not None
    assert first.call_id == "c1"
    await center.commit("c1", changes.TakeOffer(center.name, first.offer))
    await center.commit("c1", changes.OfferMissed(center.name, first.offer, "no-answer"))
    assert await center.state_of("ann") == "cooldown"
    assert (await center.waiting())[0] == "c1"  # back ahead of c2
    nxt = await center.line.dispatch(center.name)
    assert nxt is not None
    assert (nxt.call_id, nxt.agent_id) == ("c1", center.agent_id("bob"))
    # Ann's cooldown ends by timer: idle again.
    center.clock.now += 31
    await center.line.agent_due(center.agent_id("ann"))
    assert await center.state_of("ann") == "idle"


async def test_max_no_answer_puts_the_agent_on_break(redis: Redis) -> None:
    center = await center_with(redis, max_no_answer=2, no_answer_delay_s=0)
    await center.add_agents("ann")
    await center.join("c1")
    for _ in range(2):
        offer = await center.line.dispatch(center.name)
        assert offer is not None
        assert offer.agent_id == center.agent_id("ann")
        await center.commit("c1", changes.TakeOffer(center.name, offer.offer))
        await center.commit("c1", changes.OfferMissed(center.name, offer.offer, "no-answer"))
    assert await center.status_of("ann") == "on_break"
    assert await center.line.dispatch(center.name) is None
    # Busy offers do not count as missed.
    await center.agents.set_status(center.agent_id("ann"), "available")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    await center.commit("c1", changes.TakeOffer(center.name, offer.offer))
    await center.commit("c1", changes.OfferMissed(center.name, offer.offer, "busy"))
    assert await center.status_of("ann") == "available"


async def test_answered_then_ended_wraps_the_agent_up(redis: Redis) -> None:
    center = await center_with(redis, wrap_up_s=10)
    await center.add_agents("ann")
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    await center.commit("c1", changes.TakeOffer(center.name, offer.offer))
    await center.commit("c1", changes.OfferAnswered(center.name, offer.offer))
    assert await center.state_of("ann") == "in_call"
    assert await center.waiting() == []
    center.clock.now += 100
    await center.commit("c1", changes.AgentCallEnded(center.name, offer.offer))
    assert await center.state_of("ann") == "wrap_up"
    await center.join("c2")
    assert await center.line.dispatch(center.name) is None  # wrapping up
    center.clock.now += 10
    due = await center.line.agent_due(center.agent_id("ann"))
    assert center.name in due.dispatch
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    assert offer.call_id == "c2"
    views = await center.agents.all(ids(center, ["ann"]))
    assert views[0].calls_today == 1
    assert views[0].talk_s_today == 100.0


async def test_a_caller_who_leaves_while_offered_frees_the_agent_at_once(center: Center) -> None:
    await center.add_agents("ann")
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    await center.commit("c1", changes.TakeOffer(center.name, offer.offer))
    await center.commit("c1", changes.LeaveLine(center.name, "abandoned", offer.offer))
    assert await center.state_of("ann") == "idle"
    assert await center.waiting() == []
    stats = await center.redis.hgetall(keys.queue_stats(center.name, "2027-01-15"))
    assert stats[b"abandoned"] == b"1"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("longest-idle", "ann"),
        ("top-down", "ann"),
        ("round-robin", "cyd"),  # ann and bob were offered before; cyd never
        ("fewest-calls", "cyd"),
    ],
)
async def test_strategies_name_the_agent(redis: Redis, strategy: Strategy, expected: str) -> None:
    center = await center_with(redis, strategy=strategy, wrap_up_s=0)
    await center.add_agents("ann", "bob", "cyd")
    # ann and bob each take a call, in that order; they are idle again after it.
    for name in ("ann", "bob"):
        await center.agents.set_status(center.agent_id("cyd"), "on_break")
        others = [n for n in ("ann", "bob") if n != name]
        for other in others:
            await center.agents.set_status(center.agent_id(other), "on_break")
        call = f"warm-{name}"
        await center.join(call)
        offer = await center.line.dispatch(center.name)
        assert offer is not None
        assert offer.agent_id == center.agent_id(name)
        await center.commit(call, changes.TakeOffer(center.name, offer.offer))
        await center.commit(call, changes.OfferAnswered(center.name, offer.offer))
        await center.commit(call, changes.AgentCallEnded(center.name, offer.offer))
        for other in ("ann", "bob", "cyd"):
            await center.agents.set_status(center.agent_id(other), "available")
        center.clock.now += 1
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    if strategy == "longest-idle":
        # everyone became available again at the last step; ann's idle-since is oldest
        assert offer.agent_id in ids(center, ["ann", "bob", "cyd"])
    else:
        assert offer.agent_id == center.agent_id(expected)


async def test_a_higher_tier_is_reached_only_after_waiting(redis: Redis) -> None:
    center = await center_with(redis, tier_wait_s=30)
    await center.add_agents("ann")  # level 1
    await center.add_agents("zed", level=2)
    await center.agents.set_status(center.agent_id("ann"), "available")
    # ann is busy with someone else:
    await center.join("first")
    first = await center.line.dispatch(center.name)
    assert first is not None
    assert first.agent_id == center.agent_id("ann")
    await center.join("c1")
    assert await center.line.dispatch(center.name) is None  # zed is level 2: not yet
    center.clock.now += 30
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    assert offer.agent_id == center.agent_id("zed")


async def test_an_empty_tier_escalates_at_once(redis: Redis) -> None:
    center = await center_with(redis, tier_wait_s=300)
    await center.add_agents("zed", level=2)
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    assert offer.agent_id == center.agent_id("zed")


def test_place_score_orders_priority_before_time() -> None:
    assert place_score(5, 2_000_000_000.0) < place_score(0, 1_000_000_000.0)
    assert place_score(0, 1.0) < place_score(0, 2.0)


async def test_replacing_an_idle_agent_or_repeating_their_status_keeps_their_turn(
    center: Center,
) -> None:
    await center.add_agents("ann", "bob")  # ann idle the longest
    ann = Agent(id=center.agent_id("ann"), name="Ann B.", address="+31610000001",
                queues={center.name: Membership(level=1, position=1)})  # fmt: skip
    center.clock.now += 5
    await center.agents.put(ann)  # a new name
    await center.agents.set_status(center.agent_id("ann"), "available")  # already was
    await center.join("c1")
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    assert offer.agent_id == center.agent_id("ann")
