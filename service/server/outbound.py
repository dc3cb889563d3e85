"""``POST /calls``: place an outbound IVR call.

Body: ``{"to", "graph", "vars"?, "from"?, "scheduled_for"?}``. The callee is
called through Bird with this service's ``notification.url``; when they answer,
the graph runs from ``start`` with ``vars``. ``no-answer``, ``busy`` and
``failed`` end the call and are logged. A bad request gets 422 with every reason
(``/field: what is wrong with the value given``), a body that is not JSON too; a body
over ``MAX_BODY_BYTES`` 413; Bird refusing the call 502; Redis unreachable 503
(nothing was placed).
"""

from __future__ import annotations

import json
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
from service.server.bodies import BodyRefused, NotJSON, read_json
from service.server.unavailable import store_failed

log = structlog.get_logger("outbound")

DESTINATION = re.compile(r"^(\+[1-9][0-9]{6,14}|sips?:[^\s@]+@\S+)$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FIELDS = {"to", "graph", "vars", "from", "scheduled_for"}
E164_TEXT = "an E.164 number (+ and 7-15 digits, e.g. +31612345678)"
MOMENT_TEXT = "an ISO-8601 date-time with a time zone (e.g. 2026-12-01T10:00:00+01:00)"
SHOWN_CHARS = 60


@dataclass(frozen=True)
class OutboundRequest:
    to: str
    graph: Graph
    variables: dict[str, str]
    from_: str | None
    scheduled_for: str | None
    delay_s: float


def shown(value: Any) -> str:
    """A value given, as a problem quotes it: ``'abc'``, ``12``, ``["x"]`` (cut short)."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _pointer(name: str) -> str:
    """``name`` as a JSON pointer's part (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def parse_request(body: Any, registry: Registry, now: float) -> OutboundRequest | list[str]:
    """The request, or every reason it is not one (``/field: message``): "required"
    for a field that is missing, what is wrong with the value given otherwise."""
    if not isinstance(body, dict):
        return [f"/: the body must be a JSON object, got {shown(body)}"]
    allowed = ", ".join(sorted(FIELDS))
    problems = [f"/{_pointer(name)}: unknown field (allowed: {allowed})"
                for name in sorted(set(body) - FIELDS)]  # fmt: skip
    to = body.get("to")
    to_text = f"{E164_TEXT} or a sip: URI"
    if "to" not in body:
        problems.append(f"/to: required: {to_text}")
    elif not isinstance(to, str) or not DESTINATION.fullmatch(to):
        problems.append(f"/to: {shown(to)} is not {to_text}")
    graph_id = body.get("graph")
    graph = registry.get(graph_id) if isinstance(graph_id, str) else None
    loaded = ", ".join(sorted(registry.current.graphs)) or "none"
    if "graph" not in body:
        problems.append(f"/graph: required: the id of a loaded graph ({loaded})")
    elif graph is None:
        problems.append(f"/graph: {shown(graph_id)} is not a loaded graph (loaded: {loaded})")
    raw_vars = body.get("vars", {})
    variables: dict[str, str] = {}
    if not isinstance(raw_vars, dict):
        problems.append(f"/vars: {shown(raw_vars)} is not an object of names to values")
    else:
        for name, value in raw_vars.items():
            where = f"/vars/{_pointer(name)}"
            if not VARIABLE.fullmatch(name):
                problems.append(f"{where}: {shown(name)} is not a variable name (letters, "
                                "digits and _, not starting with a digit)")  # fmt: skip
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                problems.append(f"{where}: {shown(value)} is not a string or a number")
            else:
                variables[name] = str(value)
    if graph is not None and isinstance(raw_vars, dict):
        problems += [f"/vars/{_pointer(name)}: required by graph {graph.id}"
                     for name in graph.params if name not in raw_vars]  # fmt: skip
    from_ = body.get("from")
    if from_ is not None and (not isinstance(from_, str) or not E164.fullmatch(from_)):
        problems.append(f"/from: {shown(from_)} is not {E164_TEXT}")
    scheduled_for = body.get("scheduled_for")
    delay_s = 0.0
    if scheduled_for is not None:
        moment = _moment(scheduled_for)
        if moment is None:
            problems.append(f"/scheduled_for: {shown(scheduled_for)} is not {MOMENT_TEXT}")
        elif moment.timestamp() <= now:
            problems.append(f"/scheduled_for: {shown(scheduled_for)} is in the past; it must "
                            "be in the future")  # fmt: skip
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
        except NotJSON as exc:  # a bad request like any other (README): 422, with why
            problems = [f"/: {exc.reason}"]
            return JSONResponse(
                {"error": "invalid_request", "reason": exc.reason, "problems": problems}, 422
            )
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
            return store_failed(
                exc, event="outbound_failed", store="call state store", graph=parsed.graph.id
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
