"""A call's journal: one JSON entry per committed step, kept with the call (the
runtime stores it in Redis, ``service.runtime.journal``) so that what the caller
did can be read back and replayed against a draft graph (:mod:`service.core.replay`). Pure.

An entry is ``{"t": when (the time graphs see, s), "node": where the step began,
"path": [the nodes it entered, in order], "at": the node it ended at, "outcome":
how the call ended (when it did)}`` and, for what the step was fed:

- ``"begin": {"direction", "caller", "called", "vars", "callback"}``: the call started;
- ``"event": {"type": NAME, ...fields}``: an event of :mod:`service.core.events`
  (bytes as base64 in ``FIELD_b64``);
- ``"abandon": REASON``: the service gave the call up.

The journal holds numbers and what callers typed, as the call's state does; it
lives no longer than the call's state (``CALL_TTL_S``).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.core import events
from service.core.engine import Note

_EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in vars(events).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == events.__name__
}
_EVENT_CLASSES = tuple(_EVENT_TYPES.values())


def event_to_json(event: events.Event) -> dict[str, Any]:
    """An event as JSON: its type's name and its fields."""
    found: dict[str, Any] = {"type": type(event).__name__}
    for item in dataclasses.fields(event):
        value = getattr(event, item.name)
        if isinstance(value, bytes):
            found[f"{item.name}_b64"] = base64.b64encode(value).decode()
        elif isinstance(value, _EVENT_CLASSES):  # AnsweredBy's delivery event
            found[item.name] = event_to_json(value)
        else:
            found[item.name] = value
    return found


def event_from_json(raw: Mapping[str, Any]) -> events.Event:
    """The event :func:`event_to_json` wrote; ValueError when it is not one."""
    cls = _EVENT_TYPES.get(str(raw.get("type")))
    if cls is None:
        raise ValueError(f"unknown event type {raw.get('type')!r}")
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if f"{item.name}_b64" in raw:
            values[item.name] = base64.b64decode(raw[f"{item.name}_b64"])
        elif item.name in raw:
            value = raw[item.name]
            nested = isinstance(value, Mapping) and "type" in value
            values[item.name] = event_from_json(value) if nested else value
    try:
        event: events.Event = cls(**values)
    except TypeError as exc:
        raise ValueError(f"{raw.get('type')}: {exc}") from None
    return event


def path_of(notes: Iterable[Note]) -> list[str]:
    """The nodes a step entered, in order."""
    return [note.node for note in notes if note.event == "node_entered" and note.node]


def entry(
    fed: Mapping[str, Any],
    *,
    now: float,
    node: str | None,
    notes: Sequence[Note],
    at: str | None,
    outcome: str | None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """One journal entry (JSON): the step fed ``fed`` (``begin``, ``event`` or
    ``abandon``) at ``now``, begun at ``node``, ended at ``at``; ``extra``: what
    the runtime adds for a call's timeline (not replayed)."""
    found: dict[str, Any] = {"t": round(now, 3), **fed, "node": node, "path": path_of(notes),
                             "at": at, **(extra or {})}  # fmt: skip
    if outcome is not None:
        found["outcome"] = outcome
    return json.dumps(found, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Entry:
    """One step of a call as its journal kept it."""

    t: float
    node: str | None
    path: tuple[str, ...]
    at: str | None
    outcome: str | None
    begin: Mapping[str, Any] | None = None
    event: events.Event | None = None
    abandon: str | None = None

    @classmethod
    def from_json(cls, raw: str | bytes) -> Entry:
        return cls.from_doc(json.loads(raw))

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Entry:
        """The step an entry's decoded JSON holds."""
        return cls(
            t=float(doc["t"]),
            node=doc.get("node"),
            path=tuple(doc.get("path", ())),
            at=doc.get("at"),
            outcome=doc.get("outcome"),
            begin=doc.get("begin"),
            event=event_from_json(doc["event"]) if "event" in doc else None,
            abandon=doc.get("abandon"),
        )
