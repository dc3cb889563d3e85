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
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES, *SENTINEL_SCHEMES)


class RedisUrlError(ValueError):
    """``REDIS_URL`` cannot name a Redis (the message says why)."""


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


def connect(url: str, **options: Any) -> Redis:
    """A client for ``url`` (any form above). ``options`` go to the client or its
    connection pool (``max_connections`` ...) on top of :func:`timeouts`."""
    check_url(url)
    scheme = urlsplit(url).scheme
    settings = {**timeouts(), **options}
    if scheme in CLUSTER_SCHEMES:
        from redis.asyncio.cluster import RedisCluster

        plain = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        settings.pop("health_check_interval", None)
        # The cluster client offers the commands the service uses with the same
        # signatures; it is not a subclass of Redis.
        return cast(Redis, RedisCluster.from_url(plain, **settings))
    if scheme in SENTINEL_SCHEMES:
        from redis.asyncio.sentinel import Sentinel

        hosts, service, db, password = _sentinel_parts(url)
        ssl = SENTINEL_SCHEMES[scheme]
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs={**timeouts(), "ssl": ssl}, ssl=ssl, **settings
        )
        master: Redis = sentinel.master_for(service, db=db, password=password)
        return master
    return Redis.from_url(url, health_check_interval=30, **settings)


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
