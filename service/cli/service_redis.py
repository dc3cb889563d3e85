"""The service's Redis, as the commands that read it (``ivr stats``, ``ivr replay``)
find it: ``--redis-url``, else ``REDIS_URL``. An embedded Redis (``ivr serve``
without ``REDIS_URL``) lives only inside its ``ivr serve``, out of reach."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")


class CliError(Exception):
    """A problem the user can fix, reported as one line (``ivr: error: ...``) and
    exit ``code`` (2: settings, such as no Redis or Redis unreachable)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def redis_url_of(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--redis-url``, else ``REDIS_URL``; :class:`CliError` when neither is set."""
    url = flag or (os.environ if environ is None else environ).get("REDIS_URL")
    if not url:
        raise CliError(
            "no Redis to read from: set REDIS_URL (or --redis-url) to the service's Redis "
            "(an embedded Redis, `ivr serve` without REDIS_URL, lives only inside its "
            "`ivr serve`)"
        )
    return url


def where(url: str) -> str:
    """The Redis of ``url`` without its credentials."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return parts.path or url
    return f"{parts.hostname}:{parts.port or 6379}"


async def with_redis(url: str, work: Callable[[Redis], Awaitable[T]]) -> T:
    """``work`` done on a connection to ``url``; :class:`CliError` when Redis fails."""
    from redis.exceptions import RedisError

    from service.runtime.store import connect

    redis = connect(url)
    try:
        return await work(redis)
    except (RedisError, OSError) as exc:
        raise CliError(f"cannot read Redis at {where(url)}: {exc}") from None
    finally:
        await redis.aclose()
