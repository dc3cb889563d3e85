"""Webhook signatures, checked against Bird's documented recipe computed by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from service.bird.signature import SignatureError, parse_timestamp, sign, verify

KEY = "signing-key"
URL = "https://ivr.example.com/webhooks/bird?x=1"
BODY = b'{"service":"channels"}'


def by_hand(timestamp: str) -> str:
    """docs/bird-contract.md, section 1:
    HMAC-SHA256(key, ts + "\\n" + url + "\\n" + sha256(body) raw bytes)."""
    message = f"{timestamp}\n{URL}\n".encode() + hashlib.sha256(BODY).digest()
    return base64.b64encode(hmac.new(KEY.encode(), message, hashlib.sha256).digest()).decode()


def check(signature: str | None, timestamp: str | None, *, now: float = 1_000_000.0) -> None:
    verify(
        signing_key=KEY,
        signature=signature,
        timestamp=timestamp,
        url=URL,
        body=BODY,
        now=now,
        max_age_s=3600,
    )


def test_sign_follows_birds_recipe() -> None:
    assert sign(KEY, "1000000", URL, BODY) == by_hand("1000000")


def test_a_correct_signature_verifies() -> None:
    check(by_hand("1000000"), "1000000")


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (None, "1000000", "missing messagebird-signature"),
        ("abc", None, "missing messagebird-request-timestamp"),
        ("not base64!", "1000000", "not base64"),
        (base64.b64encode(b"x" * 32).decode(), "1000000", "does not match"),
        (by_hand("1000000"), "1000001", "does not match"),  # timestamp is signed
        (by_hand("990000"), "990000", "too old"),
        (by_hand("1000900"), "1000900", "in the future"),
        (by_hand("yesterday"), "yesterday", "unreadable"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    signature: str | None, timestamp: str | None, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        check(signature, timestamp)


def test_the_body_and_url_are_signed() -> None:
    good = by_hand("1000000")
    with pytest.raises(SignatureError):
        verify(signing_key=KEY, signature=good, timestamp="1000000", url=URL, body=BODY + b" ",
               now=1_000_000, max_age_s=60)  # fmt: skip
    with pytest.raises(SignatureError):
        verify(signing_key=KEY, signature=good, timestamp="1000000", url=URL + "&y=2", body=BODY,
               now=1_000_000, max_age_s=60)  # fmt: skip


def test_a_late_retry_inside_the_window_still_verifies() -> None:
    """Bird retries for hours with the ORIGINAL timestamp."""
    verify(signing_key=KEY, signature=by_hand("1000000"), timestamp="1000000", url=URL,
           body=BODY, now=1_000_000 + 8 * 3600, max_age_s=90_000)  # fmt: skip


def test_timestamps_in_seconds_milliseconds_or_iso() -> None:
    assert parse_timestamp("1700000000") == 1_700_000_000
    assert parse_timestamp("1700000000000") == 1_700_000_000
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000
    with pytest.raises(SignatureError):
        parse_timestamp("2023-11-14T22:13:20")


@pytest.mark.parametrize("timestamp", ["NaN", "nan", "inf", "-Infinity", "1e400"])
def test_a_timestamp_that_is_no_finite_number_is_unreadable_not_forever_fresh(
    timestamp: str,
) -> None:
    with pytest.raises(SignatureError, match="unreadable"):
        check(by_hand(timestamp), timestamp)
