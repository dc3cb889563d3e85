"""End to end: callbacks keep their place. Callers wait for one agent; two of them
ask to be called back; each is called back in their turn (before those who joined
after them), once, and the agent reserved for a follow-up call nobody answers is
free again at once."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

from redis.asyncio import Redis

from service.core import line as changes
from service.runtime import keys
from service.sim import AgentScript, CalleeScript, CallerScript
from service.sim import transcript as tr
from service.sim.calls import SimCall
from tests.e2e.test_e2e import NUMBER, stack
from tests.e2e.test_queues import add_agents

ANN = "+31610000001"
CALLERS = [f"+3161234570{n}" for n in range(7)]
ASKS_AT_3, ASKS_LATER = CALLERS[3], CALLERS[5]
OFFER_TEXT = "press 1"


def write_center(directory: Path, queue: str) -> None:
    graph = {
        "id": "support-line",
        "numbers": [NUMBER],
        "start": "line",
        "nodes": {
            "line": {
                "type": "queue",
                "queue": queue,
                "on_timeout": "bye",
                "on_no_agents": "bye",
                "on_callback": "call-back",
            },
            "call-back": {
                "type": "callback",
                "queue": queue,
                "say": "We will call you back when it is your turn.",
                "next": "bye",
            },
            "bye": {"type": "hangup", "say": "Goodbye."},
        },
    }
    settings = {
        "ring_timeout_s": 5,
        "wrap_up_s": 0,
        "announce_position": False,
        "callback_after_s": 0,
        "callback_offer": {"say": f"To be called back in your turn, {OFFER_TEXT}."},
        "callback_retry_s": 30,
        "callback_attempts": 2,
        "max_wait_s": 600,
        "no_agents_grace_s": 600,
    }
    (directory / "support-line.json").write_text(json.dumps(graph))
    (directory / "queues.json").write_text(json.dumps({"queues": {queue: settings}}))


def _at(moment: datetime | None) -> float:
    assert moment is not None
    return moment.timestamp()


async def test_callbacks_are_called_back_in_their_turn_once_and_free_the_agent_at_once(
    redis: Redis, tmp_path: Path
) -> None:
    queue = f"callbacks-{uuid.uuid4().hex[:8]}"
    write_center(tmp_path, queue)
    channel = str(uuid.uuid4())
    callees = {
        ASKS_AT_3: CalleeScript("answers", AgentScript("answer", answer_after_s=2), inputs=("1",)),
        ASKS_LATER: CalleeScript("away", AgentScript("no-answer")),
    }
    async with stack(
        redis,
        graphs_dir=tmp_path,
        service_options={"bird_channel_id": channel},
        agents={ANN: AgentScript("answer", answer_after_s=1, talk_s=50)},
        callees=callees,
        time_scale=0.02,
    ) as s:
        await add_agents(redis, channel, ANN, queue=queue)
        call_ids: list[str] = []
        for index, number in enumerate(CALLERS):
            press = ("1",) if number in (ASKS_AT_3, ASKS_LATER) else ("_",)
            inputs = () if index == 0 else press
            script = CallerScript(f"caller-{index}", number, NUMBER, inputs=inputs)
            call_id = await s.sim.place_inbound_call(script)
            call_ids.append(call_id)
            if index == 0:  # the agent is free: put through at once
                await s.sim.wait_for(call_id, tr.REACHED, timeout_s=10)
            else:  # in line: offered a callback on joining
                await s.sim.wait_for(call_id, tr.HEARD, OFFER_TEXT, timeout_s=10)
        await s.sim.wait_all_ended(call_ids, timeout_s=60)
        follow_ups = {c.to_number: c for c in s.sim.calls.values() if c.party == "callee"}
        await s.sim.wait_all_ended([c.id for c in follow_ups.values()], timeout_s=30)
        s.assert_every_request_was_valid()

        # One follow-up call per callback (the first attempt; the retry is 30 s away).
        callees_called = [c.to_number for c in s.sim.calls.values() if c.party == "callee"]
        assert sorted(callees_called) == sorted([ASKS_AT_3, ASKS_LATER])
        # The agent took them in line order: the callback at position 3 after the two
        # ahead of it and before those who joined after it.
        legs = sorted((c for c in s.sim.calls.values() if c.party == "agent"),
                      key=lambda leg: _at(leg.created_at))  # fmt: skip
        by_number = {call.id: call.from_number for call in s.sim.calls.values()
                     if call.party == "caller"}  # fmt: skip

        def who(leg: SimCall) -> str:
            parent = leg.parent
            assert parent is not None
            return parent.to_number if parent.party == "callee" else by_number[parent.id]

        assert [who(leg) for leg in legs] == [CALLERS[n] for n in (0, 1, 2, 3, 4, 6)]
        followed = follow_ups[ASKS_AT_3]
        assert followed.answered_at is not None
        assert any(leg.parent is followed and leg.answered_at for leg in legs)
        # Nobody answered the second follow-up: its reserved agent was rung for the
        # next caller at once, not after the offer's lease.
        away = follow_ups[ASKS_LATER]
        assert away.answered_at is None
        last = legs[-1]
        assert _at(last.created_at) > _at(away.created_at)
        assert _at(last.created_at) - _at(away.ended_at) < 2.0

        # The line: the connected callback is gone, the other waits for its retry.
        connected = f"cb:{changes.callback_id(queue, ASKS_AT_3)}"
        parked = f"cb:{changes.callback_id(queue, ASKS_LATER)}"
        assert await redis.zrange(keys.queue_callbacks(queue), 0, -1) == [parked.encode()]
        assert await redis.zcard(keys.queue_waiting(queue)) == 0
        assert await redis.exists(keys.queue_entry(queue, connected)) == 0
        entry = await redis.hgetall(keys.queue_entry(queue, parked))
        assert entry[b"attempts"] == b"1"
        timer = f"callback:{queue}:{parked[3:]}"
        assert await redis.zscore(keys.timers(channel), timer) is not None
        board = (await s.admin("GET", f"/queues/{queue}")).json()
        assert board["callbacks_pending"] == 1
        assert board["today"]["callbacks_requested"] == 2
        assert board["today"]["callbacks_connected"] == 1
