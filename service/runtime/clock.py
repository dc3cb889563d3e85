"""Clocks. The service reads real time; a demo or a test pins the time graphs see."""

from __future__ import annotations

import time
from datetime import datetime

MOMENT_EXAMPLE = "2026-12-01T10:00+01:00"


class PinnedClock:
    """The time graphs see, pinned to a moment and running on from there, so that
    an ``hours`` node answers the same whenever the demo or a test runs."""

    def __init__(self, moment: datetime) -> None:
        self.pin(moment)

    def pin(self, moment: datetime) -> None:
        self._base = moment.timestamp()
        self._started = time.monotonic()

    def __call__(self) -> float:
        return self._base + (time.monotonic() - self._started)


def parse_moment(text: str) -> datetime:
    """An ISO-8601 date-time with a UTC offset (``2026-12-01T10:00+01:00``, ``...Z``).

    ``ValueError`` says what is wrong in a few words (the caller names the setting)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"is not an ISO-8601 date-time (e.g. {MOMENT_EXAMPLE}), got {text!r}"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"needs a UTC offset (e.g. {MOMENT_EXAMPLE}), got {text!r}")
    return moment
