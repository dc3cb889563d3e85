"""End to end through the Bird simulator (issue 13): the shipped appointment reminder
answered by a machine and by a person, and the support line's menu answered aloud."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from service.cli.demo import ANN
from service.sim import AgentScript, CalleeScript, CallerScript, MachineScript
from tests.e2e.test_e2e import NUMBER, Stack, stack
from tests.e2e.test_graphs import REMINDER, graphs_dir

MESSAGE = (
    "Hello Ann, this is Acme with a reminder of your appointment on 1 December at 10:00. "
    "To reschedule, please call us back. Goodbye."
)


async def remind(s: Stack, callee: str) -> str:
    placed = await s.admin(
        "POST", "/calls", {"to": callee, "graph": "appointment-reminder", "vars": REMINDER}
    )
    assert placed.status_code == 202, placed.text
    return str(placed.json()["call_id"])


async def test_a_reminder_answered_by_a_machine_leaves_its_message_after_the_beep(
    redis: Redis,
) -> None:
    callee = "+31644444444"
    machine = CalleeScript(
        "machine", AgentScript("answer", answer_after_s=1),
        # Recording for an hour of the simulator's time: the graph's pause is a real second,
        # hundreds of the simulator's fast ones.
        machine=MachineScript("Hi, this is Bo. Leave a message after the tone.",
                              max_message_s=3600),
    )  # fmt: skip
    async with stack(redis, callees={callee: machine}) as s:
        call_id = await remind(s, callee)
        transcript = await s.sim.wait_ended(call_id, timeout_s=60)
        stored = await s.store.load(call_id)
        s.assert_every_request_was_valid()
        (create,) = [r for r in s.sim.requests if r.operation == "createCall"]
    assert create.body["amdSettings"] == {"enabled": True, "ifMachineNotifyAfter": "beep"}
    assert create.body["tags"] == ["appointment-reminder"]
    assert transcript.amd_result is not None
    assert transcript.amd_result["result"] == "machine"
    # Recorded after the beep, in full, and then the service hung up.
    assert transcript.machine_recorded[-1] == MESSAGE  # in full (what began before the beep
    # may be on the tape too: the greeting is short next to the service's stretched delays)
    assert transcript.texts("pressed") == []
    assert stored is not None
    assert (stored.amd, stored.node, stored.outcome) == ("machine", "message", "hangup_node")


async def test_a_reminder_answered_by_a_person_asks_for_confirmation(redis: Redis) -> None:
    callee = "+31655555555"
    says_yes = CalleeScript("says yes", AgentScript("answer", answer_after_s=1),
                            inputs=("say:yes please",))  # fmt: skip
    async with stack(redis, callees={callee: says_yes}) as s:
        call_id = await remind(s, callee)
        transcript = await s.sim.wait_ended(call_id, timeout_s=60)
        stored = await s.store.load(call_id)
        s.assert_every_request_was_valid()
    assert transcript.amd_result is not None
    assert transcript.amd_result["result"] == "human"
    assert transcript.machine_recorded == []
    assert transcript.texts("heard")[0].startswith("Hello Ann, this is Acme. You have an")
    assert transcript.texts("heard")[-1] == (
        "Thank you, your appointment on 1 December is confirmed. Goodbye."
    )
    assert stored is not None
    assert (stored.amd, stored.node) == ("human", "confirmed")


async def test_the_support_lines_menu_takes_billing_said_aloud(
    redis: Redis, tmp_path: Path
) -> None:
    directory = graphs_dir(tmp_path)
    async with stack(redis, graphs_dir=directory, seated=(ANN,)) as s:
        call_id = await s.sim.place_inbound_call(
            CallerScript("says billing", "+31612340001", NUMBER, ("say:Billing please", "1234567#"))
        )
        transcript = await s.sim.wait_ended(call_id, timeout_s=60)
        s.assert_every_request_was_valid()
        gathers = [r.body for r in s.sim.requests_for(call_id) if r.operation == "gather"]
    assert gathers[0]["input"] == "dtmf speech"
    assert gathers[0]["speechLocale"] == "en-US"
    assert transcript.texts("said") == ["Billing please"]
    assert transcript.reached == ANN.address
