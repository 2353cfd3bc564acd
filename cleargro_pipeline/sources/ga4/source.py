"""A GA4 property as a chunk provider of the raw contract (`sources.raw.contract_source`).

Each contract table is one report (reports.py). Which days are read:
- the first sync (no cursor): `history_days` up to the property's today (730 by default;
  GA answers nothing for days before the property had data);
- later syncs: from the last loaded day minus `trailing_days` (3 by default), because GA
  keeps reprocessing recent days; the merge on (date, dimensions) replaces what changed.
Days are the property's days: the report's `date` dimension is in its time zone, and "today"
is taken in that zone (`metadata.timeZone`). The range is read in windows of `window_days`,
oldest first, and each page of an answer is handed on as it arrives: memory holds one page,
whatever the range, and a sync cut short leaves a loaded prefix the next sync resumes from.

When the property's daily quota runs out, the table being read ends where it is (what was
read is loaded), no further request is made, and `quota_exhausted` holds the error for the
caller's `source_quota` alert (or it is raised, with `stop_on_quota=False`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from cleargro_pipeline.sources.contract import RawTable
from cleargro_pipeline.sources.days import as_date, windows
from cleargro_pipeline.sources.ga4.client import DEFAULT_LIMIT, Ga4Client, Ga4Error, QuotaExhausted
from cleargro_pipeline.sources.ga4.reports import BY_TABLE, Report, page_table, quality

HISTORY_DAYS = 730
TRAILING_DAYS = 3
WINDOW_DAYS = 90  # days of one report request: a few pages at most, a bounded token cost

Cursor = Callable[[str], Any]  # table -> its incremental cursor's last value (None: never loaded)


class Ga4Provider:
    """`provide(raw)` for contract_source: the chunks of one `raw_ga4` table. `quality` lists
    GA's data-quality flags per (report, day range) read; `notices` what the load report
    records (no data values)."""

    def __init__(self, client: Ga4Client, cursor: Cursor, *, history_days: int = HISTORY_DAYS,
                 trailing_days: int = TRAILING_DAYS, window_days: int = WINDOW_DAYS,
                 page_limit: int = DEFAULT_LIMIT, check_compatibility: bool = True,
                 stop_on_quota: bool = True,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        if history_days < 1 or trailing_days < 0 or window_days < 1:
            raise ValueError("history_days and window_days must be positive, trailing_days "
                             "not negative")
        self.client, self.cursor, self.now = client, cursor, now
        self.history_days, self.trailing_days = history_days, trailing_days
        self.window_days, self.page_limit = window_days, page_limit
        self.check_compatibility, self.stop_on_quota = check_compatibility, stop_on_quota
        self.quality: list[dict[str, Any]] = []
        self.read_as: dict[str, str] = {}  # table -> the days asked for
        self.time_zone: str | None = None
        self.time_zones_seen: set[str] = set()
        self.today: date | None = None  # the property's today, once asked
        self.quota_exhausted: QuotaExhausted | None = None
        self.rows_without_day = 0  # GA's "(other)" rows: no day to key them by

    @property
    def cursor_lag(self) -> float:
        """Days behind the cursor whose rows load again (the trailing window re-read): the
        load's incremental must let them through to be merged."""
        return float(self.trailing_days)

    @property
    def notices(self) -> dict[str, str]:
        remaining = (self.client.quota.get("tokensPerDay") or {}).get("remaining")
        flagged = [q for q in self.quality if q["data_loss_from_other_row"]
                   or q["subject_to_thresholding"] or q["sampled"]]
        return {**{f"read_{table}": days for table, days in sorted(self.read_as.items())},
                **({"time_zone": self.time_zone} if self.time_zone else {}),
                **({"time_zone_changed": ",".join(sorted(self.time_zones_seen))}
                   if len(self.time_zones_seen) > 1 else {}),
                "requests": str(self.client.requests),
                **({"quota_tokens_per_day_remaining": str(remaining)} if remaining is not None
                   else {}),
                **({"flagged_ranges": str(len(flagged))} if flagged else {}),
                **({"rows_without_day": str(self.rows_without_day)} if self.rows_without_day
                   else {}),
                **({"quota_exhausted": self.quota_exhausted.quota} if self.quota_exhausted
                   else {})}

    def __call__(self, raw: RawTable) -> Iterable[pa.Table]:
        report = BY_TABLE.get(raw.name)
        return self._chunks(report) if report else ()

    def _chunks(self, report: Report) -> Iterator[pa.Table]:
        if self.quota_exhausted:
            return  # every request to the property fails until the quota resets
        try:
            if self.check_compatibility:
                self.client.check_compatibility(list(report.dimensions), list(report.metrics))
            start, end = self._days(report)
            for first, last in windows(start, end, self.window_days):
                yield from self._window(report, first, last)
        except QuotaExhausted as exhausted:
            if not self.stop_on_quota:
                raise
            self.quota_exhausted = exhausted

    def _days(self, report: Report) -> tuple[date, date]:
        today = self.property_today()
        since = as_date(self.cursor(report.table))
        if since is None:
            start = today - timedelta(days=self.history_days - 1)
            self.read_as[report.table] = f"history {start}..{today}"
        else:
            start = min(since, today) - timedelta(days=self.trailing_days)
            self.read_as[report.table] = f"since {start}..{today}"
        return start, today

    def property_today(self) -> date:
        """Today in the property's time zone (asked of GA once per provider)."""
        if self.today is None:
            self._note_zone(self.client.time_zone())
            try:
                zone = ZoneInfo(self.time_zone or "")
            except (ZoneInfoNotFoundError, ValueError):
                raise Ga4Error(f"GA4 property {self.client.property}: unknown time zone "
                               f"{self.time_zone!r}") from None
            self.today = self.now().astimezone(zone).date()
        return self.today

    def _window(self, report: Report, first: date, last: date) -> Iterator[pa.Table]:
        flags = {"data_loss_from_other_row": False, "subject_to_thresholding": False,
                 "sampled": False}
        pages = 0
        try:
            for page in self.client.report_pages(list(report.dimensions), list(report.metrics),
                                                 first, last, limit=self.page_limit):
                pages += 1
                self._note_zone((page.get("metadata") or {}).get("timeZone"))
                flags = {k: v or quality(page)[k] for k, v in flags.items()}
                table, undated = page_table(report, page)
                self.rows_without_day += undated
                if table.num_rows:
                    yield table
        finally:
            if pages:  # a window cut short by the quota still says what its pages showed
                self.quality.append({"report": report.name, "start": first, "end": last, **flags})

    def _note_zone(self, zone: Any) -> None:
        if isinstance(zone, str) and zone:
            self.time_zone = self.time_zone or zone
            self.time_zones_seen.add(zone)
