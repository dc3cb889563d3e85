"""``GET /queues`` and ``GET /queues/{name}`` (admin token): the line at a glance,
per queue of the current ``queues.json`` (``service.runtime.board``): callers in line
with their wait (and the agent ringing for them), callbacks pending, the longest
wait, agents by state and status, and today's counters. 404 for a queue that is not
in the current set; 503 while Redis is unreachable. docs/agents.md has examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.runtime.board import Board
from service.runtime.registry import Registry
from service.server.auth import Endpoint
from service.server.unavailable import store_failed

log = structlog.get_logger("queues")


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True)
class QueueEndpoints:
    list_queues: Endpoint
    get_queue: Endpoint


def make_endpoints(board: Board, registry: Registry, clock: Callable[[], float]) -> QueueEndpoints:
    def unavailable(exc: Exception) -> Response:
        return store_failed(exc, event="queues_api_failed", store="the line's store")

    async def list_queues(_: Request) -> Response:
        at = clock()
        try:
            boards = await board.read(registry.queues)
        except (RedisError, OSError) as exc:
            return unavailable(exc)
        return JSONResponse(
            {"queues": {name: b.to_json() for name, b in boards.items()}, "at": iso(at)}
        )

    async def get_queue(request: Request) -> Response:
        name = str(request.path_params["name"])
        queues = registry.queues
        if name not in queues:
            known = ", ".join(sorted(queues)) or "none: queues.json is missing"
            return JSONResponse(
                {"error": "not_found", "reason": f"no queue {name!r} (known: {known})"},
                status_code=404,
            )
        at = clock()
        try:
            boards = await board.read({name: queues[name]})
        except (RedisError, OSError) as exc:
            return unavailable(exc)
        return JSONResponse({"name": name, **boards[name].to_json(), "at": iso(at)})

    return QueueEndpoints(list_queues=list_queues, get_queue=get_queue)
