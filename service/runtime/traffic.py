"""Traffic counts of graph versions, read back from Redis for ``ivr stats``,
``ivr render --stats`` and the supervisor page's diagrams (all time, or one day).

Each committed step of a call adds its counts to its graph version's hash
(``keys.graph_traffic``, written by ``service.runtime.store``; the fields are named
and read by ``service.core.traffic``). Every write gives the hash its full TTL
again, so the version counted most recently is the one with the longest TTL.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from service.core.graph import Graph
from service.core.traffic import NodeTraffic, read
from service.graphs.loader import GraphError, parse
from service.runtime import keys

_GLOB_SPECIALS = "\\*?[]"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_traffic(redis: Redis, graph_id: str, version: str) -> dict[str, NodeTraffic]:
    """Per node, the counts of one graph version (empty when it has none)."""
    raw = await redis.hgetall(keys.graph_traffic(graph_id, version))
    return read({_text(name): int(value) for name, value in raw.items()})


async def read_traffic_day(
    redis: Redis, graph_id: str, version: str, day: str
) -> dict[str, NodeTraffic]:
    """Per node, the counts of one graph version on one UTC day (``YYYY-MM-DD``,
    ``keys.graph_traffic_day``; empty when it has none): the supervisor page's "today"."""
    raw = await redis.hgetall(keys.graph_traffic_day(graph_id, version, day))
    return read({_text(name): int(value) for name, value in raw.items()})


async def traffic_versions(redis: Redis, graph_id: str) -> list[str]:
    """The versions of ``graph_id`` that have traffic counts, counted most recently first."""
    prefix = keys.graph_traffic(graph_id, "")
    pattern = "".join("\\" + c if c in _GLOB_SPECIALS else c for c in prefix) + "*"
    found: set[str] = set()
    async for key in redis.scan_iter(match=pattern, count=1000):
        version = _text(key)[len(prefix) :]
        if version and ":" not in version:  # not a graph whose id starts with ours and a ':'
            found.add(version)
    ordered = sorted(found)
    async with redis.pipeline(transaction=False) as pipe:
        for version in ordered:
            pipe.pttl(keys.graph_traffic(graph_id, version))
        ttls = await pipe.execute()
    kept = [(ttl, version) for ttl, version in zip(ttls, ordered, strict=True) if ttl != -2]
    return [version for _, version in sorted(kept, key=lambda pair: -pair[0])]


async def current_version(redis: Redis, graph_id: str) -> str | None:
    """The version of ``graph_id`` the service serves new calls now, if any
    (``keys.current_graphs``, written by ``service.runtime.registry``)."""
    raw = await redis.get(keys.current_graphs())
    if raw is None:
        return None
    try:
        versions = json.loads(raw).get("versions", {})
    except (ValueError, AttributeError):
        return None
    found = versions.get(graph_id) if isinstance(versions, dict) else None
    return found if isinstance(found, str) else None


async def stored_graph(redis: Redis, graph_id: str, version: str) -> Graph | None:
    """One graph version as the service published it (``keys.graph_version``), or
    None when it is gone (it is kept a few days after it was last served) or unreadable."""
    raw = await redis.get(keys.graph_version(graph_id, version))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        graph = parse(record["document"], record.get("source", f"{graph_id}.json"))
    except (ValueError, KeyError, TypeError, GraphError):
        return None
    return graph if graph.version == version else None
