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
    """A gather ended: ``digits`` is "" when the caller pressed nothing; ``speech``
    what they said (a gather that listens for words), "" when nothing was understood."""

    digits: str
    ok: bool = True
    speech: str = ""


@dataclass(frozen=True)
class PauseEnded:
    """The silence of a ``pause`` node is over."""


Verdict = Literal["human", "machine", "unknown"]
"""Who answered an outbound call, as answering-machine detection decided."""


@dataclass(frozen=True)
class AnsweredBy:
    """Bird's verdict on who answered (answering-machine detection), on a delivery
    that also means ``then`` for the call: the verdict counts once (the first time
    the call hears it), ``then`` as it would alone."""

    verdict: Verdict
    then: Event


# News of an agent's leg (a transfer target's, or a queue's agent's) carries the
# ``offer`` its bridge was made for (A10: it comes back in the leg's notification
# URL), so that news of an old offer changes nothing for the next one.


@dataclass(frozen=True)
class AgentRinging:
    leg_id: str
    offer: str | None = None


@dataclass(frozen=True)
class AgentConnected:
    leg_id: str
    offer: str | None = None


@dataclass(frozen=True)
class AgentUnavailable:
    """The transfer target did not take the call: ``no-answer``, ``busy`` or ``failed``."""

    leg_id: str | None
    reason: Unreachable
    offer: str | None = None


@dataclass(frozen=True)
class AgentHungUp:
    leg_id: str
    offer: str | None = None


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
class ConversationRecorded:
    """A recorded bridge (``transfer`` or ``queue`` with ``record``) left a recording."""

    recording_id: str
    duration_s: float | None = None


@dataclass(frozen=True)
class HttpResponded:
    """The answer to an ``HttpRequest``: a status and body, or why there is none."""

    status: int | None
    body: bytes = b""
    error: str | None = None


@dataclass(frozen=True)
class LineStatus:
    """The answer to ``AskLine``: where the caller is in line now. ``joined`` is
    False when they are not in it (nobody is available for the queue, so they were
    not added); ``position`` counts from 1 (the head), callers whose offer rings
    included; ``expected_wait_s`` is the line's estimate for this position."""

    joined: bool
    position: int = 0
    agents_available: int = 0
    expected_wait_s: float | None = None


@dataclass(frozen=True)
class AgentOffered:
    """The line chose an agent for the caller (``service.runtime.line``): ring them."""

    offer: str
    agent_id: str
    address: str


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
    | ConversationRecorded
    | HttpResponded
    | LineStatus
    | AgentOffered
    | PauseEnded
    | AnsweredBy
    | Progress
)

AgentNews = AgentRinging | AgentConnected | AgentUnavailable | AgentHungUp
AGENT_NEWS = (AgentRinging, AgentConnected, AgentUnavailable, AgentHungUp)
