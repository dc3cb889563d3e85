"""Traffic counts in a real Redis: every committed step adds its counts to its graph
version's hash, a repeated delivery adds none, and ``service.runtime.traffic`` reads
them back. Each test runs a graph of its own id: the session's Redis is shared."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.bird.deliveries import Delivery
from service.core.graph import Graph, GraphSet
from service.core.traffic import NodeTraffic
from service.graphs.loader import parse
from service.runtime import keys
from service.runtime.calls import CallHandler
from service.runtime.traffic import current_version, read_traffic, stored_graph, traffic_versions
from tests.runtime.test_calls import completed, status
from tests.sample_graphs import support_line_with_transfers
from tests.support import RecordingBird, handler_for, recording_bird_calls


def fresh_graph() -> Graph:
    """The support line (with transfers) under an id of its own."""
    document = copy.deepcopy(dict(support_line_with_transfers().graphs["support-line"].document))
    document["id"] = f"traffic-{uuid.uuid4().hex[:10]}"
    return parse(document, f"{document['id']}.json")


@pytest.fixture
async def handler(redis: Redis) -> AsyncIterator[tuple[CallHandler, Graph]]:
    graph = fresh_graph()
    bird = recording_bird_calls(RecordingBird())
    yield handler_for(redis, bird, GraphSet({graph.id: graph}, graph.id)), graph
    await bird.aclose()


async def counts(redis: Redis, graph: Graph) -> dict[str, int]:
    raw = await redis.hgetall(keys.graph_traffic(graph.id, graph.version))
    return {
        name.decode() if isinstance(name, bytes) else name: int(value)
        for name, value in raw.items()
    }


async def test_each_committed_step_counts_its_traffic_and_a_repeat_counts_none(
    redis: Redis, handler: tuple[CallHandler, Graph]
) -> None:
    calls, graph = handler
    call_id, t0 = str(uuid.uuid4()), time.time()
    wrong_key = completed("gather", updated=t0 + 3, call_id=call_id, keys="9")
    steps: list[tuple[Delivery, dict[str, int]]] = [
        (status(call_id, "starting", updated=t0), {}),
        (status(call_id, "ongoing", updated=t0 + 1), {"welcome|in": 1}),
        (completed("say", updated=t0 + 2, call_id=call_id),
         {"welcome|out|next": 1, "opening-hours|in": 1, "opening-hours|out|open": 1,
          "main-menu|in": 1}),
        (wrong_key, {"main-menu|invalid": 1}),
        (status(call_id, "completed", updated=t0 + 4, hangup_source="caller"),
         {"main-menu|end|ended_by_caller": 1}),
    ]  # fmt: skip
    expected: dict[str, int] = {}
    for delivery, added in steps:
        assert (await calls.handle(delivery)).status == "applied"
        for name, n in added.items():
            expected[name] = expected.get(name, 0) + n
        assert await counts(redis, graph) == expected
    for repeat in (wrong_key, steps[2][0], steps[-1][0]):
        assert (await calls.handle(repeat)).status != "applied"
    assert await counts(redis, graph) == expected
    ttl = await redis.ttl(keys.graph_traffic(graph.id, graph.version))
    assert 80 * 24 * 3600 < ttl <= 90 * 24 * 3600

    traffic = await read_traffic(redis, graph.id, graph.version)
    assert traffic["main-menu"] == NodeTraffic(entered=1, invalid=1, ended={"ended_by_caller": 1})
    assert traffic["main-menu"].hung_up == 1
    assert all(node.here == 0 for node in traffic.values())


async def test_the_versions_of_a_graph_with_traffic_come_last_counted_first(
    redis: Redis,
) -> None:
    graph_id = f"traffic-{uuid.uuid4().hex[:10]}"
    for version, ttl in (("aaaa", 100), ("bbbb", 300), ("cccc", 200)):
        await redis.hset(keys.graph_traffic(graph_id, version), "start|in", 1)
        await redis.expire(keys.graph_traffic(graph_id, version), ttl)
    # Another graph whose id starts with this one's is not among them.
    await redis.hset(keys.graph_traffic(graph_id + "-2", "dddd"), "start|in", 1)
    await redis.expire(keys.graph_traffic(graph_id + "-2", "dddd"), 60)
    assert await traffic_versions(redis, graph_id) == ["bbbb", "cccc", "aaaa"]
    assert await traffic_versions(redis, graph_id + "-3") == []
    assert await read_traffic(redis, graph_id, "eeee") == {}


async def test_the_served_version_and_a_published_graph_are_read_back(redis: Redis) -> None:
    graph = fresh_graph()
    before = await redis.get(keys.current_graphs())
    try:
        current = {"default": graph.id, "versions": {graph.id: graph.version}}
        await redis.set(keys.current_graphs(), json.dumps(current))
        assert await current_version(redis, graph.id) == graph.version
        assert await current_version(redis, "no-such-graph") is None
    finally:
        if before is None:
            await redis.delete(keys.current_graphs())
        else:
            await redis.set(keys.current_graphs(), before)
    assert await stored_graph(redis, graph.id, graph.version) is None
    record = {"source": graph.source, "document": graph.document}
    await redis.set(keys.graph_version(graph.id, graph.version), json.dumps(record), ex=60)
    stored = await stored_graph(redis, graph.id, graph.version)
    assert stored is not None
    assert (stored.id, stored.version, list(stored.nodes)) == (
        graph.id, graph.version, list(graph.nodes),
    )  # fmt: skip
