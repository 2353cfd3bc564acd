"""Report periods: ISO weeks (`2026-W47`, Monday to Sunday) and calendar months (`2026-11`).

A period knows its first and last day, the period before it and the same period a year
earlier (the same ISO week number of the previous ISO year, W52 when that year has no W53;
the same month of the previous year).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from cleargro_pipeline.errors import CleargroError

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
FORMATS = "an ISO week (YYYY-Www, e.g. 2026-W47) or a month (YYYY-MM, e.g. 2026-11)"
MIN_YEAR, MAX_YEAR = 1971, 9998  # room for the year before and after


class ReportError(CleargroError):
    """A report cannot be built or exported; the message says why (no customer values)."""


class PeriodError(ReportError):
    """A period that cannot be parsed, or one the tenant's data does not cover."""


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date  # inclusive
    kind: Literal["week", "month"]
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return period_of(self.kind, self.start - timedelta(days=1))

    def next(self) -> Period:
        return period_of(self.kind, self.end + timedelta(days=1))

    def last_year(self) -> Period:
        if self.kind == "month":
            return month(self.start.year - 1, self.start.month)
        year, number, _ = self.start.isocalendar()
        return week(year - 1, min(number, weeks_in_year(year - 1)))

    def title(self) -> str:
        """`Week 47, 2026 (16-22 Nov 2026)` or `November 2026`."""
        if self.kind == "month":
            return self.start.strftime("%B %Y")
        year, number, _ = self.start.isocalendar()
        return f"Week {number}, {year} ({span(self.start, self.end)})"

    def short(self) -> str:
        """Axis label: `W47` or `Nov 26`."""
        if self.kind == "month":
            return self.start.strftime("%b %y")
        return f"W{self.start.isocalendar()[1]:02d}"

    def __str__(self) -> str:
        return self.label


def span(first: date, last: date) -> str:
    """`16-22 Nov 2026`, `28 Oct - 3 Nov 2026`, `29 Dec 2025 - 4 Jan 2026`."""
    if first == last:
        return f"{first.day} {first:%b %Y}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}-{last.day} {last:%b %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%b} - {last.day} {last:%b %Y}"
    return f"{first.day} {first:%b %Y} - {last.day} {last:%b %Y}"


def weeks_in_year(year: int) -> int:
    return date(year, 12, 28).isocalendar()[1]


def week(year: int, number: int) -> Period:
    start = date.fromisocalendar(year, number, 1)
    return Period(start, start + timedelta(days=6), "week", f"{year}-W{number:02d}")


def month(year: int, number: int) -> Period:
    start = date(year, number, 1)
    following = date(year + (number == 12), number % 12 + 1, 1)
    return Period(start, following - timedelta(days=1), "month", f"{year}-{number:02d}")


def period_of(kind: str, day: date) -> Period:
    """The week or month that contains `day`."""
    if kind == "week":
        year, number, _ = day.isocalendar()
        return week(year, number)
    return month(day.year, day.month)


def parse(text: str) -> Period:
    """`2026-W47` or `2026-11` -> Period; PeriodError names what is wrong."""
    value = str(text).strip()
    if found := WEEK.match(value):
        year, number = int(found[1]), int(found[2])
        _check_year(value, year)
        if not 1 <= number <= weeks_in_year(year):
            raise PeriodError(f"period '{value}': {year} has ISO weeks W01 to "
                              f"W{weeks_in_year(year)}")
        return week(year, number)
    if found := MONTH.match(value):
        year, number = int(found[1]), int(found[2])
        _check_year(value, year)
        if not 1 <= number <= 12:
            hint = f"; week {number} is {year}-W{number:02d}" if 1 <= number <= 53 else ""
            raise PeriodError(f"period '{value}': month must be 01 to 12{hint}")
        return month(year, number)
    raise PeriodError(f"period '{value}' is not {FORMATS}")


def _check_year(value: str, year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"period '{value}': year must be between {MIN_YEAR} and {MAX_YEAR}")


def trailing(period: Period, count: int) -> list[Period]:
    """The `count` periods ending with `period`, oldest first."""
    out = [period]
    while len(out) < count:
        out.append(out[-1].previous())
    return out[::-1]


def latest_complete_week(last_day: date) -> Period:
    """The last ISO week whose Sunday is on or before `last_day`."""
    sunday = last_day - timedelta(days=(last_day.isoweekday() % 7))
    return period_of("week", sunday)
