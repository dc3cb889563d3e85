"""Graph sets across replicas, against a real Redis: a reload on one replica becomes
every replica's current set (its queues too); a replica starting later with an older
directory does not undo it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.core.queues import Queue
from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.registry import Registry, fingerprint
from service.runtime.serving import bind, serve, url_of
from service.runtime.settings import Settings, SettingsError
from service.server.app import create_app
from tests.support import settings


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


# -- IVR_GRAPHS_WATCH_S: a directory changed in place is reloaded ---------------------------


def kubelet_update(directory: Path, files: dict[str, str], stamp: str) -> None:
    """Write ``files`` as the kubelet updates a ConfigMap volume: a new hidden copy, the
    ``..data`` symlink swapped to it at once, each file a symlink through ``..data``, the
    old copy removed."""
    directory.mkdir(exist_ok=True)
    fresh = directory / f"..{stamp}"
    fresh.mkdir()
    for name, text in files.items():
        (fresh / name).write_text(text)
    data = directory / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    (directory / "..data_tmp").symlink_to(fresh.name)
    os.replace(directory / "..data_tmp", data)
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")
    if old is not None:
        shutil.rmtree(directory / old)


async def watched(registry: Registry, change: Callable[[], object]) -> None:
    """Make ``change`` and wait (5 s at most) until the registry's watch has acted on it."""
    registry.watched.clear()
    change()
    await asyncio.wait_for(registry.watched.wait(), 5)


async def test_a_changed_file_is_reloaded_by_the_watch(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    registry = replica(redis, tmp_path / "g", desk(graph_id), Clock(1000.0))
    before = registry.current.graphs[graph_id].version
    watching = asyncio.create_task(registry.watch(every_s=0.02))
    try:
        changed = json.dumps(desk(graph_id, "changed"))
        await watched(registry, lambda: (tmp_path / "g" / "desk.json").write_text(changed))
    finally:
        watching.cancel()
    assert registry.last_reload is not None
    assert registry.last_reload["ok"]
    after = registry.current.graphs[graph_id].version
    assert after != before
    # Announced: every replica takes it.
    announced = await redis.get(channel)
    assert announced is not None
    assert json.loads(announced)["versions"][graph_id] == after


async def test_a_kubelet_swap_of_data_is_reloaded_even_with_the_same_sizes_and_times(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "configmap"
    first, second = json.dumps(desk(graph_id, "v1")), json.dumps(desk(graph_id, "v2"))
    assert len(first) == len(second)
    kubelet_update(directory, {"desk.json": first}, "2026_11_27_10_00_00.1")
    registry = Registry(redis, load_directory(directory), directory=directory, clock=Clock(1000.0))
    before = registry.current.graphs[graph_id].version
    stamp = os.stat(directory / "desk.json").st_mtime_ns

    def swap() -> None:
        kubelet_update(directory, {"desk.json": second}, "2026_11_27_10_01_00.2")
        os.utime(directory / "..2026_11_27_10_01_00.2" / "desk.json", ns=(stamp, stamp))

    watching = asyncio.create_task(registry.watch(every_s=0.02))
    try:
        await watched(registry, swap)
    finally:
        watching.cancel()
    assert registry.current.graphs[graph_id].version != before
    assert (
        registry.current.graphs[graph_id].version
        == load_directory(directory).graphs[graph_id].version
    )


async def test_an_invalid_change_is_refused_and_a_fixed_one_taken(
    redis: Redis, tmp_path: Path, channel: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    registry = replica(redis, tmp_path / "g", desk(graph_id), Clock(1000.0))
    before = registry.current.graphs[graph_id].version
    path = tmp_path / "g" / "desk.json"
    watching = asyncio.create_task(registry.watch(every_s=0.02))
    try:
        await watched(registry, lambda: path.write_text("{not json"))
        assert registry.last_reload is not None
        assert not registry.last_reload["ok"]
        assert registry.problems
        assert registry.current.graphs[graph_id].version == before  # the last good set
        fixed = json.dumps(desk(graph_id, "fixed"))
        await watched(registry, lambda: path.write_text(fixed))
    finally:
        watching.cancel()
    assert registry.last_reload["ok"]
    assert registry.problems == []
    assert registry.current.graphs[graph_id].version != before


def test_the_fingerprint_sees_graph_files_only_and_follows_symlinks(tmp_path: Path) -> None:
    kubelet_update(tmp_path, {"a.json": "{}", "queues.json": "{}"}, "1")
    seen = fingerprint(tmp_path)
    assert seen is not None
    assert [name for name, _ in seen] == ["a.json", "queues.json"]
    (tmp_path / "notes.txt").write_text("not read by the loader")
    assert fingerprint(tmp_path) == seen
    kubelet_update(tmp_path, {"a.json": "{}", "queues.json": "{}"}, "2")
    assert fingerprint(tmp_path) != seen  # the same bytes, new files behind ..data
    (tmp_path / "b.json").symlink_to("nowhere.json")
    assert ("b.json", None) in (fingerprint(tmp_path) or ())
    assert fingerprint(tmp_path / "missing") is None


async def test_no_watch_when_it_is_off(redis: Redis, tmp_path: Path) -> None:
    registry = replica(redis, tmp_path / "g", desk("desk"), Clock(1000.0))
    await asyncio.wait_for(registry.watch(every_s=0), 1)  # returns at once


def test_ivr_graphs_watch_s_is_a_whole_number_of_seconds_off_by_default() -> None:
    required = {"BIRD_ACCESS_KEY": "a", "BIRD_WORKSPACE_ID": "w", "BIRD_CHANNEL_ID": "c",
                "BIRD_SIGNING_KEY": "s", "PUBLIC_BASE_URL": "https://ivr.example.com"}  # fmt: skip
    assert Settings.from_env(required).ivr_graphs_watch_s == 0
    assert Settings.from_env({**required, "IVR_GRAPHS_WATCH_S": "10"}).ivr_graphs_watch_s == 10
    with pytest.raises(SettingsError, match="IVR_GRAPHS_WATCH_S -1 is less than 0"):
        Settings.from_env({**required, "IVR_GRAPHS_WATCH_S": "-1"})


async def test_the_service_serves_a_configmap_update_it_was_not_told_of(
    redis: Redis, tmp_path: Path
) -> None:
    """The app's lifespan starts the watch (IVR_GRAPHS_WATCH_S): a kubelet-style update
    of the graph directory is what GET /admin/graphs shows next."""
    directory = tmp_path / "graphs"
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"
    kubelet_update(directory, {"desk.json": json.dumps(desk(graph_id))}, "1")
    token = "t" * 16
    sock = bind()
    config = dataclasses.replace(
        settings(url_of(sock)), ivr_admin_token=token, ivr_graphs_watch_s=0.02,
        ivr_default_graph=None,
    )  # fmt: skip
    app = create_app(config, redis=redis, graphs=load_directory(directory), graphs_dir=directory)
    registry: Registry = app.state.registry
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        serve(app, sock=sock) as running,
        httpx.AsyncClient(base_url=running.url, headers=headers) as http,
    ):
        (before,) = (await http.get("/admin/graphs")).json()["graphs"]
        new = json.dumps(desk(graph_id, "new"))
        await watched(registry, lambda: kubelet_update(directory, {"desk.json": new}, "2"))
        (after,) = (await http.get("/admin/graphs")).json()["graphs"]
    assert before["id"] == after["id"] == graph_id
    assert after["version"] != before["version"]
    assert after["version"] == load_directory(directory).graphs[graph_id].version
