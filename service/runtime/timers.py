"""Durable timers: when a call's pending command is next due, kept in Redis.

The timers are one sorted set (``keys.timers``): a call id scored by the moment
(ms) its pending command needs a look (``service.runtime.outbox``). They live in
Redis, not in a process, so that any replica fires them: each replica's
:class:`TimerLoop` claims what is due with one script, which also pushes the claimed
timers :data:`CLAIM_LEASE_S` into the future, so that a replica that dies while
handling one leaves it to fire again. The timer carries no other data: what to do is
read from the call itself when it fires, so a late or repeated firing of a timer
whose command has moved on finds nothing due and changes nothing (the fence is the
pending command's ``seq`` and ``until``, checked by the handler).

Each firing is counted by kind (``call``, ``agent``, ``offer``, ``callback``) with how
late it fired: when it was claimed minus when it was due (``service.runtime.metrics``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.runtime import keys, metrics

log = structlog.get_logger("timers")

# A claimed timer fires again this long later if nobody settled it meanwhile.
CLAIM_LEASE_S = 30.0
CLAIM_BATCH = 50
# How often a replica looks for due timers (the longest a due timer waits).
POLL_EVERY_S = 0.5

# Claims the timers that are due.
# KEYS[1]  the timers (keys.timers)
# ARGV[1]  now (ms)
# ARGV[2]  when a claimed timer fires again unless settled (ms)
# ARGV[3]  at most this many
# Returns the claimed members and when each was due: [member, due (ms), ...].
CLAIM_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES',
                       'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[2], due[i])
end
return due
"""

Handler = Callable[[str], Awaitable[None]]


class TimerLoop:
    """Claims due timers and hands each call id to ``handle``, until cancelled."""

    def __init__(
        self,
        redis: Redis,
        handle: Handler,
        *,
        channel_id: str = "",
        clock: Callable[[], float] = time.time,
        poll_every_s: float = POLL_EVERY_S,
    ) -> None:
        self._redis = redis
        self._key = keys.timers(channel_id)
        self._handle = handle
        self._clock = clock
        self._poll_every_s = poll_every_s
        self._claim = redis.register_script(CLAIM_SCRIPT)

    async def claim(self) -> list[str]:
        """The call ids whose timers are due now, claimed for this replica (each
        counted as fired, with how late: ``service.runtime.metrics.timer_fired``)."""
        now = self._clock()
        claimed = await self._claim(
            keys=[self._key],
            args=[int(now * 1000), int((now + CLAIM_LEASE_S) * 1000), CLAIM_BATCH],
        )
        members: list[str] = []
        for raw, due_ms in zip(claimed[::2], claimed[1::2], strict=True):
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            metrics.timer_fired(member, now - float(due_ms) / 1000)
            members.append(member)
        return members

    async def fire_due(self) -> int:
        """Handle every timer due now; how many fired."""
        fired = 0
        while True:
            due = await self.claim()
            for call_id in due:
                try:
                    await self._handle(call_id)
                except (RedisError, OSError) as exc:  # it fires again after its lease
                    log.warning("timer_failed", call_id=call_id, graph=None, node=None,
                                error=str(exc))  # fmt: skip
                except Exception as exc:  # one call's bug must not stop every call's timers
                    log.error("timer_failed", call_id=call_id, graph=None, node=None,
                              error=repr(exc))  # fmt: skip
            fired += len(due)
            if len(due) < CLAIM_BATCH:
                return fired

    async def run(self) -> None:
        """Fire due timers for as long as the service runs."""
        while True:
            try:
                await self.fire_due()
            except (RedisError, OSError) as exc:
                log.warning("timers_unavailable", graph=None, node=None, error=str(exc))
            await asyncio.sleep(self._poll_every_s)
