"""Working hours, table-driven: pure function, explicit instants, no clock."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tenants.hours import HoursError, normalize_holidays, normalize_working_hours, opening_status

UTC = ZoneInfo("UTC")
JKT = ZoneInfo("Asia/Jakarta")  # UTC+7, no DST

OFFICE = {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "tue": [["09:00", "17:00"]],
          "wed": [["09:00", "17:00"]], "thu": [["09:00", "17:00"]], "fri": [["09:00", "11:30"], ["13:30", "17:00"]],
          "sat": [["09:00", "13:00"]]}
NIGHT = {"fri": [["20:00", "02:00"]], "sat": [["20:00", "24:00"]], "sun": [["00:00", "03:00"]]}


def jkt(*args):
    return datetime(*args, tzinfo=JKT)


# 2026-11-23 is a Monday.
CASES = [
    # name, hours, holidays, tz, instant, is_open, closes_at, next_open
    ("monday morning open", OFFICE, [], "Asia/Jakarta", jkt(2026, 11, 23, 10, 0), True, jkt(2026, 11, 23, 12, 0), None),
    ("lunch break closed", OFFICE, [], "Asia/Jakarta", jkt(2026, 11, 23, 12, 30), False, None, jkt(2026, 11, 23, 13, 0)),
    ("opening instant is open", OFFICE, [], "Asia/Jakarta", jkt(2026, 11, 23, 9, 0), True, jkt(2026, 11, 23, 12, 0), None),
    ("closing instant is closed", OFFICE, [], "Asia/Jakarta", jkt(2026, 11, 23, 17, 0), False, None,
     jkt(2026, 11, 24, 9, 0)),
    ("saturday after close waits for monday", OFFICE, [], "Asia/Jakarta", jkt(2026, 11, 28, 14, 0), False, None,
     jkt(2026, 11, 30, 9, 0)),
    ("instant given in UTC", OFFICE, [], "Asia/Jakarta", datetime(2026, 11, 23, 2, 0, tzinfo=UTC), True,
     jkt(2026, 11, 23, 12, 0), None),
    ("UTC evening is Jakarta next morning", OFFICE, [], "Asia/Jakarta", datetime(2026, 11, 23, 23, 0, tzinfo=UTC),
     False, None, jkt(2026, 11, 24, 9, 0)),
    ("holiday closes the day", OFFICE, ["2026-11-24"], "Asia/Jakarta", jkt(2026, 11, 24, 10, 0), False, None,
     jkt(2026, 11, 25, 9, 0)),
    ("holiday run of days", OFFICE, [{"date": "2026-11-24", "name": "A"}, "2026-11-25"], "Asia/Jakarta",
     jkt(2026, 11, 23, 18, 0), False, None, jkt(2026, 11, 26, 9, 0)),
    ("past midnight still open", NIGHT, [], "Asia/Jakarta", jkt(2026, 11, 28, 1, 0), True, jkt(2026, 11, 28, 2, 0),
     None),
    ("after the night range closes", NIGHT, [], "Asia/Jakarta", jkt(2026, 11, 28, 2, 0), False, None,
     jkt(2026, 11, 28, 20, 0)),
    ("24:00 then 00:00 merge into one opening", NIGHT, [], "Asia/Jakarta", jkt(2026, 11, 28, 23, 0), True,
     jkt(2026, 11, 29, 3, 0), None),
    ("range starting the evening before a holiday keeps running", NIGHT, ["2026-11-28"], "Asia/Jakarta",
     jkt(2026, 11, 28, 1, 0), True, jkt(2026, 11, 28, 2, 0), None),
    ("no hours means always open", {}, [], "Asia/Jakarta", jkt(2026, 11, 23, 3, 0), True, None, None),
    ("all days empty means always open", {"mon": []}, [], "Asia/Jakarta", jkt(2026, 11, 23, 3, 0), True, None, None),
]

# DST: New York 2026-03-08 02:00 jumps to 03:00; 2026-11-01 02:00 falls back to 01:00.
NY = ZoneInfo("America/New_York")
DST_CASES = [
    ("spring forward: opens 09:00 local (13:00 UTC)", {"sun": [["09:00", "17:00"]]}, "America/New_York",
     datetime(2026, 3, 8, 12, 59, tzinfo=UTC), False, None, datetime(2026, 3, 8, 9, 0, tzinfo=NY)),
    ("fall back: 09:00 local is 14:00 UTC", {"sun": [["09:00", "17:00"]]}, "America/New_York",
     datetime(2026, 11, 1, 13, 30, tzinfo=UTC), False, None, datetime(2026, 11, 1, 9, 0, tzinfo=NY)),
    ("night range across the spring-forward gap", {"sat": [["22:00", "04:00"]]}, "America/New_York",
     datetime(2026, 3, 8, 7, 30, tzinfo=UTC), True, datetime(2026, 3, 8, 4, 0, tzinfo=NY), None),
]


@pytest.mark.parametrize("name,hours,holidays,tz,at,is_open,closes_at,next_open", CASES, ids=[c[0] for c in CASES])
def test_opening_status(name, hours, holidays, tz, at, is_open, closes_at, next_open):
    status = opening_status(working_hours=normalize_working_hours(hours), holidays=normalize_holidays(holidays),
                            timezone=tz, at=at)
    assert status.is_open is is_open
    assert status.closes_at == closes_at
    assert status.next_open == next_open
    assert status.local_time.tzinfo.key == tz


@pytest.mark.parametrize("name,hours,tz,at,is_open,closes_at,next_open", DST_CASES, ids=[c[0] for c in DST_CASES])
def test_opening_status_across_dst(name, hours, tz, at, is_open, closes_at, next_open):
    status = opening_status(working_hours=hours, holidays=[], timezone=tz, at=at)
    assert (status.is_open, status.closes_at, status.next_open) == (is_open, closes_at, next_open)


def test_a_long_closure_is_stepped_over_and_a_permanent_one_answers_none():
    hours = {"mon": [["09:00", "10:00"]]}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    months = [f"2026-{m:02d}-{d:02d}" for m in range(1, 7) for d in range(1, 29)]
    status = opening_status(working_hours=hours, holidays=months, timezone="UTC", at=start)
    assert status.next_open == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)  # the first Monday not closed
    every_day = [(start.date() + timedelta(days=i)).isoformat() for i in range(-1, 500)]
    status = opening_status(working_hours=hours, holidays=every_day, timezone="UTC", at=start)
    assert status.is_open is False and status.next_open is None


@pytest.mark.parametrize("raw,expected", [
    ({"monday": "09:00-12:00, 13:00-17:00"}, {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}),
    ({"Senin": [["9.00", "17.00"]]}, {"mon": [["09:00", "17:00"]]}),
    ({"sun": "closed", "sat": "10:00-14:00"}, {"sat": [["10:00", "14:00"]], "sun": []}),
    ({"fri": [["22:00", "02:00"]]}, {"fri": [["22:00", "02:00"]]}),
    ({"fri": ["13:00-24:00"]}, {"fri": [["13:00", "24:00"]]}),
    (None, {}),
])
def test_normalize_working_hours(raw, expected):
    assert normalize_working_hours(raw) == expected


@pytest.mark.parametrize("raw,message", [
    ({"funday": "09:00-10:00"}, "not a weekday"),
    ({"mon": "9-17"}, "not a time of day"),
    ({"mon": "25:00-26:00"}, "not a time of day"),
    ({"mon": "09:00-09:00"}, "empty"),
    ({"mon": "24:00-02:00"}, "cannot start at 24:00"),
    ({"mon": [["09:00"]]}, "start and an end"),
    (["mon"], "object keyed by weekday"),
    ({"mon": 5}, "give ranges"), ({"mon": True}, "give ranges"), ({"mon": {"09:00": "17:00"}}, "give ranges"),
])
def test_normalize_working_hours_rejects(raw, message):
    with pytest.raises(HoursError, match=message):
        normalize_working_hours(raw)


def test_normalize_holidays_sorts_and_dedupes():
    assert normalize_holidays(["2026-12-25", {"date": "2026-08-17", "name": "HUT RI"}, "2026-12-25"]) == [
        {"date": "2026-08-17", "name": "HUT RI"}, {"date": "2026-12-25", "name": ""}]
    with pytest.raises(HoursError):
        normalize_holidays(["25/12/2026"])


def test_naive_instant_is_refused():
    with pytest.raises(ValueError):
        opening_status(working_hours=OFFICE, holidays=[], timezone="Asia/Jakarta", at=datetime(2026, 1, 1))
