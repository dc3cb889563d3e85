"""The call store against a real Redis server: round trips, compare-and-set, TTLs."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from redis.asyncio import Redis

from service.core import actions
from service.core.state import After, CallState, Direction, Outcome, Phase
from service.runtime import keys
from service.runtime.live import live_calls
from service.runtime.outbox import sending
from service.runtime.packing import unpack
from service.runtime.store import (
    ACTIVE_CALL_TTL_S,
    TRAFFIC_DAY_TTL_S,
    CallStore,
    Conflict,
    with_version,
)


def new_state() -> CallState:
    return CallState(
        call_id=str(uuid.uuid4()),
        graph="support-line",
        graph_version="abc",
        caller="+31612345678",
        called="+31970102030",
        vars={"account": "1234"},
        seen={"leg": 5},
        recent=("f1", "f2"),
    )


async def test_a_committed_state_loads_back_equal_with_its_version(redis: Redis) -> None:
    store = CallStore(redis, ended_ttl_s=600)
    first = new_state()
    written = await store.commit(first, expected_version=0)
    assert written is not None
    assert written.version == 1
    assert await store.load(first.call_id) == written


async def test_unknown_call_loads_as_none(redis: Redis) -> None:
    assert await CallStore(redis, ended_ttl_s=600).load("no-such-call") is None


async def test_a_commit_against_a_stale_version_is_refused_and_writes_nothing(
    redis: Redis,
) -> None:
    store = CallStore(redis, ended_ttl_s=600)
    first = await store.commit(new_state(), expected_version=0)
    assert first is not None
    second = await store.commit(replace(first, node="a"), expected_version=1)
    assert second is not None
    assert await store.commit(replace(first, node="b"), expected_version=1) is None
    assert await store.commit(replace(first, node="c"), expected_version=0) is None
    loaded = await store.load(first.call_id)
    assert loaded is not None
    assert loaded.node == "a"
    assert loaded.version == 2


async def test_two_workers_committing_the_same_version_at_once_only_one_wins(
    redis_url: str,
) -> None:
    """Each worker on its own connection, both having loaded version 1."""
    workers = [Redis.from_url(redis_url) for _ in range(2)]
    try:
        stores = [CallStore(r, ended_ttl_s=600) for r in workers]
        base = await stores[0].commit(new_state(), expected_version=0)
        assert base is not None
        for _ in range(20):
            current = await stores[0].load(base.call_id)
            assert current is not None
            results = await asyncio.gather(
                *(
                    store.commit(replace(current, node=f"w{i}"), expected_version=current.version)
                    for i, store in enumerate(stores)
                )
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            stored = await stores[1].load(base.call_id)
            assert stored == winners[0]
    finally:
        for r in workers:
            await r.aclose()


async def test_active_calls_get_a_safety_ttl_and_ended_calls_the_configured_one(
    redis: Redis,
) -> None:
    store = CallStore(redis, ended_ttl_s=600)
    active = await store.commit(new_state(), expected_version=0)
    assert active is not None
    assert ACTIVE_CALL_TTL_S - 5 <= await redis.ttl(keys.call(active.call_id)) <= ACTIVE_CALL_TTL_S
    ended = await store.commit(replace(active, phase=Phase.ENDED), expected_version=1)
    assert ended is not None
    assert 590 <= await redis.ttl(keys.call(active.call_id)) <= 600


async def test_one_call_is_one_key(redis: Redis) -> None:
    store = CallStore(redis, ended_ttl_s=600)
    written = await store.commit(new_state(), expected_version=0)
    assert written is not None
    found = [k async for k in redis.scan_iter(match=f"*{written.call_id}*")]
    assert found == [keys.call(written.call_id).encode()]


def test_a_state_read_back_has_its_phase_direction_and_outcome_as_enum_members() -> None:
    ended = CallState(
        call_id="c", graph="g", graph_version="v", caller="+31612345678", called="+3197",
        direction=Direction.OUTBOUND, phase=Phase.ENDED, outcome=Outcome.TRANSFERRED,
        after=None,
    )  # fmt: skip
    prompting = replace(ended, phase=Phase.PROMPTING, after=After.REGATHER, outcome=None)
    for written in (ended, prompting):
        read = CallState.from_json(written.to_json())
        assert read == written
        assert type(read.phase) is Phase
        assert type(read.direction) is Direction
    assert type(CallState.from_json(ended.to_json()).outcome) is Outcome
    assert type(CallState.from_json(prompting.to_json()).after) is After


async def test_a_live_call_is_listed_with_where_it_is_until_the_commit_that_ends_it(
    redis: Redis,
) -> None:
    channel = str(uuid.uuid4())
    moments = iter([1000.0, 1005.0, 1009.0])
    store = CallStore(redis, ended_ttl_s=600, channel_id=channel, clock=lambda: next(moments))
    first = await store.commit(replace(new_state(), node="welcome"), expected_version=0)
    assert first is not None
    second = await store.commit(replace(first, node="main-menu", phase=Phase.GATHERING),
                                expected_version=1)  # fmt: skip
    assert second is not None
    [listed] = await live_calls(redis, channel)
    assert (listed.call_id, listed.node, listed.phase) == (first.call_id, "main-menu", "gathering")
    assert (listed.started, listed.updated) == (1000.0, 1005.0)  # started at its first commit
    assert listed.caller == "+31612345678"
    ended = replace(second, phase=Phase.ENDED, outcome=Outcome.ENDED_BY_CALLER)
    assert await store.commit(ended, expected_version=2) is not None
    assert await live_calls(redis, channel) == []


async def test_a_live_calls_summary_is_packed_and_keeps_when_it_started(redis: Redis) -> None:
    channel = str(uuid.uuid4())
    moments = iter([1000.0, 1005.0])
    store = CallStore(redis, ended_ttl_s=600, channel_id=channel, clock=lambda: next(moments))
    first = await store.commit(replace(new_state(), node="welcome"), expected_version=0)
    assert first is not None
    stored = await redis.hget(keys.live_calls(channel), first.call_id)
    assert isinstance(stored, bytes)
    head, _, packed = stored.partition(b":")
    assert head == b"1000000"  # started, in ms, where the commit script can read it
    assert b'"node":"welcome"' in unpack(packed)
    assert len(stored) < 120  # the JSON alone is about 200 bytes
    assert await store.commit(replace(first, node="main-menu"), expected_version=1) is not None
    [listed] = await live_calls(redis, channel)
    assert (listed.node, listed.started, listed.updated) == ("main-menu", 1000.0, 1005.0)


async def test_a_summary_an_earlier_version_wrote_keeps_when_its_call_started(
    redis: Redis,
) -> None:
    channel = str(uuid.uuid4())
    store = CallStore(redis, ended_ttl_s=600, channel_id=channel, clock=lambda: 1005.0)
    first = await store.commit(replace(new_state(), node="welcome"), expected_version=0)
    assert first is not None
    earlier = ('{"graph":"support-line","version":"v1","node":"welcome","phase":"running",'
               '"direction":"inbound","caller":"+31612345678","called":"+31970102030",'
               '"started":990000,"updated":990000}')  # fmt: skip
    await redis.hset(keys.live_calls(channel), first.call_id, earlier)
    [before] = await live_calls(redis, channel)  # read as it is
    assert (before.node, before.started, before.updated) == ("welcome", 990.0, 990.0)
    assert await store.commit(replace(first, node="main-menu"), expected_version=1) is not None
    [listed] = await live_calls(redis, channel)
    assert (listed.node, listed.started, listed.updated) == ("main-menu", 990.0, 1005.0)


async def test_a_live_call_whose_state_expired_unended_is_forgotten(redis: Redis) -> None:
    channel = str(uuid.uuid4())
    store = CallStore(redis, ended_ttl_s=600, channel_id=channel)
    lost = await store.commit(new_state(), expected_version=0)
    kept = await store.commit(new_state(), expected_version=0)
    assert lost is not None
    assert kept is not None
    await redis.delete(keys.call(lost.call_id))  # as its TTL would, its end never delivered
    assert [call.call_id for call in await live_calls(redis, channel)] == [kept.call_id]
    assert await redis.hkeys(keys.live_calls(channel)) == [kept.call_id.encode()]


async def test_traffic_is_counted_per_version_and_per_day(redis: Redis) -> None:
    state = replace(new_state(), graph=f"g-{uuid.uuid4().hex[:8]}")
    store = CallStore(redis, ended_ttl_s=600, clock=lambda: 86400.0 * 3)  # 1970-01-04
    await store.commit_changes(state, expected_version=0, traffic={"welcome|in": 1})
    total = await redis.hgetall(keys.graph_traffic(state.graph, "abc"))
    day = await redis.hgetall(keys.graph_traffic_day(state.graph, "abc", "1970-01-04"))
    assert total == day == {b"welcome|in": b"1"}
    assert (
        0
        < await redis.ttl(keys.graph_traffic_day(state.graph, "abc", "1970-01-04"))
        <= (TRAFFIC_DAY_TTL_S)
    )


async def test_a_note_joins_the_call_s_journal_and_lives_as_long_as_its_state(
    redis: Redis,
) -> None:
    store = CallStore(redis, ended_ttl_s=600)
    early = str(uuid.uuid4())
    await store.note(early, '{"kind":"command","rt":1}')  # before the call's first commit
    assert 0 < await redis.ttl(keys.call_journal(early)) <= ACTIVE_CALL_TTL_S
    written = await store.commit(replace(new_state(), phase=Phase.ENDED), expected_version=0)
    assert written is not None
    await store.note(written.call_id, '{"kind":"delivery","rt":2}')
    assert 0 < await redis.ttl(keys.call_journal(written.call_id)) <= 600
    assert [unpack(e) for e in await redis.lrange(keys.call_journal(written.call_id), 0, -1)] == [
        b'{"kind":"delivery","rt":2}'
    ]


async def test_a_worker_plans_from_the_call_it_last_wrote_until_another_changes_it(
    redis: Redis,
) -> None:
    one, two = CallStore(redis, ended_ttl_s=600), CallStore(redis, ended_ttl_s=600)
    say = actions.Speak(prompt=actions.Say(text="Hello", locale="en-US"))
    done = await one.commit_changes(new_state(), expected_version=0, pending=sending(1, say, 0))
    assert not isinstance(done, Conflict)
    call_id = done[0].call_id
    # Remembered: what it wrote, without asking Redis.
    known = await one.load_call(call_id, remembered=True)
    assert known is not None
    assert one.remembers(known)
    assert known.state == done[0]
    assert known.pending == sending(1, say, 0)
    # Another worker changes the pending command (Bird accepted it): the memory is
    # stale, so a step planned from it loses, and brings the call as it is.
    loaded = await two.load_call(call_id)
    assert loaded is not None
    assert not two.remembers(loaded)
    sent = loaded.pending.becomes("sent", 60) if loaded.pending else None
    assert await two.update_pending(call_id, 1, sent)
    lost = await one.commit_changes(replace(known.state, node="a"), expected_version=1,
                                    loaded=known)  # fmt: skip
    assert isinstance(lost, Conflict)
    assert lost.current is not None
    assert lost.current.pending == sent
    assert lost.current.state.version == 1
    # From the call as it is, the step goes through; the other worker's memory of
    # it is the one now stale (a new version).
    won = await one.commit_changes(replace(lost.current.state, node="a"), expected_version=1,
                                   loaded=lost.current)  # fmt: skip
    assert not isinstance(won, Conflict)
    assert won[0].version == 2
    again = await two.commit_changes(replace(loaded.state, node="b"), expected_version=1,
                                     loaded=loaded)  # fmt: skip
    assert isinstance(again, Conflict)
    assert again.current is not None
    assert again.current.state.node == "a"


async def test_a_store_loads_its_scripts_again_when_redis_lost_them(redis: Redis) -> None:
    store = CallStore(redis, ended_ttl_s=600)
    first = await store.commit(new_state(), expected_version=0)
    assert first is not None
    await redis.script_flush()  # a Redis restarted without its scripts
    second = await store.commit(replace(first, node="a"), expected_version=1)
    assert second is not None
    await redis.script_flush()
    await store.note(first.call_id, '{"kind":"delivery"}')
    await redis.script_flush()
    await store.forget_timer(first.call_id)
    loaded = await store.load(first.call_id)
    assert loaded == second
    assert await redis.llen(keys.call_journal(first.call_id)) == 1


def test_a_state_with_another_version_is_the_state_replace_makes() -> None:
    state = replace(new_state(), node="menu", after=After.NEXT, steps=3)
    changed = with_version(state, 7)
    assert changed == replace(state, version=7)
    assert type(changed) is CallState
    assert changed.version == 7
    assert state.version == 0  # the state itself is left as it was
    assert changed.to_json() == replace(state, version=7).to_json()


async def test_of_two_workers_that_found_a_command_due_only_the_first_takes_it(
    redis: Redis,
) -> None:
    """A queued command found due by two workers at once (its timer, a repeated
    delivery): each takes it fenced by the call as it loaded it, so it goes out once."""
    store = CallStore(redis, ended_ttl_s=600)
    gather = actions.Gather(actions.Say("Press 1"), 1, 5)
    done = await store.commit_changes(new_state(), expected_version=0,
                                      pending=sending(1, gather, 0))  # fmt: skip
    assert not isinstance(done, Conflict)
    call_id = done[0].call_id
    queued = sending(1, gather, 0).becomes("queued", 1)
    assert await store.update_pending(call_id, 1, queued)
    first, second = await store.load_call(call_id), await store.load_call(call_id)
    assert first is not None
    assert second is not None
    assert first.pending == second.pending == queued
    taken = queued.becomes("sending", 21, attempts=2)
    assert await store.update_pending(call_id, 1, taken, loaded=first)
    assert not await store.update_pending(call_id, 1, taken, loaded=second)
    # Unfenced changes (Bird's answer to the one sent) still go through.
    assert await store.update_pending(call_id, 1, taken.becomes("sent", 40))
