"""The answer of an API endpoint whose Redis work failed: ``503``, saying which of two
things happened, as the webhook does (``service.server.webhooks``):

- ``{"error": "overloaded"}`` with ``Retry-After: 1``: no Redis connection came free
  within ``REDIS_POOL_TIMEOUT_S`` (``service.runtime.redis_client.PoolExhausted``).
  This process has more work than connections; Redis may well be up. Logged as a
  warning, ``reason="overloaded"``.
- ``{"error": "unavailable"}``: Redis did not answer (refused, timed out, failing
  over). Logged as an error, ``reason="redis unavailable"``.

Each endpoint names its log event and the store it could not reach; every line has
``call_id``, ``graph`` and ``node`` (None unless the endpoint gives them).
"""

from __future__ import annotations

from typing import Any

import structlog
from starlette.responses import JSONResponse, Response

from service.runtime.redis_client import is_overload

log = structlog.get_logger("server")

OVERLOADED = "overloaded"
# A client (Bird, an operator's script) may try again this many seconds later.
RETRY_AFTER_S = 1
OVERLOADED_REASON = "no Redis connection came free in time (REDIS_POOL_TIMEOUT_S); retry later"


def store_failed(exc: BaseException, *, event: str, store: str, **fields: Any) -> Response:
    """Log ``event`` for ``exc`` (a ``RedisError`` or ``OSError``) and answer 503:
    ``overloaded`` or ``{store} unavailable``."""
    context: dict[str, Any] = {"call_id": None, "graph": None, "node": None, **fields}
    if is_overload(exc):
        log.warning(event, reason=OVERLOADED, error=str(exc), **context)
        return JSONResponse(
            {"error": OVERLOADED, "reason": OVERLOADED_REASON},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    log.error(event, reason="redis unavailable", error=str(exc), **context)
    return JSONResponse(
        {"error": "unavailable", "reason": f"{store} unavailable; retry later"}, status_code=503
    )
