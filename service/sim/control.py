"""The simulator's control endpoint: place calls, script callees and follow transcripts on a
running simulator (``ivr call`` is its client).

It is served on the simulator's own port under ``/sim``, apart from Bird's routes: nothing
under ``/sim`` is a Bird route, and Bird's routes stay as strict as Bird. It takes no access
key (the simulator is a tool on loopback). Errors answer ``{"error": "one line"}``.

``POST /sim/calls`` ``{"from", "to", "keys"?, "name"?, "hangup_after_s"?, "voicemail_s"?}``
    A person calls ``to`` from ``from``; ``keys`` (``"1,_,2"`` or a list) is what they press
    at each gather (``say:TEXT`` what they say, ``_`` silence, ``hangup``). 201 ``{"id",
    "transcript"}`` (its URL).
``GET /sim/calls``
    ``{"calls": [{"id", "origin", "script", "from", "to", "ended", "settled"}, ...]}``: every
    call placed so far, inbound and outbound, oldest first.
``GET /sim/calls/{id}`` (also ``.../transcript``)
    The call's transcript now (:meth:`Transcript.to_dict`, with ``settled``): among the rest
    the ``tags`` and ``record`` of the service's ``createCall``, each offer's ``record`` (its
    bridge's), ``machine`` (an answering machine took the call), ``amdResult`` (Bird's verdict
    as delivered, or null) and ``machineRecorded`` (the message the machine recorded).
``GET /sim/calls/{id}/transcript?follow=1``
    The transcript as it happens, one JSON object a line (``application/x-ndjson``):
    ``{"event": "call", "callId", "script", "from", "to", "startedAt", "origin"}``, then
    ``{"event": "entry", "at", "kind", "text"}`` for each entry, so far and to come, then
    ``{"event": "ended", "transcript": {...}}`` once the call and its legs have ended and every
    delivery was answered (``"closed"`` instead when the simulator stops first).
``PUT /sim/callees/{number}`` ``{"answer"?, "keys"?, "hangup_after_s"?, "machine"?}``
    What the callee of the outbound calls to ``number`` does from now on
    (:class:`~service.sim.scripts.CalleeSpec`); ``machine``: ``true`` or ``{"greeting"?,
    "greeting_s"?, "beep"?, "max_message_s"?}`` for an answering machine. 200 ``{"number",
    "answer", "keys", "hangup_after_s", "machine"}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from service.sim.engine import CallEngine
from service.sim.scripts import CalleeSpec, CallerScript, keys_of, unknown_fields
from service.sim.transcript import ORIGIN_CONTROL, Transcript

CALL_FIELDS = frozenset({"from", "to", "keys", "name", "hangup_after_s", "voicemail_s"})


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def routes(engine: CallEngine, closing: asyncio.Event) -> list[BaseRoute]:
    """The routes under ``/sim`` (mount them there); ``closing`` ends every follow."""
    placed = 0

    async def place_call(request: Request) -> Response:
        nonlocal placed
        try:
            script = caller_script(await _body(request), placed + 1)
        except _Refused as refused:
            return _error(refused)
        placed += 1
        call_id = await engine.place_inbound_call(script, origin=ORIGIN_CONTROL)
        link = f"/sim/calls/{call_id}/transcript"
        return JSONResponse({"id": call_id, "transcript": link}, status_code=201)

    async def list_calls(_: Request) -> Response:
        calls = [
            {
                "id": call.id,
                "origin": call.transcript.origin,
                "script": call.transcript.script_name,
                "from": call.from_number,
                "to": call.to_number,
                "ended": call.ended,
                "settled": call.settled.is_set(),
            }
            for call in engine.calls.values()
            if call.parent is None and call.transcript is not None
        ]
        return JSONResponse({"calls": calls})

    async def transcript(request: Request) -> Response:
        call_id = request.path_params["call_id"]
        try:
            current = engine.transcript(call_id)
        except KeyError:
            return _error(_Refused(404, f"no call {call_id} on this simulator"))
        if request.query_params.get("follow", "") not in ("", "0", "false"):
            return StreamingResponse(
                _follow(engine, current, closing), media_type="application/x-ndjson"
            )
        return JSONResponse({**current.to_dict(), "settled": engine.settled(call_id)})

    async def script_callee(request: Request) -> Response:
        number = request.path_params["number"]
        try:
            body = await _body(request)
            try:
                spec = CalleeSpec.from_json(number, body)
            except ValueError as exc:
                raise _Refused(422, str(exc)) from None
        except _Refused as refused:
            return _error(refused)
        engine.set_callee(number, spec.script())
        return JSONResponse({"number": number, **spec.to_json()})

    return [
        Route("/calls", place_call, methods=["POST"]),
        Route("/calls", list_calls, methods=["GET"]),
        Route("/calls/{call_id}", transcript, methods=["GET"]),
        Route("/calls/{call_id}/transcript", transcript, methods=["GET"]),
        Route("/callees/{number}", script_callee, methods=["PUT"]),
    ]


def caller_script(body: Any, ordinal: int) -> CallerScript:
    """The caller a ``POST /sim/calls`` body describes (``_Refused`` 422 saying why not)."""
    if not isinstance(body, dict):
        raise _Refused(422, "the body must be a JSON object")
    unknown = unknown_fields(body, CALL_FIELDS)
    if unknown:
        raise _Refused(422, unknown)
    numbers: dict[str, str] = {}
    for name in ("from", "to"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise _Refused(422, f"{name} is required: a number (+31612345678) or a sip: URI")
        numbers[name] = value
    seconds: dict[str, float] = {}
    for name in ("hangup_after_s", "voicemail_s"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Refused(422, f"{name} must be a number of seconds")
        seconds[name] = float(value)
    title = body.get("name")
    if title is not None and not isinstance(title, str):
        raise _Refused(422, "name must be a string")
    try:
        return CallerScript(
            name=title or f"ivr call {ordinal}",
            from_number=numbers["from"],
            to_number=numbers["to"],
            inputs=keys_of(body.get("keys")),
            hangup_after_s=seconds.get("hangup_after_s"),
            voicemail_s=seconds.get("voicemail_s", 3.0),
        )
    except ValueError as exc:
        raise _Refused(422, str(exc)) from None


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _Refused(400, f"the body is not valid JSON: {exc}") from None


def _error(refused: _Refused) -> Response:
    return JSONResponse({"error": refused.message}, status_code=refused.status)


def _line(item: dict[str, Any]) -> bytes:
    return (json.dumps(item) + "\n").encode()


async def _follow(
    engine: CallEngine, transcript: Transcript, closing: asyncio.Event
) -> AsyncIterator[bytes]:
    yield _line(
        {
            "event": "call",
            "callId": transcript.call_id,
            "script": transcript.script_name,
            "from": transcript.from_number,
            "to": transcript.to_number,
            "startedAt": transcript.to_dict()["startedAt"],
            "origin": transcript.origin,
        }
    )
    async for entry in engine.follow(transcript.call_id, closing):
        yield _line({"event": "entry", "at": entry.at, "kind": entry.kind, "text": entry.text})
    settled = engine.settled(transcript.call_id)
    yield _line({"event": "ended" if settled else "closed", "transcript": transcript.to_dict()})
