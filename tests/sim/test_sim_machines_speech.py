"""Answering machines (A13) and speech (A14) on the simulator: Bird's verdict on who answered,
the message a machine records, gathers that hear words, and the tags and ``record`` asked for."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from service.sim import CalleeScript, MachineScript, Transcript, speech_input
from service.sim import cli as sim_cli
from service.sim.amd import BEEP_S, AmdSettings, plan_machine
from service.sim.scripts import (
    DEFAULT_GREETING,
    AgentScript,
    CalleeSpec,
    check_inputs,
    parse_call_spec,
    parse_callee_spec,
    parse_inputs,
    speaking_seconds,
)
from service.sim.transcript import AMD, BEEP, MACHINE_RECORDED, SAID
from tests.sim.harness import (
    AGENT,
    IVR,
    WAIT_S,
    MakePeer,
    Peer,
    Received,
    assert_deliveries_sound,
    script,
    set_keys,
)
from tests.sim.test_sim_control import control

MACHINE = "+31687650000"
PERSON = "+31687650001"
GREETING = "Hi, you've reached Sam. Please leave a message after the tone."
MESSAGE = "This is Dr. Jones's office: your appointment is tomorrow at ten."
BEEP_MODE = {"enabled": True, "ifMachineNotifyAfter": "beep"}


def machine_peer(make_peer: MakePeer, **machine: Any) -> Any:
    """A simulator whose callee :data:`MACHINE` is an answering machine (``machine``: its
    :class:`MachineScript` fields; long messages unless said, so tests end the call)."""
    fields: dict[str, Any] = {"greeting": GREETING, "greeting_s": 4.0, "max_message_s": 600.0}
    fields.update(machine)
    return make_peer(callees={MACHINE: CalleeScript(machine=MachineScript(**fields))})


async def create(peer: Peer, to: str, **body: Any) -> str:
    """``POST /calls`` to ``to`` (202 expected): the new call's id."""
    response = await peer.http.post(peer.calls_url, json={"to": to, "from": IVR, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def verdict(peer: Peer, call_id: str) -> Received:
    """The first delivery of the call that carries ``amdResult``."""
    return await peer.receiver.wait_for(
        lambda r: r.call_id == call_id and "amdResult" in r.call, f"with amdResult for {call_id}"
    )


def assert_verdict_then_always(peer: Peer, call_id: str, expected: dict[str, str]) -> None:
    """No delivery of the call carries ``amdResult`` before its verdict, a delivery of its own
    (status unchanged, no command, a new ``updatedAt``), and every one after carries it."""
    deliveries = peer.receiver.for_call(call_id)
    first = next(i for i, r in enumerate(deliveries) if "amdResult" in r.call)
    assert first > 0
    assert all("amdResult" not in r.call for r in deliveries[:first])
    assert all(r.call.get("amdResult") == expected for r in deliveries[first:])
    decided = deliveries[first]
    assert decided.command is None
    assert decided.status == deliveries[first - 1].status == "ongoing"
    assert decided.call["updatedAt"] > deliveries[first - 1].call["updatedAt"]
    assert len(deliveries) > first + 1, "later deliveries carry it too"
    assert_deliveries_sound(peer.receiver)


def entry_at(transcript: Transcript, kind: str) -> float:
    """When the transcript's (only) entry of ``kind`` happened."""
    found = [entry.at for entry in transcript.entries if entry.kind == kind]
    assert len(found) == 1, (kind, transcript.render())
    return found[0]


# ----------------------------------------------------------------- answering machines


async def test_a_machine_with_notify_after_beep_is_told_after_the_beep_and_records(
    make_peer: MakePeer,
) -> None:
    peer = await machine_peer(make_peer)
    call_id = await create(peer, MACHINE, amdSettings=BEEP_MODE)
    decided = await verdict(peer, call_id)
    expected = {"result": "machine", "speech": GREETING, "locale": "en-US"}
    assert decided.call["amdResult"] == expected
    assert decided.status == "ongoing"
    got = await peer.http.get(f"/{call_id}")
    assert got.json()["amdResult"] == expected

    done = await peer.run(call_id, "say", {"text": MESSAGE})
    assert done["status"] == "completed"
    transcript = await peer.hang_up(call_id)

    assert transcript.machine
    assert transcript.amd_result == expected
    assert transcript.machine_recorded == [MESSAGE]
    assert transcript.texts(SAID) == [GREETING]
    assert transcript.texts(MACHINE_RECORDED) == [MESSAGE]
    answered, beeped = entry_at(transcript, "answered"), entry_at(transcript, BEEP)
    assert beeped >= answered + 4.0 + BEEP_S
    assert entry_at(transcript, AMD) >= beeped
    assert transcript.kinds().index(BEEP) < transcript.kinds().index(AMD)
    assert transcript.texts(AMD) == [f'machine, after the beep: "{GREETING}"']
    assert f'the answering machine recorded: "{MESSAGE}"' in transcript.render()
    assert transcript.fits  # a machine is held to no inputs
    assert_verdict_then_always(peer, call_id, expected)
    assert peer.receiver.for_call(call_id)[-1].status == "completed"


async def test_with_word_count_the_verdict_comes_early_and_what_is_said_before_the_beep_is_lost(
    make_peer: MakePeer,
) -> None:
    """``wordCount`` (the default): the verdict after the first words, long before the beep;
    a message begun then reaches the tape only in part, one said after the beep in full."""
    greeting = "one two three four five six seven eight nine ten"
    peer = await machine_peer(make_peer, greeting=greeting, greeting_s=40.0)
    call_id = await create(peer, MACHINE, amdSettings={"enabled": True, "wordCount": 3})
    decided = await verdict(peer, call_id)
    expected = {"result": "machine", "speech": "one two three", "locale": "en-US"}
    assert decided.call["amdResult"] == expected
    early = "Hello, this is a message spoken over the greeting. " * 12  # about 37 s long
    await peer.send(call_id, "say", {"text": early})
    await peer.sim.wait_for(call_id, BEEP, timeout_s=WAIT_S)
    await peer.sim.wait_for(call_id, "note", "recorded only the end of", timeout_s=WAIT_S)
    await peer.run(call_id, "say", {"text": MESSAGE})
    transcript = await peer.hang_up(call_id)

    assert transcript.machine_recorded == [MESSAGE]
    assert entry_at(transcript, AMD) < entry_at(transcript, BEEP)
    assert entry_at(transcript, AMD) >= entry_at(transcript, "answered") + 12.0
    assert transcript.texts(AMD) == ['machine, before the beep: "one two three"']
    assert_verdict_then_always(peer, call_id, expected)


@pytest.mark.parametrize("settings", [None, {"enabled": False}, {"ifMachineNotifyAfter": "beep"}])
async def test_without_detection_a_machine_is_never_announced(
    make_peer: MakePeer, settings: dict[str, Any] | None
) -> None:
    peer = await machine_peer(make_peer, greeting_s=1.0)
    body = {} if settings is None else {"amdSettings": settings}
    call_id = await create(peer, MACHINE, **body)
    await peer.sim.wait_for(call_id, BEEP, timeout_s=WAIT_S)
    await peer.run(call_id, "say", {"text": MESSAGE})
    transcript = await peer.hang_up(call_id)
    assert transcript.machine
    assert transcript.machine_recorded == [MESSAGE]  # it records all the same
    assert transcript.amd_result is None
    assert AMD not in transcript.kinds()
    deliveries = peer.receiver.for_call(call_id)
    assert [r.status for r in deliveries if r.command is None] == [
        "starting",
        "ringing",
        "ongoing",
        "completed",
    ]
    assert all("amdResult" not in r.call for r in deliveries)
    assert "amdResult" not in (await peer.http.get(f"/{call_id}")).json()


async def test_a_machine_that_does_not_beep_is_called_a_machine_at_the_beep_timeout(
    make_peer: MakePeer,
) -> None:
    peer = await machine_peer(make_peer, greeting_s=2.0, beep=False)
    settings = {**BEEP_MODE, "beepTimeout": 6, "speechLocale": "en-GB"}
    call_id = await create(peer, MACHINE, amdSettings=settings)
    decided = await verdict(peer, call_id)
    expected = {"result": "machine", "speech": GREETING, "locale": "en-GB"}
    assert decided.call["amdResult"] == expected
    transcript = await peer.hang_up(call_id)
    assert BEEP not in transcript.kinds()
    assert transcript.texts(AMD) == [f'machine, no beep heard: "{GREETING}"']
    assert entry_at(transcript, AMD) >= entry_at(transcript, "answered") + 6.0
    assert_verdict_then_always(peer, call_id, expected)


async def test_a_machine_never_answers_a_gather_and_hangs_up_at_its_longest_message(
    make_peer: MakePeer,
) -> None:
    peer = await machine_peer(make_peer, greeting_s=1.0, max_message_s=30.0)
    call_id = await create(peer, MACHINE, amdSettings=BEEP_MODE)
    await verdict(peer, call_id)
    for options in ({"maxNumKeys": 1}, {"input": "dtmf speech", "say": {"text": "Say yes."}}):
        done = await peer.run(call_id, "gather", {"timeout": 2, **options})
        assert (done["status"], done["result"]) == ("completed", {"keys": "", "speech": ""})
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert (transcript.final_status, transcript.hangup_source) == ("completed", "callee")
    assert transcript.texts("caller-hung-up") == [
        "the callee hung up when its answering machine had recorded 30 s"
    ]
    assert transcript.machine_recorded == ["Say yes."]
    assert "pressed" not in transcript.kinds()
    assert transcript.texts(SAID) == [GREETING]
    assert transcript.fits
    assert transcript.misfits() == []
    last = peer.receiver.for_call(call_id)[-1]
    assert (last.status, last.call["hangupSource"]) == ("completed", "callee")
    assert last.call["amdResult"]["result"] == "machine"


async def test_a_person_is_called_human_shortly_after_answering(make_peer: MakePeer) -> None:
    peer = await make_peer(callees={PERSON: CalleeScript(inputs=("4",))})
    settings = {"enabled": True, "speechLocale": "en-GB", "ifMachineNotifyAfter": "beep"}
    call_id = await create(peer, PERSON, amdSettings=settings)
    decided = await verdict(peer, call_id)
    expected = {"result": "human", "speech": "hello", "locale": "en-GB"}
    assert decided.call["amdResult"] == expected
    done = await peer.run(call_id, "gather", {"maxNumKeys": 1})
    assert done["result"] == {"keys": "4", "speech": ""}
    transcript = await peer.hang_up(call_id)
    assert not transcript.machine
    assert transcript.amd_result == expected
    assert transcript.machine_recorded == []
    answered = entry_at(transcript, "answered")
    assert answered + 1.0 <= entry_at(transcript, AMD) < answered + 15.0
    assert_verdict_then_always(peer, call_id, expected)


async def test_a_bridge_with_detection_tells_the_agent_s_leg_is_human(make_peer: MakePeer) -> None:
    peer = await make_peer(agents={AGENT: AgentScript(answer_after_s=1.0, talk_s=30.0)})
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    url = f"{peer.receiver.base_url}/webhooks/legs/{call_id}"
    _, leg_id = await peer.bridge(
        call_id, AGENT, notification={"url": url}, amdSettings={"enabled": True}, record=True
    )
    decided = await verdict(peer, leg_id)
    assert decided.call["parentId"] == call_id
    assert decided.path == f"/webhooks/legs/{call_id}"
    expected = {"result": "human", "speech": "hello", "locale": "en-US"}
    assert decided.call["amdResult"] == expected
    transcript = await peer.hang_up(call_id)
    assert all("amdResult" not in r.call for r in peer.receiver.for_call(call_id))
    assert transcript.amd_result is None  # the caller's call was not the one judged
    assert transcript.texts(AMD) == [f'(agent {AGENT}) human: "hello"']
    assert [offer.record for offer in transcript.offers] == [True]
    assert transcript.to_dict()["offers"][0]["record"] is True
    assert_verdict_then_always(peer, leg_id, expected)


# --------------------------------------------------------------------------- speech


async def test_gathers_hear_what_their_input_listens_for(peer: Peer) -> None:
    inputs = ("say:billing please", "say:sales", "1", "say:support", "2#")
    call_id = await peer.inbound(script(*inputs))
    await peer.answer(call_id)
    prompt = {"text": "Say what you need."}
    results = [
        (await peer.run(call_id, "gather", {"timeout": 2, **options}))["result"]
        for options in (
            {"input": "speech", "speechLocale": "en-GB", "say": prompt},
            {"maxNumKeys": 1},  # dtmf by default: words are not heard
            {"input": "speech"},  # keys are not heard
            {"input": "dtmf speech"},
            {"input": "dtmf speech", "endKey": "#"},
        )
    ]
    assert results == [
        {"keys": "", "speech": "billing please"},
        {"keys": "", "speech": ""},
        {"keys": "", "speech": ""},
        {"keys": "", "speech": "support"},
        {"keys": "2", "speech": ""},
    ]
    transcript = await peer.hang_up(call_id)
    assert transcript.texts(SAID) == ["billing please", "sales", "support"]
    assert transcript.texts("pressed") == ["1", "2#"]
    notes = transcript.texts("note")
    assert 'not heard: the gather listens for keys only ("sales")' in notes
    assert "not heard: the gather listens for speech only (1)" in notes
    assert transcript.fits
    assert_deliveries_sound(peer.receiver)


async def test_a_silent_caller_at_a_speech_gather_says_nothing(peer: Peer) -> None:
    call_id = await peer.inbound(script("_"))
    await peer.answer(call_id)
    done = await peer.run(call_id, "gather", {"input": "speech", "timeout": 2})
    assert done["result"] == {"keys": "", "speech": ""}
    transcript = await peer.hang_up(call_id)
    assert transcript.texts("silence") == ["said nothing within 2 s"]


async def test_a_call_flow_can_branch_on_what_was_said(peer: Peer) -> None:
    call_id = await peer.inbound(script(speech_input("yes")))
    await peer.answer(call_id)
    flow = [
        {"command": "gather", "options": {"input": "speech", "say": {"text": "Yes or no?"}}},
        {
            "command": "say",
            "options": {"text": "You said yes."},
            "conditions": [{"variable": "speech", "operator": "eq", "value": "yes"}],
        },
        {
            "command": "say",
            "options": {"text": "You said no."},
            "conditions": [{"variable": "speech", "operator": "eq", "value": "no"}],
        },
    ]
    patched = await peer.http.patch(f"/{call_id}", json={"callFlow": flow})
    assert patched.status_code == 202, patched.text
    await peer.sim.wait_for(call_id, "heard", "You said yes.", timeout_s=WAIT_S)
    transcript = await peer.hang_up(call_id)
    assert transcript.texts("heard") == ["Yes or no?", "You said yes."]


@pytest.mark.parametrize("where", ["gather", "callFlow", "createCall"])
async def test_a_gather_in_a_locale_bird_does_not_hear_is_refused(peer: Peer, where: str) -> None:
    gather = {"input": "speech", "speechLocale": "fr-FR", "say": {"text": "Dites oui."}}
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    flow = [{"command": "gather", "options": gather}]
    if where == "gather":
        response = await peer.send(call_id, "gather", gather)
        path = "/speechLocale"
    elif where == "callFlow":
        response = await peer.http.patch(f"/{call_id}", json={"callFlow": flow})
        path = "/callFlow/0/options/speechLocale"
    else:
        response = await peer.http.post(peer.calls_url, json={"to": PERSON, "callFlow": flow})
        path = "/callFlow/0/options/speechLocale"
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert error["message"].startswith("invalid ")
    assert any(
        problem.startswith(f"{path}: 'fr-FR' is not one of")
        for problem in error["details"]["errors"]
    ), error
    assert peer.sim.requests[-1].rejected
    transcript = await peer.hang_up(call_id)
    assert "heard" not in transcript.kinds()  # nothing ran
    assert len(peer.sim.calls) == 1  # and no call was created


async def test_a_caller_placed_on_the_control_endpoint_can_speak(peer: Peer) -> None:
    async with control(peer) as http:
        placed = await http.post(
            "/sim/calls", json={"from": "+31612340000", "to": IVR, "keys": "say:billing please"}
        )
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["id"]
        await peer.status(call_id, "ringing")
        await peer.answer(call_id)
        done = await peer.run(call_id, "gather", {"input": "speech"})
        assert done["result"] == {"keys": "", "speech": "billing please"}
        refused = await http.post("/sim/calls", json={"from": "+316", "to": IVR, "keys": "say:"})
        assert refused.status_code == 422
        assert refused.json() == {"error": "script input 'say:' says nothing: say:TEXT"}
    await peer.hang_up(call_id)


# ------------------------------------------------------------------ tags and record


async def test_tags_and_record_of_a_created_call_are_kept(peer: Peer) -> None:
    call_id = await create(peer, PERSON, tags=["Reminder", "dental-2026"], record=True)
    await peer.status(call_id, "ongoing")
    transcript = await peer.hang_up(call_id)
    assert transcript.tags == ["reminder", "dental-2026"]
    assert transcript.record
    assert "  created with: tags reminder, dental-2026; record" in transcript.render()
    assert all(
        r.call["tags"] == ["reminder", "dental-2026"] for r in peer.receiver.for_call(call_id)
    )
    async with control(peer) as http:
        shown = (await http.get(f"/sim/calls/{call_id}")).json()
    assert (shown["tags"], shown["record"]) == (["reminder", "dental-2026"], True)
    assert Transcript.from_dict(shown).tags == ["reminder", "dental-2026"]

    plain = await create(peer, PERSON)
    await peer.status(plain, "ongoing")
    untagged = await peer.hang_up(plain)
    assert (untagged.tags, untagged.record) == ([], False)
    assert "created with" not in untagged.render()

    for tags in (["x"] * 11, ["x" * 51], [""]):
        refused = await peer.http.post(peer.calls_url, json={"to": PERSON, "tags": tags})
        assert refused.status_code == 422, tags
        assert refused.json()["details"]["errors"][0].startswith("/tags")


# -------------------------------------------------------- control endpoint and CLI


async def test_a_machine_scripted_on_the_control_endpoint_shows_its_verdict_and_message(
    peer: Peer,
) -> None:
    async with control(peer) as http:
        body = {"answer": "answer:1", "machine": {"greeting": "Sam here.", "greeting_s": 1}}
        scripted = await http.put(f"/sim/callees/{MACHINE}", json=body)
        assert scripted.status_code == 200, scripted.text
        assert scripted.json()["machine"] == {
            "greeting": "Sam here.",
            "greeting_s": 1.0,
            "beep": True,
            "max_message_s": 30.0,
        }
        call_id = await create(peer, MACHINE, amdSettings=BEEP_MODE, tags=["callback"])
        await verdict(peer, call_id)
        await peer.run(call_id, "say", {"text": MESSAGE})
        await peer.hang_up(call_id)
        shown = (await http.get(f"/sim/calls/{call_id}")).json()
        refused = await http.put(f"/sim/callees/{MACHINE}", json={"machine": True, "keys": "1"})
        wrong = await http.put(f"/sim/callees/{MACHINE}", json={"machine": {"beep": "yes"}})
    assert shown["script"] == "answering machine"
    assert shown["machine"] is True
    assert shown["amdResult"] == {"result": "machine", "speech": "Sam here.", "locale": "en-US"}
    assert shown["machineRecorded"] == [MESSAGE]
    assert shown["tags"] == ["callback"]
    assert shown["fits"] is True
    assert (refused.status_code, wrong.status_code) == (422, 422)
    assert "an answering machine presses no keys" in refused.json()["error"]
    assert wrong.json()["error"] == "machine: beep must be true or false"


def test_ivr_sim_callee_can_be_an_answering_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--webhook-url",
            "http://127.0.0.1:1/hook",
            "--callee",
            f"{MACHINE}=machine",
            "--callee",
            f"{PERSON}=answer:4;machine:Sam here, leave a message: thanks;no-beep",
            "--call",
            f"+31612345678>{IVR}:say:billing please,1",
        ]
    )
    settings = sim_cli._settings(args)
    assert settings.callees[MACHINE].machine == MachineScript()
    later = settings.callees[PERSON]
    assert later.machine == MachineScript("Sam here, leave a message: thanks", beep=False)
    assert later.answer.answer_after_s == 4.0
    assert settings.calls[0].inputs == ("say:billing please", "1")
    assert ";machine[:GREETING]" in parser.format_help()


# ------------------------------------------------------------------------ the parts


def test_script_inputs_may_be_spoken() -> None:
    check_inputs(("say:billing please", "1", "_", "hangup", speech_input("yes")))
    assert parse_inputs("say:billing please, 2#,_") == ("say:billing please", "2#", "_")
    assert parse_call_spec("+316>+3197:say:sales,9").inputs == ("say:sales", "9")
    assert parse_call_spec("+316>sip:ivr@example.com:say:hi").inputs == ("say:hi",)
    for bad in ("say:", "say:   "):
        with pytest.raises(ValueError, match="says nothing"):
            check_inputs((bad,))
    with pytest.raises(ValueError, match=r"not keys \(0-9, \*, #\), say:TEXT"):
        check_inputs(("sag:hi",))
    assert speaking_seconds("billing please") == pytest.approx(0.8)


def test_callee_specs_of_answering_machines() -> None:
    assert parse_callee_spec(f"{MACHINE}=machine").machine == MachineScript()
    assert parse_callee_spec(f"{MACHINE}=machine:").machine == MachineScript(DEFAULT_GREETING)
    spec = parse_callee_spec(f"{MACHINE}=no-answer,answer:3;machine:Hi, it's Al;no-beep")
    assert spec.machine == MachineScript("Hi, it's Al", beep=False)
    callee = spec.script()
    assert callee.name == "answering machine"
    assert [offer.behavior for offer in callee.answer.offers] == ["no-answer", "answer"]
    assert CalleeSpec.from_json(MACHINE, spec.to_json()) == spec
    assert parse_callee_spec(f"{PERSON}=keys:say:yes,1").keys == ("say:yes", "1")
    for bad, message in (
        (f"{MACHINE}=no-beep", "no-beep is for an answering machine"),
        (f"{MACHINE}=machine;keys:1", "presses no keys"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_callee_spec(bad)
    with pytest.raises(ValueError, match="no inputs"):
        CalleeScript(machine=MachineScript(), inputs=("say:hello",))
    with pytest.raises(ValueError, match="greeting_s"):
        MachineScript(greeting_s=-1)
    for body, message in (
        ({"machine": "yes"}, "machine must be true, false, null or an object"),
        ({"machine": {"tone": 1}}, "machine: unknown fields: tone"),
        ({"machine": {"greeting_s": "4"}}, "machine: greeting_s must be a number"),
    ):
        with pytest.raises(ValueError, match=message):
            CalleeSpec.from_json(MACHINE, body)
    assert CalleeSpec.from_json(MACHINE, {"machine": False}).machine is None


def test_amd_settings_are_read_with_bird_s_defaults() -> None:
    assert AmdSettings.of({}) is None
    assert AmdSettings.of({"amdSettings": {"enabled": False}}) is None
    assert AmdSettings.of({"amdSettings": {"wordCount": 2}}) is None
    assert AmdSettings.of({"amdSettings": {"enabled": True}}) == AmdSettings()
    read = AmdSettings.of(
        {
            "amdSettings": {
                "enabled": True,
                "wordCount": 2,
                "beepTimeout": 10,
                "speechLocale": "de-DE",
                "ifMachineNotifyAfter": "beep",
            }
        }
    )
    assert read == AmdSettings(2.0, 3.0, 10.0, "de-DE", "beep")
    odd = AmdSettings.of({"amdSettings": {"enabled": True, "ifMachineNotifyAfter": "tone"}})
    assert odd is not None
    assert odd.notify_after == "wordCount"


def test_when_a_machine_greets_beeps_records_and_is_judged() -> None:
    machine = MachineScript("a b c d e f g h", greeting_s=8.0, max_message_s=20.0)
    beep = plan_machine(machine, AmdSettings(notify_after="beep"))
    assert (beep.greeting_s, beep.beep_at_s, beep.tape_from_s) == (8.0, 8.0, 8.0 + BEEP_S)
    assert (beep.verdict_at_s, beep.verdict_speech, beep.after_beep) == (
        8.5,
        "a b c d e f g h",
        True,
    )
    assert beep.hangs_up_at_s == 28.5
    words = plan_machine(machine, AmdSettings(word_count=3))
    assert (words.verdict_at_s, words.verdict_speech, words.after_beep) == (3.0, "a b c", False)
    capped = plan_machine(machine, AmdSettings(notify_after="beep", beep_timeout_s=4.0))
    assert (capped.verdict_at_s, capped.verdict_speech, capped.after_beep) == (
        4.0,
        "a b c d",
        False,
    )
    off = plan_machine(machine, None)
    assert (off.verdict_at_s, off.tape_from_s) == (None, 8.5)
    silent = plan_machine(MachineScript("", beep=False), AmdSettings())
    assert (silent.verdict_at_s, silent.verdict_speech, silent.beep_at_s) == (3.0, "", None)
    assert MachineScript("one two three").greeting_seconds == pytest.approx(1.2)
