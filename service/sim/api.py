"""The simulator's HTTP face: Bird's voice call endpoints, as strict as Bird.

Every request is checked in Bird's order (access key, path, JSON, published schema, call
state) and recorded in :attr:`BirdSimulator.requests` with its answer, so tests can assert
that everything a service sent was valid and that nothing was sent after a hang-up.
Only then may a fault (:mod:`service.sim.faults`) keep it from being performed or answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from service.bird import schemas
from service.sim import control
from service.sim.calls import SimCall
from service.sim.engine import MEDIA_COMMANDS, CallEngine
from service.sim.faults import (
    API_FAULTS,
    DROPPED_PERFORMED,
    ERROR_500,
    ERROR_503,
    RATE_LIMITED,
    SLOW,
    Faults,
)
from service.sim.scripts import AgentScript, CalleeScript

OPERATION_BY_ACTION = {
    "answer": "answerCall",
    "ringing": "ringCall",
    "hangup": "hangupCall",
    "playback": "playback",
    "say": "say",
    "gather": "gather",
    "record": "record",
    "bridge": "bridge",
}

_PATH = re.compile(
    r"/workspaces/(?P<workspace>[^/]+)/channels/(?P<channel>[^/]+)/calls"
    r"(?:/(?P<call>[^/]+)(?:/(?P<action>[^/]+))?)?"
)
_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator received, and how it answered."""

    method: str
    path: str
    query: str
    operation: str | None
    call_id: str | None
    body: Any
    """The parsed JSON body (None when empty or not JSON)."""
    status: int
    """The HTTP status answered; 0 while a dropped request is held (it gets no answer)."""
    code: str | None
    """The error ``code`` of a rejected (or faulted) request."""
    problems: tuple[str, ...]
    """Why the body did not match Bird's published schema."""
    response: Any
    """The body answered (for a dropped request: what Bird would have answered, or None)."""
    fault: str | None = None
    """The fault injected (:data:`service.sim.faults.API_FAULTS`), None when none was."""
    performed: bool = False
    """Whether Bird carried the request out, whether or not the client saw the answer."""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def rejected(self) -> bool:
        """Refused by Bird's own checks (key, path, JSON, schema, state): not a fault."""
        return self.fault is None and not self.accepted


class _Reject(Exception):
    def __init__(
        self, status: int, code: str, message: str, problems: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems

    def content(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems:
            body["details"] = {"errors": list(self.problems)}
        return body


_Perform = Callable[[], tuple[int, Any]]
"""A request that passed every check, ready to be carried out: its status and body."""


@dataclass
class _Seen:
    operation: str | None = None
    call_id: str | None = None
    body: Any = None
    subject: str = "create"
    """Whose fault stream decides this request's fault (see :mod:`service.sim.faults`)."""
    get: bool = False


class BirdSimulator(CallEngine):
    """A fake Bird Voice API for one workspace and channel, with scripted people on the line.

    Serve :attr:`app` (ASGI) on loopback, point the service's Bird base URL at it, then
    :meth:`place_inbound_call` and :meth:`wait_ended`. Deliveries are signed with
    ``signing_key`` and go to ``subscription_url`` unless a call names its own
    ``notification.url``.

    ``agents`` (bridge targets) and ``callees`` (outbound calls) are keyed by number or SIP
    URI; unknown ones answer after 2 s. ``time_scale`` is real seconds per simulated second.
    ``duplicate_deliveries`` sends every delivery twice (new request id);
    ``replay_stale`` re-sends a call's previous delivery after each one (A6).
    ``answer_timeout_s`` (simulated) is how long an inbound call rings unanswered before
    ``no-answer``, but never less than ``answer_timeout_min_real_s`` real seconds, so that a
    slow first request of the service is not taken for a dead service. Failed deliveries are
    retried up to ``max_attempts`` times, ``retry_delay_s`` (simulated) doubling each time.
    ``channel_number`` is the ``from`` of outbound calls that name none.

    Agents (docs/bird-contract.md A4, A9, A11): every bridge to an agent's number is one
    independent leg that follows the agent's script for that offer (``AgentScript.then``
    scripts successive offers). ``leave_ringing_legs`` (default True): when the caller hangs up
    while an agent's leg rings, the leg rings on until its ``ringTimeout`` (then ``no-answer``)
    unless the service hangs it up with ``/hangup`` on the leg's id; False: it ends with the
    caller. ``interrupting_commands`` (A7, default False): a ``say``, ``playback``, ``gather``
    or ``bridge`` posted while a ``say`` or ``playback`` plays cuts that prompt short and runs
    next; False: it waits for the prompt to end. :meth:`place_inbound_calls` places many
    callers at once or staggered. The details: :mod:`service.sim.engine`.

    ``faults`` (:class:`~service.sim.faults.Faults`, default none) injects API and delivery
    faults, seeded; :attr:`fault_counts` counts them by kind, :attr:`requests` records each
    request's fault and :meth:`performed` counts what Bird really did. A slow or dropped
    request is held until its client gives up, its time is up, or
    :meth:`release_held_requests` (also done by :meth:`aclose`): call it before stopping the
    server when a client may still be waiting, or the server waits for it.

    :attr:`app` also serves the control endpoint under ``/sim`` (:mod:`service.sim.control`:
    place calls, script callees, follow transcripts), apart from Bird's routes; releasing
    the held requests ends the transcripts followed there too. ``at`` pins the simulator's
    clock (when each transcript says its call was placed); Bird's timestamps stay real.
    """

    def __init__(
        self,
        *,
        access_key: str,
        workspace_id: str,
        channel_id: str,
        signing_key: str,
        subscription_url: str,
        agents: Mapping[str, AgentScript] | None = None,
        callees: Mapping[str, CalleeScript] | None = None,
        time_scale: float = 0.01,
        duplicate_deliveries: bool = False,
        replay_stale: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        answer_timeout_s: float = 30.0,
        answer_timeout_min_real_s: float = 2.0,
        max_attempts: int = 5,
        retry_delay_s: float = 1.0,
        channel_number: str = "+31850000000",
        faults: Faults | None = None,
        interrupting_commands: bool = False,
        leave_ringing_legs: bool = True,
        at: datetime | None = None,
    ) -> None:
        super().__init__(
            channel_id=channel_id,
            signing_key=signing_key,
            subscription_url=subscription_url,
            agents=agents,
            callees=callees,
            time_scale=time_scale,
            duplicate_deliveries=duplicate_deliveries,
            replay_stale=replay_stale,
            transport=transport,
            answer_timeout_s=answer_timeout_s,
            answer_timeout_min_real_s=answer_timeout_min_real_s,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay_s,
            channel_number=channel_number,
            faults=faults,
            interrupting_commands=interrupting_commands,
            leave_ringing_legs=leave_ringing_legs,
            at=at,
        )
        for operation in schemas.OPERATIONS:  # build the validators now, not on a first call
            schemas.validator(operation)
        self.workspace_id = workspace_id
        self._authorization = f"AccessKey {access_key}"
        self.requests: list[RecordedRequest] = []
        self._released = asyncio.Event()
        self._injected: dict[str, list[str]] = {}
        self.app = Starlette(
            routes=[
                # The control endpoint (service.sim.control), apart from Bird's routes.
                Mount("/sim", routes=control.routes(self, self._released)),
                Route("/{path:path}", self._endpoint, methods=_METHODS),
            ]
        )

    def requests_for(self, call_id: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.call_id == call_id]

    def performed(self, call_id: str, operation: str) -> int:
        """How many times Bird carried out ``operation`` on the call, answered or not.

        ``operation`` is an operation name (``answerCall``, ``updateCall``) or a command's
        path (``answer``, ``bridge``, ``hangup``).
        """
        name = OPERATION_BY_ACTION.get(operation, operation)
        return sum(
            1
            for request in self.requests
            if request.call_id == call_id and request.operation == name and request.performed
        )

    def inject(self, operation: str, *faults: str) -> None:
        """Script faults: the next requests of ``operation`` (``answer``, ``say``,
        ``bridge``, ... or ``getCall``), whatever call they are for, get ``faults``
        in turn (names of :data:`service.sim.faults.API_FAULTS`), before any drawn
        from :class:`~service.sim.faults.Faults`. For tests of one fault at one place."""
        unknown = [fault for fault in faults if fault not in API_FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}: use {', '.join(API_FAULTS)}")
        name = OPERATION_BY_ACTION.get(operation, operation)
        self._injected.setdefault(name, []).extend(faults)

    def release_held_requests(self) -> None:
        """End every hold of a slow or dropped request now, and every later one at once."""
        self._released.set()

    async def aclose(self) -> None:
        self.release_held_requests()
        await super().aclose()

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        seen = _Seen()
        try:
            perform = self._handle(request, raw, seen)
        except _Reject as reject:
            content = reject.content()
            self._note_request(request, seen, reject.status, content, reject.code, reject.problems)
            return JSONResponse(content, status_code=reject.status)
        injected = self._injected.get(seen.operation or "")
        if injected:
            fault: str | None = injected.pop(0)
        else:
            fault = self.dice.api_fault(seen.subject, get=seen.get)
        if fault is None:
            status, content = perform()
            self._note_request(request, seen, status, content, performed=True)
            return JSONResponse(content, status_code=status)
        self.fault_counts[fault] += 1
        if fault in (ERROR_500, ERROR_503, RATE_LIMITED):
            status, error = _FAULT_ANSWERS[fault]
            self._note_request(request, seen, status, error, error["code"], fault=fault)
            return JSONResponse(error, status_code=status)
        if fault == SLOW:
            status, content = perform()
            self._note_request(request, seen, status, content, fault=fault, performed=True)
            await self._hold(request, self.faults.slow_answer_s)
            return JSONResponse(content, status_code=status)
        performed = fault == DROPPED_PERFORMED
        unsent = perform()[1] if performed else None
        index = self._note_request(request, seen, 0, unsent, fault=fault, performed=performed)
        if await self._hold(request, self.faults.drop_hold_s):
            # The client outwaited the hold: the gateway in front of Bird gives up.
            gateway = {"code": "gateway_timeout", "message": "the upstream did not answer"}
            self.requests[index] = dataclasses.replace(
                self.requests[index], status=504, code="gateway_timeout", response=gateway
            )
            return JSONResponse(gateway, status_code=504)
        return Response(status_code=204)  # never sent: the client has gone

    def _note_request(
        self,
        request: Request,
        seen: _Seen,
        status: int,
        content: Any,
        code: str | None = None,
        problems: tuple[str, ...] = (),
        *,
        fault: str | None = None,
        performed: bool = False,
    ) -> int:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                operation=seen.operation,
                call_id=seen.call_id,
                body=seen.body,
                status=status,
                code=code,
                problems=problems,
                response=content,
                fault=fault,
                performed=performed,
            )
        )
        return len(self.requests) - 1

    async def _hold(self, request: Request, seconds: float) -> bool:
        """Keep the request unanswered for ``seconds`` real seconds, or until its client
        closes the connection (False) or the holds are released; True if the client waits."""
        gone = asyncio.ensure_future(_disconnected(request))
        released = asyncio.ensure_future(self._released.wait())
        try:
            done, _ = await asyncio.wait(
                {gone, released}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
            released.cancel()
        return gone not in done

    def _handle(self, request: Request, raw: bytes, seen: _Seen) -> _Perform:
        """Check the request in Bird's order (``_Reject`` if it fails); what performs it."""
        method = request.method
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), self._authorization.encode()):
            raise _Reject(401, "unauthorized", "missing or wrong 'Authorization: AccessKey ...'")
        match = _PATH.fullmatch(request.url.path)
        if match is None:
            hint = " (no trailing slash)" if request.url.path.endswith("/") else ""
            raise _Reject(404, "not_found", f"no such endpoint: {method} {request.url.path}{hint}")
        if match["workspace"] != self.workspace_id:
            raise _Reject(404, "not_found", f"workspace {match['workspace']} not found")
        if match["channel"] != self.channel_id:
            raise _Reject(404, "not_found", f"channel {match['channel']} not found")
        call_id, action = match["call"], match["action"]
        if call_id is None:
            if method != "POST":
                raise _Reject(405, "method_not_allowed", f"{method} is not simulated here")
            seen.operation = "createCall"
            body = seen.body = _parse(raw)
            return self._create(_valid("createCall", body))
        if action is None:
            if method not in ("GET", "PATCH"):
                raise _Reject(405, "method_not_allowed", f"{method} is not allowed on a call")
            seen.operation = "getCall" if method == "GET" else "updateCall"
        else:
            if action not in OPERATION_BY_ACTION:
                raise _Reject(404, "not_found", f"no such call command: {action}")
            if method != "POST":
                raise _Reject(405, "method_not_allowed", f"{action} takes POST")
            seen.operation = OPERATION_BY_ACTION[action]
        seen.call_id = call_id
        call = self.calls.get(call_id)
        if call is None:
            raise _Reject(404, "not_found", f"call {call_id} not found")
        seen.get = method == "GET"
        seen.subject = f"call-{call.ordinal}/{'get' if seen.get else 'api'}"
        if method == "GET":
            return lambda: (200, call.to_json())
        body = seen.body = _parse(raw)
        if action is None:
            return self._update(call, _valid("updateCall", body))
        return self._command(call, action, _valid(seen.operation, body))

    def _create(self, body: dict[str, Any]) -> _Perform:
        scheduled_for: datetime | None = None
        if "scheduledFor" in body:
            scheduled_for = _date_time(body["scheduledFor"])
        flow = body.get("callFlow")
        if flow:
            _check_flow(flow)

        def perform() -> tuple[int, Any]:
            call = self.create_outbound_call(body, scheduled_for)
            return 202, call.to_json()

        return perform

    def _update(self, call: SimCall, body: dict[str, Any]) -> _Perform:
        _check_active(call)
        if body.get("status") == "completed":

            def hang_up() -> tuple[int, Any]:
                self.hang_up(call)
                return 202, call.to_json()

            return hang_up
        flow = body.get("callFlow")
        if flow:
            _check_flow(flow)
            answered = call.answered or call.answer_pending
            if call.direction == "outgoing" and call.party == "callee":
                answered = True  # an outbound call's flow waits for the callee to answer
            for index, item in enumerate(flow):
                name = item.get("command")
                problem = _state_problem(call, name, answered)
                if problem is not None:
                    raise _Reject(422, "invalid_state", f"callFlow item {index}: {problem}")
                answered = answered or name == "answer"

        def update() -> tuple[int, Any]:
            if flow:
                self.start_flow(call, flow)
            return 202, call.to_json()

        return update

    def _command(self, call: SimCall, action: str, body: dict[str, Any]) -> _Perform:
        _check_active(call)
        problem = _state_problem(call, action, call.answered or call.answer_pending)
        if problem is not None:
            raise _Reject(422, "invalid_state", problem)
        return lambda: self._perform_command(call, action, body)

    def _perform_command(self, call: SimCall, action: str, body: dict[str, Any]) -> tuple[int, Any]:
        if action == "hangup":
            command = self.new_command(call, "hangup", body)
            cause = body.get("cause")
            self.hang_up(call, cause if isinstance(cause, str) else None)
            return 202, command.answer()
        command = self.new_command(call, action, body)
        self.enqueue(call, command)
        answer = command.answer()
        if command.leg is not None:
            return 202, {"command": answer, "bridgedCall": command.leg.to_json()}
        if command.recording_id is not None:
            return 202, {"command": answer, "recordingId": command.recording_id}
        return 202, answer


_FAULT_ANSWERS: dict[str, tuple[int, dict[str, str]]] = {
    ERROR_500: (500, {"code": "internal_error", "message": "internal server error"}),
    ERROR_503: (503, {"code": "service_unavailable", "message": "service unavailable"}),
    RATE_LIMITED: (429, {"code": "rate_limited", "message": "too many requests, retry later"}),
}


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _Reject(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None


def _valid(operation: str, body: Any) -> dict[str, Any]:
    """``body`` if Bird's published schema for ``operation`` accepts it (absent means ``{}``)."""
    subject = {} if body is None else body
    found = schemas.problems(operation, subject)
    if found:
        problems = tuple(_explained(subject, found))
        raise _Reject(422, "validation_error", f"invalid {operation} request body", problems)
    if not isinstance(subject, dict):
        raise _Reject(422, "validation_error", f"the {operation} request body must be an object")
    return subject


_VAGUE_OPTIONS = re.compile(
    r"/callFlow/(\d+)/options: .* is not valid under any of the given schemas"
)


def _explained(body: Any, found: list[str]) -> list[str]:
    """``found``, where a callFlow item's options fit none of the schemas it may take (a vague
    problem), with what its command's own endpoint schema finds wrong instead: e.g.
    ``/callFlow/0/options/speechLocale: 'fr-FR' is not one of [...]``."""
    flow = body.get("callFlow") if isinstance(body, dict) else None
    if not isinstance(flow, list):
        return found
    explained: list[str] = []
    for problem in found:
        match = _VAGUE_OPTIONS.fullmatch(problem)
        clearer = _item_problems(flow, int(match[1])) if match is not None else []
        explained.extend(clearer or [problem])
    return explained


def _item_problems(flow: list[Any], index: int) -> list[str]:
    """What the endpoint schema of callFlow item ``index``'s command finds wrong with its
    options (the options of ``say``, ``gather``, ... are those endpoints' bodies)."""
    item = flow[index] if index < len(flow) else None
    if not isinstance(item, dict) or not isinstance(item.get("options"), dict):
        return []
    operation = OPERATION_BY_ACTION.get(str(item.get("command")))
    if operation is None:
        return []
    where = f"/callFlow/{index}/options"
    return [
        f"{where}: {problem.removeprefix('/: ')}" if problem.startswith("/: ") else where + problem
        for problem in schemas.problems(operation, item["options"])
    ]


def _date_time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _Reject(
            422,
            "validation_error",
            "invalid createCall request body",
            (f"/scheduledFor: {value!r} is not an RFC 3339 date-time",),
        )
    return moment


def _check_flow(flow: list[Any]) -> None:
    """What the schema leaves open but a flow cannot run without."""
    found = []
    for index, item in enumerate(flow):
        name = item.get("command")
        if name is None:
            found.append(f"/callFlow/{index}: 'command' is a required property")
        elif name == "bridge":
            options = item.get("options")
            if not isinstance(options, dict) or not isinstance(options.get("to"), str):
                found.append(f"/callFlow/{index}/options: 'to' is a required property")
    if found:
        raise _Reject(422, "validation_error", "invalid callFlow", tuple(found))


def _check_active(call: SimCall) -> None:
    if call.ended:
        raise _Reject(422, "call_not_active", f"call {call.id} has ended (status {call.status})")


def _state_problem(call: SimCall, command: str, answered: bool) -> str | None:
    if command in ("answer", "ringing"):
        if call.direction != "incoming":
            return f"{command} applies to incoming calls only"
        if answered:
            return f"call {call.id} has already been answered"
    elif command in MEDIA_COMMANDS and not answered:
        return f"call {call.id} has not been answered yet (status {call.status})"
    return None
