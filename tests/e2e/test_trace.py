"""A call's timeline, end to end: a demo call through the simulator, then what
``ivr trace`` prints of it and what ``GET /admin/calls`` shows while it lives."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import httpx
import pytest
from redis.asyncio import Redis

from service.cli.demo import ANN, demo_calls
from service.sim import CallerScript
from tests.e2e.test_e2e import NUMBER, stack

BILLING = next(d for d in demo_calls(NUMBER) if d.queue == "billing")
TRACE_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3})  \+\s*(\d+\.\d{3})s  (\w+)\s+(.*)$")


def trace(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "service", "trace", *args, "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60, env={"NO_COLOR": "1", "PATH": ""},
    )  # fmt: skip


async def test_ivr_trace_shows_every_delivery_step_and_command_of_a_demo_call_in_order(
    redis: Redis, redis_url: str
) -> None:
    async with stack(redis, seated=[ANN]) as running:
        call_id, transcript = await running.call(BILLING.script)
        # The call's own deliveries and its agent leg's (their parent is the call).
        sent = [a for a in running.sim.deliveries if a.ok and call_id in json.dumps(a.payload)]
        commands = running.commands_to(call_id)
    assert transcript.reached == ANN.address

    done = await asyncio.to_thread(trace, redis_url, call_id, "--show-numbers")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.startswith(f"call {call_id}: inbound {BILLING.script.from_number} -> {NUMBER}")
    assert "ended: agent_connected" in header
    parsed = [TRACE_LINE.match(line) for line in lines]
    assert None not in parsed, lines
    moments = [(float(m[2]), m[3], m[4]) for m in parsed if m is not None]
    # In order, with times.
    assert [at for at, _, _ in moments] == sorted(at for at, _, _ in moments)
    assert [kind for _, kind, _ in moments[:2]] == ["delivery", "begin"]  # Bird's "starting"
    # Every delivery the simulator made for the call is there, once, in its order.
    delivered = [text for _, kind, text in moments if kind == "delivery"]
    assert len(delivered) == len(sent)
    # Every request the service made to Bird on the call (create, answer, say,
    # gather, bridge ...) is there as Bird answered it, in order.
    asked = [text.split(":")[0].removeprefix("bird ") for _, kind, text in moments
             if kind == "command"]  # fmt: skip
    assert asked == [_action_of(c) for c in commands]
    assert all(": accepted in " in text for _, kind, text in moments if kind == "command")
    # What the caller heard and pressed, as the simulator's transcript says, in order.
    said = " ".join(text for _, kind, text in moments if kind in ("begin", "step"))
    heard = transcript.texts("heard")
    positions = [said.find(f'"{text}"') for text in heard]
    assert -1 not in positions, (heard, said)
    assert positions == sorted(positions)
    for keys in transcript.texts("pressed"):
        assert f"digits='{keys}'" in said
    assert f"offer to agent {ANN.address}" in said
    assert "AgentConnected" in said
    assert said.count("ended: agent_connected") == 1


def _action_of(operation: str) -> str:
    """A Bird operation the simulator took (``answerCall``, ``say``) as the trace names it."""
    return {"answerCall": "answer", "hangupCall": "hangup", "createCall": "create_call",
            "say": "speak", "playback": "speak"}.get(operation, operation)  # fmt: skip


async def test_ivr_trace_masks_numbers_follows_a_live_call_and_says_when_a_call_is_unknown(
    redis: Redis, redis_url: str
) -> None:
    script = CallerScript("hangs up in the menu", "+31655512345", NUMBER, hangup_after_s=15)
    async with stack(redis, time_scale=0.2) as running:
        call_id = await running.sim.place_inbound_call(script)
        await running.sim.wait_for(call_id, "heard", "Thanks for calling")
        followed = asyncio.create_task(asyncio.to_thread(trace, redis_url, call_id, "--follow"))
        await running.sim.wait_ended(call_id, timeout_s=60)
        done = await followed
    assert done.returncode == 0, done.stderr
    assert "+31655512345" not in done.stdout
    assert "+31******345" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("ended: ")

    unknown = await asyncio.to_thread(trace, redis_url, "no-such-call")
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert "no call 'no-such-call'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


async def test_admin_calls_lists_a_live_call_and_shows_its_timeline(redis: Redis) -> None:
    script = CallerScript("hangs up in the menu", "+31655598765", NUMBER, hangup_after_s=15)
    async with stack(redis, time_scale=0.2) as running:
        call_id = await running.sim.place_inbound_call(script)
        await running.sim.wait_for(call_id, "heard", "Thanks for calling")
        listed = await running.admin("GET", "/admin/calls")
        assert listed.status_code == 200
        mine = [c for c in listed.json()["calls"] if c["call_id"] == call_id]
        assert len(mine) == 1
        live = mine[0]
        assert (live["graph"], live["node"], live["phase"]) == ("support-line", "welcome",
                                                                 "prompting")  # fmt: skip
        assert live["direction"] == "inbound"
        assert live["caller"] == "+31******765"
        assert live["age_s"] >= 0
        other = await running.admin("GET", "/admin/calls?graph=appointment-reminder")
        assert call_id not in {c["call_id"] for c in other.json()["calls"]}

        one = await running.admin("GET", f"/admin/calls/{call_id}")
        assert one.status_code == 200
        body = one.json()
        assert body["call"]["ended"] is False
        assert body["pending"] is not None
        kinds = [moment["kind"] for moment in body["timeline"]]
        times = [moment["at"] for moment in body["timeline"]]
        assert times == sorted(times)
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", at) for at in times)
        assert kinds[:3] == ["delivery", "begin", "command"]  # starting, answer
        assert "+31655598765" not in json.dumps(body)

        await running.sim.wait_ended(call_id, timeout_s=60)
        after = await running.admin("GET", "/admin/calls")
        assert call_id not in {c["call_id"] for c in after.json()["calls"]}
        ended = (await running.admin("GET", f"/admin/calls/{call_id}")).json()
        assert ended["call"]["ended"] is True
        assert ended["call"]["outcome"]


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [("/admin/calls/unknown-call", 404, "not_found"), ("/admin/calls/a%20b", 400, "bad_request")],
)
async def test_admin_call_answers_404_and_400_with_a_reason(
    redis: Redis, path: str, status: int, error: str
) -> None:
    async with stack(redis) as running:
        answer = await running.admin("GET", path)
        async with httpx.AsyncClient(base_url=running.service_url) as http:
            anonymous = await http.get(path)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["reason"]
    assert anonymous.status_code == 401
