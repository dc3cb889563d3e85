"""The line at a glance, for ``GET /queues``: per queue, who waits (and who of them
is being offered an agent), its agents by state and status, and today's counters.

Read-only: it reads the keys ``service.runtime.line`` keeps (``keys.queue_waiting``,
``queue_offered``, ``queue_entry``, ``queue_stats``, ``agent``, ``agents``) and
changes nothing. Two pipelined round trips whatever the number of queues, callers
and agents: the queues' sets and counters with the agents' configuration; then every
caller's entry and every member agent's live fields. The agents are found by
reading the agents hash (an admin view: not a hot path). The reads are not one
atomic snapshot: a caller offered an agent between two round trips may show as
waiting, never as lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from service.core.queues import AGENT_STATES, AGENT_STATUSES, Queue
from service.runtime import keys
from service.runtime.line import today

# The day's counters of a queue (keys.queue_stats) that GET /queues shows as they are.
COUNTERS = (
    "joined",
    "answered",
    "abandoned",
    "timed_out",
    "no_agents",
    "callback",
    "handled",
    "callbacks_requested",
    "callbacks_connected",
    "callbacks_failed",
)


@dataclass(frozen=True)
class Caller:
    """A caller in line: ``ringing`` while an agent (``agent_id``) is offered to them.
    A ``callback`` holds its place (``call_id`` is then ``cb:ID``; ringing: being
    called back for that agent)."""

    call_id: str
    position: int
    waited_s: float
    priority: int
    ringing: bool
    agent_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "position": self.position,
            "waited_s": self.waited_s,
            "priority": self.priority,
            "ringing": self.ringing,
            "agent_id": self.agent_id,
            "callback": self.call_id.startswith("cb:"),
        }


@dataclass(frozen=True)
class QueueBoard:
    name: str
    waiting: tuple[Caller, ...]
    agents_by_state: Mapping[str, int]
    agents_by_status: Mapping[str, int]
    day: str
    counters: Mapping[str, int]
    wait_ms: int
    handle_ms: int
    callbacks_pending: int = 0
    strategy: str = "longest-idle"

    @property
    def longest_wait_s(self) -> float:
        return max((c.waited_s for c in self.waiting), default=0.0)

    def to_json(self) -> dict[str, Any]:
        answered, handled = self.counters["answered"], self.counters["handled"]
        return {
            "strategy": self.strategy,
            "waiting": [caller.to_json() for caller in self.waiting],
            "callbacks_pending": self.callbacks_pending,
            "longest_wait_s": self.longest_wait_s,
            "agents": {
                "total": sum(self.agents_by_status.values()),
                "by_state": dict(self.agents_by_state),
                "by_status": dict(self.agents_by_status),
            },
            "today": {
                "day": self.day,
                **self.counters,
                "average_wait_s": round(self.wait_ms / 1000 / answered, 1) if answered else None,
                "average_handle_s": (
                    round(self.handle_ms / 1000 / handled, 1) if handled else None
                ),
            },
        }


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(_s(value)) if value is not None else default
    except ValueError:
        return default


class Board:
    def __init__(self, redis: Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock

    async def read(self, queues: Mapping[str, Queue]) -> dict[str, QueueBoard]:
        """The board of each of ``queues`` (by name, in name order)."""
        now = self._clock()
        day = today(now)
        names = sorted(queues)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.agents())
            for name in names:
                pipe.zrange(keys.queue_waiting(name), 0, -1, withscores=True)
                pipe.zrange(keys.queue_offered(name), 0, -1, withscores=True)
                pipe.hgetall(keys.queue_stats(name, day))
                pipe.zcard(keys.queue_callbacks(name))
            first = await pipe.execute()
        configured: dict[Any, Any] = first[0]
        # Who is in line where (waiting and ringing together, by place), and the
        # agents of each current queue, from their configuration.
        lines: dict[str, list[tuple[float, str, bool]]] = {}
        stats: dict[str, dict[str, str]] = {}
        callbacks: dict[str, int] = {}
        for index, name in enumerate(names):
            waiting, offered, raw_stats, callbacks[name] = first[1 + 4 * index : 5 + 4 * index]
            places = [(float(score), _s(m), False) for m, score in waiting]
            places += [(float(score), _s(m), True) for m, score in offered]
            lines[name] = sorted(places)
            stats[name] = {_s(k): _s(v) for k, v in raw_stats.items()}
        members: dict[str, list[str]] = {name: [] for name in names}
        for raw_id, raw in configured.items():
            try:
                agent_queues = json.loads(raw).get("queues") or {}
            except (ValueError, AttributeError):
                continue
            for name in agent_queues:
                if name in members:
                    members[name].append(_s(raw_id))
        agent_ids = sorted({a for ids in members.values() for a in ids})
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                for _, call_id, _ in lines[name]:
                    pipe.hmget(keys.queue_entry(name, call_id), ["joined", "priority", "offer"])
            for agent_id in agent_ids:
                pipe.hmget(keys.agent(agent_id), ["status", "state", "offer", "call", "queue"])
            second = iter(await pipe.execute())
        entries = {(name, call_id): next(second) for name in names for _, call_id, _ in lines[name]}
        live = {agent_id: [_s(v) if v is not None else "" for v in next(second)]
                for agent_id in agent_ids}  # fmt: skip
        boards: dict[str, QueueBoard] = {}
        for name in names:
            boards[name] = self._board(queues[name], lines[name], entries, members[name], live,
                                       stats[name], now, day, callbacks[name])  # fmt: skip
        return boards

    @staticmethod
    def _board(
        queue: Queue,
        places: list[tuple[float, str, bool]],
        entries: Mapping[tuple[str, str], list[Any]],
        members: list[str],
        live: Mapping[str, list[str]],
        stats: Mapping[str, str],
        now: float,
        day: str,
        callbacks_pending: int = 0,
    ) -> QueueBoard:
        name = queue.name
        # The agent each ringing caller is offered to: the agent still holding the
        # offer the caller's entry names.
        ringing_agent: dict[str, str] = {}
        for member in members:
            _, state, offer, call, in_queue = live[member]
            if state == "offered" and in_queue == name and offer:
                ringing_agent[call] = member
        waiting: list[Caller] = []
        for _, call_id, ringing in places:
            joined, priority, entry_offer = entries[(name, call_id)]
            if joined is None:
                continue  # left the line between the two reads
            agent_id = ringing_agent.get(call_id) if ringing else None
            if agent_id is not None and live[agent_id][2] != _s(entry_offer or b""):
                agent_id = None
            waiting.append(
                Caller(
                    call_id=call_id,
                    position=len(waiting) + 1,
                    waited_s=round(max(0.0, now - _int(joined) / 1000), 1),
                    priority=_int(priority),
                    ringing=ringing,
                    agent_id=agent_id,
                )
            )
        by_state = dict.fromkeys(AGENT_STATES, 0)
        by_status = dict.fromkeys(AGENT_STATUSES, 0)
        for member in members:
            status, state = live[member][0] or "offline", live[member][1] or "idle"
            by_status[status] = by_status.get(status, 0) + 1
            by_state[state] = by_state.get(state, 0) + 1
        return QueueBoard(
            name=name,
            waiting=tuple(waiting),
            agents_by_state=by_state,
            agents_by_status=by_status,
            day=day,
            counters={c: _int(stats.get(c)) for c in COUNTERS},
            wait_ms=_int(stats.get("wait_ms")),
            handle_ms=_int(stats.get("handle_ms")),
            callbacks_pending=callbacks_pending,
            strategy=queue.strategy,
        )
