"""A call's state: where it is in its graph and what the service has seen of it.

One JSON document per call (see ``keys.call``). The engine reads and returns
:class:`CallState`; the store serialises it. ``seen`` and ``recent`` are the
delivery bookkeeping that makes repeated or late deliveries change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Phases of a call, in the order a call usually goes through them.
ANSWERING = "answering"  # we answered (or dialled); waiting for the leg to connect
PROMPTING = "prompting"  # a prompt plays; ``after`` says what follows it
GATHERING = "gathering"  # a menu or collect waits for keys
RECORDING = "recording"  # a voicemail is being recorded
REQUESTING = "requesting"  # an http node waits for its answer
BRIDGING = "bridging"  # the transfer target is being rung
CONNECTED = "connected"  # the caller talks to the transfer target
ENDED = "ended"

PHASES = (ANSWERING, PROMPTING, GATHERING, RECORDING, REQUESTING, BRIDGING, CONNECTED, ENDED)


@dataclass(frozen=True)
class CallState:
    call_id: str
    graph: str
    graph_version: str
    caller: str
    called: str
    direction: str = "inbound"
    phase: str = ANSWERING
    node: str | None = None
    after: str | None = None
    attempts: int = 0
    steps: int = 0
    vars: Mapping[str, str] = field(default_factory=dict)
    agent_leg: str | None = None
    recordings: tuple[str, ...] = ()
    outcome: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    seen: Mapping[str, int] = field(default_factory=dict)
    recent: tuple[str, ...] = ()
    version: int = 0

    @property
    def ended(self) -> bool:
        return self.phase == ENDED

    def template_context(self) -> dict[str, str]:
        context = {"caller": self.caller, "called": self.called, "call_id": self.call_id}
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
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
