"""The graphs the service runs now, and every version a call may still be on.

A graph's version is the hash of its canonical content. A call keeps the version
it started on for its whole life: reloading only changes which version NEW calls
get. Every version in use is published to Redis, so that any replica can serve
any call, however old its version.

A reload that meets an invalid graph keeps serving the last good set and keeps
the problems for ``GET /admin/graphs``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.graph import Graph, GraphSet, Problem
from service.graphs.loader import GraphError, load_directory, parse
from service.runtime import keys

log = structlog.get_logger("graphs")

# A version stays in Redis this long after it was last current: longer than any
# call may last (see store.ACTIVE_CALL_TTL_S).
VERSION_TTL_S = 3 * 24 * 3600
PUBLISH_EVERY_S = 600.0


@dataclass
class ReloadResult:
    ok: bool
    changed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class Registry:
    def __init__(
        self,
        redis: Redis,
        current: GraphSet,
        *,
        directory: Path | None = None,
        clock: Any = time.time,
    ) -> None:
        self._redis = redis
        self._directory = directory
        self._clock = clock
        self.current = current
        self.problems: list[Problem] = []
        self.loaded_at = clock()
        self.last_reload: dict[str, Any] | None = None
        self._versions: dict[tuple[str, str], Graph] = {
            (g.id, g.version): g for g in current.graphs.values()
        }

    def for_number(self, called: str) -> Graph | None:
        return self.current.for_number(called)

    def get(self, graph_id: str) -> Graph | None:
        """The current version of a graph (for new calls)."""
        return self.current.graphs.get(graph_id)

    async def publish(self) -> None:
        """Store every current version in Redis (and refresh their TTL)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for graph in self.current.graphs.values():
                record = {"source": graph.source, "document": graph.document}
                pipe.set(keys.graph_version(graph.id, graph.version), json.dumps(record),
                         ex=VERSION_TTL_S)  # fmt: skip
            await pipe.execute()

    async def keep_published(self, every_s: float = PUBLISH_EVERY_S) -> None:
        """Publish now and then regularly, for as long as the service runs: versions
        stay in Redis while they are current, and a Redis that was away at start-up
        gets them once it is back."""
        while True:
            try:
                await self.publish()
            except (RedisError, OSError) as exc:
                log.warning("graphs_publish_failed", graph=None, node=None, error=str(exc))
            await asyncio.sleep(every_s)

    async def graph_for(self, graph_id: str, version: str) -> Graph | None:
        """The exact version a call runs on: from memory, else from Redis."""
        found = self._versions.get((graph_id, version))
        if found is not None:
            return found
        raw = await self._redis.get(keys.graph_version(graph_id, version))
        if raw is None:
            return None
        record = json.loads(raw)
        graph = parse(record["document"], record["source"])
        if graph.version != version:  # pragma: no cover - the key names its content's hash
            raise GraphError([Problem(record["source"], "/", "stored version does not match")])
        self._versions[(graph_id, version)] = graph
        return graph

    async def reload(self) -> ReloadResult:
        """Read the graph directory again. On any error nothing changes."""
        if self._directory is None:
            return ReloadResult(False, problems=[Problem("-", "/", "no graph directory")])
        try:
            fresh = load_directory(self._directory, self.current.default)
        except GraphError as exc:
            self.problems = exc.problems
            self.last_reload = {"at": self._clock(), "ok": False}
            log.error(
                "graphs_reload_failed",
                graph=None,
                node=None,
                problems=[str(p) for p in exc.problems],
                kept={g.id: g.version for g in self.current.graphs.values()},
            )
            return ReloadResult(False, problems=exc.problems)
        before = {g.id: g.version for g in self.current.graphs.values()}
        after = {g.id: g.version for g in fresh.graphs.values()}
        changed = {
            graph_id: (before.get(graph_id), after.get(graph_id))
            for graph_id in sorted(set(before) | set(after))
            if before.get(graph_id) != after.get(graph_id)
        }
        self.current = fresh
        self._versions.update({(g.id, g.version): g for g in fresh.graphs.values()})
        self.problems = []
        self.loaded_at = self._clock()
        self.last_reload = {"at": self.loaded_at, "ok": True}
        try:
            await self.publish()
        except (RedisError, OSError) as exc:  # keep_published() retries
            log.warning("graphs_publish_failed", graph=None, node=None, error=str(exc))
        log.info("graphs_reloaded", graph=None, node=None, changed=changed, versions=after)
        return ReloadResult(True, changed=changed)

    def describe(self) -> dict[str, Any]:
        """What ``GET /admin/graphs`` shows."""
        return {
            "graphs": [
                {
                    "id": g.id,
                    "version": g.version,
                    "source": g.source,
                    "numbers": list(g.numbers),
                    "warnings": [str(w) for w in g.warnings],
                }
                for g in self.current.graphs.values()
            ],
            "default": self.current.default,
            "loaded_at": self.loaded_at,
            "load_errors": [str(p) for p in self.problems],
        }
