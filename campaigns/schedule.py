"""Clock arithmetic for sends: customers' timezones, quiet hours, cron occurrences.

Plain functions over datetimes and zone names (no models), so the edge cases -- overnight
quiet hours, daylight-saving gaps, a customer with a misspelt zone -- are tested directly.
Every result is an aware UTC datetime: the ledger stores `not_before` in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab

#: The zone furthest ahead of UTC: "09:00 in every customer's timezone" starts here.
EARLIEST_ZONE = "Pacific/Kiritimati"


class CronError(ValueError):
    pass


@lru_cache(maxsize=1024)
def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The customer's zone; an empty or unknown name falls back to `default` rather than failing a send."""
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def at_local(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """`clock` on `day` in `tz`, as UTC.

    A wall time skipped by a spring-forward jump (02:30 when clocks go 02:00 -> 03:00) is read
    with the offset before the jump (PEP 495, fold=0), so it lands just after the jump (03:30);
    a repeated autumn time takes its first occurrence.
    """
    return datetime.combine(day, clock.replace(tzinfo=None)).replace(tzinfo=tz, fold=0).astimezone(UTC)


def quiet_until(moment: datetime, tz: ZoneInfo, start: time | None, end: time | None) -> datetime | None:
    """When quiet hours end if `moment` falls inside them in `tz`, else None.

    Quiet hours may run overnight (21:00-08:00). Equal start and end mean no quiet hours.
    """
    if start is None or end is None or start == end:
        return None
    local = moment.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    overnight = start > end
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    end_day = local.date()
    if clock >= end:  # overnight window, after its start: it ends tomorrow
        end_day += timedelta(days=1)
    return at_local(end_day, end, tz)


def parse_cron(expression: str) -> crontab:
    """Five fields: minute hour day-of-month month day-of-week (celery's parser and names)."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError("A cron expression has five fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week
        )
    except Exception as exc:  # celery raises ValueError and its own ParseException
        raise CronError(f"Invalid cron expression {expression!r}: {exc}") from None


def next_occurrence(expression: str, after: datetime, tz: ZoneInfo) -> datetime:
    """The first time strictly after `after` that matches `expression` in local time `tz`.

    Walks local calendar days and the matching hours and minutes in wall-clock time, then
    converts, so 09:00 stays 09:00 across daylight-saving changes (celery's own arithmetic
    shifts by an hour there). Day-of-month and day-of-week combine as in cron: when both are
    restricted, either matching is enough.
    """
    spec = parse_cron(expression)
    fields = expression.split()
    dom_any, dow_any = fields[2] == "*", fields[4] == "*"
    start = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
    hours, minutes = sorted(spec.hour), sorted(spec.minute)
    for offset in range(366 * 5):
        day = start.date() + timedelta(days=offset)
        if day.month not in spec.month_of_year:
            continue
        dom_ok = day.day in spec.day_of_month
        dow_ok = (day.isoweekday() % 7) in spec.day_of_week
        if not ((dom_ok and dow_ok) if (dom_any or dow_any) else (dom_ok or dow_ok)):
            continue
        for hour in hours:
            for minute in minutes:
                local = datetime.combine(day, time(hour, minute))
                if local < start:
                    continue
                candidate = at_local(day, time(hour, minute), tz)
                if candidate > after:
                    return candidate
    raise CronError(f"{expression!r} never matches in the next five years")


def next_local(after: datetime, clock: time, tz: ZoneInfo) -> datetime:
    """The first instant at or after `after` at which the wall clock in `tz` shows `clock`."""
    day = after.astimezone(tz).date()
    moment = at_local(day, clock, tz)
    if moment < after:
        moment = at_local(day + timedelta(days=1), clock, tz)
    return moment


def earliest_local_moment(day: date, clock: time) -> datetime:
    """The first instant at which `clock` on `day` arrives anywhere on Earth."""
    return at_local(day, clock, zone(EARLIEST_ZONE))
