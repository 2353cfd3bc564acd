"""Days of the report sources (GA4, Google Ads): a range read in windows, and a cursor's last
value as a day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Iterator

from cleargro_pipeline.errors import CleargroError


class NotADay(CleargroError, ValueError):
    """A cursor value that is not a day (the message names its type, never the value)."""


def windows(start: date, end: date, days: int) -> Iterator[tuple[date, date]]:
    """[start, end] in consecutive ranges of at most `days` days, oldest first."""
    while start <= end:
        last = min(end, start + timedelta(days=days - 1))
        yield start, last
        start = last + timedelta(days=1)


def as_date(value: Any) -> date | None:
    """A cursor's last value (dlt's state may hold a date, a datetime, ISO text or a pendulum
    date) as a plain date; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise NotADay(f"cursor value of type {type(value).__name__} is not a day")
