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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from service.core.events import Unreachable

LeaveReason = Literal["abandoned", "timed_out", "no_agents", "callback"]


@dataclass(frozen=True)
class TakeOffer:
    queue: str
    offer: str


@dataclass(frozen=True)
class OfferAnswered:
    queue: str
    offer: str


@dataclass(frozen=True)
class OfferMissed:
    queue: str
    offer: str
    reason: Unreachable


@dataclass(frozen=True)
class LeaveLine:
    queue: str
    reason: LeaveReason
    offer: str | None = None


@dataclass(frozen=True)
class AgentCallEnded:
    queue: str
    offer: str


LineChange = TakeOffer | OfferAnswered | OfferMissed | LeaveLine | AgentCallEnded
