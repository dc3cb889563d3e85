"""Callbacks in the line against a real Redis: a callback keeps the caller's place,
reserves an agent in its turn, frees that agent at once when the follow-up call
fails, comes back at its place after ``callback_retry_s``, and is dropped after
``callback_attempts``."""

from __future__ import annotations

from redis.asyncio import Redis

from service.core import line as changes
from service.runtime import keys
from service.runtime.line import Offer, today
from tests.runtime.test_line import Center, center_with, text

NUMBER = "+31611111111"
OURS = "+31970000000"


async def book(center: Center, call: str, priority: int = 0) -> str:
    """``call`` presses 1 (in line, or not: then its place is from now): it leaves
    and books a callback in one commit."""
    await center.commit(
        call,
        changes.LeaveLine(center.name, "callback"),
        changes.BookCallback(center.name, NUMBER, OURS, priority, "g", "call-back"),
    )
    center.clock.now += 1
    return changes.callback_id(center.name, NUMBER)


async def offered(center: Center) -> Offer:
    offer = await center.line.dispatch(center.name)
    assert offer is not None
    return offer


async def stats(center: Center) -> dict[str, str]:
    raw = await center.redis.hgetall(keys.queue_stats(center.name, today(center.clock.now)))
    return {text(k): text(v) for k, v in raw.items()}


async def test_a_callback_keeps_the_place_the_caller_had_in_line(redis: Redis) -> None:
    center = await center_with(redis)
    await center.add_agents("ann")
    joined = center.clock.now
    await center.join("c1")
    await center.join("c2")
    callback = await book(center, "c1")
    await center.join("c3")
    assert await center.waiting() == [f"cb:{callback}", "c2", "c3"]
    status = await center.line.ask("c2", center.name, 0)
    assert status.position == 2  # the callback still counts ahead of c2
    offer = await offered(center)
    assert offer.call_id == f"cb:{callback}"
    assert offer.agent_id == center.agent_id("ann")
    assert offer.callback is not None
    assert (offer.callback.number, offer.callback.line_number) == (NUMBER, OURS)
    assert (offer.callback.graph, offer.callback.node) == ("g", "call-back")
    assert offer.callback.joined_at == joined
    assert offer.callback.attempt == 1
    assert await center.state_of("ann") == "offered"  # reserved for the callback
    center.clock.now += 11
    await center.line.reap(offer.offer)
    assert await center.state_of("ann") == "offered"  # a callback's lease is longer
    assert (await stats(center))["callbacks_requested"] == "1"


async def test_booking_again_keeps_the_first_place(redis: Redis) -> None:
    center = await center_with(redis)
    await center.add_agents("ann", status="on_break")
    first = center.clock.now
    await center.commit("c1", changes.BookCallback(center.name, NUMBER, OURS, 0, "g", "n"))
    center.clock.now += 100
    callback = await book(center, "c2")
    score = await redis.zscore(keys.queue_waiting(center.name), f"cb:{callback}")
    entry = await redis.hget(keys.queue_entry(center.name, f"cb:{callback}"), "joined")
    assert text(entry) == str(int(first * 1000))
    assert score is not None
    assert await redis.zcard(keys.queue_callbacks(center.name)) == 1


async def test_a_failed_follow_up_frees_the_agent_at_once_and_retries_at_its_place(
    redis: Redis,
) -> None:
    center = await center_with(redis, callback_retry_s=120, callback_attempts=3)
    await center.add_agents("ann")
    await center.join("c1")
    callback = await book(center, "c1")
    offer = await offered(center)
    await center.commit("f1", changes.TakeOffer(center.name, offer.offer, callback))
    entry = keys.queue_entry(center.name, f"cb:{callback}")
    assert text(await redis.hget(entry, "call")) == "f1"
    await center.join("c2")  # joins while the customer's phone rings
    await center.commit("f1", changes.CallbackFailed(center.name, offer.offer, callback,
                                                     "no-answer"))  # fmt: skip
    assert await center.state_of("ann") == "idle"  # released at once, no penalty
    assert await center.waiting() == ["c2"]  # the callback waits off the line
    nxt = await offered(center)
    assert nxt.call_id == "c2"  # meanwhile others are served
    timer = f"callback:{center.name}:{callback}"
    due = await redis.zscore(keys.timers(center.channel), timer)
    assert due == int((center.clock.now + 120) * 1000)
    center.clock.now += 60
    await center.line.callback_due(center.name, callback)
    assert f"cb:{callback}" not in await center.waiting()  # not yet
    center.clock.now += 60
    result = await center.line.callback_due(center.name, callback)
    assert center.name in result.dispatch
    await center.join("c3")
    assert await center.waiting() == [f"cb:{callback}", "c3"]  # back at its place
    assert await redis.zscore(keys.timers(center.channel), timer) is None


async def test_a_callback_is_dropped_after_its_last_attempt(redis: Redis) -> None:
    center = await center_with(redis, callback_retry_s=30, callback_attempts=2)
    await center.add_agents("ann")
    callback = await book(center, "c1")
    for attempt in (1, 2):
        offer = await offered(center)
        assert offer.callback is not None
        assert offer.callback.attempt == attempt
        await center.commit(f"f{attempt}", changes.TakeOffer(center.name, offer.offer, callback))
        await center.commit(f"f{attempt}", changes.CallbackFailed(center.name, offer.offer,
                                                                  callback, "no_key"))  # fmt: skip
        center.clock.now += 30
        await center.line.callback_due(center.name, callback)
    assert await center.line.dispatch(center.name) is None
    assert await redis.exists(keys.queue_entry(center.name, f"cb:{callback}")) == 0
    assert await redis.zcard(keys.queue_callbacks(center.name)) == 0
    assert (await stats(center))["callbacks_failed"] == "1"
    assert await center.state_of("ann") == "idle"


async def test_a_connected_callback_leaves_the_line(redis: Redis) -> None:
    center = await center_with(redis)
    await center.add_agents("ann")
    callback = await book(center, "c1")
    offer = await offered(center)
    await center.commit("f1", changes.TakeOffer(center.name, offer.offer, callback))
    await center.commit("f1", changes.OfferAnswered(center.name, offer.offer, callback))
    assert await center.state_of("ann") == "in_call"
    assert await center.waiting() == []
    assert await redis.zcard(keys.queue_offered(center.name)) == 0
    assert await redis.zcard(keys.queue_callbacks(center.name)) == 0
    assert (await stats(center))["callbacks_connected"] == "1"
    await center.commit("f1", changes.AgentCallEnded(center.name, offer.offer))
    assert await center.state_of("ann") == "wrap_up"


async def test_an_agent_who_misses_a_callback_does_not_cost_the_customer_an_attempt(
    redis: Redis,
) -> None:
    center = await center_with(redis, no_answer_delay_s=30)
    await center.add_agents("ann", "bob")
    callback = await book(center, "c1")
    await center.join("c2")
    offer = await offered(center)
    await center.commit("f1", changes.TakeOffer(center.name, offer.offer, callback))
    await center.commit("f1", changes.OfferMissed(center.name, offer.offer, "no-answer",
                                                  callback))  # fmt: skip
    assert await center.state_of("ann") == "cooldown"
    assert (await center.waiting())[0] == f"cb:{callback}"  # back ahead of c2
    again = await offered(center)
    assert again.callback is not None
    assert again.callback.attempt == 1
    assert again.agent_id == center.agent_id("bob")


async def test_a_follow_up_bird_refused_to_place_fails_the_attempt(redis: Redis) -> None:
    center = await center_with(redis, callback_retry_s=60)
    await center.add_agents("ann")
    callback = await book(center, "c1")
    offer = await offered(center)
    result = await center.line.callback_unplaced(offer.offer)
    assert result.agents == ((center.agent_id("ann"), "released", center.name),)
    assert await center.state_of("ann") == "idle"
    assert await center.waiting() == []
    timer = f"callback:{center.name}:{callback}"
    assert await redis.zscore(keys.timers(center.channel), timer) is not None
    # Once taken (or taken back), an offer is not failed this way.
    assert not (await center.line.callback_unplaced(offer.offer)).agents


async def test_a_reservation_no_follow_up_call_took_is_reaped_without_an_attempt(
    redis: Redis,
) -> None:
    center = await center_with(redis)
    await center.add_agents("ann")
    callback = await book(center, "c1")
    await center.join("c2")
    offer = await offered(center)
    center.clock.now += 61  # the callback's lease (the worker died before calling)
    reaped = await center.line.reap(offer.offer)
    assert center.name in reaped.dispatch
    assert await center.state_of("ann") == "idle"
    assert await center.waiting() == [f"cb:{callback}", "c2"]
    again = await offered(center)
    assert again.callback is not None
    assert again.callback.attempt == 1
