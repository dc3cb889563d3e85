"""A Redis client for ``REDIS_URL``, whichever Redis it names:

- ``redis://[:PASSWORD@]HOST[:PORT][/DB]``, ``rediss://...`` (TLS), ``unix:///PATH``:
  one server (or a proxy in front of several);
- ``redis+cluster://[:PASSWORD@]HOST:PORT`` (``rediss+cluster://`` for TLS): a Redis
  Cluster, found from any one of its nodes. The keys the service's scripts change
  together share one hash tag (``service.runtime.keys``), so every script runs on one
  node;
- ``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]``: the master
  that Redis Sentinel names ``SERVICE``, found again after a failover (the password is
  the master's; the sentinels are asked without one).

Every client has explicit timeouts: a webhook must fail fast (503, Bird delivers
again) rather than hang while Redis is away.

Connections are pooled, at most ``max_connections`` (``REDIS_MAX_CONNECTIONS``) per
client; when every one is in use a command **waits** for one to come free, for at most
``pool_timeout_s`` (``REDIS_POOL_TIMEOUT_S``), rather than being refused at once (what
redis-py's default pool does: "Too many connections"). A wait that runs out raises
:class:`PoolExhausted`: this process has more work than connections (overload), which is
not Redis being away (``ConnectionError``, ``TimeoutError``). Both are ``RedisError``;
:func:`is_overload` tells them apart.

- One server and Sentinel: :class:`WaitingPool` and :class:`WaitingSentinelPool`
  (redis-py's ``BlockingConnectionPool``, whose timeout raises a plain
  ``ConnectionError("No connection available.")``, turned into :class:`PoolExhausted`).
- Cluster: redis-py's ``RedisCluster`` keeps ``max_connections`` per node and raises
  ``MaxConnectionsError`` at once when they are all in use; it has no way to wait.
  :class:`WaitingCluster` retries a command refused so (it was not sent) every few
  milliseconds until ``pool_timeout_s``, then raises :class:`PoolExhausted`. Pipelines on
  a cluster are still refused at once, with ``MaxConnectionsError``: an overload too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES, *SENTINEL_SCHEMES)


# REDIS_MAX_CONNECTIONS, REDIS_POOL_TIMEOUT_S: their defaults (service.runtime.settings).
MAX_CONNECTIONS = 128
POOL_TIMEOUT_S = 2.0
# A cluster's node pool cannot be waited on: it is looked at again this often.
CLUSTER_POLL_S = (0.002, 0.05)


class RedisUrlError(ValueError):
    """``REDIS_URL`` cannot name a Redis (the message says why)."""


class PoolExhausted(MaxConnectionsError):
    """Every connection of the pool was in use for the whole pool timeout: this process
    is overloaded. Nothing was sent to Redis, which may well be up. A
    ``MaxConnectionsError`` (redis-py's "the pool is full, not a connection failure"),
    so a ``ConnectionError`` and a ``RedisError`` too."""


def is_overload(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection pool was full (:class:`PoolExhausted`, or
    redis-py's own ``MaxConnectionsError``), not that Redis is away."""
    return isinstance(exc, MaxConnectionsError)


def _exhausted(pool: str, exc: RedisConnectionError) -> PoolExhausted | None:
    """The :class:`PoolExhausted` for a ``BlockingConnectionPool.get_connection`` error
    that is its wait running out (redis-py raises ``ConnectionError`` "No connection
    available." from the ``asyncio.TimeoutError`` of that wait; a connection that
    cannot be made raises ``ConnectionError`` from an ``OSError``, or redis-py's
    ``TimeoutError``), else None."""
    if isinstance(exc.__cause__, asyncio.TimeoutError) and not isinstance(exc, MaxConnectionsError):
        return PoolExhausted(f"{pool}: no connection came free in time (pool exhausted)")
    return None


class WaitingPool(BlockingConnectionPool):
    """redis-py's ``BlockingConnectionPool`` (``max_connections``, waiting up to
    ``timeout`` seconds for one), raising :class:`PoolExhausted` when the wait runs out.

    A command takes a free connection (or makes one, under ``max_connections``) at once
    when it can: one is free (or there is room for one), no command is waiting for one
    (a new command does not overtake them) and nothing holds the pool (a connection being
    given back, one being handed to a waiter, a maintenance handler). redis-py's pool
    spends an ``asyncio.Condition``, a timeout (a timer armed and cancelled) and a
    ``wait_for`` on every command, about 10 µs of CPU (``bench/redis_command.py``). The
    connection taken so is checked as ``ensure_connection`` checks it, cheaply when it
    is connected with nothing to read (nearly always); one the server closed (or with a
    reply left unread) is connected again. Otherwise the command waits in redis-py's
    path, as before: woken by a connection given back (``release``, redis-py's, under the
    pool's condition), or :class:`PoolExhausted` after ``timeout``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Commands in redis-py's waiting path (waiting, or being handed a connection):
        # while there are any, a new command goes that way too, rather than take the
        # connection one of them was woken for.
        self._waiting = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if (
            not self._waiting
            and not self._condition.locked()
            and not self._lock.locked()
            and not self._in_maintenance
            and not (args or kwargs)  # deprecated; redis-py's path warns
            and self.can_get_connection()
        ):
            # Nothing awaited between the check and the take: no other task can have
            # taken the connection, or the room for one, meanwhile.
            connection: AbstractConnection
            connection = self.get_available_connection()  # type: ignore[no-untyped-call]
            try:
                await self._make_ready(connection)
            except BaseException:
                await self.release(connection)
                raise
            return connection
        self._waiting += 1
        try:
            connection = await super().get_connection(  # type: ignore[no-untyped-call]
                *args, **kwargs
            )
        except RedisConnectionError as exc:
            exhausted = _exhausted(f"{self.max_connections} connections", exc)
            if exhausted is None:
                raise
            raise exhausted from exc
        finally:
            self._waiting -= 1
        return connection

    async def _make_ready(self, connection: AbstractConnection) -> None:
        """What ``ensure_connection`` makes sure of. A connection that is connected with
        nothing to read (nearly always) is ready as it is: no ``connect`` through the
        retry machinery to find that out. Any other goes through ``ensure_connection``
        itself: connected, or connected again when it has data or the end of its stream
        waiting (unless redis-py's maintenance notifications are on, which may arrive
        unasked)."""
        if connection.is_connected:
            try:
                if not await connection.can_read():
                    return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                pass  # disconnected by can_read: ensure_connection connects it again
        await self.ensure_connection(connection)


class WaitingSentinelPool(WaitingPool, SentinelConnectionPool):
    """Sentinel's pool (the master it names, found again after a failover) that waits
    as :class:`WaitingPool` does. ``Sentinel.master_for(..., connection_pool_class=)``
    builds it as it builds ``SentinelConnectionPool``."""

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        # BlockingConnectionPool passes its own default connection class on: name
        # Sentinel's (SentinelConnectionPool picks it from ``ssl`` the same way).
        ssl = kwargs.get("ssl", False)
        kwargs.setdefault(
            "connection_class", SentinelManagedSSLConnection if ssl else SentinelManagedConnection
        )
        super().__init__(service_name=service_name, sentinel_manager=sentinel_manager, **kwargs)


class WaitingCluster(RedisCluster):
    """``RedisCluster`` whose commands wait (up to ``pool_timeout_s``) for a free
    connection of their node instead of failing at once with ``MaxConnectionsError``;
    :class:`PoolExhausted` when none came. A refused command was never sent (the
    connection is taken before anything is written), so trying it again is safe."""

    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        pool_timeout_s: float = POOL_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout_s = pool_timeout_s

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.pool_timeout_s
        pause, longest = CLUSTER_POLL_S
        while True:
            try:
                return await super().execute_command(*args, **kwargs)
            except PoolExhausted:
                raise
            except MaxConnectionsError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolExhausted(
                        f"a cluster node's {self.max_connections} connections: none came "
                        "free in time (pool exhausted)"
                    ) from exc
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, longest)


def timeouts() -> dict[str, Any]:
    """What every connection of the service is given."""
    return {
        "socket_connect_timeout": 2.0,
        "socket_timeout": 5.0,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
    }


def check_url(url: str) -> None:
    """:class:`RedisUrlError` when ``url`` is not one of the forms above."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise RedisUrlError(
            f"REDIS_URL: scheme {parts.scheme!r} is not one of {', '.join(SCHEMES)}"
        )
    if parts.scheme in SENTINEL_SCHEMES:
        _sentinel_parts(url)


def connect(
    url: str,
    *,
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    **options: Any,
) -> Redis:
    """A client for ``url`` (any form above), with at most ``max_connections``
    connections (per node of a cluster), a command waiting up to ``pool_timeout_s`` for
    one (then :class:`PoolExhausted`). ``options`` go to the client or its connection
    pool on top of :func:`timeouts`."""
    check_url(url)
    scheme = urlsplit(url).scheme
    settings = {**timeouts(), **options}
    if scheme in CLUSTER_SCHEMES:
        plain = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        settings.pop("health_check_interval", None)
        # The cluster client offers the commands the service uses with the same
        # signatures; it is not a subclass of Redis.
        cluster = WaitingCluster.from_url(
            plain, max_connections=max_connections, pool_timeout_s=pool_timeout_s, **settings
        )
        return cast(Redis, cluster)
    if scheme in SENTINEL_SCHEMES:
        from redis.asyncio.sentinel import Sentinel

        hosts, service, db, password = _sentinel_parts(url)
        ssl = SENTINEL_SCHEMES[scheme]
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs={**timeouts(), "ssl": ssl}, ssl=ssl, **settings
        )
        master: Redis = sentinel.master_for(
            service, db=db, password=password, connection_pool_class=WaitingSentinelPool,
            max_connections=max_connections, timeout=pool_timeout_s,
        )  # fmt: skip
        return master
    settings = {"health_check_interval": 30, **settings}
    waiting = WaitingPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout_s, **settings
    )
    return Redis.from_pool(waiting)


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    parts = urlsplit(url)
    where = parts.netloc.rpartition("@")[2]
    password = unquote(parts.password) if parts.password else None
    hosts: list[tuple[str, int]] = []
    for item in where.split(","):
        host, _, port = item.partition(":")
        if not host or (port and not port.isdigit()):
            raise RedisUrlError(f"REDIS_URL: {item!r} is not HOST[:PORT] of a sentinel")
        hosts.append((host, int(port or 26379)))
    path = [part for part in parts.path.split("/") if part]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise RedisUrlError(
            "REDIS_URL: a sentinel URL ends with /SERVICE or /SERVICE/DB (the master's name)"
        )
    return hosts, path[0], int(path[1]) if len(path) == 2 else 0, password
