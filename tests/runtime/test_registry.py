"""Graph sets across replicas, against a real Redis: a reload on one replica becomes
every replica's current set; a replica starting later with an older directory does
not undo it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

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


def replica(redis: Redis, directory: Path, graph: dict[str, Any], clock: Clock) -> Registry:
    directory.mkdir(exist_ok=True)
    (directory / "desk.json").write_text(json.dumps(graph))
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
