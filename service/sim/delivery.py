"""Signed webhook deliveries, sent and retried the way Bird does (docs/bird-contract.md A1, A6)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog

from service.bird.signature import REQUEST_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = structlog.get_logger("sim")

DeliveryKind = Literal["original", "duplicate", "replay"]


@dataclass(frozen=True)
class Envelope:
    """One delivery as first built: its body and timestamp never change on resends."""

    call_id: str
    url: str
    event: str
    payload: dict[str, Any]
    body: bytes
    timestamp: str

    @classmethod
    def build(cls, call_id: str, url: str, event: str, call: dict[str, Any]) -> Envelope:
        payload = {"service": "channels", "event": event, "payload": call}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(call_id, url, event, payload, body, str(int(time.time())))


@dataclass(frozen=True)
class Outgoing:
    """A delivery waiting to be sent, and whether it is to be sent twice."""

    envelope: Envelope
    duplicate: bool = False


@dataclass(frozen=True)
class DeliveryAttempt:
    """One HTTP attempt of one delivery, and what came of it."""

    call_id: str
    url: str
    event: str
    request_id: str
    timestamp: str
    payload: dict[str, Any]
    kind: DeliveryKind
    attempt: int
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Deliverer:
    """Posts envelopes, signed, retrying non-2xx answers with a growing (scaled) delay."""

    def __init__(
        self,
        *,
        signing_key: str,
        sleep: Callable[[float], Awaitable[None]],
        transport: httpx.AsyncBaseTransport | None,
        max_attempts: int,
        retry_delay_s: float,
    ) -> None:
        self._signing_key = signing_key
        self._sleep = sleep
        self._max_attempts = max(1, max_attempts)
        self._retry_delay_s = retry_delay_s
        # Bird sends many deliveries at once: a delivery waits for a free connection
        # (it is not failed for lack of one), then has 10 s to be answered.
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(10.0, pool=None),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            trust_env=False,
        )
        self.attempts: list[DeliveryAttempt] = []

    async def send(self, envelope: Envelope, kind: DeliveryKind) -> bool:
        """Deliver once (with retries); True when some attempt got a 2xx answer."""
        request_id = str(uuid.uuid4())
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(
                self._signing_key, envelope.timestamp, envelope.url, envelope.body
            ),
            TIMESTAMP_HEADER: envelope.timestamp,
            REQUEST_ID_HEADER: request_id,
        }
        for attempt in range(1, self._max_attempts + 1):
            status_code: int | None = None
            error: str | None = None
            try:
                response = await self._client.post(
                    envelope.url, content=envelope.body, headers=headers
                )
                status_code = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            record = DeliveryAttempt(
                call_id=envelope.call_id,
                url=envelope.url,
                event=envelope.event,
                request_id=request_id,
                timestamp=envelope.timestamp,
                payload=envelope.payload,
                kind=kind,
                attempt=attempt,
                status_code=status_code,
                error=error,
            )
            self.attempts.append(record)
            if record.ok:
                return True
            if attempt < self._max_attempts:
                await self._sleep(self._retry_delay_s * 2 ** (attempt - 1))
        log.warning(
            "delivery gave up",
            call_id=envelope.call_id,
            url=envelope.url,
            attempts=self._max_attempts,
            last_status=status_code,
            last_error=error,
        )
        return False

    async def aclose(self) -> None:
        await self._client.aclose()
