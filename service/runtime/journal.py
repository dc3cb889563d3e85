"""A call's journal in Redis (``keys.call_journal``): its entries are written by
the call's commit (``CallStore.commit_changes``) and read here; their format is
:mod:`service.core.journal`'s."""

from __future__ import annotations

from redis.asyncio import Redis

from service.core.journal import Entry
from service.runtime import keys


async def read(redis: Redis, call_id: str) -> list[Entry]:
    """A call's journal, oldest first (empty when the call is unknown or gone)."""
    raw = await redis.lrange(keys.call_journal(call_id), 0, -1)
    return [Entry.from_json(item) for item in raw]
