"""Graph sets across replicas, against a real Redis: a reload on one replica becomes
every replica's current set (its queues too); a replica starting later with an older
directory does not undo it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from service.core.queues import Queue
from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.registry import Registry


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def desk(graph_id: str, description: str = "") -> dict[str, Any]:
    return {
        "id": graph_id,
        "description": description,
        "numbers": [],
        "params": ["name"],
        "start": "bye",
        "nodes": {"bye": {"type": "hangup", "say": "Bye {{vars.name}}."}},
    }


@pytest.fixture
async def channel(redis: Redis) -> str:
    """A fresh current-set key for this test (the test Redis may be shared)."""
    await redis.delete(keys.current_graphs())
    return keys.current_graphs()


def replica(
    redis: Redis,
    directory: Path,
    graph: dict[str, Any],
    clock: Clock,
    queues: dict[str, Any] | None = None,
) -> Registry:
    directory.mkdir(exist_ok=True)
    (directory / "desk.json").write_text(json.dumps(graph))
    if queues is not None:
        (directory / "queues.json").write_text(json.dumps({"queues": queues}))
    return Registry(redis, load_directory(directory), directory=directory, clock=clock)


async def test_a_reload_becomes_the_current_set_of_another_replica(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    clock = Clock(1000.0)
    a = replica(redis, tmp_path / "a", desk(graph_id), clock)
    b = replica(redis, tmp_path / "b", desk(graph_id), clock)
    assert await a.announce()
    clock.now = 1010.0
    (tmp_path / "a" / "desk.json").write_text(json.dumps(desk(graph_id, "changed")))
    assert (await a.reload()).ok
    assert await b.adopt_current()
    assert b.current.graphs[graph_id].version == a.current.graphs[graph_id].version
    assert not await b.adopt_current()  # once is enough


async def test_a_replica_starting_with_an_older_directory_does_not_undo_a_reload(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    clock = Clock(1000.0)
    late = replica(redis, tmp_path / "late", desk(graph_id), clock)  # loaded at 1000
    clock.now = 1010.0
    a = replica(redis, tmp_path / "a", desk(graph_id, "new"), clock)
    assert (await a.reload()).ok
    assert not await late.announce()
    assert await late.adopt_current()
    assert late.current.graphs[graph_id].version == a.current.graphs[graph_id].version


async def test_a_replica_following_adopts_an_announced_reload_at_once(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    clock = Clock(1000.0)
    a = replica(redis, tmp_path / "a", desk(graph_id), clock)
    b = replica(redis, tmp_path / "b", desk(graph_id), clock)
    following = asyncio.create_task(b.follow(every_s=600))
    try:
        await asyncio.wait_for(b.announced.wait(), 5)
        clock.now = 1010.0
        (tmp_path / "a" / "desk.json").write_text(json.dumps(desk(graph_id, "changed")))
        assert (await a.reload()).ok
        await asyncio.wait_for(b.adopted.wait(), 5)  # long before its every_s
    finally:
        following.cancel()
    assert b.current.graphs[graph_id].version == a.current.graphs[graph_id].version


async def test_a_reload_of_queues_alone_becomes_every_replicas_queues(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    clock = Clock(1000.0)
    before = {"support": {"max_wait_s": 300}}
    a = replica(redis, tmp_path / "a", desk(graph_id), clock, before)
    b = replica(redis, tmp_path / "b", desk(graph_id), clock, before)
    assert await a.announce()
    assert not await b.adopt_current()  # the same set
    clock.now = 1010.0
    after = {"support": {"max_wait_s": 900, "hold": {"say": "Hold on."}}, "sales": {}}
    (tmp_path / "a" / "queues.json").write_text(json.dumps({"queues": after}))
    result = await a.reload()
    assert result.ok
    assert result.changed == {}
    assert result.queues_changed
    announced = await redis.get(channel)
    assert announced is not None
    record = json.loads(announced)
    assert record["queues"] == after
    assert await b.adopt_current()
    assert dict(b.queues) == dict(a.queues)
    assert b.queues["support"].max_wait_s == 900
    served = b.get(graph_id)
    assert served is not None
    assert served.queues == a.queues
    assert b.describe()["queues"] == ["sales", "support"]
    assert not await b.adopt_current()  # once is enough


async def test_an_old_version_read_back_from_redis_has_the_current_queues(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    clock = Clock(1000.0)
    a = replica(redis, tmp_path / "a", desk(graph_id), clock, {"support": {}})
    old = a.current.graphs[graph_id].version
    await a.publish()
    # Another replica, started later: another graph version and other queues.
    fresh = replica(redis, tmp_path / "b", desk(graph_id, "new"), clock, {"sales": {}})
    found = await fresh.graph_for(graph_id, old)
    assert found is not None
    assert found.version == old
    assert dict(found.queues) == {"sales": Queue(name="sales")}
    # A reload changes the queues of every version it serves, old ones too.
    clock.now = 1010.0
    (tmp_path / "b" / "queues.json").write_text(json.dumps({"queues": {"billing": {}}}))
    assert (await fresh.reload()).ok
    again = await fresh.graph_for(graph_id, old)
    assert again is not None
    assert list(again.queues) == ["billing"]


async def test_a_set_announced_without_queues_means_no_queues(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    clock = Clock(1000.0)
    a = replica(redis, tmp_path / "a", desk(graph_id), clock)
    b = replica(redis, tmp_path / "b", desk(graph_id), clock, {"support": {}})
    await a.publish()
    # As written by a replica that knew no queues.
    record = {"default": None, "versions": {graph_id: a.current.graphs[graph_id].version}}
    await redis.set(channel, json.dumps({**record, "loaded_at": 1010.0}))
    assert await b.adopt_current()
    assert b.queues == {}
    assert not await b.adopt_current()
