"""Call state in Redis: one hash per call (``keys.call``), changed only by
compare-and-set so that two workers never both advance a call.

A delivery costs two round trips: ``HMGET`` to load, one ``EVALSHA`` to commit.
A worker that loses the race reloads and recomputes (see ``calls``).
"""

from __future__ import annotations

from dataclasses import replace

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from service.core.state import CallState
from service.runtime import keys

# Active calls also get a TTL, as a safety net for calls whose end was never
# delivered: longer than Bird's longest call (a bridge may last 8 hours).
ACTIVE_CALL_TTL_S = 2 * 24 * 3600

# KEYS[1]  the call's hash (keys.call)
# ARGV[1]  the version the caller loaded ("0" when the call must not exist yet)
# ARGV[2]  the new version (ARGV[1] + 1)
# ARGV[3]  the new CallState JSON
# ARGV[4]  TTL in seconds for the whole hash
# Returns 1 when written, 0 when the stored version is not ARGV[1] (lost race).
COMMIT_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'v')
if (current or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'doc', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


def connect(url: str) -> Redis:
    """A Redis client with explicit timeouts: a webhook must fail fast (503, Bird
    delivers again) rather than hang while Redis is away."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        health_check_interval=30,
    )


class CallStore:
    def __init__(self, redis: Redis, *, ended_ttl_s: int) -> None:
        self._redis = redis
        self._ended_ttl_s = ended_ttl_s
        self._commit = redis.register_script(COMMIT_SCRIPT)

    async def load(self, call_id: str) -> CallState | None:
        version, doc = await self._redis.hmget(keys.call(call_id), ["v", "doc"])
        if doc is None:
            return None
        loaded = CallState.from_json(doc)
        return replace(loaded, version=int(version or 0))

    async def commit(self, new: CallState, *, expected_version: int) -> CallState | None:
        """Write ``new`` if the stored version is still ``expected_version``.

        Returns the written state (with its new version), or None when another
        worker changed the call first.
        """
        written = replace(new, version=expected_version + 1)
        ttl = self._ended_ttl_s if written.ended else ACTIVE_CALL_TTL_S
        ok = await self._commit(
            keys=[keys.call(new.call_id)],
            args=[str(expected_version), str(written.version), written.to_json(), ttl],
        )
        return written if ok == 1 else None
