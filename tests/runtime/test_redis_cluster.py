"""The service on a real Redis Cluster of three masters (tests/cluster.py): every
script runs (its keys share one hash tag), and a caller walks the support line,
waits in line and reaches an agent, end to end through the simulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from service.cli.demo import ANN, demo_calls
from service.core.state import CallState, Phase
from service.runtime import keys
from service.runtime.live import live_calls
from service.runtime.redis_client import RedisUrlError, check_url, connect
from service.runtime.store import CallStore
from tests.cluster import LocalCluster, LocalSentinel
from tests.e2e.test_e2e import NUMBER, stack


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as started:
        yield started


@pytest.fixture
async def on_cluster(cluster: LocalCluster) -> AsyncIterator[Redis]:
    client = connect(cluster.url)
    yield client
    await client.aclose()


async def test_the_cluster_has_three_masters_and_the_keys_share_one_slot(
    on_cluster: Redis,
) -> None:
    await on_cluster.ping()  # the cluster client learns the nodes on its first command
    masters = [node for node in on_cluster.get_nodes() if node.server_type == "primary"]  # type: ignore[attr-defined]
    assert len(masters) == 3
    tagged = [keys.call("a"), keys.timers("c"), keys.live_calls("c"), keys.agent("ann"),
              keys.queue_waiting("billing"), keys.graph_traffic("g", "v")]  # fmt: skip
    slots = {on_cluster.keyslot(key) for key in tagged}  # type: ignore[attr-defined]
    assert len(slots) == 1


async def test_a_call_commits_and_ends_on_the_cluster(on_cluster: Redis) -> None:
    channel = str(uuid.uuid4())
    store = CallStore(on_cluster, ended_ttl_s=600, channel_id=channel)
    state = CallState(str(uuid.uuid4()), "support-line", "v1", "+31612345678", "+31970102030")
    first = await store.commit(state, expected_version=0)
    assert first is not None
    assert await store.commit(state, expected_version=0) is None  # compare-and-set holds
    assert [call.call_id for call in await live_calls(on_cluster, channel)] == [state.call_id]
    ended = await store.commit(replace(first, phase=Phase.ENDED), expected_version=1)
    assert ended is not None
    assert await live_calls(on_cluster, channel) == []


async def test_a_caller_reaches_an_agent_through_the_line_on_the_cluster(
    on_cluster: Redis,
) -> None:
    billing = next(d for d in demo_calls(NUMBER) if d.queue == "billing")
    async with stack(on_cluster, seated=[ANN]) as running:
        call_id, transcript = await running.call(billing.script)
        assert transcript.reached == ANN.address
        assert transcript.final_status == "completed"
        listed = await running.admin("GET", f"/admin/calls/{call_id}")
        assert listed.json()["call"]["outcome"] == "agent_connected"
        running.assert_every_request_was_valid()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:6379", "scheme 'http' is not one of"),
        ("redis+sentinel://127.0.0.1:26379", "ends with /SERVICE"),
        ("redis+sentinel://127.0.0.1:x/mymaster", "is not HOST[:PORT]"),
    ],
)
def test_a_redis_url_of_no_known_form_is_refused_with_a_reason(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        check_url(url)


async def test_through_sentinel_the_service_finds_the_master_and_commits() -> None:
    with LocalSentinel() as sentinel:
        client = connect(sentinel.url)
        try:
            store = CallStore(client, ended_ttl_s=600)
            state = CallState(str(uuid.uuid4()), "support-line", "v1", "+31612345678", "+3197")
            assert await store.commit(state, expected_version=0) is not None
            loaded = await store.load(state.call_id)
            assert loaded is not None
            assert loaded.version == 1
        finally:
            await client.aclose()
