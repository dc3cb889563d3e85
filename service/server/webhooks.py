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
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.bird import deliveries, signature
from service.runtime import metrics
from service.runtime.calls import CallHandler
from service.runtime.redis_client import is_overload
from service.runtime.settings import Settings
from service.server.bodies import BodyRefused, read_body

log = structlog.get_logger("webhooks")

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


OVERLOADED = "overloaded"
# Bird delivers a refused delivery again; this says when it may.
RETRY_AFTER_S = 1
# Refused deliveries are logged at most once in this many seconds (RefusalLog).
LOG_EVERY_S = 1.0


def overloaded(reason: str) -> Response:
    """The answer to a delivery refused for overload: 503, ``Retry-After``."""
    return JSONResponse(
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


def _urls(exc: signature.SignatureError, request: Request) -> dict[str, str]:
    """For a signature that does not match: the URL it was checked against and the one
    the request came to (as this process saw it: behind a proxy, the proxy's), with a
    hint when they differ. Neither holds a secret."""
    if not isinstance(exc, signature.SignatureMismatch):
        return {}
    urls = {"checked_url": exc.url, "request_url": str(request.url)}
    return {**urls, "hint": URL_HINT} if exc.url != urls["request_url"] else urls


def make_endpoint(
    settings: Settings,
    handler: Callable[[], CallHandler],
    clock: Callable[[], float] = time.time,
) -> Callable[[Request], Awaitable[Response]]:
    limit = settings.ivr_max_in_flight
    in_flight = 0
    too_many = RefusalLog("max_in_flight")
    pool_empty = RefusalLog("redis_pool")

    async def bird_webhook(request: Request) -> Response:
        nonlocal in_flight
        started = time.perf_counter()
        if in_flight >= limit:
            # Before the body is read and Redis is touched: nothing changes.
            too_many.refused(max_in_flight=limit)
            metrics.webhook_delivery(OVERLOADED, "max_in_flight", time.perf_counter() - started)
            return overloaded(
                f"this process handles {limit} deliveries at once (IVR_MAX_IN_FLIGHT); retry later"
            )
        in_flight += 1
        try:
            response, outcome = await handle(request)
        except Exception:
            metrics.webhook_delivery("rejected", "error", time.perf_counter() - started)
            raise
        finally:
            in_flight -= 1
        reason = ""
        if outcome == OVERLOADED:
            reason = "redis_pool"
        elif response.status_code >= 400 or not outcome:
            outcome, reason = "rejected", REJECTED.get(response.status_code, "other")
        metrics.webhook_delivery(outcome, reason, time.perf_counter() - started)
        return response

    async def handle(request: Request) -> tuple[Response, str]:
        """The answer, and what the handler did (``Handled.status``; "" when refused)."""
        request_id = request.headers.get(signature.REQUEST_ID_HEADER)
        try:
            body = await read_body(request, settings.max_body_bytes)
        except BodyRefused as exc:
            log.warning("webhook_refused", status=exc.response.status_code,
                        request_id=request_id, call_id=None, graph=None, node=None)  # fmt: skip
            return exc.response, ""
        try:
            signature.verify(
                signing_key=settings.bird_signing_key,
                signature=request.headers.get(signature.SIGNATURE_HEADER),
                timestamp=request.headers.get(signature.TIMESTAMP_HEADER),
                url=public_url(settings, request),
                body=body,
                now=clock(),
                max_age_s=settings.webhook_max_age_s,
            )
        except signature.SignatureError as exc:
            log.warning("webhook_rejected", reason=exc.reason, request_id=request_id,
                        **_urls(exc, request))  # fmt: skip
            return JSONResponse(
                {"error": "unauthorized", "reason": exc.reason}, status_code=401
            ), ""
        try:
            delivery = deliveries.parse_delivery(body)
        except deliveries.DeliveryError as exc:
            log.warning("webhook_malformed", reason=exc.reason, request_id=request_id)
            return JSONResponse({"error": "bad_request", "reason": exc.reason}, status_code=400), ""
        except deliveries.UnhandledDelivery as exc:
            log.info("webhook_ignored", reason=exc.reason, request_id=request_id)
            return JSONResponse({"status": "ignored", "reason": exc.reason}), "ignored"
        query = request.query_params
        ref, offer = query.get("ref"), query.get("offer")
        for name, value in (("ref", ref), ("offer", offer)):
            if value is not None and not OUR_REFERENCE.fullmatch(value):
                # Our own references (A10): hex ids; anything else names no key of ours.
                reason = f"?{name}= is not a reference this service gives"
                log.warning("webhook_malformed", reason=reason, request_id=request_id)
                return JSONResponse({"error": "bad_request", "reason": reason}, status_code=400), ""
        try:
            outcome = await handler().handle(delivery, ref=ref, offer=offer)
        except RedisError as exc:
            if is_overload(exc):
                # No connection came free in time: this process has too much to do.
                pool_empty.refused(error=str(exc), request_id=request_id)
                reason = "no Redis connection came free in time (REDIS_POOL_TIMEOUT_S); retry later"
                return overloaded(reason), OVERLOADED
            log.error(
                "webhook_failed", call_id=delivery.call_id, graph=None, node=None,
                reason="redis unavailable", error=str(exc), request_id=request_id,
            )  # fmt: skip
            return JSONResponse(
                {"error": "unavailable", "reason": "call state store unavailable; retry later"},
                status_code=503,
            ), ""
        done = {"status": outcome.status, "detail": outcome.detail}
        return JSONResponse(done), outcome.status

    return bird_webhook
