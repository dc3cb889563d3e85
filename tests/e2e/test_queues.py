"""End to end: callers wait in a queue and reach agents, through the Bird simulator
over HTTP, with the line in a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from redis.asyncio import Redis

from service.core.queues import Agent, Membership
from service.runtime import keys
from service.runtime.agents import Agents
from service.sim import AgentScript, CallerScript
from tests.e2e.test_e2e import NUMBER, Stack, stack

ANN, BOB, CYD = "+31610000001", "+31610000002", "+31610000003"


def write_center(directory: Path) -> None:
    graph = {
        "id": "support-line",
        "numbers": [NUMBER],
        "start": "welcome",
        "nodes": {
            "welcome": {"type": "say", "say": "Thanks for calling Acme.", "next": "line"},
            "line": {
                "type": "queue",
                "queue": "support",
                "on_timeout": "sorry",
                "on_no_agents": "closed",
            },
            "sorry": {"type": "hangup", "say": "Sorry, nobody could take your call."},
            "closed": {"type": "hangup", "say": "Nobody is available right now."},
        },
    }
    queues = {
        "queues": {
            "support": {
                "ring_timeout_s": 5,
                "wrap_up_s": 0,
                "max_no_answer": 1,
                "hold_segment_s": 10,
                "max_wait_s": 300,
            }
        }
    }
    (directory / "support-line.json").write_text(json.dumps(graph))
    (directory / "queues.json").write_text(json.dumps(queues))


async def add_agents(
    redis: Redis, channel: str, *numbers: str, queue: str = "support"
) -> list[str]:
    agents = Agents(redis, channel_id=channel)
    ids = []
    for index, number in enumerate(numbers, start=1):
        agent_id = f"agent-{index}-{uuid.uuid4().hex[:6]}"
        member = {queue: Membership(1, index)}
        await agents.put(Agent(id=agent_id, name=agent_id, address=number, queues=member),
                         status="available")  # fmt: skip
        ids.append(agent_id)
    return ids


async def test_callers_wait_in_line_and_each_reaches_one_agent(
    redis: Redis, tmp_path: Path
) -> None:
    write_center(tmp_path)
    channel = str(uuid.uuid4())
    scripts = {
        ANN: AgentScript("answer", answer_after_s=1, talk_s=30),
        BOB: AgentScript("no-answer"),
        CYD: AgentScript("answer", answer_after_s=1, talk_s=20),
    }
    async with stack(
        redis, graphs_dir=tmp_path, service_options={"bird_channel_id": channel}, agents=scripts
    ) as s:
        ann, bob, cyd = await add_agents(redis, channel, ANN, BOB, CYD)
        try:
            await _five_callers_each_reach_one_agent(s, redis, bob)
        finally:  # agents and queues are the whole Redis's: leave none for other tests
            agents = Agents(redis, channel_id=channel)
            for agent_id in (ann, bob, cyd):
                await agents.set_status(agent_id, "offline")
                await agents.delete(agent_id)


async def _five_callers_each_reach_one_agent(s: Stack, redis: Redis, bob: str) -> None:
    callers = [CallerScript(f"caller-{n}", f"+3161234560{n}", NUMBER) for n in range(5)]
    call_ids = [await s.sim.place_inbound_call(script) for script in callers]
    transcripts = await asyncio.gather(
        *(s.sim.wait_ended(call_id, timeout_s=60) for call_id in call_ids)
    )
    s.assert_every_request_was_valid()
    for call_id, transcript in zip(call_ids, transcripts, strict=True):
        assert transcript.reached in (ANN, CYD), transcript.render()
        stored = await s.store.load(call_id)
        assert stored is not None
        assert stored.outcome == "agent_connected"
    # Bob missed his offer: max_no_answer 1 put him on break.
    bob_status = await redis.hget(keys.agent(bob), "status")
    assert bob_status == b"on_break"
    # Nobody is left in line.
    assert await redis.zcard(keys.queue_waiting("support")) == 0
    assert await redis.zcard(keys.queue_offered("support")) == 0
