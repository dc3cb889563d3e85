"""The line: who waits in which queue, which agent is free, and the offers between
them, kept in Redis and changed only by Lua scripts, each one atomic step.

Callers wait in a sorted set per queue (``keys.queue_waiting``) scored by their
place (:func:`place_score`: priority first, then when they joined), so that the head
and a caller's position are O(log n). Agents who may be offered a caller now sit
in one sorted set per queue and tier level (``keys.queue_idle``) scored by the
queue's strategy when they became idle, so that choosing one is O(log n) too, and
never a scan over the agents: dispatch costs the same with 5 agents or 500.

:meth:`Line.dispatch` is :data:`DISPATCH_SCRIPT`: it takes the caller at the head
and the agent the strategy names at the levels the caller may reach (level L once
they have waited ``(L - 1) * tier_wait_s``, or at once when every lower level has
nobody available), and records an *offer* between them with a *lease*: the
caller moves to the queue's ringing set, the agent to ``offered``. The caller's
call then takes the offer in the commit of its new state (``TakeOffer``, fenced:
an offer taken back meanwhile fails the commit) and the outbox sends the bridge.
A worker that dies between choosing and committing leaves the offer's lease to
expire: its timer (``offer:ID`` in ``keys.timers``) fires on any replica and
:meth:`Line.reap` puts the caller back at their place and the agent back to idle.

Everything else that changes the line because of a call (the agent answered,
missed, the caller left, the call with the agent ended) is a
``service.core.line`` change applied by the call's commit script
(``service.runtime.store``) with :data:`LUA_OPS`, in the same atomic step as the
call's state. Agents' wrap-ups and cooldowns end by timer (``agent:ID``,
:meth:`Line.agent_due`).

Callbacks hold a place in line like callers, as ``cb:ID`` members (ids from
``service.core.line.callback_id``: one per queue and number) whose entries keep
who to call. When one reaches the head and an agent is free, dispatch reserves
the agent (``offered``) with a longer lease (:data:`CALLBACK_LEASE_S`, covering
Bird's answer to the create request) and the runtime places the follow-up call,
whose first commit takes the offer. A follow-up call that fails
(``CallbackFailed``) frees the agent at once and parks the callback off the line
until its ``callback:QUEUE:ID`` timer (:meth:`Line.callback_due`) puts it back at
its place; past ``callback_attempts`` it is dropped.

Every script returns what the caller should log about agents (``agents``:
``[agent, event, queue]``) and which queues may now dispatch.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, assert_never

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.core import line
from service.core.events import LineStatus
from service.core.line import LineChange
from service.core.queues import MAX_LEVEL, MAX_PRIORITY, Queue
from service.runtime import keys

# How long an offer chosen by dispatch may wait for its call to take it before any
# replica takes it back (the call's commit follows the choice within milliseconds).
OFFER_LEASE_S = 10.0
# A callback's offer is taken once Bird accepted the follow-up call (a create
# request may take a Bird timeout or two).
CALLBACK_LEASE_S = 60.0
# Offers, and callers' entries, are kept at most this long (a safety net: every
# path that ends them deletes them).
LINE_TTL_S = 2 * 24 * 3600
STATS_TTL_S = 3 * 24 * 3600
# Expected wait before a queue has answered any call today: a handle time guess.
DEFAULT_HANDLE_S = 180.0
# A place's score: priority first (higher first), then when the caller joined (ms).
_PRIORITY_WEIGHT = 10**13


def place_score(priority: int, joined_at: float) -> int:
    """The score of a caller's place: lower is nearer the head."""
    return (MAX_PRIORITY - priority) * _PRIORITY_WEIGHT + int(joined_at * 1000)


def _lua_key(name: str, make: Callable[..., str], arity: int) -> str:
    """``keys.<make>`` as a Lua function, so that the scripts name keys exactly as
    the rest of the service does."""
    params = ["a", "b"][:arity]
    template = make(*(f"\x00{p}\x00" for p in params))
    parts = [part for part in template.split("\x00") if part]
    body = " .. ".join(part if part in params else repr(part) for part in parts)
    return f"local function {name}({', '.join(params)}) return {body} end"


KEY_FUNCTIONS = "\n".join(
    [
        _lua_key("k_agent", keys.agent, 1),
        _lua_key("k_waiting", keys.queue_waiting, 1),
        _lua_key("k_offered", keys.queue_offered, 1),
        _lua_key("k_entry", keys.queue_entry, 2),
        _lua_key("k_idle", keys.queue_idle, 2),
        _lua_key("k_available", keys.queue_available, 1),
        _lua_key("k_config", keys.queue_config, 1),
        _lua_key("k_stats", keys.queue_stats, 2),
        _lua_key("k_offer", keys.offer, 1),
        _lua_key("k_callbacks", keys.queue_callbacks, 1),
    ]
)

# What every line script shares: key names, and the steps of an agent's and a
# caller's life. A script sets NOW (ms), DAY (UTC date) and TIMERS (keys.timers)
# first. Functions that free an agent return the queues that may now dispatch.
LUA_PRELUDE = (
    """
local NOW, DAY, TIMERS = 0, '', ''
local NOTES, DISPATCH, LEFT = {}, {}, {}
"""
    + KEY_FUNCTIONS
    + f"""
local MAX_LEVEL = {MAX_LEVEL}
local MAX_PRIORITY = {MAX_PRIORITY}
local PRIORITY_WEIGHT = {_PRIORITY_WEIGHT}
local LINE_TTL = {LINE_TTL_S}
local STATS_TTL = {STATS_TTL_S}
"""
    + r"""
local function int(x) return string.format('%d', x) end
local function num(v, default) return tonumber(v) or default end

-- A place joined now (service.runtime.line.place_score).
local function score_now(priority)
  return int((MAX_PRIORITY - priority) * PRIORITY_WEIGHT + NOW)
end

local function note(agent, event, q)
  table.insert(NOTES, {agent, event, q})
end

local function wake(queues)
  for _, q in ipairs(queues) do DISPATCH[q] = true end
end

local function cfg(q, name, default)
  local v = redis.call('HGET', k_config(q), name)
  if v then return v end
  return default
end

local function memberships(agent)
  local m = redis.call('HGET', k_agent(agent), 'm')
  if not m or m == '' then return {} end
  return cjson.decode(m)
end

local function stat(q, name, by)
  local key = k_stats(q, DAY)
  redis.call('HINCRBY', key, name, by)
  redis.call('EXPIRE', key, STATS_TTL)
end

local function fresh_day(agent)
  local key = k_agent(agent)
  if redis.call('HGET', key, 'day') ~= DAY then
    redis.call('HSET', key, 'day', DAY, 'calls', 0, 'talk_ms', 0)
  end
end

local function idle_score(q, agent, position, since)
  local strategy = cfg(q, 'strategy', 'longest-idle')
  local key = k_agent(agent)
  if strategy == 'round-robin' then
    return num(redis.call('HGET', key, 'last_offer'), 0)
  elseif strategy == 'fewest-calls' then
    return num(redis.call('HGET', key, 'calls'), 0) * 10000000000000 + since
  elseif strategy == 'least-talk-time' then
    return num(redis.call('HGET', key, 'talk_ms'), 0)
  elseif strategy == 'top-down' then
    return num(position, 1)
  end
  return since
end

local function leave_idle(agent)
  for q, mem in pairs(memberships(agent)) do
    redis.call('ZREM', k_idle(q, mem[1]), agent)
  end
end

local function count_available(agent, delta)
  for q, mem in pairs(memberships(agent)) do
    redis.call('HINCRBY', k_available(q), tostring(mem[1]), delta)
  end
end

-- The agent is free: idle (since ``since``, by default now), and offered callers
-- again when available.
local function make_idle(agent, since)
  since = since or NOW
  local key = k_agent(agent)
  redis.call('HSET', key, 'state', 'idle', 'until', 0, 'offer', '', 'call', '', 'queue', '',
             'since', int(since))
  redis.call('ZREM', TIMERS, 'agent:' .. agent)
  if redis.call('HGET', key, 'status') ~= 'available' then return end
  fresh_day(agent)
  for q, mem in pairs(memberships(agent)) do
    redis.call('ZADD', k_idle(q, mem[1]), int(idle_score(q, agent, mem[2], since)), agent)
    DISPATCH[q] = true
  end
end

-- The agent rests (wrap_up, cooldown) for for_ms, then a timer makes them idle.
local function rest(agent, state, for_ms)
  if for_ms <= 0 then
    make_idle(agent)
    return
  end
  leave_idle(agent)
  local till = NOW + for_ms
  redis.call('HSET', k_agent(agent), 'state', state, 'until', int(till), 'offer', '',
             'since', int(NOW))
  redis.call('ZADD', TIMERS, int(till), 'agent:' .. agent)
end

local function set_status(agent, status)
  local key = k_agent(agent)
  local old = redis.call('HGET', key, 'status')
  if old == status then return false end
  if old == 'available' then
    count_available(agent, -1)
    leave_idle(agent)
  end
  redis.call('HSET', key, 'status', status)
  if status == 'available' then
    count_available(agent, 1)
    redis.call('HSET', key, 'missed', 0)
  end
  return true
end

local function position(q, score)
  local below = '(' .. score
  return redis.call('ZCOUNT', k_waiting(q), '-inf', below)
       + redis.call('ZCOUNT', k_offered(q), '-inf', below) + 1
end

local function available_in(q)
  local total = 0
  for _, n in ipairs(redis.call('HVALS', k_available(q))) do total = total + num(n, 0) end
  return total
end

-- An offer ended without a connection: the caller goes back to their place.
local function back_in_line(q, call)
  local entry = k_entry(q, call)
  redis.call('ZREM', k_offered(q), call)
  local score = redis.call('HGET', entry, 'score')
  if score then
    redis.call('HSET', entry, 'offer', '')
    redis.call('ZADD', k_waiting(q), score, call)
    DISPATCH[q] = true
  end
end

local function out_of_line(q, call)
  redis.call('ZREM', k_waiting(q), call)
  redis.call('ZREM', k_offered(q), call)
  redis.call('DEL', k_entry(q, call))
end

-- A callback's attempt that was not the customer's to fail (dispatch counted it).
local function uncount_attempt(q, member)
  local entry = k_entry(q, member)
  if redis.call('EXISTS', entry) == 1 then redis.call('HINCRBY', entry, 'attempts', -1) end
end

-- The agent who still holds this offer (nil once they moved on).
local function agent_of(offer)
  local agent = redis.call('HGET', k_offer(offer), 'agent')
  if agent and redis.call('HGET', k_agent(agent), 'offer') == offer then return agent end
  return nil
end

local function drop_offer(offer)
  redis.call('DEL', k_offer(offer))
  redis.call('ZREM', TIMERS, 'offer:' .. offer)
end

-- Take back an offer that never reached a bridge: caller to their place (or out
-- of line when their call is gone), agent idle with no penalty.
local function take_back(offer, drop_caller)
  local o = redis.call('HMGET', k_offer(offer), 'queue', 'call', 'status')
  local q, call = o[1], o[2]
  if not q then return false end
  if string.sub(call, 1, 3) == 'cb:' then uncount_attempt(q, call) end  -- nobody was called
  local agent = agent_of(offer)
  if drop_caller then out_of_line(q, call) else back_in_line(q, call) end
  drop_offer(offer)
  if agent then
    make_idle(agent)
    note(agent, 'released', q)
  end
  return true
end

local function line_result()
  local queues = {}
  for q, _ in pairs(DISPATCH) do table.insert(queues, q) end
  return cjson.encode({ok = 1, dispatch = queues, agents = NOTES})
end
"""
)

# The changes a call's transition makes to the line (service.core.line), applied by
# the call's commit script after its version check. OPS is a JSON list of
# [kind, queue, offer, reason, member, data]: ``member`` is the place in line the
# change is about ("" for the call itself, ``cb:ID`` for a callback), ``data`` a
# JSON object (a booked callback's fields). CALL is the call id. A "take" is a
# fence: the commit script checks every take with ``fences_hold`` before it writes
# anything.
LUA_OPS = r"""
local function member_of(op, call)
  if op[5] and op[5] ~= '' then return op[5] end
  return call
end

local function fences_hold(ops, call)
  for _, op in ipairs(ops) do
    if op[1] == 'take' then
      local o = redis.call('HMGET', k_offer(op[3]), 'status', 'call')
      if o[1] ~= 'chosen' or o[2] ~= member_of(op, call) then return false end
    end
  end
  return true
end

-- A callback takes the place its caller left in the same step (LEFT), else one from now.
local function book(q, member, data)
  local entry = k_entry(q, member)
  if redis.call('EXISTS', entry) == 1 then return end  -- one per queue and number
  local place = LEFT[q]
  if not place then
    local priority = tonumber(data.priority)
    place = {score_now(priority), int(NOW), priority}
  end
  redis.call('HSET', entry, 'score', place[1], 'joined', place[2], 'priority', place[3],
             'offer', '', 'kind', 'callback', 'number', data.number,
             'from', data.from, 'graph', data.graph, 'node', data.node, 'attempts', 0)
  redis.call('EXPIRE', entry, LINE_TTL)
  redis.call('ZADD', k_waiting(q), place[1], member)
  redis.call('ZADD', k_callbacks(q), place[1], member)
  stat(q, 'callbacks_requested', 1)
  DISPATCH[q] = true
end

-- A callback's follow-up call failed: its agent is free at once; the callback
-- waits off the line for its retry, or is dropped after its last attempt.
local function callback_failed(q, offer, member)
  local agent = agent_of(offer)
  drop_offer(offer)
  redis.call('ZREM', k_offered(q), member)
  redis.call('ZREM', k_waiting(q), member)
  if agent then
    make_idle(agent)
    note(agent, 'released', q)
  end
  local entry = k_entry(q, member)
  local attempts = tonumber(redis.call('HGET', entry, 'attempts'))
  if not attempts then return end
  if attempts >= num(cfg(q, 'callback_attempts', 3), 3) then
    out_of_line(q, member)
    redis.call('ZREM', k_callbacks(q), member)
    stat(q, 'callbacks_failed', 1)
    return
  end
  local retry_at = NOW + num(cfg(q, 'callback_retry_ms', 300000), 300000)
  redis.call('HSET', entry, 'offer', '', 'retry_at', int(retry_at))
  redis.call('EXPIRE', entry, LINE_TTL)
  redis.call('ZADD', TIMERS, int(retry_at), 'callback:' .. q .. ':' .. string.sub(member, 4))
end

local function apply_ops(ops, call)
  for _, op in ipairs(ops) do
    local kind, q, offer, reason = op[1], op[2], op[3], op[4]
    local member = member_of(op, call)
    if kind == 'take' then
      redis.call('HSET', k_offer(offer), 'status', 'taken')
      redis.call('ZREM', TIMERS, 'offer:' .. offer)
      if member ~= call then redis.call('HSET', k_entry(q, member), 'call', call) end
    elseif kind == 'book' then
      book(q, member, cjson.decode(op[6]))
    elseif kind == 'callback_failed' then
      callback_failed(q, offer, member)
    elseif kind == 'answered' then
      local agent = agent_of(offer)
      local joined = redis.call('HGET', k_entry(q, member), 'joined')
      if joined then
        stat(q, 'answered', 1)
        stat(q, 'wait_ms', NOW - tonumber(joined))
      end
      out_of_line(q, member)
      if member ~= call then
        redis.call('ZREM', k_callbacks(q), member)
        stat(q, 'callbacks_connected', 1)
      end
      redis.call('HSET', k_offer(offer), 'status', 'connected')
      if agent then
        fresh_day(agent)
        redis.call('HSET', k_agent(agent), 'state', 'in_call', 'missed', 0, 'since', int(NOW))
        redis.call('HINCRBY', k_agent(agent), 'calls', 1)
        note(agent, 'in_call', q)
      end
    elseif kind == 'missed' then
      local agent = agent_of(offer)
      if member ~= call then uncount_attempt(q, member) end  -- the agent's miss, not theirs
      back_in_line(q, member)
      drop_offer(offer)
      if agent then
        local missed = 0
        if reason ~= 'busy' then
          missed = redis.call('HINCRBY', k_agent(agent), 'missed', 1)
        end
        if missed >= num(cfg(q, 'max_no_answer', 3), 3) then
          set_status(agent, 'on_break')
          make_idle(agent)
          note(agent, 'on_break', q)
        else
          local delay = 'no_answer_delay_ms'
          if reason == 'busy' then delay = 'busy_delay_ms' end
          rest(agent, 'cooldown', num(cfg(q, delay, 30000), 30000))
          note(agent, 'cooldown', q)
        end
      end
    elseif kind == 'leave' then
      local left = redis.call('HMGET', k_entry(q, call), 'score', 'joined', 'priority')
      if left[1] then
        stat(q, reason, 1)
        if reason == 'callback' then LEFT[q] = left end
      end
      out_of_line(q, call)
      if offer ~= '' then
        local agent = agent_of(offer)
        drop_offer(offer)
        if agent then
          make_idle(agent)
          note(agent, 'released', q)
        end
      end
    elseif kind == 'ended' then
      local agent = agent_of(offer)
      drop_offer(offer)
      if agent then
        local key = k_agent(agent)
        local talked = NOW - num(redis.call('HGET', key, 'since'), NOW)
        stat(q, 'handled', 1)
        stat(q, 'handle_ms', talked)
        fresh_day(agent)
        redis.call('HINCRBY', key, 'talk_ms', talked)
        rest(agent, 'wrap_up', num(cfg(q, 'wrap_up_ms', 10000), 10000))
        note(agent, 'wrap_up', q)
      end
    end
  end
end
"""


def callback_member(callback: str | None) -> str:
    """The member of a callback's place in line ("" for a caller's own place)."""
    return f"cb:{callback}" if callback else ""


def ops_json(changes: Sequence[LineChange]) -> str:
    """A transition's line changes as the commit script's OPS."""
    ops: list[list[str]] = []
    for change in changes:
        match change:
            case line.TakeOffer():
                ops.append(["take", change.queue, change.offer, "",
                            callback_member(change.callback)])  # fmt: skip
            case line.OfferAnswered():
                ops.append(["answered", change.queue, change.offer, "",
                            callback_member(change.callback)])  # fmt: skip
            case line.OfferMissed():
                ops.append(["missed", change.queue, change.offer, change.reason,
                            callback_member(change.callback)])  # fmt: skip
            case line.LeaveLine():
                ops.append(["leave", change.queue, change.offer or "", change.reason])
            case line.AgentCallEnded():
                ops.append(["ended", change.queue, change.offer, ""])
            case line.BookCallback():
                member = callback_member(line.callback_id(change.queue, change.number))
                data = {
                    "priority": str(change.priority),
                    "number": change.number,
                    "from": change.line_number,
                    "graph": change.graph,
                    "node": change.node,
                }
                ops.append(["book", change.queue, "", "", member, json.dumps(data)])
            case line.CallbackFailed():
                ops.append(["callback_failed", change.queue, change.offer, change.reason,
                            callback_member(change.callback)])  # fmt: skip
            case _:  # pragma: no cover
                assert_never(change)
    return json.dumps(ops, separators=(",", ":"))


# Chooses an agent for the caller at the head of a queue and records the offer.
# KEYS[1]  the timers (keys.timers)
# ARGV[1]  now (ms)   ARGV[2] today (UTC date)   ARGV[3] the queue
# ARGV[4]  the new offer's id   ARGV[5] its lease (ms)   ARGV[6] a callback's lease (ms)
# Returns "" when nobody waits or nobody may be offered, else JSON {offer, call,
# agent, address}, with ``callback`` (who to call, from where, on which graph and
# node, the place, the attempt) when the head is a callback.
DISPATCH_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local q, offer, lease = ARGV[3], ARGV[4], tonumber(ARGV[5])
for _ = 1, 8 do
  local head = redis.call('ZRANGE', k_waiting(q), 0, 0, 'WITHSCORES')
  if #head == 0 then return '' end
  local call, score = head[1], head[2]
  local joined = redis.call('HGET', k_entry(q, call), 'joined')
  if not joined then
    redis.call('ZREM', k_waiting(q), call)  -- an entry lost its hash: not a caller
  else
    local waited = NOW - tonumber(joined)
    local tier_wait = num(cfg(q, 'tier_wait_ms', 0), 0)
    local random = cfg(q, 'strategy', '') == 'random'
    local agent, lower_present, stale = nil, false, false
    for level = 1, MAX_LEVEL do
      if level > 1 and lower_present and waited < (level - 1) * tier_wait then break end
      local idle = k_idle(q, level)
      local picked
      if random then
        picked = redis.call('ZRANDMEMBER', idle)
      else
        picked = redis.call('ZRANGE', idle, 0, 0)[1]
      end
      if picked then
        local a = redis.call('HMGET', k_agent(picked), 'status', 'state')
        if a[1] == 'available' and a[2] == 'idle' then
          agent = picked
        else
          redis.call('ZREM', idle, picked)  -- not free after all: never offered from here
          stale = true
        end
        break
      end
      if num(redis.call('HGET', k_available(q), tostring(level)), 0) > 0 then
        lower_present = true
      end
    end
    if not agent and not stale then return '' end
    if agent then
      local akey = k_agent(agent)
      local callback = nil
      if string.sub(call, 1, 3) == 'cb:' then
        local entry = k_entry(q, call)
        lease = tonumber(ARGV[6])
        local attempt = redis.call('HINCRBY', entry, 'attempts', 1)
        local e = redis.call('HMGET', entry, 'number', 'from', 'graph', 'node', 'priority')
        callback = {id = string.sub(call, 4), number = e[1], from = e[2], graph = e[3],
                    node = e[4], priority = tonumber(e[5]), joined = tonumber(joined),
                    attempt = attempt}
      end
      redis.call('HSET', k_offer(offer), 'queue', q, 'call', call, 'agent', agent,
                 'status', 'chosen', 'lease', int(NOW + lease))
      redis.call('EXPIRE', k_offer(offer), LINE_TTL)
      redis.call('ZREM', k_waiting(q), call)
      redis.call('ZADD', k_offered(q), score, call)
      redis.call('HSET', k_entry(q, call), 'offer', offer)
      leave_idle(agent)
      redis.call('HSET', akey, 'state', 'offered', 'offer', offer, 'call', call, 'queue', q,
                 'since', int(NOW), 'last_offer', int(NOW))
      redis.call('ZADD', TIMERS, int(NOW + lease), 'offer:' .. offer)
      return cjson.encode({offer = offer, call = call, agent = agent,
                           address = redis.call('HGET', akey, 'address'), callback = callback})
    end
  end
end
return ''
"""
)

# Joins a caller to a queue (when not in it yet, and somebody is available for it:
# at a place from now), and says where they stand.
# KEYS[1]  the timers (keys.timers)
# ARGV[1]  now (ms)   ARGV[2] today   ARGV[3] the queue   ARGV[4] the call id
# ARGV[5]  its priority
# Returns JSON {joined, position, available, handled, handle_ms}.
ASK_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local q, call = ARGV[3], ARGV[4]
local entry = k_entry(q, call)
local available = available_in(q)
local stats = redis.call('HMGET', k_stats(q, DAY), 'handled', 'handle_ms')
local result = {joined = 0, position = 0, available = available,
                handled = num(stats[1], 0), handle_ms = num(stats[2], 0)}
if redis.call('EXISTS', entry) == 0 then
  if available == 0 then return cjson.encode(result) end
  local score = score_now(tonumber(ARGV[5]))
  redis.call('HSET', entry, 'score', score, 'joined', int(NOW), 'priority', ARGV[5],
             'offer', '')
  redis.call('EXPIRE', entry, LINE_TTL)
  redis.call('ZADD', k_waiting(q), score, call)
  stat(q, 'joined', 1)
end
result.joined = 1
result.position = position(q, redis.call('HGET', entry, 'score'))
return cjson.encode(result)
"""
)

# An offer's lease expired (its timer fired): take it back unless its call took it.
# KEYS[1]  the timers   ARGV[1] now (ms)   ARGV[2] today   ARGV[3] the offer id
# ARGV[4]  "drop" when the caller's call is gone (take the caller out of line), "lease"
#          to honour the lease (a timer: only an expired chosen offer), else "back"
# Returns the line_result JSON, or "" when there was nothing to take back.
TAKE_BACK_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local offer, how = ARGV[3], ARGV[4]
local o = redis.call('HMGET', k_offer(offer), 'status', 'lease')
if o[1] ~= 'chosen' then
  redis.call('ZREM', TIMERS, 'offer:' .. offer)  -- taken by its call, or gone: no lease
  return ''
end
if how == 'lease' and tonumber(o[2]) > NOW then
  redis.call('ZADD', TIMERS, o[2], 'offer:' .. offer)
  return ''
end
take_back(offer, how == 'drop')
return line_result()
"""
)

# An agent's wrap-up or cooldown may be over (its timer fired).
# KEYS[1]  the timers   ARGV[1] now (ms)   ARGV[2] today   ARGV[3] the agent id
# Returns the line_result JSON.
AGENT_DUE_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local agent = ARGV[3]
local a = redis.call('HMGET', k_agent(agent), 'state', 'until')
if a[1] == 'wrap_up' or a[1] == 'cooldown' then
  if num(a[2], 0) <= NOW then
    make_idle(agent)
    note(agent, 'idle', '')
  else
    redis.call('ZADD', TIMERS, a[2], 'agent:' .. agent)
  end
else
  redis.call('ZREM', TIMERS, 'agent:' .. agent)
end
return line_result()
"""
)


# A callback is due again (its timer fired): back at its place in line.
# KEYS[1]  the timers   ARGV[1] now (ms)   ARGV[2] today   ARGV[3] the queue
# ARGV[4]  the callback id
# Returns the line_result JSON.
CALLBACK_DUE_SCRIPT = (
    LUA_PRELUDE
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local q, member = ARGV[3], 'cb:' .. ARGV[4]
local timer = 'callback:' .. q .. ':' .. ARGV[4]
local e = redis.call('HMGET', k_entry(q, member), 'score', 'offer', 'retry_at')
if not e[1] or (e[2] and e[2] ~= '') then
  redis.call('ZREM', TIMERS, timer)  -- gone, or being called
  return line_result()
end
if num(e[3], 0) > NOW then
  redis.call('ZADD', TIMERS, e[3], timer)
  return line_result()
end
redis.call('ZREM', TIMERS, timer)
redis.call('HDEL', k_entry(q, member), 'retry_at')
redis.call('ZADD', k_waiting(q), e[1], member)
DISPATCH[q] = true
return line_result()
"""
)

# A callback's offer could not become a follow-up call (Bird refused to place it):
# the callback fails this attempt, unless the offer was taken back meanwhile.
# KEYS[1]  the timers   ARGV[1] now (ms)   ARGV[2] today   ARGV[3] the offer id
# Returns the line_result JSON, or "" when the offer is no longer chosen.
CALLBACK_UNPLACED_SCRIPT = (
    LUA_PRELUDE
    + LUA_OPS
    + r"""
NOW, DAY, TIMERS = tonumber(ARGV[1]), ARGV[2], KEYS[1]
local offer = ARGV[3]
local o = redis.call('HMGET', k_offer(offer), 'status', 'queue', 'call')
if o[1] ~= 'chosen' then return '' end
callback_failed(o[2], offer, o[3])
return line_result()
"""
)


@dataclass(frozen=True)
class CallbackCall:
    """Who a callback's offer calls, and what the follow-up call needs to know."""

    callback: str
    number: str
    line_number: str
    graph: str
    node: str
    priority: int
    joined_at: float
    attempt: int


@dataclass(frozen=True)
class Offer:
    """An offer the line made: ring ``agent`` (at ``address``) for ``call_id``; or,
    for a callback (``callback``), call the customer back for that agent."""

    offer: str
    call_id: str
    agent_id: str
    address: str
    queue: str
    callback: CallbackCall | None = None


@dataclass(frozen=True)
class LineResult:
    """What a line script changed that the caller acts on: the queues that may now
    dispatch and what to log about agents (``(agent, event, queue)``)."""

    dispatch: tuple[str, ...] = ()
    agents: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def read(cls, raw: Any) -> LineResult:
        if not raw:
            return cls()
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        data = json.loads(text)
        dispatch = data.get("dispatch") or []
        notes = data.get("agents") or []
        if isinstance(dispatch, dict):  # cjson encodes an empty table as {}
            dispatch = []
        if isinstance(notes, dict):
            notes = []
        return cls(tuple(dispatch), tuple((str(a), str(e), str(q)) for a, e, q in notes))


@dataclass
class Standing:
    """Where a caller stands, with what the expected wait is estimated from."""

    status: LineStatus
    raw: Mapping[str, Any] = field(default_factory=dict)


def today(now: float) -> str:
    """The UTC date of ``now`` (YYYY-MM-DD): every commit asks, so it is the same
    string for the whole day, computed once."""
    return _day_of(int(now // 86_400))


@functools.lru_cache(maxsize=4)
def _day_of(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def expected_wait_s(position: int, available: int, handled: int, handle_ms: int) -> float:
    """An estimate of a caller's wait at ``position``: the callers ahead (and this
    one) served by the available agents, each taking the average handle time of
    today (:data:`DEFAULT_HANDLE_S` before any call was handled)."""
    handle_s = handle_ms / 1000 / handled if handled > 0 else DEFAULT_HANDLE_S
    return round(position * handle_s / max(available, 1), 1)


def config_fields(queue: Queue) -> dict[str, str]:
    """What the line's scripts read of a queue's settings (``keys.queue_config``)."""
    return {
        "strategy": queue.strategy,
        "tier_wait_ms": str(queue.tier_wait_s * 1000),
        "wrap_up_ms": str(queue.wrap_up_s * 1000),
        "max_no_answer": str(queue.max_no_answer),
        "no_answer_delay_ms": str(queue.no_answer_delay_s * 1000),
        "busy_delay_ms": str(queue.busy_delay_s * 1000),
        "callback_retry_ms": str(queue.callback_retry_s * 1000),
        "callback_attempts": str(queue.callback_attempts),
    }


class Line:
    """The line's operations that are not a call's commit."""

    def __init__(
        self,
        redis: Redis,
        *,
        channel_id: str = "",
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._redis = redis
        self._timers = keys.timers(channel_id)
        self._clock = clock
        self._new_id = new_id
        self._dispatch = redis.register_script(DISPATCH_SCRIPT)
        self._ask = redis.register_script(ASK_SCRIPT)
        self._take_back = redis.register_script(TAKE_BACK_SCRIPT)
        self._agent_due = redis.register_script(AGENT_DUE_SCRIPT)
        self._callback_due = redis.register_script(CALLBACK_DUE_SCRIPT)
        self._callback_unplaced = redis.register_script(CALLBACK_UNPLACED_SCRIPT)

    def _now(self) -> tuple[int, str]:
        now = self._clock()
        return int(now * 1000), today(now)

    async def _run(self, script: AsyncScript, *args: str) -> LineResult:
        """A script that takes (timers; now, today, *args) and answers a line_result."""
        now_ms, day = self._now()
        return LineResult.read(await script(keys=[self._timers], args=[now_ms, day, *args]))

    async def configure(self, queues: Mapping[str, Queue]) -> None:
        """Write what the scripts need of each queue's settings."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues.values():
                for name, value in config_fields(queue).items():
                    pipe.hset(keys.queue_config(queue.name), name, value)
            await pipe.execute()

    async def ask(self, call_id: str, queue: str, priority: int) -> LineStatus:
        """Join ``call_id`` to ``queue`` (at a place from now, on the line's clock)
        unless it is in it already or nobody is available, and say where it stands."""
        now_ms, day = self._now()
        raw = await self._ask(keys=[self._timers], args=[now_ms, day, queue, call_id, priority])
        data = json.loads(raw)
        if not data["joined"]:
            return LineStatus(joined=False, agents_available=int(data["available"]))
        position, available = int(data["position"]), int(data["available"])
        wait = expected_wait_s(position, available, int(data["handled"]), int(data["handle_ms"]))
        return LineStatus(True, position, available, wait)

    async def dispatch(self, queue: str) -> Offer | None:
        """Offer the caller at the head of ``queue`` to the agent its strategy names,
        if there are both; the offer holds a lease of :data:`OFFER_LEASE_S`."""
        now_ms, day = self._now()
        offer_id = self._new_id()
        raw = await self._dispatch(
            keys=[self._timers],
            args=[now_ms, day, queue, offer_id, int(OFFER_LEASE_S * 1000),
                  int(CALLBACK_LEASE_S * 1000)],
        )  # fmt: skip
        if not raw:
            return None
        data = json.loads(raw)
        found = data.get("callback")
        callback = None
        if isinstance(found, dict):
            callback = CallbackCall(
                callback=str(found["id"]),
                number=str(found["number"]),
                line_number=str(found.get("from") or ""),
                graph=str(found["graph"]),
                node=str(found["node"]),
                priority=int(found["priority"]),
                joined_at=int(found["joined"]) / 1000,
                attempt=int(found["attempt"]),
            )
        address = data["address"] or ""
        return Offer(data["offer"], data["call"], data["agent"], address, queue, callback)

    async def take_back(self, offer: str, *, drop_caller: bool) -> LineResult:
        """Take back an offer its call did not take: the caller back to their place
        (or, ``drop_caller``, out of line: their call is gone), the agent idle."""
        return await self._run(self._take_back, offer, "drop" if drop_caller else "back")

    async def reap(self, offer: str) -> LineResult:
        """An offer's lease timer fired: take it back if its call never took it."""
        return await self._run(self._take_back, offer, "lease")

    async def callback_due(self, queue: str, callback: str) -> LineResult:
        """A callback's retry timer fired: back at its place in line, if it still waits."""
        return await self._run(self._callback_due, queue, callback)

    async def callback_unplaced(self, offer: str) -> LineResult:
        """The follow-up call of a callback's offer could not be placed: this attempt
        failed (the agent is free at once)."""
        return await self._run(self._callback_unplaced, offer)

    async def agent_due(self, agent_id: str) -> LineResult:
        """An agent's timer fired: end their wrap-up or cooldown if it is over."""
        return await self._run(self._agent_due, agent_id)
