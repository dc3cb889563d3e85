"""Bird webhook signatures (documented by Bird: section 1 of docs/bird-contract.md).

``signature = base64(HMAC-SHA256(key=signingKey,
                                 msg = timestamp + "\\n" + url + "\\n" + SHA256(raw body)))``

where the body hash is the 32 raw bytes and ``url`` is the exact public URL Bird
called, query string included. Headers: ``messagebird-signature``,
``messagebird-request-timestamp`` and ``messagebird-request-id`` (not signed).

The simulator signs with :func:`sign`; the service checks with :func:`verify`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from datetime import datetime

SIGNATURE_HEADER = "messagebird-signature"
TIMESTAMP_HEADER = "messagebird-request-timestamp"
REQUEST_ID_HEADER = "messagebird-request-id"


class SignatureError(Exception):
    """A delivery whose signature is missing, wrong or outside the accepted window.

    ``reason`` is safe to return to the caller and to log: it never holds the key.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureMismatch(SignatureError):
    """Signed, fresh, but not for this key, body and URL: with the right key this is
    most often a URL that is not the one the sender signed (the URL checked is the
    public one, :func:`verify`'s ``url``), so that is worth logging next to it."""

    def __init__(self, url: str) -> None:
        super().__init__("signature does not match")
        self.url = url


def _digest(signing_key: str, timestamp: str, url: str, body: bytes) -> bytes:
    body_hash = hashlib.sha256(body).digest()
    message = timestamp.encode() + b"\n" + url.encode() + b"\n" + body_hash
    return hmac.new(signing_key.encode(), message, hashlib.sha256).digest()


def sign(signing_key: str, timestamp: str, url: str, body: bytes) -> str:
    """The ``messagebird-signature`` header value for a delivery."""
    return base64.b64encode(_digest(signing_key, timestamp, url, body)).decode()


def parse_timestamp(value: str) -> float:
    """Seconds since the epoch from a ``messagebird-request-timestamp`` value.

    Bird does not state the format. We take Unix seconds (the MessageBird
    convention), Unix milliseconds, or an ISO-8601 date-time.
    """
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise SignatureError("unreadable messagebird-request-timestamp") from exc
        if parsed.tzinfo is None:
            raise SignatureError("messagebird-request-timestamp has no time zone") from None
        return parsed.timestamp()
    if not math.isfinite(number):  # NaN compares false with everything: it never expires
        raise SignatureError("unreadable messagebird-request-timestamp")
    return number / 1000.0 if number > 1e11 else number


def verify(
    *,
    signing_key: str,
    signature: str | None,
    timestamp: str | None,
    url: str,
    body: bytes,
    now: float,
    max_age_s: float,
    max_skew_s: float = 300.0,
) -> None:
    """Raise :class:`SignatureError` unless the delivery is authentic and fresh enough.

    ``max_age_s`` must cover Bird's retries: a retried delivery keeps its ORIGINAL
    timestamp for up to about a day, and it is signed over that timestamp. Replays
    inside the window are harmless because every delivery is idempotent.
    """
    if not signature:
        raise SignatureError("missing messagebird-signature header")
    if not timestamp:
        raise SignatureError("missing messagebird-request-timestamp header")
    sent_at = parse_timestamp(timestamp)
    if now - sent_at > max_age_s:
        raise SignatureError("messagebird-request-timestamp is too old")
    if sent_at - now > max_skew_s:
        raise SignatureError("messagebird-request-timestamp is in the future")
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("messagebird-signature is not base64") from exc
    expected = _digest(signing_key, timestamp, url, body)
    if not hmac.compare_digest(given, expected):
        raise SignatureMismatch(url)
