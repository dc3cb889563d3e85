"""The simulator as a peer sees it: real HTTP on loopback, signed deliveries to a receiver."""

from __future__ import annotations

import argparse
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.sim import HANGUP, SILENCE, AgentScript, CalleeScript
from service.sim import cli as sim_cli
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
