"""Performing an ``http`` node's request (``actions.HttpRequest``) with httpx.

Every outcome becomes an ``HttpResponded`` event for the engine: an answer
(whatever its status), or an error (timeout, connection failure, an answer too
large). The engine decides what is an error for the graph.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from service.core.actions import HttpRequest
from service.core.events import HttpResponded

MAX_BODY_BYTES = 1_000_000

Fetch = Callable[[HttpRequest], Awaitable[HttpResponded]]


def fetcher(client: httpx.AsyncClient) -> Fetch:
    """A fetch function over ``client`` (its transport is what tests swap)."""

    async def fetch(request: HttpRequest) -> HttpResponded:
        timeout = httpx.Timeout(request.timeout_ms / 1000)
        try:
            async with client.stream(
                request.method,
                request.url,
                headers=dict(request.headers),
                json=request.body if request.body is not None else None,
                timeout=timeout,
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        return HttpResponded(
                            None, error=f"answer larger than {MAX_BODY_BYTES} bytes"
                        )
                return HttpResponded(response.status_code, bytes(body))
        except httpx.TimeoutException:
            return HttpResponded(None, error=f"timed out after {request.timeout_ms} ms")
        except httpx.HTTPError as exc:
            return HttpResponded(None, error=f"{type(exc).__name__}: {exc}")

    return fetch
