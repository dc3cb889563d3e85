"""Changes to the line: what a call's transition does to its queue and its agent.

The engine asks for these alongside its actions; the runtime applies them in the
same atomic step that commits the call's new state (``service.runtime.store`` with
``service.runtime.line``), so that a caller's place in line and an agent's state
never disagree with the call, whatever worker dies when. Pure: names and data only.

- :class:`TakeOffer`: the caller takes the offer the line made them (an agent's
  phone is about to ring). Fenced: it fails, and the whole commit with it, unless
  the offer is still the one the line holds for this caller, so that an offer the
  line took back (its lease expired) is never bridged.
- :class:`OfferAnswered`: the agent answered; the caller leaves the line, the agent
  is in a call.
- :class:`OfferMissed`: the agent did not answer, was busy or failed; the caller
  goes back to their place, the agent to a cooldown (or on break after
  ``max_no_answer`` misses in a row).
- :class:`LeaveLine`: the caller leaves the line (hung up, waited too long, nobody
  to wait for, chose a callback); an offer ringing for them is taken back and its
  agent is idle again at once.
- :class:`AgentCallEnded`: the call with the agent is over; the agent wraps up.
- :class:`BookCallback`: the caller asked to be called back: a callback takes a
  place in the queue's line (the caller's own place when they come from its
  line), at most one per (queue, number) (:func:`callback_id`).
- :class:`CallbackFailed`: the follow-up call of a callback was not answered,
  nobody pressed 1, or the customer hung up before an agent answered: the agent
  reserved for it is free at once, and the callback is tried again after the
  queue's ``callback_retry_s`` (keeping its place) or, past ``callback_attempts``,
  dropped.

A callback's follow-up call takes, answers or misses its offer like a caller
(``callback`` names the callback whose place in line the offer is for).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from service.core.events import Unreachable

LeaveReason = Literal["abandoned", "timed_out", "no_agents", "callback"]


CallbackFailure = Literal["no-answer", "busy", "failed", "no_key", "hung_up", "machine"]


def callback_id(queue: str, number: str) -> str:
    """The id of the callback of ``number`` in ``queue``: one per (queue, number), and
    no phone number in Redis key names or logs."""
    return hashlib.sha256(f"{queue}\x00{number}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class TakeOffer:
    queue: str
    offer: str
    callback: str | None = None


@dataclass(frozen=True)
class OfferAnswered:
    queue: str
    offer: str
    callback: str | None = None


@dataclass(frozen=True)
class OfferMissed:
    queue: str
    offer: str
    reason: Unreachable
    callback: str | None = None


@dataclass(frozen=True)
class LeaveLine:
    queue: str
    reason: LeaveReason
    offer: str | None = None


@dataclass(frozen=True)
class AgentCallEnded:
    queue: str
    offer: str


@dataclass(frozen=True)
class BookCallback:
    """Call ``number`` back from ``line_number``: at the place the caller leaves in
    the same step (``LeaveLine`` with reason ``callback``), else at a place from now
    with ``priority``. The line keeps places on its own clock (the graphs' clock may
    be pinned). The follow-up call runs on ``graph``, at ``node`` (the callback node,
    for its queue and the logs)."""

    queue: str
    number: str
    line_number: str
    priority: int
    graph: str
    node: str


@dataclass(frozen=True)
class CallbackFailed:
    queue: str
    offer: str
    callback: str
    reason: CallbackFailure


LineChange = (
    TakeOffer
    | OfferAnswered
    | OfferMissed
    | LeaveLine
    | AgentCallEnded
    | BookCallback
    | CallbackFailed
)
