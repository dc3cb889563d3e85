"""Clocks. The service reads real time; a demo or a test pins the time graphs see."""

from __future__ import annotations

import time
from datetime import datetime


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
