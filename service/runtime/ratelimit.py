"""Bird's per-workspace request limits, shared by every replica through Redis.

Bird allows so many requests a second per workspace, across all channels
(``service.bird.limits.LIMITS_PER_S``); a 429 means "not processed". Each replica
counts its requests in one Redis counter per (workspace, method, second), in one
script; a request over :data:`SHARE` of the limit waits for the next second. The
window is fixed, so two seconds may meet in a burst: keeping under the limit
leaves room for it, and a 429 that still comes is retried (``service.runtime.outbox``).
If Redis cannot be asked, the request goes (Bird's 429 still protects it).
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

# Counts one request in its second, if there is room.
# KEYS[1]  the counter of this workspace, method and second (keys.rate)
# ARGV[1]  the most requests that second
# Returns 1 when the request may go, 0 when that second is full.
TAKE_SCRIPT = """
local taken = redis.call('INCR', KEYS[1])
if taken == 1 then
  redis.call('EXPIRE', KEYS[1], 2)
end
if taken > tonumber(ARGV[1]) then
  return 0
end
return 1
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
        self.waited = 0  # how many times a request waited for the next second

    async def __call__(self, method: str) -> None:
        limit = self._limits.get(method)
        if limit is None:
            return
        while True:
            now = self._clock()
            second = math.floor(now)
            try:
                taken = await self._take(
                    keys=[keys.rate(self._workspace_id, method, second)], args=[limit]
                )
            except (RedisError, OSError) as exc:
                log.warning("rate_limit_unknown", graph=None, node=None, error=str(exc))
                return
            if taken == 1:
                return
            self.waited += 1
            # The next second, spread over its first tenth so waiters do not stampede.
            await self._sleep(second + 1 - now + self._rng.uniform(0, 0.1))
