"""Agents, live in Redis: configured through the API (``PUT /agents/{id}``), their
status set by the person (``PUT /agents/{id}/status``), their state kept by the
line (``service.runtime.line``). Each change is one Lua script sharing the line's
steps, so that an agent's status, state and place among a queue's idle agents never
disagree. ``IVR_AGENTS_FILE`` may seed agents at start-up (:func:`read_agents_file`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from service.core.queues import (
    AGENT_STATUSES,
    MAX_LEVEL,
    MIN_LEVEL,
    Agent,
    AgentStatus,
    Membership,
)
from service.runtime import keys
from service.runtime.line import LUA_PRELUDE, LineResult, today

# Creates or replaces an agent's configuration; their status and state stay (an idle
# agent keeps the time they became idle: a new name does not cost them their turn).
# KEYS[1]  the timers   ARGV[1] now (ms)   ARGV[2] today   ARGV[3] the agent id
# ARGV[4]  the agent's JSON   ARGV[5] its address   ARGV[6] its queues ({q: [level, pos]})
# ARGV[7]  the status of a new agent
# Returns the line_result JSON.
PUT_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local agent = ARGV[3]
local key = k_agent(agent)
local status = redis.call('HGET', key, 'status')
if status == 'available' then
  count_available(agent, -1)
  leave_idle(agent)
end
redis.call('HSET', KEYS[2], agent, ARGV[4])
redis.call('HSET', key, 'address', ARGV[5], 'm', ARGV[6])
if not status then
  status = ARGV[7]
  redis.call('HSET', key, 'status', status, 'state', 'idle', 'missed', 0, 'since', int(NOW))
end
if status == 'available' then
  count_available(agent, 1)
  local a = redis.call('HMGET', key, 'state', 'since')
  if a[1] == 'idle' then make_idle(agent, tonumber(a[2])) end
end
return line_result()
"""
)

# Deletes an agent, unless they are offered a caller or in a call.
# KEYS[1]  the timers   KEYS[2] the agents (keys.agents)   ARGV[1] now   ARGV[2] today
# ARGV[3]  the agent id
# Returns "missing", "busy" or "deleted".
DELETE_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local agent = ARGV[3]
local key = k_agent(agent)
if redis.call('HEXISTS', KEYS[2], agent) == 0 then return 'missing' end
local a = redis.call('HMGET', key, 'status', 'state')
if a[2] == 'offered' or a[2] == 'in_call' then return 'busy' end
if a[1] == 'available' then count_available(agent, -1) end
leave_idle(agent)
redis.call('DEL', key)
redis.call('HDEL', KEYS[2], agent)
redis.call('ZREM', TIMERS, 'agent:' .. agent)
return 'deleted'
"""
)

# Sets an agent's status. Available: idle agents (and agents in wrap-up, which ends
# early) are offered callers again; a break or going offline takes them out of the
# idle sets (an agent in a call finishes it).
# KEYS[1]  the timers   KEYS[2] the agents   ARGV[1] now   ARGV[2] today
# ARGV[3]  the agent id   ARGV[4] the status
# Returns "missing", or the line_result JSON.
STATUS_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local agent, status = ARGV[3], ARGV[4]
if redis.call('HEXISTS', KEYS[2], agent) == 0 then return 'missing' end
local changed = set_status(agent, status)
local a = redis.call('HMGET', k_agent(agent), 'state')
if status == 'available' and a[1] == 'wrap_up' then
  make_idle(agent)  -- wrap-up ended early
  note(agent, 'idle', '')
elseif changed and status == 'available' and a[1] == 'idle' then
  make_idle(agent)  -- idle from now, as the person became available now
end
if changed then note(agent, status, '') end
return line_result()
"""
)


class AgentError(ValueError):
    """An agent's JSON is not valid: ``path`` (a JSON pointer) says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def parse_agent(agent_id: str, document: Any, known_queues: Mapping[str, Any]) -> Agent:
    """An :class:`Agent` from ``PUT /agents/{id}``'s JSON (or an agents file's
    entry); :class:`AgentError` names what is wrong, and where."""
    if not isinstance(document, dict):
        raise AgentError("/", "an agent is a JSON object")
    allowed = {"id", "name", "address", "queues", "status"}
    for name in document:
        if name not in allowed:
            raise AgentError(f"/{name}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
    if "id" in document and document["id"] != agent_id:
        raise AgentError("/id", f"is {document['id']!r}, but the URL names {agent_id!r}")
    name = document.get("name", agent_id)
    if not isinstance(name, str) or not name.strip():
        raise AgentError("/name", "must be a non-empty string")
    address = document.get("address")
    if not isinstance(address, str) or not _is_address(address):
        raise AgentError("/address", "must be an E.164 number (+31612345678) or a sip: URI")
    raw_queues = document.get("queues", {})
    if not isinstance(raw_queues, dict):
        raise AgentError("/queues", 'must be an object {"queue": {"level": 1, "position": 1}}')
    queues: dict[str, Membership] = {}
    for queue, place in raw_queues.items():
        where = f"/queues/{queue}"
        if queue not in known_queues:
            known = ", ".join(sorted(known_queues)) or "none: queues.json is missing"
            raise AgentError(where, f"no queue {queue!r} in queues.json (known: {known})")
        if place is None:
            place = {}
        if not isinstance(place, dict) or set(place) - {"level", "position"}:
            raise AgentError(where, 'must be an object {"level": 1, "position": 1}')
        level, position = place.get("level", 1), place.get("position", 1)
        if type(level) is not int or not MIN_LEVEL <= level <= MAX_LEVEL:
            raise AgentError(f"{where}/level", f"must be an integer {MIN_LEVEL}..{MAX_LEVEL}")
        if type(position) is not int or not 1 <= position <= 10_000:
            raise AgentError(f"{where}/position", "must be an integer 1..10000")
        queues[queue] = Membership(level, position)
    status = document.get("status", "offline")
    if status not in AGENT_STATUSES:
        raise AgentError("/status", f"must be one of {', '.join(AGENT_STATUSES)}")
    return Agent(id=agent_id, name=name.strip(), address=address, queues=queues)


def _is_address(value: str) -> bool:
    if value.startswith("sip:"):
        return len(value) > 4 and " " not in value
    return (
        value.startswith("+")
        and value[1:].isascii()
        and value[1:].isdigit()
        and (8 <= len(value) <= 16)
    )


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "address": agent.address,
        "queues": {q: {"level": m.level, "position": m.position} for q, m in agent.queues.items()},
    }


@dataclass(frozen=True)
class AgentView:
    """An agent as ``GET /agents`` shows them: configuration, status and state."""

    agent: Agent
    status: str
    state: str
    until: float | None
    call_id: str | None
    queue: str | None
    missed: int
    calls_today: int
    talk_s_today: float

    def to_json(self) -> dict[str, Any]:
        return {
            **agent_json(self.agent),
            "status": self.status,
            "state": self.state,
            "until": self.until,
            "call_id": self.call_id,
            "queue": self.queue,
            "missed_in_a_row": self.missed,
            "calls_today": self.calls_today,
            "talk_s_today": self.talk_s_today,
        }


class Agents:
    def __init__(
        self, redis: Redis, *, channel_id: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._timers = keys.timers(channel_id)
        self._clock = clock
        self._put = redis.register_script(PUT_SCRIPT)
        self._delete = redis.register_script(DELETE_SCRIPT)
        self._status = redis.register_script(STATUS_SCRIPT)

    def _now(self) -> tuple[int, str]:
        now = self._clock()
        return int(now * 1000), today(now)

    async def put(self, agent: Agent, *, status: AgentStatus = "offline") -> LineResult:
        """Create or replace ``agent`` (a new agent starts with ``status``)."""
        now_ms, day = self._now()
        memberships = {q: [m.level, m.position] for q, m in agent.queues.items()}
        raw = await self._put(
            keys=[self._timers, keys.agents()],
            args=[now_ms, day, agent.id, json.dumps(agent_json(agent)), agent.address,
                  json.dumps(memberships) if memberships else "{}", status],
        )  # fmt: skip
        return LineResult.read(raw)

    async def delete(self, agent_id: str) -> str:
        """``deleted``, ``missing``, or ``busy`` (offered a caller or in a call)."""
        now_ms, day = self._now()
        raw = await self._delete(keys=[self._timers, keys.agents()], args=[now_ms, day, agent_id])
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def set_status(self, agent_id: str, status: AgentStatus) -> LineResult | None:
        """None when there is no such agent."""
        now_ms, day = self._now()
        raw = await self._status(
            keys=[self._timers, keys.agents()], args=[now_ms, day, agent_id, status]
        )
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return None if text == "missing" else LineResult.read(text)

    async def get(self, agent_id: str) -> AgentView | None:
        found = await self.all([agent_id])
        return found[0] if found else None

    async def all(self, only: list[str] | None = None) -> list[AgentView]:
        """Every agent (or those of ``only``), by id."""
        if only is None:
            configured = await self._redis.hgetall(keys.agents())
        else:
            values = await self._redis.hmget(keys.agents(), only)
            configured = {i: v for i, v in zip(only, values, strict=True) if v is not None}
        views: list[AgentView] = []
        for raw_id in sorted(configured, key=lambda i: i if isinstance(i, str) else i.decode()):
            agent_id = raw_id if isinstance(raw_id, str) else raw_id.decode()
            document = json.loads(configured[raw_id])
            agent = parse_agent(agent_id, document, document.get("queues", {}))
            live = await self._redis.hgetall(keys.agent(agent_id))
            views.append(_view(agent, {_s(k): _s(v) for k, v in live.items()}))
        return views


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _view(agent: Agent, live: Mapping[str, str]) -> AgentView:
    until = int(live.get("until") or 0)
    state = live.get("state", "idle")
    return AgentView(
        agent=agent,
        status=live.get("status", "offline"),
        state=state,
        until=until / 1000 if until and state in ("wrap_up", "cooldown") else None,
        call_id=live.get("call") or None,
        queue=live.get("queue") or None,
        missed=int(live.get("missed") or 0),
        calls_today=int(live.get("calls") or 0),
        talk_s_today=round(int(live.get("talk_ms") or 0) / 1000, 1),
    )


class AgentsFileError(ValueError):
    """The agents file cannot be used: the message names the file and where."""


def read_agents_file(
    path: Path, known_queues: Mapping[str, Any]
) -> list[tuple[Agent, AgentStatus]]:
    """The agents of ``IVR_AGENTS_FILE``: ``{"agents": {ID: {name, address, queues,
    status}}}``; :class:`AgentsFileError` names the file and the JSON path."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentsFileError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AgentsFileError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise AgentsFileError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    agents = document.get("agents") if isinstance(document, dict) else None
    if not isinstance(agents, dict):
        raise AgentsFileError(f'{path}: /: must be {{"agents": {{"ID": {{...}}}}}}')
    found: list[tuple[Agent, AgentStatus]] = []
    for agent_id, entry in agents.items():
        try:
            agent = parse_agent(agent_id, entry, known_queues)
        except AgentError as exc:
            raise AgentsFileError(f"{path}: /agents/{agent_id}{exc.path.rstrip('/')}: "
                                  f"{exc.message}") from None  # fmt: skip
        status = entry.get("status", "available")
        found.append((agent, status))
    return found
