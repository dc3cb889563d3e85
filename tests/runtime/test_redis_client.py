"""The Redis client's pool, against real servers: with every connection in use a
command waits for one to come free (``REDIS_POOL_TIMEOUT_S``) instead of being refused,
and a wait that runs out is :class:`PoolExhausted` (an overload), which a Redis that is
away never is. One server, Sentinel and a Cluster alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.runtime.redis_client import (
    MAX_CONNECTIONS,
    POOL_TIMEOUT_S,
    PoolExhausted,
    WaitingCluster,
    WaitingPool,
    WaitingSentinelPool,
    connect,
    is_overload,
)
from tests.cluster import LocalCluster, LocalSentinel


async def still_waiting(task: asyncio.Task[object]) -> bool:
    """Whether ``task`` has not finished a while after it started (a pool that refuses
    ends it at once, with an error)."""
    done, _ = await asyncio.wait({task}, timeout=0.2)
    return not done


async def ping(client: Redis) -> bool:
    return bool(await client.ping())


async def test_a_server_s_client_has_a_waiting_pool_with_the_defaults(redis_url: str) -> None:
    client = connect(redis_url)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    assert (pool.max_connections, pool.timeout) == (MAX_CONNECTIONS, POOL_TIMEOUT_S)
    assert await client.ping()
    await client.aclose()


async def test_a_command_waits_for_a_connection_to_come_free(redis_url: str) -> None:
    client = connect(redis_url, max_connections=1, pool_timeout_s=10)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    held = await pool.get_connection()
    waiting = asyncio.create_task(ping(client))
    try:
        assert await still_waiting(waiting)
        await pool.release(held)
        assert await asyncio.wait_for(waiting, timeout=10) is True
    finally:
        waiting.cancel()
        await client.aclose()


async def test_a_wait_that_runs_out_is_pool_exhausted_an_overload(redis_url: str) -> None:
    client = connect(redis_url, max_connections=1, pool_timeout_s=0.1)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    held = await pool.get_connection()
    try:
        with pytest.raises(PoolExhausted) as caught:
            await client.ping()
    finally:
        await pool.release(held)
    assert is_overload(caught.value)
    assert isinstance(caught.value, RedisConnectionError)  # what callers caught before
    assert "pool exhausted" in str(caught.value)
    assert await client.ping()  # the connection came back: the pool works on
    await client.aclose()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:9/0", "unix:///nonexistent/redis.sock"])
async def test_a_redis_that_is_away_is_not_an_overload(url: str) -> None:
    client = connect(url, max_connections=1, pool_timeout_s=0.1)
    with pytest.raises(RedisError) as caught:
        await client.ping()
    assert not is_overload(caught.value)
    assert not isinstance(caught.value, PoolExhausted)
    await client.aclose()


async def test_many_commands_share_a_small_pool_without_being_refused(redis_url: str) -> None:
    """What broke at 1,000 live calls: the default pool refused ("Too many
    connections"); this one makes the 200th command wait its turn."""
    client = connect(redis_url, max_connections=4, pool_timeout_s=10)
    key = f"test:{uuid.uuid4().hex}"
    results = await asyncio.gather(*(client.incr(key) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert len(client.connection_pool._in_use_connections) == 0
    await client.delete(key)
    await client.aclose()


# -- Sentinel and Cluster --------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as started:
        yield started


async def test_through_sentinel_the_pool_waits_and_runs_out_as_pool_exhausted() -> None:
    with LocalSentinel() as sentinel:
        client = connect(sentinel.url, max_connections=1, pool_timeout_s=0.1)
        pool = client.connection_pool
        assert isinstance(pool, WaitingSentinelPool)
        assert await client.ping()  # the master, found through the sentinel
        held = await pool.get_connection()
        try:
            with pytest.raises(PoolExhausted):
                await client.ping()
        finally:
            await pool.release(held)
        assert await client.ping()
        await client.aclose()


async def test_on_a_cluster_a_command_waits_for_its_node_s_connection(
    cluster: LocalCluster,
) -> None:
    client = connect(cluster.url, max_connections=1, pool_timeout_s=10)
    assert isinstance(client, WaitingCluster)
    key = f"test:{uuid.uuid4().hex}"
    await client.set(key, "1")
    node = client.get_node_from_key(key)
    held = node.acquire_connection()
    waiting = asyncio.create_task(client.get(key))
    try:
        assert await still_waiting(waiting)
        node.release(held)
        assert await asyncio.wait_for(waiting, timeout=10) == b"1"
    finally:
        waiting.cancel()
        await client.delete(key)
        await client.aclose()


async def test_on_a_cluster_a_wait_that_runs_out_is_pool_exhausted(cluster: LocalCluster) -> None:
    client = connect(cluster.url, max_connections=1, pool_timeout_s=0.1)
    assert isinstance(client, WaitingCluster)
    key = f"test:{uuid.uuid4().hex}"
    await client.set(key, "1")
    node = client.get_node_from_key(key)
    held = node.acquire_connection()
    try:
        with pytest.raises(PoolExhausted) as caught:
            await client.get(key)
    finally:
        node.release(held)
    assert is_overload(caught.value)
    assert await client.get(key) == b"1"
    await client.delete(key)
    await client.aclose()
