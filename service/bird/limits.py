"""Bird's request limits (section 1 of docs/bird-contract.md): so many requests a
second per workspace, across all its channels. A 429 means "not processed"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

LIMITS_PER_S: dict[str, int] = {"GET": 50, "POST": 500, "PATCH": 500}
"""Requests a second per workspace, by HTTP method."""

Throttle = Callable[[str], Awaitable[None]]
"""Waits until a request of that method may go to Bird (``GET``, ``POST``, ...)."""
