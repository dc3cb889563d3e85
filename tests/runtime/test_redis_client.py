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
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

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
    assert len(client.connection_pool._available_connections) <= 4
    await client.delete(key)
    await client.aclose()


# -- The pool's fast path (a free connection taken at once) ----------------------------


def connections(pool: WaitingPool) -> int:
    """How many connections the pool has made and kept, free or in use."""
    return len(pool._available_connections) + len(pool._in_use_connections)


async def test_with_every_connection_taken_at_once_a_command_waits_then_is_exhausted(
    redis_url: str,
) -> None:
    """Connections taken by the fast path count against ``max_connections``: the next
    command waits for one (making no third), and runs out as :class:`PoolExhausted`."""
    client = connect(redis_url, max_connections=2, pool_timeout_s=0.1)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    held = [await pool.get_connection(), await pool.get_connection()]
    try:
        with pytest.raises(PoolExhausted):
            await client.ping()
        assert connections(pool) == 2
    finally:
        for connection in held:
            await pool.release(connection)
    assert await client.ping()
    assert connections(pool) == 2
    await client.aclose()


async def test_a_waiter_gets_the_released_connection_and_the_fast_path_comes_back(
    redis_url: str,
) -> None:
    client = connect(redis_url, max_connections=2, pool_timeout_s=10)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    first, second = await pool.get_connection(), await pool.get_connection()
    waiting = asyncio.create_task(ping(client))
    try:
        assert await still_waiting(waiting)
        await pool.release(first)
        assert await asyncio.wait_for(waiting, timeout=10) is True
        assert (pool._waiting, connections(pool)) == (0, 2)
        # Nobody waits any more: the released connection is taken at once.
        again = await pool.get_connection()
        assert again is first
        await pool.release(again)
    finally:
        waiting.cancel()
        await pool.release(second)
        await client.aclose()


async def test_nothing_overtakes_a_connection_being_given_back(redis_url: str) -> None:
    """A connection given back to be reconnected is closed while the pool is held (its
    place in use already given up): commands that come meanwhile wait for it rather
    than make another past ``max_connections``."""
    client = connect(redis_url, max_connections=1, pool_timeout_s=10)
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    held = await pool.get_connection()
    held.mark_for_reconnect()  # type: ignore[no-untyped-call]
    giving_back = asyncio.create_task(pool.release(held))
    results = await asyncio.gather(giving_back, *(ping(client) for _ in range(5)))
    assert results[1:] == [True] * 5
    assert connections(pool) == 1
    await client.aclose()


async def test_a_connection_the_server_closed_is_connected_again_when_taken(
    redis_url: str, redis: Redis
) -> None:
    """CLIENT KILL closes the pool's only connection while it is free: the next command
    gets it connected again, by the pool's check, not by a retry (there is none here;
    and redis-py's maintenance notifications, which let a connection with something to
    read through, are off)."""
    client = connect(
        redis_url, max_connections=1, retry=Retry(NoBackoff(), retries=0),
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )  # fmt: skip
    pool = client.connection_pool
    assert isinstance(pool, WaitingPool)
    before = await client.client_id()
    [connection] = pool._available_connections
    reader = connection._reader
    assert reader is not None
    assert await redis.client_kill_filter(_id=str(before)) == 1
    assert await asyncio.wait_for(reader.read(1), timeout=10) == b""  # the server closed it
    assert await client.client_id() != before  # the same connection, connected again
    assert pool._available_connections == [connection]
    assert await client.ping()
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
