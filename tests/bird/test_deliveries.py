"""Bird deliveries (A1-A6 of docs/bird-contract.md) read, and read into our events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.bird.deliveries import DeliveryError, UnhandledDelivery, parse_delivery, to_event
from service.core import events


def delivery(
    status: str | None = "ongoing",
    *,
    event: str = "voice.inbound",
    command: dict[str, Any] | None = None,
    **payload: Any,
) -> bytes:
    call: dict[str, Any] = {
        "id": "call-1",
        "from": "+31612345678",
        "to": "+31970102030",
        "direction": "incoming",
        "status": status,
        "createdAt": "2026-11-23T18:00:00.000000Z",
        "updatedAt": "2026-11-23T18:00:01.250000Z",
    }
    call.update(payload)
    if command is not None:
        call["command"] = command
    return json.dumps({"service": "channels", "event": event, "payload": call}).encode()


def read(body: bytes) -> events.Event:
    return to_event(parse_delivery(body))


def test_a_status_delivery_is_read() -> None:
    parsed = parse_delivery(delivery("starting"))
    assert parsed.call_id == parsed.leg_id == "call-1"
    assert parsed.caller == "+31612345678"
    assert parsed.called == "+31970102030"
    assert parsed.updated_us == 1_795_456_801_250_000
    assert parsed.is_new_call_offer
    assert not parsed.is_agent_leg


def test_statuses_of_the_callers_leg() -> None:
    assert read(delivery("ongoing")) == events.CallAnswered()
    assert read(delivery("ringing")) == events.Progress("ringing")
    assert read(delivery("completed", hangupSource="caller")) == events.CallEnded(
        "completed", "caller"
    )
    assert read(delivery("no-answer")) == events.CallEnded("no-answer", None)


@pytest.mark.parametrize("source", ["api", "timeout", "media-timeout", "none", None])
def test_a_leg_ended_by_anything_but_a_person_is_ended_by_nobody_in_our_terms(
    source: str | None,
) -> None:
    assert read(delivery("completed", hangupSource=source)) == events.CallEnded("completed", None)


def test_command_outcomes() -> None:
    def command(name: str, status: str = "completed", **result: str) -> dict[str, Any]:
        return {"id": "cmd", "callId": "call-1", "callFlowId": None, "command": name,
                "status": status, "result": result}  # fmt: skip

    assert read(delivery(command=command("say"))) == events.PromptFinished(ok=True)
    assert read(delivery(command=command("playback", "failed"))) == events.PromptFinished(False)
    assert read(delivery(command=command("gather", keys="42", speech=""))) == (
        events.DigitsCollected("42")
    )
    assert read(delivery(command=command("gather", keys=""))) == events.DigitsCollected("")
    assert read(delivery(command=command("bridge", "failed"))) == events.AgentUnavailable(
        None, "failed"
    )
    assert read(delivery(command=command("answer"))) == events.CallAnswered()
    assert read(delivery(command=command("hangup"))) == events.Progress("hangup completed")


def test_the_agent_leg_reports_to_the_callers_call() -> None:
    agent: dict[str, Any] = {"id": "leg-2", "parentId": "call-1", "direction": "outgoing"}
    parsed = parse_delivery(delivery("ringing", event="voice.outbound", **agent))
    assert parsed.call_id == "call-1"
    assert parsed.leg_id == "leg-2"
    assert not parsed.is_new_call_offer
    assert to_event(parsed) == events.AgentRinging("leg-2")
    assert read(delivery("ongoing", **agent)) == events.AgentConnected("leg-2")
    assert read(delivery("completed", **agent)) == events.AgentHungUp("leg-2")
    for status in ("no-answer", "busy", "failed"):
        assert read(delivery(status, **agent)) == events.AgentUnavailable("leg-2", status)


def test_repeats_share_a_fingerprint_and_different_deliveries_do_not() -> None:
    a = parse_delivery(delivery("ongoing"))
    again = parse_delivery(delivery("ongoing"))
    later = parse_delivery(delivery("ongoing", updatedAt="2026-11-23T18:00:02Z"))
    assert a.fingerprint == again.fingerprint
    assert a.fingerprint != later.fingerprint


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"service": "channels", "event": "voice.inbound"}).encode(), "payload"),
        (delivery(id=None), "call id"),
        (delivery(id=""), "call id"),
        (delivery(updatedAt="yesterday"), "updatedAt"),
        (delivery(status=None), "status"),
    ],
)
def test_malformed_deliveries_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(DeliveryError, match=reason):
        parse_delivery(body)


def test_other_events_are_unhandled_not_errors() -> None:
    other = json.dumps({"service": "channels", "event": "sms.inbound", "payload": {}}).encode()
    with pytest.raises(UnhandledDelivery):
        parse_delivery(other)


# -- hostile bodies, signed or not: a reason, never a crash -------------------------------

TRAVERSAL = "../../../../../workspaces/x/channels/y/calls"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"n": ' + b"9" * 5000 + b"}", "not JSON we can read"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"\xff\xfe{}", "not JSON"),
        (delivery(id="\ud800"), "lone surrogate"),
        (delivery(to="+31\udfff"), "lone surrogate"),
        (delivery(id="call\n1"), "not a call id"),
        (delivery(id="call\x001"), "not a call id"),
        (delivery(id="c" * 20_000), "not a call id"),
        (delivery(id=TRAVERSAL), "not a call id"),
        (delivery(id="call-1", parentId=TRAVERSAL), "payload.parentId is not a call id"),
        (delivery(id="call-1", parentId=7), "payload.parentId"),
    ],
    ids=["5000 digits", "deep nesting", "not utf-8", "surrogate id", "surrogate number",
         "newline", "nul", "20000 chars", "path traversal", "traversal parent", "number parent"],
)  # fmt: skip
def test_hostile_bodies_are_malformed_deliveries_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(DeliveryError, match=reason):
        parse_delivery(body)


def test_a_recording_duration_too_large_for_a_float_is_no_duration() -> None:
    command = {"id": "k", "command": "record", "status": "completed",
               "result": {"recordingId": "r1", "duration": 10**400}}  # fmt: skip
    assert read(delivery(command=command)) == events.RecordingFinished("r1", None, ok=True)
