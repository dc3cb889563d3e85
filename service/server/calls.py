"""``GET /admin/calls`` (the live calls) and ``GET /admin/calls/{call_id}`` (one
call's state, pending command and timeline), behind the admin token. Numbers are
masked unless ``LOG_MASK_NUMBERS=false``.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.bird.deliveries import is_call_id
from service.runtime.live import call_view, live_calls
from service.runtime.settings import Settings
from service.server.auth import Endpoint
from service.server.unavailable import store_failed


def make_endpoints(
    redis: Redis, settings: Settings, clock: Callable[[], float]
) -> tuple[Endpoint, Endpoint]:
    """The two endpoints: ``(list_calls, get_call)``."""
    masked = settings.log_mask_numbers
    channel = settings.bird_channel_id

    async def list_calls(request: Request) -> Response:
        graph = request.query_params.get("graph") or None
        try:
            calls = await live_calls(redis, channel, graph=graph)
        except (RedisError, OSError) as exc:
            return store_failed(exc, event="calls_api_failed", store="call state store")
        now = clock()
        return JSONResponse(
            {"calls": [call.to_json(now, masked=masked) for call in calls], "count": len(calls)}
        )

    async def get_call(request: Request) -> Response:
        call_id = request.path_params["call_id"]
        if not is_call_id(call_id):
            reason = "a call id is letters, digits, '-' and '_' (at most 128)"
            return JSONResponse({"error": "bad_request", "reason": reason}, status_code=400)
        try:
            view = await call_view(redis, call_id, channel_id=channel)
        except (RedisError, OSError) as exc:
            return store_failed(
                exc, event="calls_api_failed", store="call state store", call_id=call_id
            )
        if view is None:
            reason = (
                f"no call {call_id} here: unknown, or ended more than CALL_TTL_S "
                f"({settings.call_ttl_s} s) ago"
            )
            return JSONResponse({"error": "not_found", "reason": reason}, status_code=404)
        return JSONResponse(view.to_json(clock(), masked=masked))

    return list_calls, get_call
