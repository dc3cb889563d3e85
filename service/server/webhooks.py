"""``POST /webhooks/bird``: where Bird delivers both the subscription's events and
every call's ``notification.url`` updates.

Answers: 413 for a body over ``MAX_BODY_BYTES`` (before it is read further, and
before the signature is checked); 401 when the signature is missing, wrong or too
old (nothing changes; a signature that does not match is logged with the URL it was
checked against, ``PUBLIC_BASE_URL``'s, and the URL the request came to); 400 for a
body that is not a readable delivery; 2xx with what was done otherwise, including for
events this service does not act on; 503 when Redis is unreachable, so that Bird
delivers again later.

Overload: at most ``IVR_MAX_IN_FLIGHT`` deliveries are handled at once by this
process; one more is answered ``503 {"error": "overloaded"}`` with ``Retry-After: 1``
at once (its body unread, Redis untouched: nothing changes, Bird delivers it again).
The same answer goes to a delivery whose Redis command found no free connection
within ``REDIS_POOL_TIMEOUT_S`` (``service.runtime.redis_client.PoolExhausted``):
too much work here, not Redis away ("call state store unavailable"). Refusals are
logged (``webhook_overloaded``, a warning) at most once a second per reason, with how
many there were since the line before.

Every delivery is counted by outcome (``ivr_webhook_deliveries_total``: what the call
handler did, ``overloaded`` with its reason (``max_in_flight``, ``redis_pool``), or
``rejected`` with the reason of a 4xx/5xx) and timed (``ivr_webhook_seconds``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.exceptions import RedisError
from starlette.datastructures import URL, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from service.bird import deliveries, signature
from service.runtime import metrics
from service.runtime.calls import CallHandler
from service.runtime.redis_client import is_overload
from service.runtime.settings import Settings
from service.server.bodies import BodyRefused, receive_body
from service.server.unavailable import OVERLOADED, OVERLOADED_REASON, RETRY_AFTER_S

log = structlog.get_logger("webhooks")

PATH = "/webhooks/bird"

URL_HINT = (
    "the signature covers PUBLIC_BASE_URL's URL; is PUBLIC_BASE_URL the URL Bird (or the "
    "simulator) posts to?"
)

# The references this service puts in a notification.url's query (?ref= of an
# outbound call, ?offer= of a queue's bridge): uuid4().hex.
OUR_REFERENCE = re.compile(r"[0-9a-f]{32}")

# The reason a delivery is rejected, by status (the metric's ``reason`` label; the
# body's ``error`` says the same).
REJECTED: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    408: "too_slow",
    413: "too_large",
    503: "unavailable",
}


class Answer(JSONResponse):
    """A ``JSONResponse``, the same bytes, rendered by one encoder made once (Starlette's
    makes an encoder for each answer)."""

    def render(self, content: Any) -> bytes:
        return _encode(content).encode("utf-8")


_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode

# Refused deliveries are logged at most once in this many seconds (RefusalLog).
LOG_EVERY_S = 1.0


def overloaded(reason: str) -> Response:
    """The answer to a delivery refused for overload: 503, ``Retry-After``."""
    return Answer(
        {"error": OVERLOADED, "reason": reason},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class RefusalLog:
    """Logs refused deliveries (``webhook_overloaded``, a warning) at most once every
    ``every_s`` seconds (:data:`LOG_EVERY_S`): the first at once, the ones after it
    counted and logged in one line (``refused``: how many since the line before) when
    ``every_s`` has passed, whether or not more come. Under overload thousands of
    refusals a second make a line a second, not thousands."""

    def __init__(
        self,
        reason: str,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reason = reason
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self._clock = clock
        self._last = float("-inf")
        self._count = 0
        self._flush: asyncio.TimerHandle | None = None
        self._details: dict[str, object] = {}

    def refused(self, **details: object) -> None:
        """One refusal; ``details`` go on the line that reports it."""
        self._count += 1
        self._details = details
        wait = self._last + self.every_s - self._clock()
        if wait <= 0:
            self.flush()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        """Log the refusals counted since the last line, if any."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if not self._count:
            return
        log.warning("webhook_overloaded", reason=self.reason, refused=self._count,
                    every_s=self.every_s, call_id=None, graph=None, node=None,
                    **self._details)  # fmt: skip
        self._count = 0
        self._last = self._clock()


def public_url(settings: Settings, request: Request) -> str:
    """The exact URL Bird called, rebuilt from the configured public base URL
    (behind a proxy the Host and scheme seen here are not Bird's)."""
    query = request.url.query
    return settings.public_base_url + request.url.path + (f"?{query}" if query else "")


# A query string that reads the same whether or not it goes through a URL (printable
# ASCII, no fragment): the URL a delivery came to is rebuilt from it as it is.
_PLAIN_QUERY = re.compile(rb'[!"$-~]*')


def _public_url(settings: Settings, scope: Scope) -> str:
    """:func:`public_url` for an ASGI request, without making its URL when its path is
    the webhook's and its query is plain (every delivery Bird makes)."""
    path: str = scope["path"]
    raw: bytes = scope.get("query_string", b"")
    if path == PATH and not scope.get("root_path") and _PLAIN_QUERY.fullmatch(raw):
        query = raw.decode()
    else:
        url = URL(scope=scope)
        path, query = url.path, url.query
    return settings.public_base_url + path + (f"?{query}" if query else "")


def _urls(exc: signature.SignatureError, scope: Scope) -> dict[str, str]:
    """For a signature that does not match: the URL it was checked against and the one
    the request came to (as this process saw it: behind a proxy, the proxy's), with a
    hint when they differ. Neither holds a secret."""
    if not isinstance(exc, signature.SignatureMismatch):
        return {}
    urls = {"checked_url": exc.url, "request_url": str(URL(scope=scope))}
    return {**urls, "hint": URL_HINT} if exc.url != urls["request_url"] else urls


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by name (lower case, as ASGI has them); of a header sent
    more than once, the first (as ``Request.headers.get`` has it)."""
    return dict(reversed(scope["headers"]))


class BirdWebhook:
    """``POST /webhooks/bird``: an ASGI app (what ``service.server.app`` calls for that
    path, without Starlette's routing) and, for the route itself, :meth:`endpoint`.
    Both count against the same ``IVR_MAX_IN_FLIGHT``."""

    def __init__(
        self,
        settings: Settings,
        handler: Callable[[], CallHandler],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._clock = clock
        self.limit = settings.ivr_max_in_flight
        self.in_flight = 0
        self._too_many = RefusalLog("max_in_flight")
        self._pool_empty = RefusalLog("redis_pool")
        at_once = f"this process handles {self.limit} deliveries at once"
        self._too_many_reason = f"{at_once} (IVR_MAX_IN_FLIGHT); retry later"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI. An exception is answered 500 and raised on to the server (which logs
        it), as Starlette's ``ServerErrorMiddleware`` does."""
        try:
            response = await self.deliver(scope, receive)
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        """The route's endpoint (Starlette's routing)."""
        return await self.deliver(request.scope, request.receive)

    async def deliver(self, scope: Scope, receive: Receive) -> Response:
        """The answer to a delivery, counted and timed."""
        started = time.perf_counter()
        if self.in_flight >= self.limit:
            # Before the body is read and Redis is touched: nothing changes.
            self._too_many.refused(max_in_flight=self.limit)
            metrics.webhook_delivery(OVERLOADED, "max_in_flight", time.perf_counter() - started)
            return overloaded(self._too_many_reason)
        self.in_flight += 1
        try:
            response, outcome = await self.handle(scope, receive)
        except Exception:
            metrics.webhook_delivery("rejected", "error", time.perf_counter() - started)
            raise
        finally:
            self.in_flight -= 1
        reason = ""
        if outcome == OVERLOADED:
            reason = "redis_pool"
        elif response.status_code >= 400 or not outcome:
            outcome, reason = "rejected", REJECTED.get(response.status_code, "other")
        metrics.webhook_delivery(outcome, reason, time.perf_counter() - started)
        return response

    async def handle(self, scope: Scope, receive: Receive) -> tuple[Response, str]:
        """The answer, and what the handler did (``Handled.status``; "" when refused)."""
        settings = self._settings
        headers = _headers(scope)
        request_id = _header(headers, _REQUEST_ID)
        try:
            body = await receive_body(
                scope, receive, settings.max_body_bytes, _header(headers, b"content-length") or ""
            )
        except BodyRefused as exc:
            log.warning("webhook_refused", status=exc.response.status_code,
                        request_id=request_id, call_id=None, graph=None, node=None)  # fmt: skip
            return exc.response, ""
        try:
            signature.verify(
                signing_key=settings.bird_signing_key,
                signature=_header(headers, _SIGNATURE),
                timestamp=_header(headers, _TIMESTAMP),
                url=_public_url(settings, scope),
                body=body,
                now=self._clock(),
                max_age_s=settings.webhook_max_age_s,
            )
        except signature.SignatureError as exc:
            log.warning("webhook_rejected", reason=exc.reason, request_id=request_id,
                        **_urls(exc, scope))  # fmt: skip
            return Answer({"error": "unauthorized", "reason": exc.reason}, status_code=401), ""
        try:
            delivery = deliveries.parse_delivery(body)
        except deliveries.DeliveryError as exc:
            log.warning("webhook_malformed", reason=exc.reason, request_id=request_id)
            return Answer({"error": "bad_request", "reason": exc.reason}, status_code=400), ""
        except deliveries.UnhandledDelivery as exc:
            log.info("webhook_ignored", reason=exc.reason, request_id=request_id)
            return Answer({"status": "ignored", "reason": exc.reason}), "ignored"
        ref = offer = None
        if scope.get("query_string"):
            query = QueryParams(scope["query_string"])
            ref, offer = query.get("ref"), query.get("offer")
            for name, value in (("ref", ref), ("offer", offer)):
                if value is not None and not OUR_REFERENCE.fullmatch(value):
                    # Our own references (A10): hex ids; anything else names no key of ours.
                    reason = f"?{name}= is not a reference this service gives"
                    log.warning("webhook_malformed", reason=reason, request_id=request_id)
                    answer = {"error": "bad_request", "reason": reason}
                    return Answer(answer, status_code=400), ""
        try:
            outcome = await self._handler().handle(delivery, ref=ref, offer=offer)
        except RedisError as exc:
            if is_overload(exc):
                # No connection came free in time: this process has too much to do.
                self._pool_empty.refused(error=str(exc), request_id=request_id)
                return overloaded(OVERLOADED_REASON), OVERLOADED
            log.error(
                "webhook_failed", call_id=delivery.call_id, graph=None, node=None,
                reason="redis unavailable", error=str(exc), request_id=request_id,
            )  # fmt: skip
            return Answer(
                {"error": "unavailable", "reason": "call state store unavailable; retry later"},
                status_code=503,
            ), ""
        done = {"status": outcome.status, "detail": outcome.detail}
        return Answer(done), outcome.status


_REQUEST_ID = signature.REQUEST_ID_HEADER.lower().encode("latin-1")
_SIGNATURE = signature.SIGNATURE_HEADER.lower().encode("latin-1")
_TIMESTAMP = signature.TIMESTAMP_HEADER.lower().encode("latin-1")


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


def make_endpoint(
    settings: Settings,
    handler: Callable[[], CallHandler],
    clock: Callable[[], float] = time.time,
) -> Callable[[Request], Awaitable[Response]]:
    """The route's endpoint alone (:meth:`BirdWebhook.endpoint`)."""
    return BirdWebhook(settings, handler, clock).endpoint
