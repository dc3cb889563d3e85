"""The simulator as a peer sees it: real HTTP on loopback, signed deliveries to a receiver."""

from __future__ import annotations

import argparse
import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.sim import HANGUP, SILENCE, AgentScript, CalleeScript, CallerScript, Transcript
from service.sim import cli as sim_cli
from service.sim.scripts import parse_agent_spec
from tests.sim.harness import (
    ACCESS_KEY,
    AGENT,
    CALLER,
    CHANNEL,
    IVR,
    SIGNING_KEY,
    WAIT_S,
    WORKSPACE,
    MakePeer,
    Peer,
    Received,
    Receiver,
    assert_deliveries_sound,
    assert_valid_call,
    assert_valid_response,
    channel_client,
    free_port,
    script,
    set_real_keys,
)

# --------------------------------------------------------------------------- tests


async def test_inbound_call_is_delivered_signed_and_walks_its_statuses(peer: Peer) -> None:
    call_id = await peer.sim.place_inbound_call(script())
    first = await peer.receiver.wait_for(lambda r: r.call_id == call_id, "of the new call")
    assert first.path == "/webhooks/bird"
    assert first.query == "tenant=demo"
    assert first.signature_error is None
    assert abs(int(first.timestamp) - time.time()) < 60
    assert first.envelope["event"] == "voice.inbound"
    assert first.call["status"] == "starting"
    assert first.call["direction"] == "incoming"
    assert first.call["type"] == "pstn"
    assert first.call["from"] == CALLER
    assert first.call["to"] == IVR
    assert first.call["channelId"] == CHANNEL
    await peer.status(call_id, "ringing")

    got = await peer.http.get(f"/{call_id}")
    assert got.status_code == 200
    assert got.json()["status"] == "ringing"
    assert_valid_call(got.json())

    response = await peer.send(call_id, "answer")
    assert response.status_code == 202
    answer = response.json()
    assert_valid_response("answerCall", answer)
    assert set(answer) == {"id", "callId", "callFlowId", "command", "status"}
    assert answer["callId"] == call_id
    assert answer["callFlowId"] is None
    assert (answer["command"], answer["status"]) == ("answer", "queued")
    done = await peer.done(call_id, answer["id"])
    assert done == {
        "id": answer["id"],
        "callId": call_id,
        "callFlowId": None,
        "command": "answer",
        "status": "completed",
        "result": {},
    }
    statuses = [(r.status, (r.command or {}).get("command")) for r in peer.receiver.received]
    assert statuses == [
        ("starting", None),
        ("ringing", None),
        ("ongoing", None),
        ("ongoing", "answer"),
    ]

    transcript = await peer.hang_up(call_id)
    final = await peer.status(call_id, "completed")
    assert final.call["hangupSource"] == "api"
    assert final.call["hangupCauseCode"] == 16
    assert "endedAt" in final.call
    assert transcript.ended
    assert (transcript.final_status, transcript.hangup_source) == ("completed", "api")
    assert transcript.kinds() == ["ringing", "answered", "ended"]
    assert_deliveries_sound(peer.receiver)
    assert all(d.ok and d.kind == "original" for d in peer.sim.deliveries)
    assert all(r.accepted and r.problems == () for r in peer.sim.requests)


async def test_invalid_bodies_get_422_with_the_schema_problems(peer: Peer) -> None:
    call_id = await peer.inbound(script())
    await peer.answer(call_id)

    response = await peer.send(call_id, "say", {"txt": "hello"})
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "validation_error"
    assert error["message"]
    problems = error["details"]["errors"]
    assert any("'text' is a required property" in p for p in problems)
    assert any("'txt'" in p for p in problems)
    recorded = peer.sim.requests[-1]
    assert (recorded.operation, recorded.status, recorded.call_id) == ("say", 422, call_id)
    assert recorded.problems == tuple(problems)
    assert recorded.body == {"txt": "hello"}

    bad_gather = await peer.send(call_id, "gather", {"endKey": "x", "maxNumKeys": "2"})
    assert bad_gather.status_code == 422
    assert len(bad_gather.json()["details"]["errors"]) == 2

    bad_create = await peer.http.post(peer.calls_url, json={"to": AGENT, "ringTimeout": 2})
    assert bad_create.status_code == 422
    assert bad_create.json()["details"]["errors"][0].startswith("/ringTimeout:")

    malformed = await peer.http.post(
        f"/{call_id}/say", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "invalid_json"

    bad_flow = await peer.http.patch(
        f"/{call_id}", json={"callFlow": [{"command": "say", "options": {"txt": "x"}}]}
    )
    assert bad_flow.status_code == 422
    assert bad_flow.json()["code"] == "validation_error"

    # None of it changed the call.
    await peer.hang_up(call_id)
    assert [r.status for r in peer.receiver.for_call(call_id)][-1] == "completed"


async def test_the_access_key_is_required(peer: Peer) -> None:
    call_id = await peer.inbound(script())
    wrong = await peer.http.post(
        f"/{call_id}/answer", headers={"Authorization": "AccessKey not-the-key"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "unauthorized"
    bearer = await peer.http.get(f"/{call_id}", headers={"Authorization": f"Bearer {ACCESS_KEY}"})
    assert bearer.status_code == 401
    anonymous = httpx.AsyncClient(base_url=str(peer.http.base_url), trust_env=False)
    async with anonymous:
        missing = await anonymous.get(f"/{call_id}")
    assert missing.status_code == 401
    assert [r.status for r in peer.sim.requests] == [401, 401, 401]
    assert (await peer.http.get(f"/{call_id}")).json()["status"] == "ringing"
    await peer.hang_up(call_id)


async def test_unknown_calls_workspaces_and_channels_are_404(peer: Peer) -> None:
    unknown = str(uuid.uuid4())
    assert (await peer.http.get(f"/{unknown}")).status_code == 404
    missing = await peer.send(unknown, "say", {"text": "hi"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    base = str(peer.http.base_url).split("/workspaces/")[0]
    other_workspace = f"{base}/workspaces/{unknown}/channels/{CHANNEL}/calls"
    assert (await peer.http.post(other_workspace, json={"to": AGENT})).status_code == 404
    other_channel = f"{base}/workspaces/{WORKSPACE}/channels/{unknown}/calls"
    assert (await peer.http.post(other_channel, json={"to": AGENT})).status_code == 404
    call_id = await peer.inbound(script())
    assert (await peer.send(call_id, "dance", {})).status_code == 404
    await peer.hang_up(call_id)


async def test_commands_out_of_state_get_422(peer: Peer) -> None:
    call_id = await peer.inbound(script())
    early = await peer.send(call_id, "say", {"text": "too early"})
    assert early.status_code == 422
    assert early.json()["code"] == "invalid_state"
    await peer.answer(call_id)
    again = await peer.send(call_id, "answer")
    assert again.status_code == 422
    assert again.json()["code"] == "invalid_state"

    await peer.hang_up(call_id)
    for action, body in (("say", {"text": "late"}), ("answer", None), ("hangup", None)):
        late = await peer.send(call_id, action, body)
        assert late.status_code == 422, action
        assert late.json()["code"] == "call_not_active"
        assert late.json()["message"]
    patch = await peer.http.patch(f"/{call_id}", json={"status": "completed"})
    assert patch.status_code == 422
    assert patch.json()["code"] == "call_not_active"
    # After the hang-up: exactly one status delivery, then nothing.
    after = peer.receiver.for_call(call_id)
    assert after[-1].status == "completed"
    assert [r.status for r in after].count("completed") == 1


async def test_gather_delivers_the_keys_pressed(peer: Peer) -> None:
    call_id = await peer.inbound(script("12#", "987"))
    await peer.answer(call_id)
    prompt = {"text": "Enter your code, then hash."}
    first = await peer.run(call_id, "gather", {"endKey": "#", "timeout": 5, "say": prompt})
    assert first["status"] == "completed"
    assert first["result"] == {"keys": "12", "speech": ""}
    second = await peer.run(
        call_id,
        "gather",
        {"maxNumKeys": 2, "playback": {"media": ["https://example.com/menu.wav"]}},
    )
    assert second["result"] == {"keys": "98", "speech": ""}
    transcript = await peer.hang_up(call_id)
    assert transcript.texts("heard") == [prompt["text"], "audio: https://example.com/menu.wav"]
    assert transcript.texts("pressed") == ["12#", "98"]
    assert_deliveries_sound(peer.receiver)


async def test_silence_gives_empty_keys(peer: Peer) -> None:
    call_id = await peer.inbound(script(SILENCE))
    await peer.answer(call_id)
    silent = await peer.run(call_id, "gather", {"timeout": 3, "say": {"text": "Press 1."}})
    assert silent["result"] == {"keys": "", "speech": ""}
    # Inputs used up: the caller stays silent.
    again = await peer.run(call_id, "gather", {"maxNumKeys": 1})
    assert again["result"] == {"keys": "", "speech": ""}
    transcript = await peer.hang_up(call_id)
    assert transcript.kinds().count("silence") == 2
    assert "pressed" not in transcript.kinds()


async def test_bridge_to_an_agent_who_does_not_answer(make_peer: MakePeer) -> None:
    peer = await make_peer(agents={AGENT: AgentScript(behavior="no-answer")})
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    leg_url = f"{peer.receiver.base_url}/webhooks/legs/{call_id}"
    response = await peer.send(
        call_id,
        "bridge",
        {"to": AGENT, "from": IVR, "ringTimeout": 5, "notification": {"url": leg_url}},
    )
    assert response.status_code == 202
    body = response.json()
    assert_valid_response("bridge", body)
    assert set(body) == {"command", "bridgedCall"}
    assert body["command"]["command"] == "bridge"
    leg = body["bridgedCall"]
    assert_valid_call(leg)
    assert (leg["direction"], leg["parentId"], leg["to"]) == ("outgoing", call_id, AGENT)
    assert leg["notification"] == {"url": leg_url}

    done = await peer.done(call_id, body["command"]["id"])
    assert done["status"] == "failed"
    leg_deliveries = [r for r in peer.receiver.received if r.call_id == leg["id"]]
    assert [r.status for r in leg_deliveries] == ["ringing", "no-answer"]
    for item in leg_deliveries:
        assert item.path == f"/webhooks/legs/{call_id}"
        assert item.envelope["event"] == "voice.outbound"
        assert item.call["parentId"] == call_id
    # The caller is still on the line.
    assert (await peer.http.get(f"/{call_id}")).json()["status"] == "ongoing"
    transcript = await peer.hang_up(call_id)
    assert transcript.reached is None
    assert "no-answer" in transcript.kinds()
    assert_deliveries_sound(peer.receiver)


async def test_bridge_answered_then_hangup_after_bridge(make_peer: MakePeer) -> None:
    agents = {AGENT: AgentScript(answer_after_s=1.0, talk_s=2.0)}
    peer = await make_peer(agents=agents)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    response = await peer.send(call_id, "bridge", {"to": AGENT, "hangupAfterBridge": True})
    assert response.status_code == 202
    leg_id = response.json()["bridgedCall"]["id"]
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)

    leg = [r for r in peer.receiver.received if r.call_id == leg_id]
    assert [r.status for r in leg] == ["ringing", "ongoing", "completed"]
    assert leg[-1].call["hangupSource"] == "callee"
    assert all(r.envelope["event"] == "voice.outbound" for r in leg)
    assert all(r.path == "/webhooks/bird" for r in leg)  # no notification.url: subscription
    caller = peer.receiver.for_call(call_id)
    assert (caller[-2].command or {}).get("command") == "bridge"
    assert (caller[-2].command or {}).get("status") == "completed"
    assert (caller[-1].status, caller[-1].call["hangupSource"]) == ("completed", "callee")
    assert transcript.reached == AGENT
    assert transcript.hangup_source == "callee"
    assert transcript.kinds()[-4:] == ["transferring", "reached", "agent-hung-up", "ended"]
    assert_deliveries_sound(peer.receiver)


async def test_caller_hangs_up_during_a_gather_prompt(peer: Peer) -> None:
    call_id = await peer.inbound(script(HANGUP))
    await peer.answer(call_id)
    flow = [
        {"command": "gather", "options": {"say": {"text": "Please choose an option."}}},
        {"command": "say", "options": {"text": "never heard"}},
    ]
    response = await peer.http.patch(f"/{call_id}", json={"callFlow": flow})
    assert response.status_code == 202
    hung_up = await peer.status(call_id, "completed")
    assert hung_up.call["hangupSource"] == "caller"
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert transcript.hangup_source == "caller"
    assert transcript.texts("heard") == ["Please choose an option."]
    assert "caller-hung-up" in transcript.kinds()
    deliveries = peer.receiver.for_call(call_id)
    assert deliveries[-1] is hung_up
    assert not any((r.command or {}).get("command") in ("gather", "say") for r in deliveries)
    late = await peer.send(call_id, "say", {"text": "too late"})
    assert late.status_code == 422
    assert late.json()["code"] == "call_not_active"


async def test_caller_hangs_up_after_a_while_whatever_runs(peer: Peer) -> None:
    call_id = await peer.inbound(script(hangup_after_s=3.0))
    long_text = "This message is long enough to outlast the caller's patience. " * 3
    flow = [{"command": "answer"}, {"command": "say", "options": {"text": long_text}}]
    response = await peer.http.patch(f"/{call_id}", json={"callFlow": flow})
    assert response.status_code == 202
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert (transcript.final_status, transcript.hangup_source) == ("completed", "caller")
    commands = [r.command for r in peer.receiver.for_call(call_id) if r.command]
    assert [c["command"] for c in commands] == ["answer"]


async def test_record_gives_the_recording_id_in_the_answer_and_the_result(peer: Peer) -> None:
    call_id = await peer.inbound(script(voicemail_s=4.0))
    await peer.answer(call_id)
    response = await peer.send(call_id, "record", {"maxLength": 60, "beep": True})
    assert response.status_code == 202
    body = response.json()
    assert_valid_response("record", body)
    assert set(body) == {"command", "recordingId"}
    done = await peer.done(call_id, body["command"]["id"])
    assert done["result"] == {"recordingId": body["recordingId"], "duration": 4}
    transcript = await peer.hang_up(call_id)
    assert "(beep)" in transcript.texts("heard")
    assert transcript.kinds().count("recorded") == 1


async def test_call_flow_runs_in_order_with_conditions(peer: Peer) -> None:
    call_id = await peer.inbound(script("2"))
    flow = [
        {"command": "answer"},
        {"command": "gather", "options": {"maxNumKeys": 1, "say": {"text": "1 or 2?"}}},
        {
            "command": "say",
            "options": {"text": "Sales."},
            "conditions": [{"variable": "keys", "operator": "==", "value": "1"}],
        },
        {
            "command": "say",
            "options": {"text": "Support."},
            "conditions": [{"variable": "keys", "operator": "eq", "value": "2"}],
        },
    ]
    response = await peer.http.patch(f"/{call_id}", json={"callFlow": flow})
    assert response.status_code == 202
    call = response.json()
    assert_valid_response("updateCall", call)
    flow_id = call["callFlow"]["id"]
    entries = call["callFlow"]["commands"]
    assert [e["command"] for e in entries] == ["answer", "gather", "say", "say"]
    last = await peer.done(call_id, entries[3]["id"])
    assert last["callFlowId"] == flow_id
    gathered = await peer.done(call_id, entries[1]["id"])
    assert gathered["result"]["keys"] == "2"
    transcript = await peer.hang_up(call_id)
    assert transcript.texts("heard") == ["1 or 2?", "Support."]
    done_ids = {(r.command or {}).get("id") for r in peer.receiver.for_call(call_id)}
    assert entries[2]["id"] not in done_ids  # skipped: its condition did not hold


async def test_outbound_call_reports_to_its_notification_url(make_peer: MakePeer) -> None:
    callee = "+31687654321"
    peer = await make_peer(
        callees={
            callee: CalleeScript(
                name="callback", answer=AgentScript(answer_after_s=25.0), inputs=("5",)
            )
        },
    )
    url = f"{peer.receiver.base_url}/webhooks/outbound"
    response = await peer.http.post(
        peer.calls_url,
        json={"to": callee, "from": IVR, "notification": {"url": url}, "tags": ["Demo"]},
    )
    assert response.status_code == 202
    call = response.json()
    assert_valid_call(call)
    assert_valid_response("createCall", call)
    assert (call["status"], call["direction"], call["tags"]) == ("accepted", "outgoing", ["demo"])
    call_id = call["id"]
    assert (await peer.send(call_id, "say", {"text": "too early"})).status_code == 422
    await peer.status(call_id, "ongoing")
    done = await peer.run(call_id, "gather", {"maxNumKeys": 1})
    assert done["result"]["keys"] == "5"
    patch = await peer.http.patch(f"/{call_id}", json={"status": "completed"})
    assert patch.status_code == 202
    assert patch.json()["status"] == "completed"
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert (transcript.script_name, transcript.hangup_source) == ("callback", "api")
    deliveries = peer.receiver.for_call(call_id)
    assert [r.status for r in deliveries if not r.command] == [
        "starting",
        "ringing",
        "ongoing",
        "completed",
    ]
    assert all(r.path == "/webhooks/outbound" for r in deliveries)
    assert all(r.envelope["event"] == "voice.outbound" for r in deliveries)
    assert_deliveries_sound(peer.receiver)


async def test_outbound_call_to_a_busy_number_and_a_scheduled_one(make_peer: MakePeer) -> None:
    busy = "+31600000001"
    peer = await make_peer(callees={busy: CalleeScript(answer=AgentScript(behavior="busy"))})
    response = await peer.http.post(peer.calls_url, json={"to": busy})
    transcript = await peer.sim.wait_ended(response.json()["id"], WAIT_S)
    assert transcript.final_status == "busy"

    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    scheduled = await peer.http.post(peer.calls_url, json={"to": AGENT, "scheduledFor": later})
    assert scheduled.status_code == 202
    assert scheduled.json()["status"] == "scheduled"
    assert "scheduledFor" in scheduled.json()
    call_id = scheduled.json()["id"]
    await peer.status(call_id, "ongoing")
    transcript = await peer.hang_up(call_id)
    assert transcript.final_status == "completed"
    assert_deliveries_sound(peer.receiver)


async def test_service_that_never_answers_gets_no_answer(make_peer: MakePeer) -> None:
    peer = await make_peer(answer_timeout_s=5.0, answer_timeout_min_real_s=0.0)
    call_id = await peer.sim.place_inbound_call(script())
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert (transcript.final_status, transcript.hangup_source) == ("no-answer", "timeout")
    assert [r.status for r in peer.receiver.for_call(call_id)] == [
        "starting",
        "ringing",
        "no-answer",
    ]


async def test_duplicate_deliveries_send_everything_twice(make_peer: MakePeer) -> None:
    peer = await make_peer(duplicate_deliveries=True)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    await peer.hang_up(call_id)
    received = peer.receiver.for_call(call_id)
    assert len(received) == 2 * 5  # starting, ringing, ongoing, answer done, completed
    for original, duplicate in zip(received[::2], received[1::2], strict=True):
        assert original.envelope == duplicate.envelope
        assert original.timestamp == duplicate.timestamp
        assert original.request_id != duplicate.request_id
        assert duplicate.signature_error is None
    kinds = [d.kind for d in peer.sim.deliveries]
    assert kinds == ["original", "duplicate"] * 5


async def test_replay_stale_resends_the_previous_delivery(make_peer: MakePeer) -> None:
    peer = await make_peer(replay_stale=True)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    await peer.hang_up(call_id)
    statuses = [r.status for r in peer.receiver.for_call(call_id) if r.command is None]
    assert statuses[:4] == ["starting", "ringing", "starting", "ongoing"]
    updated = [r.call["updatedAt"] for r in peer.receiver.for_call(call_id)]
    assert updated != sorted(updated)  # out of order on arrival ...
    assert len(set(updated)) == 5  # ... but updatedAt still orders the 5 distinct events
    assert all(r.signature_error is None for r in peer.receiver.received)


async def test_failed_deliveries_are_retried_with_the_same_timestamp(peer: Peer) -> None:
    peer.receiver.fail_next = 2
    call_id = await peer.inbound(script())
    first = [d for d in peer.sim.deliveries if d.call_id == call_id][:3]
    assert [(d.attempt, d.status_code) for d in first] == [(1, 503), (2, 503), (3, 204)]
    assert len({(d.timestamp, d.request_id) for d in first}) == 1
    bodies = [r.envelope for r in peer.receiver.received[:3]]
    assert bodies[0] == bodies[1] == bodies[2]
    assert peer.receiver.received[0].timestamp == peer.receiver.received[2].timestamp
    await peer.answer(call_id)
    await peer.hang_up(call_id)


async def test_deliveries_to_a_dead_url_give_up_and_the_call_still_settles(
    make_peer: MakePeer,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    peer = await make_peer(max_attempts=2, answer_timeout_s=1.0, answer_timeout_min_real_s=0.0)
    peer.sim.subscription_url = dead
    call_id = await peer.sim.place_inbound_call(script())
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert transcript.final_status == "no-answer"
    attempts = [d for d in peer.sim.deliveries if d.call_id == call_id]
    assert len(attempts) == 3 * 2
    assert all(d.error and not d.ok for d in attempts)


async def test_wait_ended_times_out_with_a_clear_message(peer: Peer) -> None:
    call_id = await peer.inbound(script())
    with pytest.raises(TimeoutError, match=r"has not ended within 0.05 s: status ringing"):
        await peer.sim.wait_ended(call_id, 0.05)
    await peer.hang_up(call_id)


# ------------------------------------------------------------------------------ CLI


async def test_cli_places_calls_and_prints_transcripts(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    async with channel_client(port) as http:

        async def service(item: Received) -> None:
            """A tiny IVR: answer, ask for a key, read it back, hang up."""
            command = item.command or {}
            call = f"/{item.call_id}"
            if item.status == "ringing" and not command:
                await http.post(f"{call}/answer")
            elif command.get("command") == "answer":
                await http.post(
                    f"{call}/gather", json={"maxNumKeys": 1, "say": {"text": "Press a key."}}
                )
            elif command.get("command") == "gather":
                keys = command["result"]["keys"] or "nothing"
                await http.post(f"{call}/say", json={"text": f"You pressed {keys}."})
            elif command.get("command") == "say":
                await http.post(f"{call}/hangup")

        receiver.react = service
        monkeypatch.setenv("BIRD_SIGNING_KEY", SIGNING_KEY)
        monkeypatch.setenv("BIRD_ACCESS_KEY", ACCESS_KEY)
        monkeypatch.setenv("BIRD_WORKSPACE_ID", WORKSPACE)
        monkeypatch.setenv("BIRD_CHANNEL_ID", CHANNEL)
        parser = argparse.ArgumentParser()
        sim_cli.add_arguments(parser)
        args = parser.parse_args(
            [
                "--port",
                str(port),
                "--webhook-url",
                f"{receiver.base_url}/webhooks/bird",
                "--call",
                f"{CALLER}>{IVR}:4",
                "--call",
                f"{CALLER}>{IVR}:_",
                "--exit-after-calls",
                "--call-timeout",
                "20",
            ]
        )
        status = await sim_cli.run(args)

    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count(f"{CALLER} -> {IVR}") == 2
    assert "You pressed 4." in out
    assert "You pressed nothing." in out
    assert "completed (hangupSource: api)" in out
    assert all(item.signature_error is None for item in receiver.received)


# ------------------------------------------------------- agent routing (A4, A7-A11)

OTHER_AGENT = "+31201234568"
OUTCOME_OF_STATUS = {"no-answer": "missed", "busy": "busy", "failed": "failed"}


def _at(transcript: Transcript, kind: str, contains: str = "") -> float:
    """When the first transcript entry of ``kind`` containing ``contains`` was added."""
    return next(e.at for e in transcript.entries if e.kind == kind and contains in e.text)


def _seconds_between(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


@pytest.mark.parametrize("behavior", ["no-answer", "busy", "failed"])
async def test_an_agent_who_does_not_take_the_call_leaves_the_caller_on_the_line(
    make_peer: MakePeer, behavior: str
) -> None:
    """A9: the missed offer fails the bridge; the caller's leg stays up and takes the
    service's next commands (a prompt, then an offer to another agent)."""
    agents = {
        AGENT: AgentScript(behavior),  # type: ignore[arg-type]
        OTHER_AGENT: AgentScript(answer_after_s=1.0, talk_s=3.0),
    }
    peer = await make_peer(agents=agents)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    url = f"{peer.receiver.base_url}/webhooks/legs?offer=first"
    command_id, leg_id = await peer.bridge(call_id, AGENT, ringTimeout=5, notification={"url": url})
    assert (await peer.done(call_id, command_id))["status"] == "failed"
    await peer.status(leg_id, behavior)
    legs = peer.receiver.for_call(leg_id)
    assert [r.status for r in legs] == ["ringing", behavior]
    assert all((r.path, r.query) == ("/webhooks/legs", "offer=first") for r in legs)  # A10
    assert all(r.call["parentId"] == call_id for r in legs)
    assert await peer.call_status(call_id) == "ongoing"

    said = await peer.run(call_id, "say", {"text": "Let me try someone else."})
    assert said["status"] == "completed"
    second_id, second_leg = await peer.bridge(call_id, OTHER_AGENT)
    assert (await peer.done(call_id, second_id))["status"] == "completed"
    await peer.status(second_leg, "completed")
    assert peer.statuses(second_leg) == ["ringing", "ongoing", "completed"]
    assert await peer.call_status(call_id) == "ongoing"

    transcript = await peer.hang_up(call_id)
    assert transcript.offer_outcomes() == [
        (AGENT, OUTCOME_OF_STATUS[behavior]),
        (OTHER_AGENT, "answered"),
    ]
    assert transcript.reached == OTHER_AGENT
    assert transcript.texts("transferring") == [
        f"to {AGENT} (rings up to 5 s)",
        f"to {OTHER_AGENT} (rings up to 30 s)",
    ]
    assert "Let me try someone else." in transcript.texts("heard")
    assert_deliveries_sound(peer.receiver)
    assert all(r.accepted for r in peer.sim.requests)


async def test_when_a_connected_agent_hangs_up_the_caller_stays_for_the_service(
    make_peer: MakePeer,
) -> None:
    """A9: after the conversation the caller's leg is still up (wrap-up, survey...)."""
    peer = await make_peer(agents={AGENT: AgentScript(answer_after_s=1.0, talk_s=4.0)})
    call_id = await peer.inbound(script("5"))
    await peer.answer(call_id)
    command_id, leg_id = await peer.bridge(call_id, AGENT)
    ended = await peer.status(leg_id, "completed")
    assert ended.call["hangupSource"] == "callee"
    assert ended.call["duration"] >= 4
    assert (await peer.done(call_id, command_id))["status"] == "completed"
    assert peer.statuses(leg_id) == ["ringing", "ongoing", "completed"]
    assert await peer.call_status(call_id) == "ongoing"

    survey = await peer.run(
        call_id, "gather", {"maxNumKeys": 1, "say": {"text": "Rate the call, 1 to 5."}}
    )
    assert survey["result"]["keys"] == "5"
    transcript = await peer.hang_up(call_id)
    assert transcript.reached == AGENT
    (offer,) = transcript.offers
    assert (offer.agent, offer.outcome, offer.ended_by, offer.leg_id) == (
        AGENT,
        "answered",
        "agent",
        leg_id,
    )
    (hung_up,) = transcript.texts("agent-hung-up")
    assert hung_up.startswith(f"{AGENT} hung up after ")
    assert transcript.kinds()[-4:] == ["agent-hung-up", "heard", "pressed", "ended"]


async def test_an_agent_can_miss_the_first_offer_and_answer_the_next_ones(
    make_peer: MakePeer,
) -> None:
    number, agent = parse_agent_spec(f"{AGENT}=no-answer,answer:1:2")
    peer = await make_peer(agents={number: agent})
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    outcomes = []
    for _ in range(3):
        command_id, _leg = await peer.bridge(call_id, AGENT, ringTimeout=5)
        outcomes.append((await peer.done(call_id, command_id))["status"])
    assert outcomes == ["failed", "completed", "completed"]
    transcript = await peer.hang_up(call_id)
    assert transcript.offer_outcomes() == [
        (AGENT, "missed"),
        (AGENT, "answered"),
        (AGENT, "answered"),
    ]
    assert [offer.offer_number for offer in transcript.offers] == [1, 2, 3]

    # Another caller: the fourth offer to that agent, who still answers (the last repeats).
    second = await peer.inbound(script())
    await peer.answer(second)
    command_id, _leg = await peer.bridge(second, AGENT, ringTimeout=5)
    assert (await peer.done(second, command_id))["status"] == "completed"
    other = await peer.hang_up(second)
    assert [(o.offer_number, o.outcome) for o in other.offers] == [(4, "answered")]
    assert peer.sim.agent_offers[AGENT] == 4


async def test_a_leg_still_ringing_when_the_caller_hangs_up_is_left_ringing(
    make_peer: MakePeer,
) -> None:
    """A11: Bird may leave the agent's leg up; it rings until its ring timeout, and the
    agent picking up meanwhile is not put through to anyone (it ends ``no-answer``)."""
    peer = await make_peer(agents={AGENT: AgentScript(answer_after_s=30.0)})
    call_id = await peer.inbound(script(hangup_after_s=20.0))
    await peer.answer(call_id)
    url = f"{peer.receiver.base_url}/webhooks/legs"
    command_id, leg_id = await peer.bridge(
        call_id, AGENT, ringTimeout=60, notification={"url": url}
    )
    gone = await peer.status(call_id, "completed")
    assert gone.call["hangupSource"] == "caller"
    assert await peer.call_status(leg_id) == "ringing"
    still = peer.sim.transcript(call_id)
    assert still.ended
    assert still.offers[0].left_ringing
    assert still.offers[0].outcome == "ringing"

    transcript = await peer.sim.wait_ended(call_id, WAIT_S)  # waits for the leg too
    assert peer.statuses(leg_id) == ["ringing", "no-answer"]
    rang_out = await peer.status(leg_id, "no-answer")
    assert rang_out.path == "/webhooks/legs"
    assert peer.receiver.received.index(rang_out) > peer.receiver.received.index(gone)
    rang_s = _seconds_between(rang_out.call["ringingAt"], rang_out.call["endedAt"])
    assert rang_s >= 60 * peer.sim.time_scale  # the whole ring timeout, in real seconds
    (offer,) = transcript.offers
    assert (offer.outcome, offer.left_ringing) == ("missed", True)
    assert transcript.texts("agent-left-ringing") == [
        f"{AGENT} still rings, left up after the caller hung up"
    ]
    assert transcript.texts("no-answer") == [
        f"{AGENT} did not answer within 60 s, left ringing after the caller hung up"
    ]
    assert command_id not in {(r.command or {}).get("id") for r in peer.receiver.received}
    assert transcript.reached is None


async def test_the_service_hangs_up_a_leg_left_ringing(make_peer: MakePeer) -> None:
    """A11: ``/hangup`` on the agent leg's id ends it, reported to its notification.url."""
    peer = await make_peer(agents={AGENT: AgentScript("no-answer")})
    call_id = await peer.inbound(script(hangup_after_s=20.0))
    await peer.answer(call_id)
    url = f"{peer.receiver.base_url}/webhooks/legs?leg=ours"
    _, leg_id = await peer.bridge(call_id, AGENT, ringTimeout=120, notification={"url": url})
    await peer.status(call_id, "completed")
    response = await peer.send(leg_id, "hangup")
    assert response.status_code == 202
    assert_valid_response("hangupCall", response.json())
    assert response.json()["callId"] == leg_id
    ended = await peer.status(leg_id, "completed")
    assert (ended.path, ended.query) == ("/webhooks/legs", "leg=ours")
    assert (ended.call["hangupSource"], ended.call["parentId"]) == ("api", call_id)
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert peer.statuses(leg_id) == ["ringing", "completed"]
    (offer,) = transcript.offers
    assert (offer.outcome, offer.left_ringing) == ("hung-up-by-service", True)
    assert transcript.texts("agent-cancelled") == [
        f"the service hung up the call to {AGENT} while it rang, "
        "left ringing after the caller hung up"
    ]
    again = await peer.send(leg_id, "hangup")
    assert again.status_code == 422
    assert again.json()["code"] == "call_not_active"


async def test_with_end_ringing_legs_a_ringing_leg_ends_with_the_caller(
    make_peer: MakePeer,
) -> None:
    peer = await make_peer(agents={AGENT: AgentScript("no-answer")}, leave_ringing_legs=False)
    call_id = await peer.inbound(script(hangup_after_s=20.0))
    await peer.answer(call_id)
    _, leg_id = await peer.bridge(call_id, AGENT, ringTimeout=120)
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert peer.statuses(leg_id) == ["ringing", "completed"]
    assert peer.receiver.for_call(leg_id)[-1].call["hangupSource"] == "caller"
    (offer,) = transcript.offers
    assert (offer.outcome, offer.left_ringing) == ("ended-with-caller", False)
    assert "agent-left-ringing" not in transcript.kinds()


@pytest.mark.parametrize("leave_ringing_legs", [True, False])
async def test_a_connected_agent_leg_ends_when_the_caller_hangs_up(
    make_peer: MakePeer, leave_ringing_legs: bool
) -> None:
    agents = {AGENT: AgentScript(answer_after_s=1.0, talk_s=1000.0)}
    peer = await make_peer(agents=agents, leave_ringing_legs=leave_ringing_legs)
    call_id = await peer.inbound(script(hangup_after_s=20.0))
    await peer.answer(call_id)
    command_id, leg_id = await peer.bridge(call_id, AGENT)
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert peer.statuses(leg_id) == ["ringing", "ongoing", "completed"]
    assert peer.receiver.for_call(leg_id)[-1].call["hangupSource"] == "caller"
    (offer,) = transcript.offers
    assert (offer.outcome, offer.ended_by, offer.left_ringing) == ("answered", "caller", False)
    assert transcript.reached == AGENT
    assert command_id not in {(r.command or {}).get("id") for r in peer.receiver.received}


async def test_the_service_can_withdraw_an_offer_while_it_rings(make_peer: MakePeer) -> None:
    peer = await make_peer(agents={AGENT: AgentScript("no-answer")})
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    command_id, leg_id = await peer.bridge(call_id, AGENT, ringTimeout=120)
    await peer.status(leg_id, "ringing")
    assert (await peer.send(leg_id, "hangup")).status_code == 202
    assert (await peer.done(call_id, command_id))["status"] == "failed"
    assert (await peer.status(leg_id, "completed")).call["hangupSource"] == "api"
    assert await peer.call_status(call_id) == "ongoing"
    transcript = await peer.hang_up(call_id)
    assert transcript.offer_outcomes() == [(AGENT, "hung-up-by-service")]
    assert not transcript.offers[0].left_ringing


async def test_a_bridge_waiting_behind_a_prompt_is_cancelled_before_it_rings(
    peer: Peer,
) -> None:
    """A bridge posted during a prompt waits (A7, not interrupting); its leg, already
    known to the service, ends ``cancelled`` if hung up (or the caller leaves) first."""
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    hold = await peer.send(call_id, "say", {"text": "Please hold.", "loop": 20})
    assert hold.status_code == 202
    command_id, leg_id = await peer.bridge(call_id, AGENT)
    assert await peer.call_status(leg_id) == "starting"
    assert (await peer.send(leg_id, "hangup")).status_code == 202
    cancelled = await peer.status(leg_id, "cancelled")
    assert cancelled.call["parentId"] == call_id
    assert (await peer.done(call_id, command_id))["status"] == "failed"
    assert peer.statuses(leg_id) == ["cancelled"]  # it never rang

    # Another bridge waits behind another prompt, and the caller's call ends first.
    await peer.send(call_id, "say", {"text": "Still holding.", "loop": 20})
    _, last_leg = await peer.bridge(call_id, OTHER_AGENT)
    transcript = await peer.hang_up(call_id)
    assert peer.statuses(last_leg) == ["cancelled"]
    assert transcript.offers == []  # no agent's phone ever rang
    assert transcript.texts("agent-cancelled") == [
        f"the call to {AGENT} ended before it rang: the service hung it up",
        f"the call to {OTHER_AGENT} ended before it rang: the caller's call ended",
    ]


async def test_without_interrupting_commands_a_command_posted_meanwhile_waits(
    peer: Peer,
) -> None:
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    hold = {"media": ["https://example.com/hold.wav"], "loop": 4}  # 8 s
    hold_id = (await peer.send(call_id, "playback", hold)).json()["id"]
    say_id = (await peer.send(call_id, "say", {"text": "An agent is free."})).json()["id"]
    assert (await peer.done(call_id, say_id))["status"] == "completed"
    assert (await peer.done(call_id, hold_id))["status"] == "completed"
    transcript = await peer.hang_up(call_id)
    hold_at = _at(transcript, "heard", "hold.wav")
    assert _at(transcript, "heard", "An agent is free.") >= hold_at + 8
    assert "interrupted" not in transcript.kinds()
    outcomes = [(r.command or {}).get("id") for r in peer.receiver.for_call(call_id)]
    assert outcomes.index(hold_id) < outcomes.index(say_id)


@pytest.mark.parametrize("posted", ["say", "playback", "gather", "bridge"])
async def test_interrupting_commands_cut_a_prompt_short(make_peer: MakePeer, posted: str) -> None:
    """A7, the other way: the prompt stops at once (outcome ``completed``) and the command
    posted runs."""
    agents = {AGENT: AgentScript(answer_after_s=1.0, talk_s=1.0)}
    peer = await make_peer(interrupting_commands=True, agents=agents)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    hold = {"media": ["https://example.com/hold.wav"], "loop": 30}  # 60 s
    hold_id = (await peer.send(call_id, "playback", hold)).json()["id"]
    await peer.sim.wait_for(call_id, "heard", "hold.wav", timeout_s=WAIT_S)
    bodies = {
        "say": {"text": "An agent is free."},
        "playback": {"media": ["https://example.com/free.wav"]},
        "gather": {"maxNumKeys": 1, "timeout": 1},
        "bridge": {"to": AGENT, "hangupAfterBridge": False},
    }
    answer = (await peer.send(call_id, posted, bodies[posted])).json()
    posted_id = answer["command"]["id"] if posted == "bridge" else answer["id"]
    assert (await peer.done(call_id, hold_id))["status"] == "completed"
    assert (await peer.done(call_id, posted_id))["status"] == "completed"
    transcript = await peer.hang_up(call_id)
    (cut,) = transcript.texts("interrupted")
    assert cut.startswith("playback cut short after ")
    assert cut.endswith(f"by a {posted} posted meanwhile")
    assert _at(transcript, "interrupted") < _at(transcript, "heard", "hold.wav") + 30
    outcomes = [(r.command or {}).get("id") for r in peer.receiver.for_call(call_id)]
    assert outcomes.index(hold_id) < outcomes.index(posted_id)
    if posted == "bridge":
        assert transcript.reached == AGENT


async def test_interrupting_commands_leave_other_commands_and_call_flows_waiting(
    make_peer: MakePeer,
) -> None:
    peer = await make_peer(interrupting_commands=True)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    hold = {"media": ["https://example.com/hold.wav"], "loop": 3}  # 6 s
    hold_id = (await peer.send(call_id, "playback", hold)).json()["id"]
    await peer.sim.wait_for(call_id, "heard", "hold.wav", timeout_s=WAIT_S)
    flow = [{"command": "say", "options": {"text": "From a flow."}}]
    assert (await peer.http.patch(f"/{call_id}", json={"callFlow": flow})).status_code == 202
    record = (await peer.send(call_id, "record", {"maxLength": 2})).json()["command"]
    assert (await peer.done(call_id, record["id"]))["status"] == "completed"
    transcript = await peer.hang_up(call_id)
    hold_at = _at(transcript, "heard", "hold.wav")
    assert _at(transcript, "heard", "From a flow.") >= hold_at + 6
    assert _at(transcript, "heard", "(beep)") >= hold_at + 6
    assert "interrupted" not in transcript.kinds()
    assert transcript.texts("note") == ["playback played 3 times"]
    assert (await peer.done(call_id, hold_id))["status"] == "completed"


async def test_say_and_playback_honour_loop_and_timeout(peer: Peer) -> None:
    """A8: ``loop`` is the total number of plays, ``timeout`` a limit in seconds; there is no
    infinite loop."""
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    text = "Your call is important to us, please stay on the line."  # 54 chars: 3.24 s
    assert (await peer.run(call_id, "say", {"text": text, "loop": 3}))["status"] == "completed"
    limited = {"media": ["https://example.com/hold.wav"], "loop": 10, "timeout": 5}  # 20 s
    assert (await peer.run(call_id, "playback", limited))["status"] == "completed"
    once = await peer.run(call_id, "say", {"text": "Once.", "loop": 0})
    assert once["status"] == "completed"

    for bad in ({"loop": "forever"}, {"loop": 1.5}, {"loop": True}, {"timeout": "10"}):
        rejected = await peer.send(call_id, "say", {"text": "x", **bad})
        assert rejected.status_code == 422, bad
        assert rejected.json()["code"] == "validation_error"
    bad_flow = [{"command": "playback", "options": {"media": ["https://x/y.wav"], "loop": "x"}}]
    assert (await peer.http.patch(f"/{call_id}", json={"callFlow": bad_flow})).status_code == 422

    transcript = await peer.hang_up(call_id)
    three = _at(transcript, "note", "say played 3 times") - _at(transcript, "heard", text)
    assert 3 * 3.24 <= three < 3 * 3.24 + 3
    cut = _at(transcript, "note", "stopped at its timeout of 5 s") - _at(
        transcript, "heard", "hold.wav"
    )
    assert 5 <= cut < 15
    assert "loop 0 plays once: there is no infinite loop" in transcript.texts("note")


async def test_many_callers_at_once_each_reach_an_agent(make_peer: MakePeer) -> None:
    """25 callers placed half a simulated second apart, all on the line together, routed by
    a small service over HTTP to three agents: each call keeps to its own caller, legs and
    offers."""
    third = "+31201234569"
    agents = {
        AGENT: AgentScript(answer_after_s=2.0, talk_s=60.0),
        OTHER_AGENT: AgentScript.sequence(AgentScript("no-answer"), AgentScript("answer", 1, 60)),
        third: AgentScript("busy"),
    }
    # Long conversations, and patience with a service slowed down by 25 callers at once.
    peer = await make_peer(agents=agents, answer_timeout_min_real_s=10.0)
    first_choice = [AGENT, OTHER_AGENT, third]
    callers = [CallerScript(f"caller {n}", f"+316000000{n:02d}", IVR) for n in range(25)]
    routed = {caller.from_number: first_choice[n % 3] for n, caller in enumerate(callers)}
    legs_url = f"{peer.receiver.base_url}/webhooks/legs"

    async def service(item: Received) -> None:
        if item.path != "/webhooks/bird" or "parentId" in item.call:
            return
        command = item.command or {}
        call = item.call_id
        if item.status == "ringing" and not command:
            await peer.send(call, "answer")
        elif command.get("command") == "answer":
            await peer.send(call, "say", {"text": "Please hold."})
        elif command.get("command") == "say":
            to = routed[item.call["from"]]
            body = {"to": to, "ringTimeout": 5, "hangupAfterBridge": False,
                    "notification": {"url": f"{legs_url}?call={call}"}}  # fmt: skip
            await peer.send(call, "bridge", body)
        elif command.get("command") == "bridge" and command["status"] == "failed":
            body = {"to": AGENT, "hangupAfterBridge": False}
            await peer.send(call, "bridge", body)
        elif command.get("command") == "bridge":
            await peer.send(call, "hangup")

    peer.receiver.react = service
    call_ids = await peer.sim.place_inbound_calls(callers, every_s=0.5)
    transcripts = await peer.sim.wait_all_ended(call_ids, 60)

    assert len(set(call_ids)) == 25
    for n, (caller, call_id, transcript) in enumerate(
        zip(callers, call_ids, transcripts, strict=True)
    ):
        assert (transcript.call_id, transcript.from_number) == (call_id, caller.from_number)
        assert transcript.script_name == f"caller {n}"
        assert (transcript.final_status, transcript.hangup_source) == ("completed", "api")
        assert transcript.texts("heard") == ["Please hold."]
        first = first_choice[n % 3]
        assert transcript.offers[0].agent == first
        assert transcript.offers[-1].outcome == "answered"
        if first == third:
            assert transcript.offer_outcomes() == [(third, "busy"), (AGENT, "answered")]
        for offer in transcript.offers:
            leg = peer.receiver.for_call(offer.leg_id)
            assert all(r.call["parentId"] == call_id for r in leg)
            assert all(r.query == f"call={call_id}" for r in leg if r.path == "/webhooks/legs")
    missed = [t for t in transcripts if (OTHER_AGENT, "missed") in t.offer_outcomes()]
    assert len(missed) == 1  # only the first offer to that agent was missed
    assert sum(len(t.offers) for t in transcripts) == sum(peer.sim.agent_offers.values())
    # They really were on the line together.
    spans = [(peer.sim.calls[c].created_at, peer.sim.calls[c].ended_at) for c in call_ids]
    ends = [(start, end) for start, end in spans if end is not None]
    assert len(ends) == 25
    most = max(sum(1 for start, end in ends if start <= moment < end) for moment, _ in ends)
    assert most >= 20
    assert all(r.accepted for r in peer.sim.requests)
    assert_deliveries_sound(peer.receiver)


async def test_cli_runs_a_call_center_of_staggered_callers(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--agent`` offer sequences and ``--call-every``: three callers on the line together,
    offered to an agent who misses the first offer; each transcript shows the offers."""
    port = free_port()
    async with channel_client(port) as http:

        async def service(item: Received) -> None:
            command = item.command or {}
            call = f"/{item.call_id}"
            if "parentId" in item.call:
                return
            if item.status == "ringing" and not command:
                await http.post(f"{call}/answer")
            elif command.get("command") == "answer" or command.get("status") == "failed":
                body = {"to": AGENT, "ringTimeout": 5, "hangupAfterBridge": False}
                await http.post(f"{call}/bridge", json=body)
            elif command.get("command") == "bridge":
                await http.post(f"{call}/say", json={"text": "Thanks for holding."})
            elif command.get("command") == "say":
                await http.post(f"{call}/hangup")

        receiver.react = service
        set_real_keys(monkeypatch)
        parser = argparse.ArgumentParser()
        sim_cli.add_arguments(parser)
        args = parser.parse_args(
            ["--port", str(port), "--webhook-url", f"{receiver.base_url}/webhooks/bird",
             "--agent", f"{AGENT}=no-answer,answer:1:2",
             "--call", f"{CALLER}>{IVR}", "--call", f"+31612345679>{IVR}",
             "--call", f"+31612345670>{IVR}",
             "--call-every", "1", "--interrupting-commands", "--end-ringing-legs",
             "--exit-after-calls", "--call-timeout", "20", "--json"]
        )  # fmt: skip
        status = await sim_cli.run(args)

    out = capsys.readouterr().out
    assert status == 0, out
    transcripts = [json.loads(line) for line in out.splitlines()]
    assert [t["from"] for t in transcripts] == [CALLER, "+31612345679", "+31612345670"]
    outcomes = [[o["outcome"] for o in t["offers"]] for t in transcripts]
    assert sorted(outcomes) == [["answered"], ["answered"], ["missed", "answered"]]
    assert all(t["reached"] == AGENT for t in transcripts)
    assert all(t["offers"][-1]["endedBy"] == "agent" for t in transcripts)
    numbers = sorted(o["offerNumber"] for t in transcripts for o in t["offers"])
    assert numbers == [1, 2, 3, 4]
    # Placed a simulated second apart, not one after the other's end.
    created = [next(r.arrived for r in receiver.received if r.call_id == t["callId"])
               for t in transcripts]  # fmt: skip
    ended = [max(r.arrived for r in receiver.received if r.call_id == t["callId"])
             for t in transcripts]  # fmt: skip
    assert created[2] < ended[0]
