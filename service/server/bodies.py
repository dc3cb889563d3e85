"""Request bodies, read within a limit: ``413`` as soon as a body is known to be over
it (its ``Content-Length``, or the bytes received so far), before more is read; ``408``
when it has not all come within :data:`BODY_TIMEOUT_S`; ``400`` for JSON that cannot
be read (``service.core.jsondoc``: :class:`NotJSON`, which an endpoint may answer its own
way); a client that goes away mid-body is logged in one
line, not as a traceback."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope

from service.core import jsondoc

log = structlog.get_logger("server")

BODY_TIMEOUT_S = 10.0


class BodyRefused(Exception):
    """The body cannot be taken: ``response`` says why."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class NotJSON(BodyRefused):
    """The body is not JSON this service reads: ``reason`` says why ("the body is not
    JSON: ..."); ``response`` is a 400 with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(JSONResponse({"error": "bad_request", "reason": reason}, 400))
        self.reason = reason


def _refused(status: int, error: str, reason: str) -> BodyRefused:
    return BodyRefused(JSONResponse({"error": error, "reason": reason}, status_code=status))


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The body, at most ``limit`` bytes within ``timeout_s`` (:data:`BODY_TIMEOUT_S`),
    or :class:`BodyRefused`."""
    declared = request.headers.get("content-length", "")
    return await receive_body(request.scope, request.receive, limit, declared, timeout_s)


async def receive_body(
    scope: Scope, receive: Receive, limit: int, declared: str, timeout_s: float | None = None
) -> bytes:
    """:func:`read_body` for an ASGI request (``declared``: its ``Content-Length``, "" when
    it has none)."""
    timeout_s = timeout_s if timeout_s is not None else BODY_TIMEOUT_S
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "http.request":
                    chunk: bytes = message.get("body", b"")
                    received += len(chunk)
                    if received > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        # Most bodies come whole, in one message: kept as they came.
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                elif kind == "http.disconnect":
                    raise ClientDisconnect()
    except TimeoutError:
        log.info("request_too_slow", path=URL(scope=scope).path, call_id=None, graph=None,
                 node=None, received_bytes=received)  # fmt: skip
        raise _refused(408, "too_slow", f"the body did not come within {timeout_s:g} s") from None
    except ClientDisconnect:
        log.info("request_abandoned", path=URL(scope=scope).path, call_id=None, graph=None,
                 node=None, received_bytes=received)  # fmt: skip
        raise _refused(400, "client_disconnected", "the client went away mid-body") from None


def _too_large(limit: int) -> BodyRefused:
    return _refused(413, "too_large", f"the body is over {_size(limit)}")


async def read_json(request: Request, limit: int) -> Any:
    """The body's JSON value, or :class:`BodyRefused` (413, 408, 400; :class:`NotJSON`
    when it came but is not JSON)."""
    try:
        return jsondoc.load(await read_body(request, limit))
    except jsondoc.JSONTextError as exc:
        raise NotJSON(f"the body {exc.reason}") from None
