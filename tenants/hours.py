"""Working hours as pure functions: no ORM, no clock, table-tested.

Canonical form of ``working_hours``: ``{"mon": [["09:00", "12:00"], ["13:00", "17:00"]], ...}``.
A range whose end is not after its start runs past midnight (``["22:00", "02:00"]``);
``"24:00"`` means the end of the day. No hours at all means "always open".
Holidays close every range that *starts* on that local date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    **{d: d for d in WEEKDAYS},
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
    "friday": "fri", "saturday": "sat", "sunday": "sun",
    # Indonesian names, since operators write them
    "senin": "mon", "selasa": "tue", "rabu": "wed", "kamis": "thu",
    "jumat": "fri", "sabtu": "sat", "minggu": "sun",
}
_TIME = re.compile(r"^([01]?\d|2[0-4])[:.]([0-5]\d)$")
_LOOKAHEAD_DAYS = 400  # far enough to step over a long closure


class HoursError(ValueError):
    pass


@dataclass(frozen=True)
class OpeningStatus:
    is_open: bool
    always_open: bool
    local_time: datetime
    closes_at: datetime | None  # when the current opening ends (if open)
    next_open: datetime | None  # when it next opens (if closed); None if never

    def as_dict(self) -> dict:
        return {
            "is_open": self.is_open,
            "always_open": self.always_open,
            "local_time": self.local_time.isoformat(),
            "closes_at": self.closes_at.isoformat() if self.closes_at else None,
            "next_open": self.next_open.isoformat() if self.next_open else None,
        }


def parse_time(value: str) -> time | None:
    """``"09:00"``/``"9.00"`` → time; ``"24:00"`` → None (end of day)."""
    m = _TIME.match(str(value).strip())
    if not m:
        raise HoursError(f"'{value}' is not a time of day like 09:00")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 24:
        if minute:
            raise HoursError(f"'{value}' is past the end of the day")
        return None
    return time(hour, minute)


def _fmt(t: time | None) -> str:
    return "24:00" if t is None else t.strftime("%H:%M")


def normalize_working_hours(raw) -> dict[str, list[list[str]]]:
    """Accept a dict of day → ranges (``[["09:00","17:00"]]`` or ``"09:00-12:00, 13:00-17:00"``)."""
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, dict):
        raise HoursError("working_hours must be an object keyed by weekday")
    out: dict[str, list[list[str]]] = {}
    for key, ranges in raw.items():
        day = _DAY_ALIASES.get(str(key).strip().lower())
        if day is None:
            raise HoursError(f"'{key}' is not a weekday (use mon..sun)")
        out[day] = [list(r) for r in _parse_ranges(ranges, day)]
    return {d: out[d] for d in WEEKDAYS if d in out}


def _parse_ranges(ranges, day: str) -> list[tuple[str, str]]:
    if ranges in (None, "", []):
        return []
    if isinstance(ranges, str):
        if ranges.strip().lower() in ("closed", "tutup", "-"):
            return []
        ranges = [part.split("-") for part in ranges.split(",") if part.strip()]
    if not isinstance(ranges, (list, tuple)):  # {"mon": 5} was iterated: a TypeError, a 500
        raise HoursError(f"{day}: give ranges like [[\"09:00\", \"17:00\"]] or \"09:00-17:00\", or \"closed\"")
    parsed = []
    for r in ranges:
        if isinstance(r, str):
            r = r.split("-")
        if not isinstance(r, (list, tuple)) or len(r) != 2:
            raise HoursError(f"{day}: each range needs a start and an end, like 09:00-17:00")
        start, end = parse_time(r[0]), parse_time(r[1])
        if start is None:
            raise HoursError(f"{day}: a range cannot start at 24:00")
        if end is not None and end == start:
            raise HoursError(f"{day}: range {_fmt(start)}-{_fmt(end)} is empty")
        parsed.append((_fmt(start), _fmt(end)))
    return sorted(parsed)


def format_day(ranges: list[list[str]]) -> str:
    return ", ".join(f"{a}-{b}" for a, b in ranges)


def normalize_holidays(raw) -> list[dict]:
    """A list of ``"YYYY-MM-DD"`` or ``{"date": ..., "name": ...}``, sorted, de-duplicated."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise HoursError("holidays must be a list of dates")
    seen: dict[str, dict] = {}
    for item in raw:
        value, name = (item.get("date"), item.get("name", "")) if isinstance(item, dict) else (item, "")
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise HoursError(f"'{value}' is not a date like 2026-12-25") from None
        seen[day.isoformat()] = {"date": day.isoformat(), "name": str(name or "")}
    return [seen[k] for k in sorted(seen)]


def get_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of the zone data ("Asia")
        raise HoursError(f"'{name}' is not a known time zone (e.g. Asia/Jakarta)") from None


def _intervals(hours: dict, closed: set[date], zone: ZoneInfo, start_day: date, days: int):
    for offset in range(days):
        day = start_day + timedelta(days=offset)
        if day in closed:
            continue
        for start_s, end_s in hours.get(WEEKDAYS[day.weekday()], []):
            start_t, end_t = parse_time(start_s), parse_time(end_s)
            begin = datetime.combine(day, start_t, tzinfo=zone)
            end_day = day + timedelta(days=1) if end_t is None or end_t <= start_t else day
            end = datetime.combine(end_day, end_t or time(0), tzinfo=zone)
            yield begin, end


def opening_status(*, working_hours: dict, holidays: list, timezone: str, at: datetime) -> OpeningStatus:
    """Is the business open at instant ``at`` (aware), when does it close, when does it next open."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    zone = get_zone(timezone)
    local = at.astimezone(zone)
    if not working_hours or not any(working_hours.values()):
        return OpeningStatus(True, True, local, None, None)
    closed = {date.fromisoformat(h["date"] if isinstance(h, dict) else h) for h in holidays or []}
    intervals = sorted(_intervals(working_hours, closed, zone, local.date() - timedelta(days=1), _LOOKAHEAD_DAYS))
    # merge touching ranges so "closes_at" is the real closing time (e.g. 22:00-24:00 then 00:00-02:00)
    merged: list[list[datetime]] = []
    for begin, end in intervals:
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    for begin, end in merged:
        if begin <= at < end:
            return OpeningStatus(True, False, local, end.astimezone(zone), None)
        if begin > at:
            return OpeningStatus(False, False, local, None, begin.astimezone(zone))
    return OpeningStatus(False, False, local, None, None)


def next_opening_at_or_after(*, working_hours: dict, holidays: list, timezone: str, at: datetime) -> datetime | None:
    """``at`` itself if open then, else the next opening (used to defer work to business hours)."""
    status = opening_status(working_hours=working_hours, holidays=holidays, timezone=timezone, at=at)
    return at if status.is_open else status.next_open
