"""What the simulated person on a call experienced, in order, in simulated seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RINGING = "ringing"
ANSWERED = "answered"
HEARD = "heard"
PRESSED = "pressed"
SILENCE = "silence"
RECORDED = "recorded"
TRANSFERRING = "transferring"
REACHED = "reached"
AGENT_NO_ANSWER = "no-answer"
AGENT_BUSY = "busy"
AGENT_FAILED = "failed"
AGENT_HUNG_UP = "agent-hung-up"
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
    TRANSFERRING: "transfer",
    REACHED: "reached",
    AGENT_NO_ANSWER: "agent",
    AGENT_BUSY: "agent",
    AGENT_FAILED: "agent",
    AGENT_HUNG_UP: "agent",
    CALLER_HUNG_UP: "hang-up",
    ENDED: "ended",
    NOTE: "note",
}


@dataclass(frozen=True)
class Entry:
    at: float
    """Simulated seconds since the call was created."""
    kind: str
    text: str


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

    def add(self, at: float, kind: str, text: str = "") -> None:
        self.entries.append(Entry(round(at, 3), kind, text))

    def texts(self, kind: str) -> list[str]:
        """The texts of the entries of one kind, in order (e.g. everything ``heard``)."""
        return [entry.text for entry in self.entries if entry.kind == kind]

    def kinds(self) -> list[str]:
        return [entry.kind for entry in self.entries]

    def render(self) -> str:
        title = f"Call {self.call_id} ({self.script_name}): {self.from_number} -> {self.to_number}"
        lines = [title]
        for entry in self.entries:
            label = _LABELS.get(entry.kind, entry.kind)
            text = f"  {label:<9} {entry.text}" if entry.text else f"  {label}"
            lines.append(f"  {entry.at:7.1f}s{text}".rstrip())
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
            "entries": [
                {"at": entry.at, "kind": entry.kind, "text": entry.text} for entry in self.entries
            ],
        }
