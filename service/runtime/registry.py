"""The graphs the service runs now, and every version a call may still be on.

A graph's version is the hash of its canonical content. A call keeps the version
it started on for its whole life: reloading only changes which version NEW calls
get. Every version in use is published to Redis, so that any replica can serve
any call, however old its version.

A reload that meets an invalid graph keeps serving the last good set and keeps
the problems for ``GET /admin/graphs``. A good reload, on whichever replica it
happens, becomes the current set of every replica: it is written to Redis
(``keys.current_graphs``) and announced (``keys.graphs_channel``); each replica
:meth:`Registry.follow` s the announcements, and reads the current set now and
then in case it missed one (a dropped connection).

The queues of the directory's ``queues.json`` are part of the current set: the record
carries them (as a queues document, under ``"queues"``), a reload reads the file
again, and every graph served, of whatever version, carries the current queues.

A directory that changes with nobody telling the process (a Kubernetes ConfigMap
volume: the kubelet swaps its ``..data`` symlink to a new copy) is
:meth:`Registry.watch` ed when ``IVR_GRAPHS_WATCH_S`` is set: a cheap
:func:`fingerprint` of its files, taken every so many seconds, and a reload as on
SIGHUP when it differs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.core.graph import Graph, GraphSet, Problem
from service.core.queues import Queue, queues_of
from service.graphs.loader import GraphError, load_directory, parse
from service.graphs.queues import parse_queues, queues_document
from service.runtime import keys

log = structlog.get_logger("graphs")

# A version stays in Redis this long after it was last current: longer than any
# call may last (see store.ACTIVE_CALL_TTL_S).
VERSION_TTL_S = 3 * 24 * 3600
PUBLISH_EVERY_S = 600.0
# How often a replica reads the current set even without an announcement.
FOLLOW_EVERY_S = 30.0

# Makes a set the current one of every replica, unless the current one was loaded
# later (a replica starting with an old directory does not undo a reload).
# KEYS[1]  the current set (keys.current_graphs): JSON with "loaded_at"
# ARGV[1]  the new set's JSON
# ARGV[2]  when it was loaded (seconds since the epoch)
# ARGV[3]  the channel to announce it on (keys.graphs_channel)
# Returns 1 when it became current, 0 when a later one is.
ANNOUNCE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local loaded_at = cjson.decode(current)['loaded_at']
  if loaded_at and tonumber(loaded_at) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""


# What a graph directory holds, as far as a reload would notice: each ``*.json``
# entry (what the loader reads) with the size, modification time and inode of the
# file it leads to, symlinks followed. A kubelet's ``..data`` swap changes the inodes
# even where sizes and times stay; ``None`` for an entry that leads nowhere, and for a
# directory that cannot be read.
Fingerprint = tuple[tuple[str, tuple[int, int, int, int] | None], ...] | None


def fingerprint(directory: Path) -> Fingerprint:
    """The directory's :data:`Fingerprint`: a few ``stat`` calls, no file read."""
    try:
        with os.scandir(directory) as entries:
            names = sorted(entry.name for entry in entries if entry.name.endswith(".json"))
    except OSError:
        return None
    found: list[tuple[str, tuple[int, int, int, int] | None]] = []
    for name in names:
        try:
            st = os.stat(directory / name)  # follows symlinks
        except OSError:
            found.append((name, None))
            continue
        found.append((name, (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)))
    return tuple(found)


@dataclass
class ReloadResult:
    ok: bool
    changed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    queues_changed: bool = False


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
        # A reload and adopting another replica's reload never interleave.
        self._changing = asyncio.Lock()
        self._announce = redis.register_script(ANNOUNCE_SCRIPT)
        # Set once this replica has offered its set, and each time it adopts another's.
        self.announced = asyncio.Event()
        self.adopted = asyncio.Event()
        # Set each time watch() has reloaded a changed directory (well or not).
        self.watched = asyncio.Event()
        # The directory as the set was read from it (the caller loaded it just now).
        self._seen = fingerprint(directory) if directory is not None else None
        self.loaded_at = clock()
        self.last_reload: dict[str, Any] | None = None
        self._versions: dict[tuple[str, str], Graph] = {
            (g.id, g.version): g for g in current.graphs.values()
        }
        self._attach(current.queues)

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

    @property
    def queues(self) -> Mapping[str, Queue]:
        """The current queues (of the last reload, on whichever replica)."""
        return queues_of(self.current)

    def _attach(self, queues: Mapping[str, Queue]) -> None:
        """Make ``queues`` the queues of every graph this replica serves."""
        self.current = replace(
            self.current,
            graphs={k: replace(g, queues=queues) for k, g in self.current.graphs.items()},
            queues=queues,
        )
        self._versions = {k: replace(g, queues=queues) for k, g in self._versions.items()}

    async def graph_for(self, graph_id: str, version: str) -> Graph | None:
        """The exact version a call runs on: from memory, else from Redis; with the
        current queues."""
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
        graph = replace(graph, queues=self.current.queues)
        self._versions[(graph_id, version)] = graph
        return graph

    async def reload(self) -> ReloadResult:
        """Read the graph directory again. On any error nothing changes."""
        async with self._changing:
            return await self._reload()

    async def _reload(self) -> ReloadResult:
        if self._directory is None:
            return ReloadResult(False, problems=[Problem("-", "/", "no graph directory")])
        # Taken before reading: a change made while it reads is seen by the next watch.
        self._seen = await asyncio.to_thread(fingerprint, self._directory)
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
        queues_changed = fresh.queues != self.current.queues
        changed = {
            graph_id: (before.get(graph_id), after.get(graph_id))
            for graph_id in sorted(set(before) | set(after))
            if before.get(graph_id) != after.get(graph_id)
        }
        self.current = fresh
        self._versions.update({(g.id, g.version): g for g in fresh.graphs.values()})
        self._attach(fresh.queues)
        self.problems = []
        self.loaded_at = self._clock()
        self.last_reload = {"at": self.loaded_at, "ok": True}
        try:
            await self.publish()
            await self.announce()
        except (RedisError, OSError) as exc:  # keep_published() retries
            log.warning("graphs_publish_failed", graph=None, node=None, error=str(exc))
        log.info("graphs_reloaded", graph=None, node=None, changed=changed, versions=after,
                 queues=sorted(fresh.queues), queues_changed=queues_changed)  # fmt: skip
        return ReloadResult(True, changed=changed, queues_changed=queues_changed)

    def _versions_now(self) -> dict[str, Any]:
        return {
            "default": self.current.default,
            "versions": {g.id: g.version for g in self.current.graphs.values()},
            "queues": queues_document(self.queues)["queues"],
        }

    async def announce(self) -> bool:
        """Make this replica's set the current set of every replica, unless the
        current set was loaded later than this one (by another replica's reload)."""
        record = json.dumps({**self._versions_now(), "loaded_at": self.loaded_at}, sort_keys=True)
        written = await self._announce(
            keys=[keys.current_graphs()], args=[record, self.loaded_at, keys.graphs_channel()]
        )
        return bool(written == 1)

    async def adopt_current(self) -> bool:
        """Take the current set from Redis if it differs from this replica's; True
        when it changed. A version that cannot be read is logged and not adopted."""
        async with self._changing:
            return await self._adopt_current()

    async def _adopt_current(self) -> bool:
        raw = await self._redis.get(keys.current_graphs())
        if raw is None:
            return False
        record = json.loads(raw)
        loaded_at = float(record.pop("loaded_at", 0))
        record.setdefault("queues", {})  # announced by a replica that knew no queues
        if record == self._versions_now() or loaded_at < self.loaded_at:
            return False
        try:
            queues = parse_queues({"queues": record["queues"]}, keys.current_graphs())
        except GraphError as exc:  # written by a replica of another format version
            log.error("graphs_adopt_failed", graph=None, node=None, reason="queues",
                      problems=[str(p) for p in exc.problems])  # fmt: skip
            return False
        graphs: dict[str, Graph] = {}
        for graph_id, version in record["versions"].items():
            graph = await self.graph_for(graph_id, version)
            if graph is None:
                log.error("graphs_adopt_failed", graph=graph_id, node=None, version=version,
                          reason="version not in Redis")  # fmt: skip
                return False
            graphs[graph_id] = graph
        before = self._versions_now()["versions"]
        self.current = GraphSet(graphs=graphs, default=record["default"])
        self._attach(queues)
        self.problems = []
        self.loaded_at = loaded_at
        self.adopted.set()
        log.info("graphs_adopted", graph=None, node=None, versions=record["versions"],
                 before=before, queues=sorted(queues))  # fmt: skip
        return True

    async def follow(self, every_s: float = FOLLOW_EVERY_S) -> None:
        """For as long as the service runs: first make this replica's set (read from
        its graph directory at start) every replica's current set, as the replica
        that loaded the directory last; then adopt the set another replica reloads,
        as soon as it is announced (and every ``every_s`` anyway)."""
        announced = False
        while True:
            try:
                if not announced:
                    async with self._changing:
                        await self.publish()
                        await self.announce()
                    announced = True
                    self.announced.set()
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(keys.graphs_channel())
                    while True:
                        await self.adopt_current()
                        await pubsub.get_message(ignore_subscribe_messages=True, timeout=every_s)
            except (RedisError, OSError) as exc:
                log.warning("graphs_follow_failed", graph=None, node=None, error=str(exc))
                await asyncio.sleep(every_s)

    async def watch(self, every_s: float) -> None:
        """For as long as the service runs, when ``every_s`` > 0 (``IVR_GRAPHS_WATCH_S``):
        every ``every_s`` seconds, compare the graph directory's :func:`fingerprint`
        with the one it had when last read, and reload it when it changed, as SIGHUP
        and ``POST /admin/graphs/reload`` do (the new set becomes every replica's; an
        invalid one is refused and logged, and the last good set keeps serving until
        the directory changes again)."""
        if every_s <= 0 or self._directory is None:
            return
        directory = self._directory
        while True:
            await asyncio.sleep(every_s)
            now = await asyncio.to_thread(fingerprint, directory)
            if now == self._seen:
                continue
            log.info("graphs_changed", graph=None, node=None, directory=str(directory))
            try:
                await self.reload()
            except (RedisError, OSError) as exc:
                log.warning("graphs_watch_failed", graph=None, node=None, error=str(exc))
                self._seen = now  # not again until it changes again
            self.watched.set()

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
            "queues": sorted(self.queues),
            "loaded_at": self.loaded_at,
            "load_errors": [str(p) for p in self.problems],
        }
