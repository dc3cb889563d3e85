"""Opening hours: is a line open at a moment? Pure; the clock is the caller's.

``weekly`` maps ``mon``..``sun`` to ranges ``"HH:MM-HH:MM"`` in the node's IANA
time zone (daylight saving included). A range whose end is not after its start
runs past midnight into the next day (``"22:00-02:00"``); ``24:00`` ends a day.
A holiday (local date) is closed all day, including the part of a previous
day's range that runs into it; a range that starts on a holiday does not open
either (a range belongs to the day it starts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def parse_range(text: str) -> tuple[int, int]:
    """``"09:00-17:30"`` -> (540, 1050) minutes since midnight."""
    start, end = text.split("-")
    return _minutes(start), _minutes(end)


def is_open(
    weekly: Mapping[str, Iterable[str]],
    holidays: Iterable[str],
    timezone: str,
    now: float,
) -> bool:
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    today = local.date()
    closed_days = set(holidays)
    if today.isoformat() in closed_days:
        return False
    minute = local.hour * 60 + local.minute
    for start, end in _ranges(weekly, today):
        if start < end and start <= minute < end:
            return True
        if end <= start and minute >= start:  # runs past midnight: tonight's part
            return True
    # The part of last night's ranges that runs past midnight (a range belongs to
    # the day it starts: none of a holiday's ranges open).
    yesterday = today - timedelta(days=1)
    if yesterday.isoformat() in closed_days:
        return False
    return any(end <= start and minute < end for start, end in _ranges(weekly, yesterday))


def _ranges(weekly: Mapping[str, Iterable[str]], day: date) -> list[tuple[int, int]]:
    return [parse_range(text) for text in weekly.get(DAYS[day.weekday()], ())]
