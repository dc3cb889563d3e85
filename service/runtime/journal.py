"""A call's journal in Redis (``keys.call_journal``), and the call's timeline read
from it.

The journal holds, oldest first:

- the call's *steps*, written by the call's commit (``CallStore.commit_changes``) in
  :mod:`service.core.journal`'s format, with what the runtime adds for the timeline:
  ``rt`` (the real time, s), ``via`` (the delivery that caused the step, as
  ``Delivery.describe`` says it), ``do`` (what the step asked for, as
  ``actions.describe`` says it) and, on the first step, ``graph`` and ``version``;
- *notes* beside the steps, each ``{"kind", "rt", ...}``: ``delivery`` (a delivery
  that changed nothing: ``status``, ``delivery``, ``detail``) and ``command`` (a
  request to Bird and its answer: ``action``, ``result``, ``ms``, ``attempt``,
  ``detail``, ``command_id``), written with the call's pending command
  (``CallStore.update_pending``) or alone (``CallStore.note``).

:func:`read` gives the steps (``ivr replay``); :func:`read_timeline` every entry
as one line each (``GET /admin/calls/{id}``, ``ivr trace``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis

from service.core.journal import Entry
from service.runtime import keys, packing

Kind = Literal["begin", "delivery", "step", "command", "error"]


def delivery_note(now: float, *, delivery: str, status: str, detail: str = "") -> str:
    """A delivery that changed nothing (a repeat, a late one, ...), as a journal note."""
    return _note("delivery", now, delivery=delivery, status=status, detail=detail or None)


def command_note(
    now: float,
    *,
    action: str,
    result: str,
    ms: float | None = None,
    attempt: int | None = None,
    detail: str = "",
    command_id: str | None = None,
) -> str:
    """A request to Bird and what came of it (``result``: accepted, not_performed,
    unsure, refused, placed, read, ...), as a journal note."""
    return _note(
        "command", now, action=action, result=result,
        ms=round(ms, 1) if ms is not None else None, attempt=attempt, detail=detail or None,
        command_id=command_id,
    )  # fmt: skip


def _note(kind: str, now: float, **fields: Any) -> str:
    found = {"kind": kind, "rt": round(now, 3)}
    found.update({name: value for name, value in fields.items() if value is not None})
    return json.dumps(found, separators=(",", ":"), ensure_ascii=False)


async def read(redis: Redis, call_id: str) -> list[Entry]:
    """A call's steps, oldest first (empty when the call is unknown or gone)."""
    raw = await redis.lrange(keys.call_journal(call_id), 0, -1)
    docs = [json.loads(packing.unpack(item)) for item in raw]
    return [Entry.from_doc(doc) for doc in docs if "kind" not in doc]


@dataclass(frozen=True)
class Moment:
    """One line of a call's timeline: ``at`` (real time, s), what ``kind`` of thing
    happened, and ``text`` saying it in one line (numbers unmasked: whoever shows
    it masks them); ``fields``: the entry's own fields (a step's: ``t``, the time
    its graph saw, ``path``, ``to_node``, ``outcome``, ``do``)."""

    at: float
    kind: Kind
    text: str
    node: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "node": self.node, **self.fields}


async def read_timeline(redis: Redis, call_id: str) -> list[Moment]:
    """Everything the call's journal holds, one :class:`Moment` per line, in order."""
    raw = await redis.lrange(keys.call_journal(call_id), 0, -1)
    return timeline([json.loads(packing.unpack(item)) for item in raw])


def timeline(docs: Sequence[Mapping[str, Any]]) -> list[Moment]:
    """The journal's entries (decoded JSON, oldest first) as a timeline."""
    found: list[Moment] = []
    ended = False
    for doc in docs:
        at = float(doc.get("rt", doc.get("t", 0.0)))
        kind = doc.get("kind")
        if kind == "delivery":
            detail = f": {doc['detail']}" if doc.get("detail") else ""
            text = f"{doc.get('delivery', '?')}: {doc.get('status')}{detail}"
            found.append(Moment(at, "delivery", text, fields=_fields(doc)))
        elif kind == "command":
            found.append(Moment(at, _command_kind(doc), _command_text(doc), fields=_fields(doc)))
        elif kind is None:
            found.extend(_step(at, doc, said_ended=ended))
            ended = ended or bool(doc.get("outcome"))
    return found


def _fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in doc.items() if name not in ("kind", "rt")}


def _command_kind(doc: Mapping[str, Any]) -> Kind:
    return "error" if doc.get("result") in ("refused", "gave_up") else "command"


def _command_text(doc: Mapping[str, Any]) -> str:
    text = f"bird {doc.get('action')}: {doc.get('result')}"
    if doc.get("ms") is not None:
        text += f" in {doc['ms']:g} ms"
    if doc.get("attempt") and doc["attempt"] > 1:
        text += f" (attempt {doc['attempt']})"
    if doc.get("detail"):
        text += f": {doc['detail']}"
    return text


def _step(at: float, doc: Mapping[str, Any], *, said_ended: bool) -> list[Moment]:
    found: list[Moment] = []
    fields = {name: doc[name] for name in ("t", "path", "outcome", "do") if name in doc}
    if "at" in doc:
        fields["to_node"] = doc["at"]  # where the step left the call
    if doc.get("via"):
        found.append(Moment(at, "delivery", f"{doc['via']}: applied", doc.get("node")))
    walked = list(doc.get("path") or [])
    said: list[str] = []
    if "begin" in doc:
        begin = doc["begin"]
        kind: Kind = "begin"
        what = "callback" if begin.get("callback") else begin.get("direction", "inbound")
        said.append(f"{what} call {begin.get('caller')} -> {begin.get('called')}")
        if doc.get("graph"):
            said.append(f"graph {doc['graph']} {doc.get('version', '')}".rstrip())
    elif "abandon" in doc:
        kind = "error"
        said.append(f"given up: {doc['abandon']}")
    else:
        kind = "step"
        said.append(_event_text(doc.get("event") or {}))
    if walked:
        said.append("-> " + " -> ".join(walked))
    for action in doc.get("do") or ():
        said.append(f"do {action}")
    if doc.get("outcome") and not said_ended:
        said.append(f"ended: {doc['outcome']}")
    found.append(Moment(at, kind, "; ".join(said), doc.get("node"), fields))
    return found


def _event_text(event: Mapping[str, Any]) -> str:
    """An event of the journal in a few words: its type and its set fields."""
    name = str(event.get("type", "?"))
    shown = [
        f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
        for key, value in event.items()
        if key != "type" and value not in (None, "", (), [], {})
    ]
    return f"{name}({', '.join(shown)})" if shown else name
