"""``POST /calls``: place an outbound IVR call.

Body: ``{"to", "graph", "vars"?, "from"?, "scheduled_for"?}``. The callee is
called through Bird with this service's ``notification.url``; when they answer,
the graph runs from ``start`` with ``vars``. ``no-answer``, ``busy`` and
``failed`` end the call and are logged. A bad request gets 422 with every reason;
a body that is not readable JSON 400, one over ``MAX_BODY_BYTES`` 413; Bird refusing
the call 502; Redis unreachable 503 (nothing was placed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.bird.errors import BirdError
from service.core.graph import Graph
from service.runtime.calls import CallHandler
from service.runtime.registry import Registry
from service.server.bodies import BodyRefused, read_json

log = structlog.get_logger("outbound")

DESTINATION = re.compile(r"^(\+[1-9][0-9]{6,14}|sips?:[^\s@]+@\S+)$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
FIELDS = {"to", "graph", "vars", "from", "scheduled_for"}


@dataclass(frozen=True)
class OutboundRequest:
    to: str
    graph: Graph
    variables: dict[str, str]
    from_: str | None
    scheduled_for: str | None
    delay_s: float


def parse_request(body: Any, registry: Registry, now: float) -> OutboundRequest | list[str]:
    """The request, or every reason it is not one (``/field: message``)."""
    if not isinstance(body, dict):
        return ["/: the body must be a JSON object"]
    problems = [f"/{name}: unknown field" for name in sorted(set(body) - FIELDS)]
    to = body.get("to")
    if not isinstance(to, str) or not DESTINATION.match(to):
        problems.append("/to: required, an E.164 number (+31612345678) or a sip: URI")
    graph_id = body.get("graph")
    graph = registry.get(graph_id) if isinstance(graph_id, str) else None
    if graph is None:
        known = ", ".join(sorted(registry.current.graphs))
        problems.append(f"/graph: required, one of the loaded graphs ({known})")
    raw_vars = body.get("vars", {})
    variables: dict[str, str] = {}
    if not isinstance(raw_vars, dict):
        problems.append("/vars: must be an object of names to values")
    else:
        for name, value in raw_vars.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                problems.append(f"/vars/{name}: not a variable name")
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                problems.append(f"/vars/{name}: must be a string or a number")
            else:
                variables[name] = str(value)
    if graph is not None and isinstance(raw_vars, dict):
        problems += [f"/vars/{name}: required by graph {graph.id}" for name in graph.params
                     if name not in raw_vars]  # fmt: skip
    from_ = body.get("from")
    if from_ is not None and (not isinstance(from_, str) or not E164.match(from_)):
        problems.append("/from: must be an E.164 number")
    scheduled_for = body.get("scheduled_for")
    delay_s = 0.0
    if scheduled_for is not None:
        moment = _moment(scheduled_for)
        if moment is None:
            problems.append("/scheduled_for: must be an ISO-8601 date-time with a time zone")
        elif moment.timestamp() <= now:
            problems.append("/scheduled_for: must be in the future")
        else:
            delay_s = moment.timestamp() - now
            scheduled_for = moment.isoformat()
    if problems or graph is None or not isinstance(to, str):
        return problems
    return OutboundRequest(to, graph, variables, from_, scheduled_for, delay_s)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def make_endpoint(
    handler: Callable[[], CallHandler],
    registry: Callable[[], Registry],
    clock: Callable[[], float],
    max_body_bytes: int = 1_048_576,
) -> Callable[[Request], Any]:
    async def create_call(request: Request) -> Response:
        try:
            body = await read_json(request, max_body_bytes)
        except BodyRefused as exc:
            return exc.response
        parsed = parse_request(body, registry(), clock())
        if isinstance(parsed, list):
            return JSONResponse({"error": "invalid_request", "problems": parsed}, 422)
        try:
            call_id = await handler().place_outbound(
                parsed.graph,
                to=parsed.to,
                from_=parsed.from_,
                variables=parsed.variables,
                scheduled_for=parsed.scheduled_for,
                delay_s=parsed.delay_s,
            )
        except BirdError as exc:
            log.error("outbound_refused", call_id=None, graph=parsed.graph.id, node=None,
                      error=str(exc))  # fmt: skip
            return JSONResponse({"error": "bird_refused", "reason": str(exc)}, 502)
        except RedisError as exc:
            log.error("outbound_failed", call_id=None, graph=parsed.graph.id, node=None,
                      reason="redis unavailable", error=str(exc))  # fmt: skip
            return JSONResponse(
                {"error": "unavailable", "reason": "call state store unavailable; retry later"},
                503,
            )
        return JSONResponse(
            {
                "call_id": call_id,
                "graph": parsed.graph.id,
                "version": parsed.graph.version,
                "to": parsed.to,
                "scheduled_for": parsed.scheduled_for,
            },
            status_code=202,
        )

    return create_call
