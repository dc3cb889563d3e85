"""What the simulated person on a call experienced, in order, in simulated seconds.

A transcript belongs to the call the simulated person made or took (the caller of an inbound
call, the callee of an outbound one). What happens on the agents' legs of its bridges is told
there too, each entry naming the agent's number, and every bridge is also one :class:`Offer`
in :attr:`Transcript.offers`: which agent rang, and what came of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RINGING = "ringing"
ANSWERED = "answered"
HEARD = "heard"
PRESSED = "pressed"
SILENCE = "silence"
RECORDED = "recorded"
INTERRUPTED = "interrupted"
"""A prompt was cut short by a command posted while it played (``interrupting_commands``)."""
TRANSFERRING = "transferring"
"""An agent's number starts ringing for this caller (one offer)."""
REACHED = "reached"
AGENT_NO_ANSWER = "no-answer"
AGENT_BUSY = "busy"
AGENT_FAILED = "failed"
AGENT_HUNG_UP = "agent-hung-up"
"""A connected agent's leg ended: the agent, the service or maxDuration ended it."""
AGENT_LEFT_RINGING = "agent-left-ringing"
"""The caller hung up while an agent's leg rang, and the leg was left ringing (A11)."""
AGENT_CANCELLED = "agent-cancelled"
"""An agent's leg ended before it was answered: hung up by the service, or with the caller."""
CALLER_HUNG_UP = "caller-hung-up"
ENDED = "ended"
NOTE = "note"

_LABELS = {
    RINGING: "ringing",
    ANSWERED: "answered",
    HEARD: "heard",
    PRESSED: "pressed",
    SILENCE: "silence",
    RECORDED: "recorded",
    INTERRUPTED: "cut",
    TRANSFERRING: "transfer",
    REACHED: "reached",
    AGENT_NO_ANSWER: "agent",
    AGENT_BUSY: "agent",
    AGENT_FAILED: "agent",
    AGENT_HUNG_UP: "agent",
    AGENT_LEFT_RINGING: "agent",
    AGENT_CANCELLED: "agent",
    CALLER_HUNG_UP: "hang-up",
    ENDED: "ended",
    NOTE: "note",
}

# What came of an offer (Offer.outcome).
OFFER_RINGING = "ringing"
"""Still ringing (also when left ringing after the caller hung up: see ``left_ringing``)."""
OFFER_ANSWERED = "answered"
OFFER_MISSED = "missed"
"""Rang until its ring timeout (Bird status ``no-answer``)."""
OFFER_BUSY = "busy"
OFFER_FAILED = "failed"
OFFER_HUNG_UP_BY_SERVICE = "hung-up-by-service"
"""The service hung the leg up (``/hangup`` on its id) while it rang."""
OFFER_ENDED_WITH_CALLER = "ended-with-caller"
"""The caller hung up while it rang and the leg ended with them (``leave_ringing_legs`` off)."""


@dataclass(frozen=True)
class Entry:
    at: float
    """Simulated seconds since the call was created."""
    kind: str
    text: str


@dataclass
class Offer:
    """One bridge to an agent: which number rang for this call, and what came of it."""

    at: float
    """Simulated seconds since the call was created, when the agent's leg started ringing."""
    agent: str
    """The number (or SIP URI) that rang."""
    leg_id: str
    """The id of the agent's leg (the ``bridgedCall``)."""
    offer_number: int = 1
    """The how-many-th offer to this agent number in the simulator's run (from 1)."""
    outcome: str = OFFER_RINGING
    """``ringing``, ``answered``, ``missed``, ``busy``, ``failed``, ``hung-up-by-service`` or
    ``ended-with-caller``."""
    left_ringing: bool = False
    """The caller hung up while this leg rang and the leg was left ringing (A11)."""
    ended_by: str | None = None
    """For an answered offer, who ended the conversation: ``agent``, ``caller``, ``service``
    or ``timeout`` (maxDuration); None while it lasts."""

    def describe(self) -> str:
        """``+31201234567 answered (ended by agent)``, ``+31201234568 missed (left ringing)``."""
        text = f"{self.agent} {self.outcome}"
        details = []
        if self.left_ringing:
            details.append("left ringing after the caller hung up")
        if self.ended_by is not None:
            details.append(f"ended by {self.ended_by}")
        return f"{text} ({', '.join(details)})" if details else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "agent": self.agent,
            "legId": self.leg_id,
            "offerNumber": self.offer_number,
            "outcome": self.outcome,
            "leftRinging": self.left_ringing,
            "endedBy": self.ended_by,
        }


@dataclass
class Transcript:
    call_id: str
    script_name: str
    from_number: str
    to_number: str
    entries: list[Entry] = field(default_factory=list)
    reached: str | None = None
    """The bridge target that answered last, if any."""
    ended: bool = False
    final_status: str | None = None
    hangup_source: str | None = None
    offers: list[Offer] = field(default_factory=list)
    """Every bridge of this call to an agent, in order."""

    def add(self, at: float, kind: str, text: str = "") -> None:
        self.entries.append(Entry(round(at, 3), kind, text))

    def texts(self, kind: str) -> list[str]:
        """The texts of the entries of one kind, in order (e.g. everything ``heard``)."""
        return [entry.text for entry in self.entries if entry.kind == kind]

    def kinds(self) -> list[str]:
        return [entry.kind for entry in self.entries]

    def offer_outcomes(self) -> list[tuple[str, str]]:
        """``[(agent, outcome), ...]`` of :attr:`offers`, in order."""
        return [(offer.agent, offer.outcome) for offer in self.offers]

    def render(self) -> str:
        title = f"Call {self.call_id} ({self.script_name}): {self.from_number} -> {self.to_number}"
        lines = [title]
        for entry in self.entries:
            label = _LABELS.get(entry.kind, entry.kind)
            text = f"  {label:<9} {entry.text}" if entry.text else f"  {label}"
            lines.append(f"  {entry.at:7.1f}s{text}".rstrip())
        if self.offers:
            lines.append("  offers: " + "; ".join(offer.describe() for offer in self.offers))
        if not self.ended:
            lines.append("  (still in progress)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "callId": self.call_id,
            "script": self.script_name,
            "from": self.from_number,
            "to": self.to_number,
            "reached": self.reached,
            "ended": self.ended,
            "finalStatus": self.final_status,
            "hangupSource": self.hangup_source,
            "offers": [offer.to_dict() for offer in self.offers],
            "entries": [
                {"at": entry.at, "kind": entry.kind, "text": entry.text} for entry in self.entries
            ],
        }
