"""Bird's per-workspace request limits, shared by every replica through Redis.

Bird allows so many requests a second per workspace, across all channels
(``service.bird.limits.LIMITS_PER_S``); a 429 means "not processed". The replicas
count their requests in one Redis counter per (workspace, method, second): a replica
takes a block of the second's requests at once (:data:`BLOCK_SHARE` of the limit,
one script), spends it without asking Redis again, and takes another when it is spent;
when the second is full (:data:`SHARE` of the limit), it waits for the next second. A
block is what makes the limiter cheap: at 400 requests a second, about 20 Redis round
trips instead of 400. What a replica took and did not spend by the second's end is
lost to the others: at most a block a replica, a second. The window is fixed, so two
seconds may meet in a burst: keeping under the limit leaves room for it, and a 429
that still comes is retried (``service.runtime.outbox``). If Redis cannot be asked,
the request goes (Bird's 429 still protects it).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.bird.limits import LIMITS_PER_S
from service.runtime import keys

log = structlog.get_logger("ratelimit")

# The share of Bird's limit this service uses (the rest absorbs window bursts).
SHARE = 0.9
# The share of that a replica takes at once (at least one request).
BLOCK_SHARE = 0.05

# Takes up to ARGV[2] requests of this second, as many as there is room for.
# KEYS[1]  the counter of this workspace, method and second (keys.rate)
# ARGV[1]  the most requests that second
# ARGV[2]  how many to take at most (a block)
# Returns how many were taken: 0 when that second is full.
TAKE_SCRIPT = """
local taken = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[1]) - taken
if room <= 0 then
  return 0
end
local block = math.min(room, tonumber(ARGV[2]))
redis.call('INCRBY', KEYS[1], block)
if taken == 0 then
  redis.call('EXPIRE', KEYS[1], 2)
end
return block
"""


class RateLimiter:
    """A ``service.bird.limits.Throttle`` over Redis for one workspace."""

    def __init__(
        self,
        redis: Redis,
        workspace_id: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limits: dict[str, int] | None = None,
    ) -> None:
        self._workspace_id = workspace_id
        self._clock = clock
        self._sleep = sleep
        self._limits = {m: max(1, int(n * SHARE)) for m, n in (limits or LIMITS_PER_S).items()}
        self._take = redis.register_script(TAKE_SCRIPT)
        self._rng = random.Random()
        # method -> (the second, how many of its requests this replica may still send)
        self._left: dict[str, tuple[int, int]] = {}
        self.waited = 0  # how many times a request waited for the next second
        self.asked = 0  # how many times Redis was asked for a block

    async def __call__(self, method: str) -> None:
        limit = self._limits.get(method)
        if limit is None:
            return
        block = max(1, int(limit * BLOCK_SHARE))
        while True:
            now = self._clock()
            second = math.floor(now)
            held, left = self._left.get(method, (second, 0))
            if held == second and left > 0:
                self._left[method] = (second, left - 1)
                return
            self.asked += 1
            try:
                taken = int(
                    await self._take(
                        keys=[keys.rate(self._workspace_id, method, second)], args=[limit, block]
                    )
                )
            except (RedisError, OSError) as exc:
                log.warning("rate_limit_unknown", graph=None, node=None, error=str(exc))
                return
            if taken > 0:
                # Spent one now; a block taken by another request meanwhile adds up.
                held, left = self._left.get(method, (second, 0))
                self._left[method] = (second, (left if held == second else 0) + taken - 1)
                return
            self.waited += 1
            # The next second, spread over its first tenth so waiters do not stampede.
            await self._sleep(second + 1 - now + self._rng.uniform(0, 0.1))
