"""``hours.is_open``: opening hours at a moment, in the line's own time zone.

Every case gives the moment in UTC and the local wall-clock time it is (checked
with zoneinfo, so a mistake in the table's DST arithmetic fails loudly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.core import hours

Weekly = Mapping[str, Sequence[str]]

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFFICE: Weekly = {day: ["09:00-12:00", "13:00-17:30"] for day in EVERY_DAY[:5]}
NINE_TO_FIVE: Weekly = {day: ["09:00-17:00"] for day in EVERY_DAY}
FRIDAY_NIGHT: Weekly = {"fri": ["22:00-02:00"]}
ALL_DAY: Weekly = {day: ["00:00-24:00"] for day in EVERY_DAY}
TO_MIDNIGHT: Weekly = {"mon": ["18:00-24:00"]}
WEDNESDAY: Weekly = {"wed": ["00:00-24:00"]}
SAT_NIGHT: Weekly = {"sat": ["22:00-02:00"]}
SAT_NIGHT_TO_3: Weekly = {"sat": ["22:00-03:00"]}
SUN_1_TO_2: Weekly = {"sun": ["01:00-02:00"]}
SUN_2_TO_3: Weekly = {"sun": ["02:00-03:00"]}
WED_NIGHT: Weekly = {"wed": ["20:00-02:00"]}

AMS = "Europe/Amsterdam"
NYC = "America/New_York"


def case(
    label: str,
    utc: str,
    local: str,
    is_open: bool,
    weekly: Weekly,
    holidays: Sequence[str] = (),
    timezone: str = "UTC",
) -> Any:
    """``utc`` is "YYYY-MM-DD HH:MM"; ``local`` is what the line's clock shows then."""
    state = "open" if is_open else "closed"
    return pytest.param(
        utc, local, is_open, weekly, holidays, timezone, id=f"{label}: {local} {state}"
    )


CASES = [
    # -- ranges in UTC --------------------------------------------------------------
    case("inside", "2024-01-08 10:00", "Mon 2024-01-08 10:00 UTC", True, OFFICE),
    case("start minute", "2024-01-08 09:00", "Mon 2024-01-08 09:00 UTC", True, OFFICE),
    case("before start", "2024-01-08 08:59", "Mon 2024-01-08 08:59 UTC", False, OFFICE),
    case("end minute", "2024-01-08 12:00", "Mon 2024-01-08 12:00 UTC", False, OFFICE),
    case("between ranges", "2024-01-08 12:59", "Mon 2024-01-08 12:59 UTC", False, OFFICE),
    case("second range", "2024-01-08 13:00", "Mon 2024-01-08 13:00 UTC", True, OFFICE),
    case("last minute", "2024-01-08 17:29", "Mon 2024-01-08 17:29 UTC", True, OFFICE),
    case("second end", "2024-01-08 17:30", "Mon 2024-01-08 17:30 UTC", False, OFFICE),
    case("no ranges", "2024-01-06 10:00", "Sat 2024-01-06 10:00 UTC", False, OFFICE),
    case("empty list", "2024-01-07 10:00", "Sun 2024-01-07 10:00 UTC", False, {"sun": []}),
    case("no days", "2024-01-08 10:00", "Mon 2024-01-08 10:00 UTC", False, {}),
    # -- a range past midnight --------------------------------------------------------
    case("night", "2024-01-05 21:59", "Fri 2024-01-05 21:59 UTC", False, FRIDAY_NIGHT),
    case("night", "2024-01-05 22:00", "Fri 2024-01-05 22:00 UTC", True, FRIDAY_NIGHT),
    case("night", "2024-01-05 23:00", "Fri 2024-01-05 23:00 UTC", True, FRIDAY_NIGHT),
    case("night", "2024-01-06 00:00", "Sat 2024-01-06 00:00 UTC", True, FRIDAY_NIGHT),
    case("night", "2024-01-06 01:00", "Sat 2024-01-06 01:00 UTC", True, FRIDAY_NIGHT),
    case("night", "2024-01-06 01:59", "Sat 2024-01-06 01:59 UTC", True, FRIDAY_NIGHT),
    case("night", "2024-01-06 02:00", "Sat 2024-01-06 02:00 UTC", False, FRIDAY_NIGHT),
    case("night", "2024-01-06 23:00", "Sat 2024-01-06 23:00 UTC", False, FRIDAY_NIGHT),
    case("night", "2024-01-05 01:00", "Fri 2024-01-05 01:00 UTC", False, FRIDAY_NIGHT),
    case("night", "2024-01-04 23:00", "Thu 2024-01-04 23:00 UTC", False, FRIDAY_NIGHT),
    # -- 24:00 ends a day ---------------------------------------------------------------
    case("to 24:00", "2024-01-08 23:59", "Mon 2024-01-08 23:59 UTC", True, TO_MIDNIGHT),
    case("to 24:00", "2024-01-08 18:00", "Mon 2024-01-08 18:00 UTC", True, TO_MIDNIGHT),
    case("to 24:00", "2024-01-08 17:59", "Mon 2024-01-08 17:59 UTC", False, TO_MIDNIGHT),
    case("to 24:00", "2024-01-09 00:00", "Tue 2024-01-09 00:00 UTC", False, TO_MIDNIGHT),
    case("whole day", "2024-01-10 00:00", "Wed 2024-01-10 00:00 UTC", True, WEDNESDAY),
    case("whole day", "2024-01-10 23:59", "Wed 2024-01-10 23:59 UTC", True, WEDNESDAY),
    case("whole day", "2024-01-11 00:00", "Thu 2024-01-11 00:00 UTC", False, WEDNESDAY),
    case("whole day", "2024-01-09 23:59", "Tue 2024-01-09 23:59 UTC", False, WEDNESDAY),
    case(
        "24:00 then 00:00",
        "2024-01-09 01:00",
        "Tue 2024-01-09 01:00 UTC",
        True,
        {"mon": ["20:00-24:00"], "tue": ["00:00-02:00"]},
    ),
    # -- holidays -------------------------------------------------------------------------
    case("holiday", "2024-01-08 10:00", "Mon 2024-01-08 10:00 UTC", False, OFFICE, ["2024-01-08"]),
    case(
        "after holiday",
        "2024-01-09 10:00",
        "Tue 2024-01-09 10:00 UTC",
        True,
        OFFICE,
        ["2024-01-08"],
    ),
    case("holiday", "2024-01-08 00:00", "Mon 2024-01-08 00:00 UTC", False, ALL_DAY, ["2024-01-08"]),
    case("holiday", "2024-01-08 23:59", "Mon 2024-01-08 23:59 UTC", False, ALL_DAY, ["2024-01-08"]),
    case("eve", "2024-01-07 23:59", "Sun 2024-01-07 23:59 UTC", True, ALL_DAY, ["2024-01-08"]),
    case(
        "other holidays",
        "2024-01-08 10:00",
        "Mon 2024-01-08 10:00 UTC",
        True,
        OFFICE,
        ["2024-01-01", "2024-12-25"],
    ),
    # a night range on the day before a holiday: open until midnight, closed after
    case(
        "night before holiday",
        "2024-01-05 23:00",
        "Fri 2024-01-05 23:00 UTC",
        True,
        FRIDAY_NIGHT,
        ["2024-01-06"],
    ),
    case(
        "night into holiday",
        "2024-01-06 00:00",
        "Sat 2024-01-06 00:00 UTC",
        False,
        FRIDAY_NIGHT,
        ["2024-01-06"],
    ),
    case(
        "night into holiday",
        "2024-01-06 01:00",
        "Sat 2024-01-06 01:00 UTC",
        False,
        FRIDAY_NIGHT,
        ["2024-01-06"],
    ),
    # the holiday is a local date: Christmas starts at 23:00 UTC in Amsterdam
    case(
        "local holiday",
        "2024-12-24 22:30",
        "Tue 2024-12-24 23:30 CET",
        True,
        ALL_DAY,
        ["2024-12-25"],
        AMS,
    ),
    case(
        "local holiday",
        "2024-12-24 23:30",
        "Wed 2024-12-25 00:30 CET",
        False,
        ALL_DAY,
        ["2024-12-25"],
        AMS,
    ),
    case(
        "local holiday",
        "2024-12-25 22:59",
        "Wed 2024-12-25 23:59 CET",
        False,
        ALL_DAY,
        ["2024-12-25"],
        AMS,
    ),
    case(
        "local holiday",
        "2024-12-25 23:00",
        "Thu 2024-12-26 00:00 CET",
        True,
        ALL_DAY,
        ["2024-12-25"],
        AMS,
    ),
    # -- Europe/Amsterdam: CET (+1) in winter, CEST (+2) in summer -------------------------
    case("winter", "2024-01-08 08:30", "Mon 2024-01-08 09:30 CET", True, NINE_TO_FIVE, (), AMS),
    case("winter", "2024-01-08 07:30", "Mon 2024-01-08 08:30 CET", False, NINE_TO_FIVE, (), AMS),
    case("winter", "2024-01-08 08:00", "Mon 2024-01-08 09:00 CET", True, NINE_TO_FIVE, (), AMS),
    case("winter", "2024-01-08 15:59", "Mon 2024-01-08 16:59 CET", True, NINE_TO_FIVE, (), AMS),
    case("winter", "2024-01-08 16:00", "Mon 2024-01-08 17:00 CET", False, NINE_TO_FIVE, (), AMS),
    case("summer", "2024-07-01 07:30", "Mon 2024-07-01 09:30 CEST", True, NINE_TO_FIVE, (), AMS),
    case("summer", "2024-07-01 06:30", "Mon 2024-07-01 08:30 CEST", False, NINE_TO_FIVE, (), AMS),
    case("summer", "2024-07-01 14:59", "Mon 2024-07-01 16:59 CEST", True, NINE_TO_FIVE, (), AMS),
    case("summer", "2024-07-01 15:30", "Mon 2024-07-01 17:30 CEST", False, NINE_TO_FIVE, (), AMS),
    # spring forward: Sun 2024-03-31 02:00 CET becomes 03:00 CEST (01:00 UTC)
    case("spring", "2024-03-31 06:59", "Sun 2024-03-31 08:59 CEST", False, NINE_TO_FIVE, (), AMS),
    case("spring", "2024-03-31 07:00", "Sun 2024-03-31 09:00 CEST", True, NINE_TO_FIVE, (), AMS),
    case("spring", "2024-03-31 14:59", "Sun 2024-03-31 16:59 CEST", True, NINE_TO_FIVE, (), AMS),
    case("spring", "2024-03-31 15:00", "Sun 2024-03-31 17:00 CEST", False, NINE_TO_FIVE, (), AMS),
    case(
        "skipped hour", "2024-03-31 00:59", "Sun 2024-03-31 01:59 CET", False, SUN_2_TO_3, (), AMS
    ),
    case(
        "skipped hour", "2024-03-31 01:00", "Sun 2024-03-31 03:00 CEST", False, SUN_2_TO_3, (), AMS
    ),
    case(
        "night over spring",
        "2024-03-30 21:00",
        "Sat 2024-03-30 22:00 CET",
        True,
        SAT_NIGHT_TO_3,
        (),
        AMS,
    ),
    case(
        "night over spring",
        "2024-03-31 00:59",
        "Sun 2024-03-31 01:59 CET",
        True,
        SAT_NIGHT_TO_3,
        (),
        AMS,
    ),
    case(
        "night over spring",
        "2024-03-31 01:00",
        "Sun 2024-03-31 03:00 CEST",
        False,
        SAT_NIGHT_TO_3,
        (),
        AMS,
    ),
    # fall back: Sun 2024-10-27 03:00 CEST becomes 02:00 CET (01:00 UTC): 02:xx twice
    case("fall", "2024-10-27 07:59", "Sun 2024-10-27 08:59 CET", False, NINE_TO_FIVE, (), AMS),
    case("fall", "2024-10-27 08:00", "Sun 2024-10-27 09:00 CET", True, NINE_TO_FIVE, (), AMS),
    case("fall", "2024-10-27 15:59", "Sun 2024-10-27 16:59 CET", True, NINE_TO_FIVE, (), AMS),
    case("fall", "2024-10-27 16:00", "Sun 2024-10-27 17:00 CET", False, NINE_TO_FIVE, (), AMS),
    case(
        "repeated hour", "2024-10-26 23:59", "Sun 2024-10-27 01:59 CEST", False, SUN_2_TO_3, (), AMS
    ),
    case(
        "repeated hour", "2024-10-27 00:30", "Sun 2024-10-27 02:30 CEST", True, SUN_2_TO_3, (), AMS
    ),
    case(
        "repeated hour", "2024-10-27 01:30", "Sun 2024-10-27 02:30 CET", True, SUN_2_TO_3, (), AMS
    ),
    case(
        "repeated hour", "2024-10-27 02:00", "Sun 2024-10-27 03:00 CET", False, SUN_2_TO_3, (), AMS
    ),
    # -- America/New_York: EST (-5), EDT (-4) ------------------------------------------------
    # spring forward: Sun 2024-03-10 02:00 EST becomes 03:00 EDT (07:00 UTC)
    case("spring", "2024-03-10 12:30", "Sun 2024-03-10 08:30 EDT", False, NINE_TO_FIVE, (), NYC),
    case("spring", "2024-03-10 13:00", "Sun 2024-03-10 09:00 EDT", True, NINE_TO_FIVE, (), NYC),
    case("spring", "2024-03-10 20:59", "Sun 2024-03-10 16:59 EDT", True, NINE_TO_FIVE, (), NYC),
    case("spring", "2024-03-10 21:00", "Sun 2024-03-10 17:00 EDT", False, NINE_TO_FIVE, (), NYC),
    case(
        "day before", "2024-03-09 13:59", "Sat 2024-03-09 08:59 EST", False, NINE_TO_FIVE, (), NYC
    ),
    case("day before", "2024-03-09 14:00", "Sat 2024-03-09 09:00 EST", True, NINE_TO_FIVE, (), NYC),
    case(
        "night over spring",
        "2024-03-10 06:59",
        "Sun 2024-03-10 01:59 EST",
        True,
        SAT_NIGHT,
        (),
        NYC,
    ),
    case(
        "night over spring",
        "2024-03-10 07:00",
        "Sun 2024-03-10 03:00 EDT",
        False,
        SAT_NIGHT,
        (),
        NYC,
    ),
    # fall back: Sun 2024-11-03 02:00 EDT becomes 01:00 EST (06:00 UTC): 01:xx twice
    case(
        "repeated hour", "2024-11-03 04:59", "Sun 2024-11-03 00:59 EDT", False, SUN_1_TO_2, (), NYC
    ),
    case(
        "repeated hour", "2024-11-03 05:30", "Sun 2024-11-03 01:30 EDT", True, SUN_1_TO_2, (), NYC
    ),
    case(
        "repeated hour", "2024-11-03 06:30", "Sun 2024-11-03 01:30 EST", True, SUN_1_TO_2, (), NYC
    ),
    case(
        "repeated hour", "2024-11-03 07:00", "Sun 2024-11-03 02:00 EST", False, SUN_1_TO_2, (), NYC
    ),
    case(
        "night over fall", "2024-11-03 02:00", "Sat 2024-11-02 22:00 EDT", True, SAT_NIGHT, (), NYC
    ),
    case(
        "night over fall", "2024-11-03 06:59", "Sun 2024-11-03 01:59 EST", True, SAT_NIGHT, (), NYC
    ),
    case(
        "night over fall", "2024-11-03 07:00", "Sun 2024-11-03 02:00 EST", False, SAT_NIGHT, (), NYC
    ),
    case("fall", "2024-11-04 13:30", "Mon 2024-11-04 08:30 EST", False, NINE_TO_FIVE, (), NYC),
    case("fall", "2024-11-04 14:00", "Mon 2024-11-04 09:00 EST", True, NINE_TO_FIVE, (), NYC),
    # a night range into a holiday (Thanksgiving), in local dates
    case(
        "night before holiday",
        "2024-11-28 04:00",
        "Wed 2024-11-27 23:00 EST",
        True,
        WED_NIGHT,
        ["2024-11-28"],
        NYC,
    ),
    case(
        "night into holiday",
        "2024-11-28 06:00",
        "Thu 2024-11-28 01:00 EST",
        False,
        WED_NIGHT,
        ["2024-11-28"],
        NYC,
    ),
    case(
        "night, no holiday",
        "2024-11-28 06:00",
        "Thu 2024-11-28 01:00 EST",
        True,
        WED_NIGHT,
        [],
        NYC,
    ),
]


@pytest.mark.parametrize(("utc", "local", "expected", "weekly", "holidays", "timezone"), CASES)
def test_is_open(
    utc: str,
    local: str,
    expected: bool,
    weekly: Weekly,
    holidays: Sequence[str],
    timezone: str,
) -> None:
    moment = datetime.strptime(utc, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    shown = moment.astimezone(ZoneInfo(timezone)).strftime("%a %Y-%m-%d %H:%M %Z")
    assert shown == local, "the case's local time is wrong"
    assert hours.is_open(weekly, holidays, timezone, moment.timestamp()) is expected


def test_seconds_do_not_extend_a_range() -> None:
    closing = datetime(2024, 1, 8, 17, 29, 59, tzinfo=UTC).timestamp()
    assert hours.is_open(OFFICE, (), "UTC", closing)
    assert not hours.is_open(OFFICE, (), "UTC", closing + 1)


def test_parse_range_gives_minutes_since_midnight() -> None:
    assert hours.parse_range("09:00-17:30") == (540, 1050)
    assert hours.parse_range("22:00-02:00") == (1320, 120)
    assert hours.parse_range("00:00-24:00") == (0, 1440)
