"""What the simulated person on a call experienced, in order, in simulated seconds.

A transcript belongs to the call the simulated person made or took (the caller of an inbound
call, the callee of an outbound one). What happens on the agents' legs of its bridges is told
there too, each entry naming the agent's number, and every bridge is also one :class:`Offer`
in :attr:`Transcript.offers`: which agent rang, and what came of it.

Whether the person's script fit the call (:meth:`Transcript.misfits`): a gather the script had
no input left for (the person stayed silent: :attr:`Transcript.ran_out`), or inputs left over
when the call ended (:attr:`Transcript.unused`), as ``ivr simulate`` judges a script offline.

Answering machines and speech (A13, A14). ``said`` entries are what the person (or the
answering machine's greeting) said; ``amd`` entries Bird's verdict on who answered, which
:attr:`Transcript.amd_result` keeps as delivered; ``beep`` the machine's beep, after which
every prompt played in full is one ``machine-recorded`` entry and one item of
:attr:`Transcript.machine_recorded`: the message the machine recorded. :attr:`Transcript.tags`
and :attr:`Transcript.record` keep what the service's ``createCall`` asked for, and
:attr:`Offer.record` what its ``bridge`` did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
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
SAID = "said"
"""What the person said: at a gather (``say:TEXT``), or an answering machine's greeting."""
AMD = "amd"
"""Bird's answering-machine verdict was delivered (A13)."""
BEEP = "beep"
"""The answering machine beeped: it records from now on."""
MACHINE_RECORDED = "machine-recorded"
"""A prompt the answering machine recorded in full (after its beep)."""

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
    SAID: "said",
    AMD: "amd",
    BEEP: "beep",
    MACHINE_RECORDED: "taped",
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
    record: bool = False
    """The bridge asked Bird to record the conversation (its ``record``)."""

    def describe(self) -> str:
        """``+31201234567 answered (ended by agent)``, ``+31201234568 missed (left ringing)``."""
        text = f"{self.agent} {self.outcome}"
        details = []
        if self.left_ringing:
            details.append("left ringing after the caller hung up")
        if self.ended_by is not None:
            details.append(f"ended by {self.ended_by}")
        if self.record:
            details.append("recorded")
        return f"{text} ({', '.join(details)})" if details else text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Offer:
        return cls(
            at=float(data["at"]),
            agent=str(data["agent"]),
            leg_id=str(data["legId"]),
            offer_number=int(data.get("offerNumber", 1)),
            outcome=str(data.get("outcome", OFFER_RINGING)),
            left_ringing=bool(data.get("leftRinging")),
            ended_by=data.get("endedBy"),
            record=bool(data.get("record")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "agent": self.agent,
            "legId": self.leg_id,
            "offerNumber": self.offer_number,
            "outcome": self.outcome,
            "leftRinging": self.left_ringing,
            "endedBy": self.ended_by,
            "record": self.record,
        }


ORIGIN_SCRIPT = "script"
"""Placed by the program that runs the simulator (``ivr sim --call``, a test)."""
ORIGIN_CONTROL = "control"
"""Placed through the simulator's control endpoint (``POST /sim/calls``, ``ivr call``)."""
ORIGIN_OUTBOUND = "outbound"
"""Placed by the service through Bird's create call API (the callee's transcript)."""


Paint = Callable[[str, str], str]
"""Styles a text as a kind (``ok``, ``bold``, ``warning``, ``error``, ``dim``): the
``paint`` of :class:`service.runtime.style.Style`, or :func:`plain`."""


def plain(kind: str, text: str) -> str:
    return text


# How each kind of entry is styled in a terminal (the rest is plain: what was said).
_KIND_STYLES = {
    PRESSED: "bold",
    SILENCE: "warning",
    REACHED: "ok",
    AGENT_NO_ANSWER: "warning",
    AGENT_BUSY: "warning",
    AGENT_FAILED: "warning",
    CALLER_HUNG_UP: "warning",
    SAID: "bold",
    AMD: "ok",
    MACHINE_RECORDED: "ok",
    RINGING: "dim",
    ENDED: "dim",
    NOTE: "dim",
}


def entry_line(entry: Entry, paint: Paint = plain) -> str:
    """One entry as :meth:`Transcript.render` shows it: ``      3.2s  pressed   1``."""
    label = _LABELS.get(entry.kind, entry.kind)
    text = f"  {label:<9} {entry.text}" if entry.text else f"  {label}"
    line = f"  {entry.at:7.1f}s{text}".rstrip()
    kind = _KIND_STYLES.get(entry.kind)
    return paint(kind, line) if kind else line


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
    started_at: datetime | None = None
    """When the call was placed on the simulator's pinned clock (``ivr sim --at``); None
    when its clock is not pinned."""
    origin: str = ORIGIN_SCRIPT
    """Who placed it: ``script``, ``control`` (``POST /sim/calls``) or ``outbound`` (the
    service, through Bird's create call API)."""
    scripted: bool = True
    """Whether the person follows a script that must fit the call (False: the default callee
    of an outbound call, whom nobody scripted)."""
    ran_out: list[str] = field(default_factory=list)
    """The prompt of each gather the script had no input left for (answered with silence)."""
    unused: tuple[str, ...] = ()
    """The script's inputs left over when the call ended."""
    tags: list[str] = field(default_factory=list)
    """The ``tags`` of the service's ``createCall`` (lower case, as Bird keeps them)."""
    record: bool = False
    """The service's ``createCall`` asked Bird to record the call (its ``record``)."""
    machine: bool = False
    """An answering machine took the call (the callee of an outbound call)."""
    amd_result: dict[str, str] | None = None
    """Bird's answering-machine verdict as delivered (A13); None when none was."""
    machine_recorded: list[str] = field(default_factory=list)
    """The message the answering machine recorded: each prompt played in full after its
    beep (a say's text, ``audio: URL, ...`` for a playback), in order."""

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

    def misfits(self) -> list[str]:
        """Why the script did not fit the call, one line each ([] when it did, or when the
        person was not scripted)."""
        if not self.scripted:
            return []
        found = [
            f'no input left in the script for the gather after "{prompt}" (silence instead)'
            if prompt
            else "no input left in the script for a gather (silence instead)"
            for prompt in self.ran_out
        ]
        if self.unused:
            found.append(f"input left over when the call ended: {', '.join(self.unused)}")
        return found

    @property
    def fits(self) -> bool:
        """The script fit the call: every gather had its input and no input was left over."""
        return not self.misfits()

    def title(self, paint: Paint = plain) -> str:
        title = f"Call {self.call_id} ({self.script_name}): {self.from_number} -> {self.to_number}"
        if self.started_at is not None:
            title += f", at {self.started_at.isoformat(timespec='seconds')} (pinned clock)"
        return paint("bold", title)

    def footer(self, *, fit: bool = False, paint: Paint = plain) -> list[str]:
        """The lines after the entries: the offers, whether it lasts and, with ``fit``, why
        the script did not fit the call (:meth:`misfits`)."""
        lines = []
        if self.offers:
            lines.append("  offers: " + "; ".join(offer.describe() for offer in self.offers))
        asked = [f"tags {', '.join(self.tags)}"] if self.tags else []
        if self.record:
            asked.append("record")
        if asked:
            lines.append("  created with: " + "; ".join(asked))
        if self.machine:
            message = " / ".join(f'"{text}"' for text in self.machine_recorded)
            lines.append(f"  the answering machine recorded: {message or 'nothing'}")
        if not self.ended:
            lines.append(paint("warning", "  (still in progress)"))
        if fit:
            lines += [paint("error", f"  script does not fit: {m}") for m in self.misfits()]
        return lines

    def render(self, *, fit: bool = False, paint: Paint = plain) -> str:
        """The transcript as text; ``fit``: with a line for each of :meth:`misfits` (for
        tools that judge a script by whether it fits, as ``ivr sim --call`` and
        ``ivr call`` do; a caller scripted to stay silent is no misfit to a demo);
        ``paint`` styles its lines (colour in a terminal)."""
        entries = (entry_line(entry, paint) for entry in self.entries)
        return "\n".join([self.title(paint), *entries, *self.footer(fit=fit, paint=paint)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "callId": self.call_id,
            "script": self.script_name,
            "from": self.from_number,
            "to": self.to_number,
            "startedAt": self.started_at.isoformat() if self.started_at is not None else None,
            "origin": self.origin,
            "reached": self.reached,
            "ended": self.ended,
            "finalStatus": self.final_status,
            "hangupSource": self.hangup_source,
            "offers": [offer.to_dict() for offer in self.offers],
            "entries": [
                {"at": entry.at, "kind": entry.kind, "text": entry.text} for entry in self.entries
            ],
            "scripted": self.scripted,
            "ranOut": list(self.ran_out),
            "unusedInputs": list(self.unused),
            "fits": self.fits,
            "misfits": self.misfits(),
            "tags": list(self.tags),
            "record": self.record,
            "machine": self.machine,
            "amdResult": dict(self.amd_result) if self.amd_result is not None else None,
            "machineRecorded": list(self.machine_recorded),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """The transcript :meth:`to_dict` gave (e.g. read back from the control endpoint)."""
        started = data.get("startedAt")
        return cls(
            call_id=str(data["callId"]),
            script_name=str(data.get("script", "")),
            from_number=str(data.get("from", "")),
            to_number=str(data.get("to", "")),
            entries=[
                Entry(float(e["at"]), str(e["kind"]), str(e.get("text", "")))
                for e in data.get("entries", [])
            ],
            reached=data.get("reached"),
            ended=bool(data.get("ended")),
            final_status=data.get("finalStatus"),
            hangup_source=data.get("hangupSource"),
            offers=[Offer.from_dict(offer) for offer in data.get("offers", [])],
            started_at=datetime.fromisoformat(started) if started else None,
            origin=str(data.get("origin") or ORIGIN_SCRIPT),
            scripted=bool(data.get("scripted", True)),
            ran_out=[str(prompt) for prompt in data.get("ranOut", [])],
            unused=tuple(str(value) for value in data.get("unusedInputs", [])),
            tags=[str(tag) for tag in data.get("tags") or []],
            record=bool(data.get("record")),
            machine=bool(data.get("machine")),
            amd_result=_amd_result(data.get("amdResult")),
            machine_recorded=[str(text) for text in data.get("machineRecorded") or []],
        )


def _amd_result(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {str(key): str(item) for key, item in value.items()}
