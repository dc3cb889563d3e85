"""``/agents``: the people callers are offered to, managed by operators (admin token).

``GET /agents`` and ``GET /agents/{id}`` show each agent's configuration with their
``status`` (their choice), ``state`` (the line's view), ``until``, ``call_id`` and
today's counters. ``PUT /agents/{id}`` creates (201) or replaces (200) an agent;
``PUT /agents/{id}/status`` sets their status; ``DELETE /agents/{id}`` removes them
(204), unless they are offered a caller or in a call (409). Every change wakes the
agent's queues (``CallHandler.dispatch``): a caller waiting there is offered the agent
now free, or the next tier once this one is empty. Answers: 400 with the JSON path of
what is wrong, 404 for an unknown agent, 413 for a body over 64 KiB, 503 while Redis
is unreachable. docs/agents.md has the examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.core.queues import AGENT_STATUSES, AgentStatus
from service.runtime.agents import AgentError, Agents, AgentView, parse_agent
from service.runtime.calls import CallHandler
from service.runtime.line import LineResult
from service.runtime.logs import mask_number
from service.runtime.registry import Registry
from service.server.auth import Endpoint
from service.server.bodies import BodyRefused, read_json
from service.server.unavailable import store_failed

log = structlog.get_logger("agents")

AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BODY_BYTES = 64 * 1024


class _Refused(Exception):
    """A request this endpoint answers with an error instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _error(status: int, error: str, reason: str, **extra: Any) -> _Refused:
    return _Refused(JSONResponse({"error": error, **extra, "reason": reason}, status_code=status))


def _agent_id(request: Request) -> str:
    agent_id = str(request.path_params["agent_id"])
    if not AGENT_ID.fullmatch(agent_id):
        raise _error(400, "invalid_agent_id",
                     "an agent id is 1-64 letters, digits, '_', '.' or '-', starting with a "
                     "letter or digit")  # fmt: skip
    return agent_id


async def _json_body(request: Request) -> Any:
    """The request's JSON, read up to :data:`MAX_BODY_BYTES` (413 beyond, 400 when it
    is not JSON; ``service.server.bodies``)."""
    try:
        return await read_json(request, MAX_BODY_BYTES)
    except BodyRefused as exc:
        raise _Refused(exc.response) from None


def masked_address(address: str) -> str:
    """An agent's address as logs may show it whatever ``LOG_MASK_NUMBERS`` says:
    ``+31******678``, ``sip:***@pbx.example.com``."""
    if address.startswith(("sip:", "sips:")):
        scheme, _, rest = address.partition(":")
        _, at, host = rest.rpartition("@")
        return f"{scheme}:***@{host}" if at else address
    return mask_number(address)


@dataclass(frozen=True)
class AgentEndpoints:
    list_agents: Endpoint
    get_agent: Endpoint
    put_agent: Endpoint
    delete_agent: Endpoint
    set_status: Endpoint


def make_endpoints(
    agents: Callable[[], Agents], handler: Callable[[], CallHandler], registry: Registry
) -> AgentEndpoints:
    """The ``/agents`` endpoints (to be put behind the admin token). ``agents`` and
    ``handler`` exist once the app has started."""

    async def wake(result: LineResult | None, queues: Iterable[str], agent_id: str) -> None:
        """Offer waiting callers what this change made possible: the agent's queues
        dispatch (an agent now idle, or a tier now empty so the next one is tried)."""
        try:
            await handler().dispatch(result, *queues)
        except (RedisError, OSError) as exc:  # the change stands; the next event dispatches
            log.warning("agent_dispatch_failed", agent_id=agent_id, error=str(exc),
                        call_id=None, graph=None, node=None)  # fmt: skip

    async def list_agents(_: Request) -> Response:
        views = await agents().all()
        return JSONResponse({"agents": [view.to_json() for view in views]})

    async def get_agent(request: Request) -> Response:
        agent_id = _agent_id(request)
        return JSONResponse((await _existing(agent_id)).to_json())

    async def _existing(agent_id: str) -> AgentView:
        view = await agents().get(agent_id)
        if view is None:
            raise _error(404, "not_found", f"no agent {agent_id!r}")
        return view

    async def put_agent(request: Request) -> Response:
        agent_id = _agent_id(request)
        document = await _json_body(request)
        try:
            agent = parse_agent(agent_id, document, registry.queues)
        except AgentError as exc:
            raise _error(400, "invalid_agent", exc.message, path=exc.path) from None
        given = cast(AgentStatus | None, document.get("status"))
        before = await agents().get(agent_id)
        result = await agents().put(agent, status=given or "offline")
        woken = {*agent.queues, *(before.agent.queues if before else ())}
        if before is not None and given is not None and given != before.status:
            # A replaced agent keeps their status unless the body names one.
            changed = await agents().set_status(agent_id, given)
            if changed is not None:
                result = _merged(result, changed)
        await wake(result, sorted(woken), agent_id)
        view = await _existing(agent_id)
        log.info("agent_put", agent_id=agent_id, created=before is None,
                 address=masked_address(agent.address), queues=sorted(agent.queues),
                 status=view.status, call_id=None, graph=None, node=None)  # fmt: skip
        return JSONResponse(view.to_json(), status_code=201 if before is None else 200)

    async def delete_agent(request: Request) -> Response:
        agent_id = _agent_id(request)
        before = await _existing(agent_id)
        outcome = await agents().delete(agent_id)
        if outcome == "missing":  # deleted meanwhile
            raise _error(404, "not_found", f"no agent {agent_id!r}")
        if outcome == "busy":
            now = await agents().get(agent_id) or before
            doing = "is offered a caller" if now.state == "offered" else "is in a call"
            raise _error(409, "agent_busy",
                         f"agent {agent_id!r} {doing}; set their status to offline, and "
                         "delete them once the call has ended", state=now.state)  # fmt: skip
        await wake(None, sorted(before.agent.queues), agent_id)
        log.info("agent_deleted", agent_id=agent_id, queues=sorted(before.agent.queues),
                 call_id=None, graph=None, node=None)  # fmt: skip
        return Response(status_code=204)

    async def set_status(request: Request) -> Response:
        agent_id = _agent_id(request)
        document = await _json_body(request)
        status = _status(document)
        before = await _existing(agent_id)
        result = await agents().set_status(agent_id, status)
        if result is None:  # deleted meanwhile
            raise _error(404, "not_found", f"no agent {agent_id!r}")
        await wake(result, sorted(before.agent.queues), agent_id)
        view = await _existing(agent_id)
        log.info("agent_status_set", agent_id=agent_id, status=status, before=before.status,
                 state=view.state, call_id=None, graph=None, node=None)  # fmt: skip
        return JSONResponse(view.to_json())

    return AgentEndpoints(
        list_agents=_answering(list_agents),
        get_agent=_answering(get_agent),
        put_agent=_answering(put_agent),
        delete_agent=_answering(delete_agent),
        set_status=_answering(set_status),
    )


def _status(document: Any) -> AgentStatus:
    choices = ", ".join(AGENT_STATUSES)
    if not isinstance(document, dict):
        raise _error(400, "invalid_status",
                     'the body must be an object {"status": "available"|"on_break"|"offline"}',
                     path="/")  # fmt: skip
    for name in document:
        if name != "status":
            raise _error(400, "invalid_status", "unknown field (allowed: status)", path=f"/{name}")
    status = document.get("status")
    if status not in AGENT_STATUSES:
        raise _error(400, "invalid_status", f"must be one of {choices}", path="/status")
    return cast(AgentStatus, status)


def _merged(first: LineResult, second: LineResult) -> LineResult:
    return LineResult(
        dispatch=tuple(dict.fromkeys([*first.dispatch, *second.dispatch])),
        agents=first.agents + second.agents,
    )


def _answering(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` answering its refusals, and 503 while Redis is unreachable."""

    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _Refused as refused:
            return refused.response
        except (RedisError, OSError) as exc:
            return store_failed(exc, event="agents_api_failed", store="agent store")

    return answered
