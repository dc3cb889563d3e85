"""What happens on a call, in our own terms. ``service.bird.deliveries`` turns each
webhook delivery into one of these (``HttpResponded`` comes from
``service.runtime.lookups``); the engine consumes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LegStatus = Literal["completed", "no-answer", "busy", "failed", "cancelled"]
"""How a call leg ended."""
HungUpBy = Literal["caller", "callee"]
"""Who hung up, when it was a person (None: Bird, a timeout or another API client)."""
Unreachable = Literal["no-answer", "busy", "failed"]
"""Why a transfer target was not reached."""


@dataclass(frozen=True)
class CallAnswered:
    """The caller's leg is connected and media can be played."""


@dataclass(frozen=True)
class PromptFinished:
    ok: bool = True


@dataclass(frozen=True)
class DigitsCollected:
    """A gather ended: ``digits`` is "" when the caller pressed nothing."""

    digits: str
    ok: bool = True


@dataclass(frozen=True)
class AgentRinging:
    leg_id: str


@dataclass(frozen=True)
class AgentConnected:
    leg_id: str


@dataclass(frozen=True)
class AgentUnavailable:
    """The transfer target did not take the call: ``no-answer``, ``busy`` or ``failed``."""

    leg_id: str | None
    reason: Unreachable


@dataclass(frozen=True)
class AgentHungUp:
    leg_id: str


@dataclass(frozen=True)
class CallEnded:
    """The caller's leg is over; ``by`` is who hung up, when it was a person."""

    status: LegStatus
    by: HungUpBy | None = None


@dataclass(frozen=True)
class RecordingFinished:
    recording_id: str | None
    duration_s: float | None = None
    ok: bool = True


@dataclass(frozen=True)
class HttpResponded:
    """The answer to an ``HttpRequest``: a status and body, or why there is none."""

    status: int | None
    body: bytes = b""
    error: str | None = None


@dataclass(frozen=True)
class Progress:
    """A delivery that moves nothing for the graph (ringing, a command accepted)."""

    what: str


Event = (
    CallAnswered
    | PromptFinished
    | DigitsCollected
    | AgentRinging
    | AgentConnected
    | AgentUnavailable
    | AgentHungUp
    | CallEnded
    | RecordingFinished
    | HttpResponded
    | Progress
)
