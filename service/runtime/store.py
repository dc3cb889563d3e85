"""Call state in Redis: one hash per call (``keys.call``), changed only by
compare-and-set so that two workers never both advance a call, and the call's
pending command (``service.runtime.outbox``) written in the same step, with the
durable timer that is due when it is (``keys.timers``).

A delivery costs three round trips: ``HMGET`` to load, one ``EVALSHA`` to commit
and, once Bird has the command, one to acknowledge it. A worker that loses the race
reloads and recomputes (see ``service.runtime.calls``).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from service.core.line import LineChange
from service.core.state import CallState
from service.runtime import keys, line, packing, redis_client
from service.runtime.line import LineResult
from service.runtime.outbox import Pending

# A call's journal keeps its last entries (a call walks at most engine.MAX_STEPS
# steps, each one entry or less, and sends a command or two per step); a graph
# version's traffic counts last this long after the last call that ran on it, a
# day's counts (the supervisor page's "today") a week.
JOURNAL_MAX_ENTRIES = 2000
TRAFFIC_TTL_S = 90 * 24 * 3600
TRAFFIC_DAY_TTL_S = 8 * 24 * 3600

# Active calls also get a TTL, as a safety net for calls whose end was never
# delivered: longer than Bird's longest call (a bridge may last 8 hours).
ACTIVE_CALL_TTL_S = 2 * 24 * 3600

# Writes a call's new state, its pending command and its changes to the line
# (service.runtime.line: a queue's callers and agents), if nobody changed the call
# since it was loaded and every offer it takes is still the line's.
# KEYS[1]  the call's hash (keys.call): v (version), doc (CallState JSON),
#          cs (the pending command's seq) and cmd (its JSON), both absent when none,
#          p (how many times PENDING_SCRIPT changed the pending command)
# KEYS[2]  the timers (keys.timers): member call id, score due time in ms
# ARGV[1]  the version the caller loaded ("0" when the call must not exist yet)
# ARGV[2]  the new version (ARGV[1] + 1)
# ARGV[3]  the new CallState JSON, packed (service.runtime.packing)
# ARGV[4]  TTL in seconds for the whole hash
# ARGV[5]  "keep" (the pending command stays), "set" or "clear"
# ARGV[6]  with "set": the pending command's seq
# ARGV[7]  with "set": its JSON
# ARGV[8]  with "set": when its timer is due (ms)
# ARGV[9]  the call id (the timer's member)
# ARGV[10] now (ms)   ARGV[11] today (UTC date)
# ARGV[12] the line changes (line.ops_json)
# KEYS[3]  the call's journal (keys.call_journal)
# KEYS[4]  the traffic counts of the call's graph version (keys.graph_traffic)
# ARGV[13] the journal entry to append, packed ("" for none), kept ARGV[4] seconds
# ARGV[14] how many journal entries are kept (the oldest go)
# ARGV[15] traffic counts to add, JSON {field: n} ("" for none)
# ARGV[16] TTL of the traffic counts, in seconds
# KEYS[5]  the channel's live calls (keys.live_calls): field the call id
# KEYS[6]  today's traffic counts of the call's graph version (keys.graph_traffic_day)
# ARGV[17] the call's live summary (store.live_summary: "<started ms>:<packed JSON>"),
#          or "" to remove it (the call ended); a summary already there keeps its
#          started ms (from its prefix, or the "started" of an earlier version's JSON)
# ARGV[18] TTL of today's traffic counts, in seconds
# ARGV[19] the p the caller loaded ("" when not to be checked)
# Returns, when the stored version is not ARGV[1] or its p not ARGV[19] (a lost
# race, or a call this worker remembered and another changed), the call as it is:
# {"0", v, doc, cmd, p} ("" for what it lacks), so that the caller plans again
# without loading it; "-1" when an offer to take is no longer the line's (nothing
# written); else the line's result (line.LineResult: queues that may dispatch, what
# to log about agents).
COMMIT_SCRIPT = (
    line.LUA_PRELUDE
    + line.LUA_OPS
    + """
NOW, DAY, TIMERS = tonumber(ARGV[10]), ARGV[11], KEYS[2]
local now = redis.call('HMGET', KEYS[1], 'v', 'doc', 'cmd', 'p')
if (now[1] or '0') ~= ARGV[1] or (ARGV[19] ~= '' and (now[4] or '0') ~= ARGV[19]) then
  return {'0', now[1] or '', now[2] or '', now[3] or '', now[4] or '0'}
end
local ops = cjson.decode(ARGV[12])
if not fences_hold(ops, ARGV[9]) then
  return '-1'
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'doc', ARGV[3])
if ARGV[5] == 'set' then
  redis.call('HSET', KEYS[1], 'cs', ARGV[6], 'cmd', ARGV[7])
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[9])
elseif ARGV[5] == 'clear' then
  redis.call('HDEL', KEYS[1], 'cs', 'cmd')
  redis.call('ZREM', KEYS[2], ARGV[9])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if ARGV[13] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[13])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[14]), -1)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
end
if ARGV[15] ~= '' then
  for name, n in pairs(cjson.decode(ARGV[15])) do
    redis.call('HINCRBY', KEYS[4], name, n)
  end
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[16]))
  for name, n in pairs(cjson.decode(ARGV[15])) do
    redis.call('HINCRBY', KEYS[6], name, n)
  end
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[18]))
end
if ARGV[17] == '' then
  redis.call('HDEL', KEYS[5], ARGV[9])
else
  local summary = ARGV[17]
  local before = redis.call('HGET', KEYS[5], ARGV[9])
  if before then  -- the call started when its first summary was written
    local started = string.match(before, '^(%d+):') or string.match(before, '"started":(%d+)')
    if started then
      local colon = string.find(summary, ':', 1, true)
      summary = started .. string.sub(summary, colon)
    end
  end
  redis.call('HSET', KEYS[5], ARGV[9], summary)
end
apply_ops(ops, ARGV[9])
return line_result()
"""
)

# Changes a call's pending command, if it is still the one with that seq (a late
# acknowledgement, or one for a command the call has moved past, changes nothing).
# KEYS[1]  the call's hash (keys.call)
# KEYS[2]  the timers (keys.timers)
# ARGV[1]  the seq of the pending command this change is about
# ARGV[2]  the command's new JSON, or "" to remove it
# ARGV[3]  when its timer is due (ms); ignored when removed
# ARGV[4]  the call id (the timer's member)
# KEYS[3]  the call's journal (keys.call_journal)
# ARGV[5]  a journal entry to append whatever the seq ("" for none), kept as long
#          as the call's hash
# ARGV[6]  how many journal entries are kept
# ARGV[7]  the p the caller loaded ("" when not to be checked): another change since
#          (another worker took the command first) changes nothing
# Returns the call's new p (>= 1: it counts these changes) when changed, 0 when the
# call has no pending command with that seq (or p is not ARGV[7]).
PENDING_SCRIPT = """
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)
  local ttl = redis.call('TTL', KEYS[1])
  if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
end
if redis.call('HGET', KEYS[1], 'cs') ~= ARGV[1] then
  return 0
end
if ARGV[7] ~= '' and (redis.call('HGET', KEYS[1], 'p') or '0') ~= ARGV[7] then
  return 0
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'cs', 'cmd')
  redis.call('ZREM', KEYS[2], ARGV[4])
else
  redis.call('HSET', KEYS[1], 'cmd', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
return redis.call('HINCRBY', KEYS[1], 'p', 1)
"""


# Removes a call's timer if the call has no pending command (nothing is due).
# KEYS[1]  the call's hash (keys.call)
# KEYS[2]  the timers (keys.timers)
# ARGV[1]  the call id (the timer's member)
# Returns 1 when removed.
FORGET_TIMER_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], 'cs') == 1 then
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[1])
"""


# Appends an entry to a call's journal, kept as long as the call's hash.
# KEYS[1]  the call's hash (keys.call)
# KEYS[2]  the call's journal (keys.call_journal)
# ARGV[1]  the entry   ARGV[2] how many entries are kept
# ARGV[3]  the TTL (s) when the call's hash has none (not written yet)
NOTE_SCRIPT = """
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
local ttl = redis.call('TTL', KEYS[1])
if ttl <= 0 then ttl = tonumber(ARGV[3]) end
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""


class Keep:
    """In a commit: the call's pending command stays as it is."""


KEEP = Keep()


class OfferGone(Exception):
    """The commit takes an offer the line no longer holds for the call (its lease
    expired and any replica took it back): nothing was written."""


@dataclass(frozen=True)
class StoredCall:
    state: CallState
    pending: Pending | None
    changes: int = 0
    """The hash's ``p``: how many times its pending command was changed apart from a
    commit; a commit checks it with the version."""

    @classmethod
    def read(cls, version: Any, doc: Any, cmd: Any, changes: Any) -> StoredCall | None:
        """From the hash's ``v``, ``doc``, ``cmd`` and ``p`` (None: no call)."""
        if not doc:
            return None
        state = with_version(CallState.from_json(packing.unpack(doc)), int(version or 0))
        return cls(state, Pending.from_json(cmd) if cmd else None, int(changes or 0))


# How many calls a store remembers as it last wrote them (about 1.5 KiB each).
REMEMBERED_CALLS = 20_000


@dataclass
class Conflict:
    """A commit that lost: the call changed since it was loaded (or remembered);
    ``current`` is how it is now (None: it is gone), to plan again from."""

    current: StoredCall | None


def connect(url: str, **options: Any) -> Redis:
    """A client for ``REDIS_URL`` (one server, a Cluster or Sentinel:
    ``service.runtime.redis_client``), with explicit timeouts: a webhook must fail
    fast (503, Bird delivers again) rather than hang while Redis is away."""
    return redis_client.connect(url, **options)


class CallStore:
    def __init__(
        self,
        redis: Redis,
        *,
        ended_ttl_s: int,
        channel_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``channel_id`` names the timers of the calls this store commits; ``clock``
        dates the line's changes."""
        self._redis = redis
        self._clock = clock
        self.channel_id = channel_id
        self._ended_ttl_s = ended_ttl_s
        self._timers = keys.timers(channel_id)
        self._live = keys.live_calls(channel_id)
        self._commit = redis.register_script(COMMIT_SCRIPT)
        self._pending = redis.register_script(PENDING_SCRIPT)
        self._forget_timer = redis.register_script(FORGET_TIMER_SCRIPT)
        self._note = redis.register_script(NOTE_SCRIPT)
        # The calls this store last wrote, as it wrote them (least recent first): a
        # step planned from one costs no load; its commit checks it is still current.
        self._remembered: OrderedDict[str, StoredCall] = OrderedDict()

    async def _run(
        self, script: AsyncScript, *, keys: list[str], args: Sequence[str | bytes | int]
    ) -> Any:
        """``script(keys=keys, args=args)``: its ``EVALSHA`` straight from the client (the
        script's own call checks whether the client is a pipeline, at some cost, for
        every call), and the script's call (which loads it) when Redis does not have it."""
        try:
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await script(keys=keys, args=args)

    async def load_call(self, call_id: str, *, remembered: bool = False) -> StoredCall | None:
        """The call's state and its pending command, from Redis; with ``remembered``,
        as this store last wrote it when it remembers it (no round trip: a commit of a
        step planned from it fails with the call as it is if another changed it)."""
        if remembered:
            known = self._remembered.get(call_id)
            if known is not None:
                self._remembered.move_to_end(call_id)
                return known
        version, doc, cmd, changes = await self._redis.hmget(
            keys.call(call_id), ["v", "doc", "cmd", "p"]
        )
        return StoredCall.read(version, doc, cmd, changes)

    def _remember(self, call: StoredCall) -> None:
        if call.state.ended:
            self._remembered.pop(call.state.call_id, None)
            return
        self._remembered[call.state.call_id] = call
        self._remembered.move_to_end(call.state.call_id)
        if len(self._remembered) > REMEMBERED_CALLS:
            self._remembered.popitem(last=False)

    def remembers(self, call: StoredCall | None) -> bool:
        """Whether ``call`` is this store's memory of it (not what Redis said)."""
        return call is not None and self._remembered.get(call.state.call_id) is call

    def forget(self, call_id: str) -> None:
        """Load the call from Redis next time."""
        self._remembered.pop(call_id, None)

    async def load(self, call_id: str) -> CallState | None:
        stored = await self.load_call(call_id)
        return stored.state if stored is not None else None

    async def commit(
        self,
        new: CallState,
        *,
        expected_version: int,
        pending: Pending | Keep | None = KEEP,
    ) -> CallState | None:
        """:meth:`commit_changes` for a transition that changes nothing in the line:
        the written state, or None when another worker changed the call first."""
        done = await self.commit_changes(new, expected_version=expected_version, pending=pending)
        return done[0] if not isinstance(done, Conflict) else None

    async def commit_changes(
        self,
        new: CallState,
        *,
        expected_version: int,
        pending: Pending | Keep | None = KEEP,
        changes: Sequence[LineChange] = (),
        journal: str = "",
        traffic: Mapping[str, int] | None = None,
        loaded: StoredCall | None = None,
    ) -> tuple[CallState, LineResult] | Conflict:
        """Write ``new`` if the stored version is still ``expected_version``, with
        the call's pending command: ``pending`` (its ``seq`` must be the new
        version), none, or the one it has (``KEEP``), and its ``changes`` to the line;
        with them, the step's ``journal`` entry (JSON, ``service.runtime.journal``)
        and the ``traffic`` counts it adds to its graph version
        (``service.core.traffic``).

        ``loaded`` is the call as it was loaded or remembered: its pending command's
        changes are checked with the version (None: only the version is).

        Returns the written state (with its new version) and what the line changes
        did, or a :class:`Conflict` with the call as it is when another worker changed
        it first. Raises :class:`OfferGone` when a change takes an offer the line took
        back.
        """
        written = with_version(new, expected_version + 1)
        ttl = self._ended_ttl_s if written.ended else ACTIVE_CALL_TTL_S
        args: list[str | bytes | int] = [
            str(expected_version),
            str(written.version),
            packing.pack(written.to_json()),
            ttl,
        ]
        if isinstance(pending, Keep):
            args += ["keep", "", "", ""]
        elif pending is None:
            args += ["clear", "", "", ""]
        else:
            assert pending.seq == written.version, "a pending command names the state it is of"
            args += ["set", str(pending.seq), pending.to_json(), _ms(pending.until)]
        now = self._clock()
        counted = json.dumps(traffic, separators=(",", ":")) if traffic else ""
        entry = packing.pack(journal) if journal else ""
        today = line.today(now)
        raw = await self._run(
            self._commit,
            keys=[
                keys.call(new.call_id), self._timers, keys.call_journal(new.call_id),
                keys.graph_traffic(new.graph, new.graph_version), self._live,
                keys.graph_traffic_day(new.graph, new.graph_version, today),
            ],
            args=[
                *args, new.call_id, _ms(now), today, line.ops_json(changes),
                entry, JOURNAL_MAX_ENTRIES, counted, TRAFFIC_TTL_S,
                "" if written.ended else live_summary(written, now), TRAFFIC_DAY_TTL_S,
                str(loaded.changes) if loaded is not None else "",
            ],
        )  # fmt: skip
        if isinstance(raw, list):
            current = StoredCall.read(*raw[1:])
            if current is None:
                self.forget(new.call_id)
            else:
                self._remember(current)
            return Conflict(current)
        answer = raw.decode() if isinstance(raw, bytes) else str(raw)
        if answer == "-1":
            self.forget(new.call_id)
            raise OfferGone(new.call_id)
        seen = loaded.changes if loaded is not None else 0
        if isinstance(pending, Keep):
            kept = loaded.pending if loaded is not None else None
            self._remember(StoredCall(written, kept, seen))
        else:
            self._remember(StoredCall(written, pending, seen))
        return written, LineResult.read(answer)

    async def update_pending(
        self,
        call_id: str,
        seq: int,
        new: Pending | None,
        *,
        journal: str = "",
        loaded: StoredCall | None = None,
    ) -> bool:
        """Change (or with None, remove) the call's pending command, if it is still
        the command ``seq`` (and, given the call as ``loaded``, nobody changed it
        since: two workers that both found it due cannot both take it); its timer
        follows. False when the call moved on. With it, whatever the seq,
        ``journal`` (an entry of ``service.runtime.journal``: what Bird answered)
        joins the call's journal."""
        args: list[str | bytes | int] = [
            str(seq), new.to_json() if new is not None else "", _ms(new.until) if new else 0,
            call_id, packing.pack(journal) if journal else "", JOURNAL_MAX_ENTRIES,
            str(loaded.changes) if loaded is not None else "",
        ]  # fmt: skip
        changes = int(
            await self._run(
                self._pending,
                keys=[keys.call(call_id), self._timers, keys.call_journal(call_id)],
                args=args,
            )
        )
        known = self._remembered.get(call_id)
        if changes and known is not None and known.pending and known.pending.seq == seq:
            self._remember(replace(known, pending=new, changes=changes))
        else:
            self.forget(call_id)
        return changes > 0

    async def note(self, call_id: str, journal: str) -> None:
        """Add an entry to a call's journal (what happened beside its steps: a
        delivery that changed nothing, a request to Bird), kept as long as the
        call's hash (an active call's TTL when it has none yet)."""
        await self._run(
            self._note,
            keys=[keys.call(call_id), keys.call_journal(call_id)],
            args=[packing.pack(journal), JOURNAL_MAX_ENTRIES, ACTIVE_CALL_TTL_S],
        )

    async def forget_timer(self, call_id: str) -> None:
        """Remove the call's timer unless the call waits on a command again."""
        await self._run(self._forget_timer, keys=[keys.call(call_id), self._timers], args=[call_id])


# CallState has no __post_init__ (nor slots): a copy of its fields is a CallState.
_COPYABLE = not hasattr(CallState, "__post_init__") and not hasattr(CallState, "__slots__")


def with_version(state: CallState, version: int) -> CallState:
    """``dataclasses.replace(state, version=version)``, made by copying the fields (its
    ``__init__`` sets each field of a frozen dataclass one by one: several times the
    cost, for every commit)."""
    if not _COPYABLE or type(state) is not CallState:
        return replace(state, version=version)
    copy = object.__new__(CallState)
    copy.__dict__.update(state.__dict__)
    object.__setattr__(copy, "version", version)
    return copy


def live_summary(state: CallState, now: float) -> bytes:
    """What ``keys.live_calls`` keeps of a live call at ``now`` (real time):
    ``<started ms>:`` then its JSON, packed (``service.runtime.packing``: 80 bytes
    rather than 200). The commit keeps the first summary's started ms, which stays
    outside the packed part for its script to read. Numbers unmasked, as the call's
    state has them: whoever shows them masks them. ``service.runtime.live`` reads it."""
    doc = json.dumps(
        {
            "graph": state.graph, "version": state.graph_version, "node": state.node,
            "phase": str(state.phase), "direction": str(state.direction),
            "caller": state.caller, "called": state.called, "updated": _ms(now),
        },
        separators=(",", ":"),
    )  # fmt: skip
    return b"%d:" % _ms(now) + packing.pack(doc)


def _ms(moment: float) -> int:
    return int(moment * 1000)
