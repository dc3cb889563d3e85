"""A call's state: where it is in its graph and what the service has seen of it.

One JSON document per call (see ``service.runtime.keys.call``). The engine reads and returns
:class:`CallState`; the store serialises it. ``seen`` and ``recent`` are the
delivery bookkeeping that makes repeated or late deliveries change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """Where a call is, in the order a call usually goes through the phases."""

    ANSWERING = "answering"  # we answered (or dialled); waiting for the leg to connect
    PROMPTING = "prompting"  # a prompt plays; ``after`` says what follows it
    GATHERING = "gathering"  # a menu or collect waits for keys
    RECORDING = "recording"  # a voicemail is being recorded
    REQUESTING = "requesting"  # an http node waits for its answer
    PAUSING = "pausing"  # a pause node's silence
    QUEUED = "queued"  # waiting in a queue's line: hold audio, position, callback offer
    BRIDGING = "bridging"  # the transfer target (or the line's agent) is being rung
    CONNECTED = "connected"  # the caller talks to the transfer target (or agent)
    ENDED = "ended"


class After(StrEnum):
    """What follows the prompt that plays (phase ``PROMPTING``)."""

    NEXT = "next"  # a say node: go to its next
    REGATHER = "regather"  # a menu/collect retry prompt: gather again
    FAILURE = "failure"  # a menu/collect's last retry prompt: go to on_failure
    RECORD = "record"  # a voicemail's prompt: record
    HANGUP = "hangup"  # a hangup node's prompt: hang up


class Outcome(StrEnum):
    """How a call ended (``CallState.outcome``): what on-call staff filter the logs on."""

    HANGUP_NODE = "hangup_node"  # the graph ended it at a hangup node
    TRANSFERRED = "transferred"  # connected to a transfer target, then either side hung up
    AGENT_CONNECTED = "agent_connected"  # connected to a queue's agent, then either side hung up
    ENDED_BY_CALLER = "ended_by_caller"  # the caller hung up before the graph finished
    ENDED_BY_CALLEE = "ended_by_callee"  # the callee of an outbound call hung up
    ENDED_BY_BIRD = "ended_by_bird"  # Bird ended the leg (a timeout, another API client)
    NOT_ANSWERED_NO_ANSWER = "not_answered_no-answer"  # outbound: nobody picked up
    NOT_ANSWERED_BUSY = "not_answered_busy"
    NOT_ANSWERED_FAILED = "not_answered_failed"
    NOT_ANSWERED_CANCELLED = "not_answered_cancelled"
    NOT_ANSWERED_COMPLETED = "not_answered_completed"  # outbound: over before it connected
    STEP_LIMIT = "step_limit"  # the graph walked MAX_STEPS steps: a loop, hung up
    BIRD_REFUSED = "bird_refused"  # Bird refused a command: hung up rather than left silent


class Waiting(StrEnum):
    """What a caller in line (phase ``QUEUED``) waits on."""

    JOINING = "joining"  # the line's answer to joining it
    CHECKING = "checking"  # the line's answer to where they stand now
    HOLDING = "holding"  # a segment of hold audio
    ANNOUNCING = "announcing"  # their position and expected wait
    CALLBACK_OFFER = "callback_offer"  # "press 1 to be called back"
    # A callback's follow-up call (the line reserved an agent for it):
    CALLING = "calling"  # the customer's phone rings
    CALLBACK_CONFIRM = "callback_confirm"  # "press 1 to talk to an agent now"


@dataclass(frozen=True)
class InLine:
    """A caller's place in a queue's line, as the call knows it (the line itself is
    kept by ``service.runtime.line``). ``offer`` is the offer ringing for them, if
    any, and ``agent_id`` its agent; ``announced`` the last position they heard.
    A callback's follow-up call holds its callback's place (``callback``)."""

    queue: str
    priority: int
    joined_at: float
    waiting: Waiting = Waiting.JOINING
    offer: str | None = None
    agent_id: str | None = None
    announced: int | None = None
    announced_at: float | None = None
    alone_since: float | None = None  # since when nobody was available for the queue
    callback_offered_at: float | None = None
    # A callback's follow-up call: the callback, the reserved agent's address and
    # which attempt this is.
    callback: str | None = None
    address: str | None = None
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InLine:
        known = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in known}
        values["waiting"] = Waiting(values.get("waiting", Waiting.JOINING))
        return cls(**values)


class Direction(StrEnum):
    INBOUND = "inbound"  # the caller called us: we answer
    OUTBOUND = "outbound"  # we called them (POST /calls): Bird dials


@dataclass(frozen=True)
class CallState:
    call_id: str
    graph: str
    graph_version: str
    caller: str
    called: str
    direction: Direction = Direction.INBOUND
    phase: Phase = Phase.ANSWERING
    node: str | None = None
    after: After | None = None
    attempts: int = 0
    steps: int = 0
    vars: Mapping[str, str] = field(default_factory=dict)
    agent_leg: str | None = None
    line: InLine | None = None
    recordings: tuple[str, ...] = ()
    amd: str | None = None  # who answered, when Bird's machine detection said: human, machine
    outcome: Outcome | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    seen: Mapping[str, int] = field(default_factory=dict)
    recent: tuple[str, ...] = ()
    version: int = 0

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def template_context(self) -> dict[str, str]:
        context = {"caller": self.caller, "called": self.called, "call_id": self.call_id,
                   "amd": self.amd or "unknown"}  # fmt: skip
        context.update({f"vars.{name}": value for name, value in self.vars.items()})
        return context

    def to_json(self) -> str:
        data = asdict(self)
        data["vars"] = dict(self.vars)
        data["seen"] = dict(self.seen)
        data["recent"] = list(self.recent)
        data["recordings"] = list(self.recordings)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> CallState:
        data: dict[str, Any] = json.loads(text)
        data["recent"] = tuple(data.get("recent", ()))
        data["recordings"] = tuple(data.get("recordings", ()))
        data["phase"] = Phase(data["phase"])
        data["direction"] = Direction(data.get("direction", Direction.INBOUND))
        if data.get("outcome") is not None:
            data["outcome"] = Outcome(data["outcome"])
        if data.get("after") is not None:
            data["after"] = After(data["after"])
        if data.get("line") is not None:
            data["line"] = InLine.from_dict(data["line"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
