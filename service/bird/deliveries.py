"""Webhook deliveries: a delivery's body read into a :class:`Delivery`
(:func:`parse_delivery`), and what it means for the call as one of our events
(:func:`to_event`).

Bird does not document the shape of its voice deliveries. What this project
assumes about them, A1-A6 of section 2 of docs/bird-contract.md ("the contract"),
is implemented here and nowhere else, so that confirming it against a live account
changes this file only:

A1. Every delivery, subscription or ``notification.url``, is
    ``{"service": "channels", "event": "voice.inbound"|"voice.outbound", "payload": CALL}``.
A2. A change of a call's ``status`` is one delivery.
A3. When a command ends, one delivery whose payload also holds ``command``
    (``status`` completed|failed, ``result``: ``{"keys", "speech"}`` for gather).
A4. A bridge's agent leg reports its own statuses, with ``parentId`` set:
    ringing, ongoing, completed; or no-answer, busy, failed.
A5. The caller hanging up is a ``completed`` delivery with ``hangupSource: "caller"``.
A6. Deliveries repeat and arrive out of order; ``updatedAt`` orders a call's
    deliveries (:attr:`Delivery.updated_us`, :attr:`Delivery.fingerprint`).
A13. Answering-machine detection's verdict comes as ``amdResult: {"result", ...}``
    on the payload once Bird has decided (every later delivery of the call
    carries it too): ``human`` or ``machine``, anything else unknown
    (:attr:`Delivery.amd`; :func:`to_event` wraps the delivery's own event in
    ``AnsweredBy``).
A14. A gather that listens for words returns what was said in
    ``result.speech`` ("" when nothing was understood).

And one of ours: a recorded bridge's command-finished delivery carries its
``result.recordingId`` (like a record command's), as ``ConversationRecorded``.

Two more assumptions of ours: deliveries to a call's ``notification.url`` are
signed with the same key as the subscription's, and the signature timestamp is in
Unix seconds (``signature.parse_timestamp`` also reads milliseconds and ISO-8601).

What we ask of Bird, and what it answers, is :mod:`service.bird.commands`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.bird.client import CALL_ID
from service.core import events, jsondoc
from service.core.events import Event

HANDLED_EVENTS = ("voice.inbound", "voice.outbound")
# Bird's words for how a leg ended, and who hung up, in our terms (events).
LEG_ENDED: dict[str, events.LegStatus] = {
    "completed": "completed", "no-answer": "no-answer", "busy": "busy", "failed": "failed",
    "cancelled": "cancelled",
}  # fmt: skip
FINAL_STATUSES = frozenset(LEG_ENDED)
UNREACHABLE: dict[str, events.Unreachable] = {
    "no-answer": "no-answer", "busy": "busy", "failed": "failed", "cancelled": "failed",
}  # fmt: skip
# hangupSource: caller and callee are people; api, timeout, media-timeout and none are not.
_HUNG_UP_BY: dict[str, events.HungUpBy] = {"caller": "caller", "callee": "callee"}


class DeliveryError(Exception):
    """A delivery we cannot read (answered 400 with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnhandledDelivery(Exception):
    """A well-formed delivery this service does not act on (answered 2xx, logged)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Command:
    id: str
    name: str
    status: str
    result: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, read. ``call_id`` is the caller's call the delivery
    belongs to; ``leg_id`` the call resource it reports on (they differ for the
    agent's leg of a bridge)."""

    event: str
    call_id: str
    leg_id: str
    status: str
    direction: str
    caller: str
    called: str
    updated_us: int
    created_us: int
    hangup_source: str | None
    command: Command | None
    is_agent_leg: bool
    amd: events.Verdict | None = None

    @property
    def fingerprint(self) -> str:
        """Identical for repeats of the same delivery, whatever their request id."""
        parts = [self.leg_id, self.status, str(self.updated_us)]
        if self.command is not None:
            parts += [self.command.id, self.command.name, self.command.status]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    @property
    def is_new_call_offer(self) -> bool:
        """The first news of an incoming call: one we may answer."""
        return (
            self.event == "voice.inbound"
            and not self.is_agent_leg
            and self.direction == "incoming"
            and self.status in ("starting", "ringing")
            and self.command is None
        )

    def describe(self) -> str:
        if self.command is not None:
            return f"{self.command.name} {self.command.status}"
        return self.status


def _micros(value: Any, field: str) -> int:
    if not isinstance(value, str) or not value:
        raise DeliveryError(f"payload.{field} is missing or not a date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DeliveryError(f"payload.{field} is not an ISO-8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise DeliveryError(f"payload.{field} has no time zone: {value!r}")
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond


def _text(payload: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = payload.get(field)
    if isinstance(value, str) and value:
        return value
    if required:
        raise DeliveryError(f"payload.{field} is missing or not a string")
    return ""


def read_json(body: bytes) -> Any:
    """A JSON body, or :class:`DeliveryError` (``service.core.jsondoc``)."""
    try:
        return jsondoc.load(body)
    except jsondoc.JSONTextError as exc:
        raise DeliveryError(f"body {exc.reason}") from None


def is_call_id(value: str) -> bool:
    """Whether ``value`` looks like the id Bird gives a call (letters, digits, ``-``
    and ``_``, at most 128): what the service accepts where a call id is asked for."""
    return CALL_ID.fullmatch(value) is not None


def _call_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise DeliveryError(f"payload.{field} (the call id) is missing")
    if not CALL_ID.fullmatch(value):
        raise DeliveryError(f"payload.{field} is not a call id (letters, digits, - and _, "
                            f"at most 128): {value[:80]!r}")  # fmt: skip
    return value


def parse_delivery(body: bytes) -> Delivery:
    """Read a delivery's raw body: :class:`DeliveryError` when it is malformed,
    :class:`UnhandledDelivery` when it is not a voice call delivery."""
    envelope = read_json(body)
    if not isinstance(envelope, dict):
        raise DeliveryError("body is not a JSON object")
    service, event = envelope.get("service"), envelope.get("event")
    if service != "channels" or event not in HANDLED_EVENTS:
        raise UnhandledDelivery(f"event {service!r}/{event!r} is not a voice call event")
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise DeliveryError("payload is missing or not an object")
    leg_id = _call_id(payload.get("id"), "id")
    parent = payload.get("parentId")
    if parent is not None and parent != "":
        parent = _call_id(parent, "parentId")
    status = _text(payload, "status")
    command = None
    raw_command = payload.get("command")
    if raw_command is not None:
        if not isinstance(raw_command, dict):
            raise DeliveryError("payload.command is not an object")
        result = raw_command.get("result")
        command = Command(
            id=str(raw_command.get("id", "")),
            name=_text(raw_command, "command"),
            status=_text(raw_command, "status"),
            result=result if isinstance(result, dict) else {},
        )
    updated = _micros(payload.get("updatedAt"), "updatedAt")
    created_raw = payload.get("createdAt")
    return Delivery(
        event=str(event),
        call_id=parent if isinstance(parent, str) and parent else leg_id,
        leg_id=leg_id,
        status=status,
        direction=str(payload.get("direction", "")),
        caller=_text(payload, "from", required=False),
        called=_text(payload, "to", required=False),
        updated_us=updated,
        created_us=_micros(created_raw, "createdAt") if created_raw else updated,
        hangup_source=payload.get("hangupSource") or None,
        command=command,
        is_agent_leg=isinstance(parent, str) and bool(parent),
        amd=_verdict(payload.get("amdResult")),
    )


def _verdict(value: Any) -> events.Verdict | None:
    """Who answered, from a payload's ``amdResult`` (A13); None without one."""
    if not isinstance(value, dict):
        return None
    result = value.get("result")
    if result == "human":
        return "human"
    if result == "machine":
        return "machine"
    return "unknown"


def _seconds(value: Any) -> float | None:
    """A duration in seconds from a result, if it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return seconds if math.isfinite(seconds) else None


def to_event(delivery: Delivery) -> Event:
    """What a delivery means for the call, in our terms; with the verdict of
    machine detection it carries (A13), if any, around it."""
    event = _own_event(delivery)
    if delivery.amd is not None and not delivery.is_agent_leg:
        return events.AnsweredBy(delivery.amd, event)
    return event


def _own_event(delivery: Delivery) -> Event:
    if delivery.is_agent_leg:
        status, leg = delivery.status, delivery.leg_id
        if delivery.command is not None:
            return events.Progress(f"agent leg {delivery.describe()}")
        if status == "ringing":
            return events.AgentRinging(leg)
        if status == "ongoing":
            return events.AgentConnected(leg)
        if status == "completed":
            return events.AgentHungUp(leg)
        unreachable = UNREACHABLE.get(status)
        if unreachable is not None:
            return events.AgentUnavailable(leg, unreachable)
        return events.Progress(f"agent leg {status}")
    command = delivery.command
    if command is not None:
        ok = command.status == "completed"
        if command.name in ("say", "playback"):
            return events.PromptFinished(ok=ok)
        if command.name == "gather":
            keys, said = command.result.get("keys"), command.result.get("speech")
            return events.DigitsCollected(
                keys if isinstance(keys, str) else "",
                ok=ok,
                speech=said if isinstance(said, str) else "",
            )
        if command.name == "record":
            recording = command.result.get("recordingId")
            return events.RecordingFinished(
                recording if isinstance(recording, str) else None,
                _seconds(command.result.get("duration")),
                ok=ok,
            )
        if command.name == "bridge" and not ok:
            return events.AgentUnavailable(None, "failed")
        recording = command.result.get("recordingId")
        if command.name == "bridge" and isinstance(recording, str) and recording:
            return events.ConversationRecorded(recording, _seconds(command.result.get("duration")))
        if command.name == "answer" and ok:
            # As good as the ``ongoing`` status: whichever arrives first starts the
            # walk (the other is then stale or ignored).
            return events.CallAnswered()
        return events.Progress(delivery.describe())
    if delivery.status == "ongoing":
        return events.CallAnswered()
    ended = LEG_ENDED.get(delivery.status)
    if ended is not None:
        return events.CallEnded(ended, _HUNG_UP_BY.get(delivery.hangup_source or ""))
    return events.Progress(delivery.status)
