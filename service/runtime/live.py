"""What a supervisor sees of calls: the channel's live calls (``keys.live_calls``,
written by each call's commit, ``service.runtime.store``) and one call's state,
pending command and timeline (``service.runtime.journal``). Read by ``GET
/admin/calls``, ``GET /admin/calls/{id}``, the supervisor page, the live-calls
gauge and ``ivr trace``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from service.core.state import CallState
from service.runtime import keys
from service.runtime.journal import Moment, read_timeline
from service.runtime.logs import mask_text
from service.runtime.outbox import Pending
from service.runtime.packing import unpack
from service.runtime.store import CallStore


def iso(moment: float) -> str:
    """A moment (s since the epoch) as ISO 8601 in UTC, to the millisecond."""
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class LiveCall:
    """One call as the live-calls hash has it (times in s, real clock)."""

    call_id: str
    graph: str
    version: str
    node: str | None
    phase: str
    direction: str
    caller: str
    called: str
    started: float
    updated: float

    @classmethod
    def read(cls, call_id: str, raw: str | bytes) -> LiveCall:
        """A summary as ``store.live_summary`` writes it (``<started ms>:<packed
        JSON>``), or as JSON with its ``started`` (written by an earlier version)."""
        data = raw.encode() if isinstance(raw, str) else raw
        started_ms: str | int | None = None
        if not data.startswith(b"{"):
            head, _, data = data.partition(b":")
            started_ms = head.decode()
        doc: Mapping[str, Any] = json.loads(unpack(data))
        if started_ms is None:
            started_ms = doc.get("started", 0)
        return cls(
            call_id=call_id, graph=str(doc.get("graph", "")), version=str(doc.get("version", "")),
            node=doc.get("node"), phase=str(doc.get("phase", "")),
            direction=str(doc.get("direction", "")), caller=str(doc.get("caller", "")),
            called=str(doc.get("called", "")), started=int(started_ms) / 1000,
            updated=int(doc.get("updated", 0)) / 1000,
        )  # fmt: skip

    @classmethod
    def of_state(cls, state: CallState, started: float, updated: float) -> LiveCall:
        return cls(
            call_id=state.call_id, graph=state.graph, version=state.graph_version,
            node=state.node, phase=str(state.phase), direction=str(state.direction),
            caller=state.caller, called=state.called, started=started, updated=updated,
        )  # fmt: skip

    def to_json(self, now: float, *, masked: bool = True) -> dict[str, Any]:
        shown: Callable[[str], str] = mask_text if masked else str
        return {
            "call_id": self.call_id, "graph": self.graph, "version": self.version,
            "node": self.node, "phase": self.phase, "direction": self.direction,
            "caller": shown(self.caller), "called": shown(self.called),
            "started_at": iso(self.started), "updated_at": iso(self.updated),
            "age_s": round(max(now - self.started, 0.0), 1),
        }  # fmt: skip


async def live_calls(redis: Redis, channel_id: str, *, graph: str | None = None) -> list[LiveCall]:
    """The channel's live calls, oldest first (only ``graph``'s, when given). A call
    whose state has expired without its end being delivered is forgotten here."""
    raw = await redis.hgetall(keys.live_calls(channel_id))
    found = [LiveCall.read(_text(call_id), doc) for call_id, doc in raw.items()]
    async with redis.pipeline(transaction=False) as pipe:
        for call in found:
            pipe.exists(keys.call(call.call_id))
        exists = await pipe.execute()
    gone = [call.call_id for call, there in zip(found, exists, strict=True) if not there]
    if gone:
        await redis.hdel(keys.live_calls(channel_id), *gone)
    kept = [call for call, there in zip(found, exists, strict=True) if there]
    if graph is not None:
        kept = [call for call in kept if call.graph == graph]
    return sorted(kept, key=lambda call: (call.started, call.call_id))


@dataclass(frozen=True)
class CallView:
    """One call, live or recently ended: its state, the command it waits on, and
    its timeline."""

    state: CallState
    pending: Pending | None
    timeline: list[Moment]
    started: float
    updated: float

    def to_json(self, now: float, *, masked: bool = True) -> dict[str, Any]:
        shown: Callable[[str], str] = mask_text if masked else str
        call = LiveCall.of_state(self.state, self.started, self.updated).to_json(now, masked=masked)
        call.update(ended=self.state.ended, outcome=_text_or_none(self.state.outcome),
                    recordings=list(self.state.recordings), amd=self.state.amd)  # fmt: skip
        pending = None
        if self.pending is not None:
            pending = {
                "action": type(self.pending.action).__name__.lower(),
                "status": self.pending.status,
                "attempts": self.pending.attempts,
                "due_at": iso(self.pending.until),
            }
        moments = [
            {**moment.to_json(), "at": iso(moment.at), "text": shown(moment.text)}
            for moment in self.timeline
        ]
        return {"call": call, "pending": pending, "timeline": moments}


async def call_view(redis: Redis, call_id: str, *, channel_id: str = "") -> CallView | None:
    """The call ``call_id``, or None when no state is kept for it (unknown, or ended
    longer ago than ``CALL_TTL_S``)."""
    stored = await CallStore(redis, ended_ttl_s=1, channel_id=channel_id).load_call(call_id)
    if stored is None:
        return None
    moments = await read_timeline(redis, call_id)
    live = await redis.hget(keys.live_calls(channel_id), call_id)
    if live is not None:
        summary = LiveCall.read(call_id, live)
        started, updated = summary.started, summary.updated
    elif moments:
        started, updated = moments[0].at, moments[-1].at
    else:
        started = updated = stored.state.started_at
    return CallView(stored.state, stored.pending, moments, started, updated)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
