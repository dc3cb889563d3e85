"""A simulated call: the Bird Call resource it shows, and the runtime state behind it."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from service.sim.delivery import Envelope, Outgoing
from service.sim.scripts import MachineScript
from service.sim.transcript import Offer, Transcript

ENDED_STATUSES = frozenset({"completed", "no-answer", "busy", "failed", "cancelled"})
# Q.850 cause codes, as carriers report them.
HANGUP_CAUSE_CODES = {"completed": 16, "busy": 17, "no-answer": 19, "failed": 41, "cancelled": 31}

Direction = Literal["incoming", "outgoing"]


def iso(moment: datetime) -> str:
    """``2026-11-23T18:00:00.123456Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def call_type(address: str) -> str:
    return "sip" if address.startswith(("sip:", "sips:")) else "pstn"


def _party(address: str) -> dict[str, Any]:
    return {"number": {"type": call_type(address), "number": address}}


@dataclass(eq=False)
class Command:
    """One command on a call: a standalone endpoint or a callFlow item."""

    id: str
    call_id: str
    name: str
    options: dict[str, Any]
    call_flow_id: str | None = None
    conditions: list[dict[str, Any]] | None = None
    leg: SimCall | None = None
    """The agent's leg of a bridge, created when the bridge was requested."""
    recording_id: str | None = None
    flow_entry: dict[str, Any] | None = None
    """This command's entry in the call's ``callFlow.commands``, kept up to date."""

    def set_status(self, status: str) -> None:
        if self.flow_entry is not None:
            self.flow_entry["status"] = status

    def answer(self, status: str = "queued") -> dict[str, Any]:
        """The command answer Bird gives (``CallCommandResponse``)."""
        body: dict[str, Any] = {
            "id": self.id,
            "callId": self.call_id,
            "callFlowId": self.call_flow_id,
            "command": self.name,
            "status": status,
        }
        if self.conditions:
            body["conditions"] = self.conditions
        return body


@dataclass(eq=False)
class SimCall:
    id: str
    channel_id: str
    from_number: str
    to_number: str
    direction: Direction
    status: str
    event: str
    """``voice.inbound`` or ``voice.outbound``: the event its deliveries carry."""
    delivery_url: str
    t0: float
    """Loop time at creation (transcript times count from here)."""
    ordinal: int = 0
    """How many calls the simulator had created before this one (names its fault streams)."""
    party: str = "caller"
    """Who the simulated person is: ``caller``, ``callee`` or ``agent``."""
    parent: SimCall | None = None
    transcript: Transcript | None = None
    inputs: collections.deque[str] = field(default_factory=collections.deque)
    hangup_after_s: float | None = None
    voicemail_s: float = 3.0
    # The Call resource.
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    scheduled_for: datetime | None = None
    reason: str | None = None
    hangup_source: str | None = None
    duration: int = 0
    call_flow: dict[str, Any] | None = None
    notification: dict[str, Any] | None = None
    tags: list[str] | None = None
    amd_result: dict[str, str] | None = None
    """Bird's answering-machine verdict (A13), once given: on every later delivery."""
    # Runtime.
    machine: MachineScript | None = None
    """The answering machine that took the call (the callee of an outbound call), if any."""
    taping: bool = False
    """The answering machine records what is played (its beep is over)."""
    answered_loop_time: float | None = None
    answer_pending: bool = False
    started: bool = True
    """False for a bridge leg that has not started ringing yet."""
    last_keys: str = ""
    last_speech: str = ""
    children: list[SimCall] = field(default_factory=list)
    queue: asyncio.Queue[Command] = field(default_factory=asyncio.Queue)
    urgent: collections.deque[Command] = field(default_factory=collections.deque)
    """Commands that cut the running prompt short: they run next (``interrupting_commands``)."""
    running: Command | None = None
    """The command the call's worker runs now."""
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to cut the running ``say``/``playback`` short (a fresh one for each command)."""
    interrupted_by: str | None = None
    """The name of the command that cut the running prompt short."""
    offer: Offer | None = None
    """An agent's leg: its offer in the caller's transcript, once it started ringing."""
    ring_timeout_s: float = 30.0
    """An agent's leg: the bridge's ``ringTimeout``."""
    left_ringing: bool = False
    """An agent's leg: the caller hung up while it rang, and it was left ringing (A11)."""
    ended_with_parent: bool = False
    """An agent's leg: it ended because the call it belonged to ended."""
    worker: asyncio.Task[None] | None = None
    timers: list[asyncio.Task[None]] = field(default_factory=list)
    ended_event: asyncio.Event = field(default_factory=asyncio.Event)
    answered_event: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    pending_deliveries: int = 0
    sender: asyncio.Task[None] | None = None
    outbox: collections.deque[Outgoing] = field(default_factory=collections.deque)
    last_sent: Envelope | None = None
    deferred_flow: list[Command] = field(default_factory=list)
    """createCall's callFlow: it runs once the callee answers."""

    @property
    def root(self) -> SimCall:
        return self.parent.root if self.parent is not None else self

    @property
    def ended(self) -> bool:
        return self.status in ENDED_STATUSES

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def touch(self) -> None:
        """Move ``updatedAt`` on, strictly increasing even within one clock tick."""
        now = datetime.now(UTC)
        floor = self.updated_at + timedelta(microseconds=1)
        self.updated_at = max(now, floor)

    def to_json(self) -> dict[str, Any]:
        """The Call object as Bird shows it now."""
        body: dict[str, Any] = {
            "id": self.id,
            "channelId": self.channel_id,
            "from": self.from_number,
            "to": self.to_number,
            "originator": _party(self.from_number),
            "receiver": _party(self.to_number),
            "direction": self.direction,
            "status": self.status,
            "type": call_type(self.to_number if self.direction == "outgoing" else self.from_number),
            "duration": self.duration,
            "hangupSource": self.hangup_source,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }
        if self.parent is not None:
            body["parentId"] = self.parent.id
        if self.reason is not None:
            body["reason"] = self.reason
        if self.ended:
            body["hangupCauseCode"] = HANGUP_CAUSE_CODES[self.status]
        for key, moment in (
            ("ringingAt", self.ringing_at),
            ("answeredAt", self.answered_at),
            ("endedAt", self.ended_at),
            ("scheduledFor", self.scheduled_for),
        ):
            if moment is not None:
                body[key] = iso(moment)
        if self.call_flow is not None:
            body["callFlow"] = self.call_flow
        if self.notification is not None:
            body["notification"] = self.notification
        if self.tags is not None:
            body["tags"] = list(self.tags)
        if self.amd_result is not None:
            body["amdResult"] = dict(self.amd_result)
        return body
