"""The Google Ads account as a chunk provider of the raw contract (`sources.raw.contract_source`).

Which days a sync reads, per report (the account's days, `customer.time_zone`):
- the first sync (no cursor): the last `history_days` (730), oldest first;
- later syncs: from the last loaded day minus `trailing_days` (30) to today, because Google
  credits conversions to the click's day for weeks after it.
The range is read in chunks of `chunk_days`, one SearchStream each.

A stream that breaks mid-way is retried whole, and nothing of a chunk is handed on before its
stream has ended: each response batch is turned into Arrow as it arrives (protobuf rows are
dropped batch by batch), the chunk's Arrow pieces are kept until the stream completes, and a
retry throws them away and reads the chunk again. So one call never yields a row twice (the
first load of a table is appended, not merged), memory is bounded by one chunk of one report,
and a chunk yielded before a later failure stays loaded: the next sync re-reads it with the
trailing window and the merge on the primary keys replaces it.

Retries: transient failures (temporary quota, UNAVAILABLE, INTERNAL, deadline) back off
exponentially, or as long as Google's `retry_delay` asks, up to `max_attempts` per chunk and
`max_wait_s` per sync. Refused credentials raise `GoogleAdsCredentialsRejected`, a rejected
query `GoogleAdsQueryError`: neither is retried. The daily quota (`QuotaExhausted`) ends the
sync where it is: the table being read stops, no further query is made, what was read is
loaded, and `quota_exhausted` (a notice, for the `source_quota` alert) says so; the next day's
sync goes on from there (the cursor only moved as far as what loaded).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from cleargro_pipeline.sources.contract import RawTable
from cleargro_pipeline.sources.days import as_date, windows
from cleargro_pipeline.sources.google_ads import reports
from cleargro_pipeline.sources.google_ads.client import AdsClient
from cleargro_pipeline.sources.google_ads.errors import (GoogleAdsError, GoogleAdsUnavailable,
                                                          QuotaExhausted, Transient)

HISTORY_DAYS = 730
TRAILING_DAYS = 30
CHUNK_DAYS = 30  # days a SearchStream reads: bounds the memory a chunk holds
MAX_ATTEMPTS = 5  # reads of one chunk before giving up
BACKOFF_S, MAX_BACKOFF_S = 2.0, 60.0  # exponential backoff without a retry_delay from Google
MAX_WAIT_S = 600.0  # backoff a whole sync may spend

Cursor = Callable[[str], Any]  # table -> the last loaded `segments.date` (None: never loaded)


class GoogleAdsProvider:
    """`provide(raw)` for contract_source: the chunks of one `raw_google_ads` table."""

    def __init__(self, client: AdsClient, cursor: Cursor, *, history_days: int = HISTORY_DAYS,
                 trailing_days: int = TRAILING_DAYS, chunk_days: int = CHUNK_DAYS,
                 today: Callable[[], date] | None = None, max_attempts: int = MAX_ATTEMPTS,
                 backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 max_wait_s: float = MAX_WAIT_S, sleep: Callable[[float], None] = time.sleep):
        if min(history_days, chunk_days, max_attempts) < 1 or trailing_days < 0:
            raise ValueError("history_days, chunk_days and max_attempts must be positive, "
                             "trailing_days not negative")
        self.client, self.cursor, self._today = client, cursor, today
        self.history_days, self.trailing_days, self.chunk_days = history_days, trailing_days, chunk_days
        self.max_attempts, self.backoff_s, self.max_backoff_s = max_attempts, backoff_s, max_backoff_s
        self.max_wait_s, self.sleep = max_wait_s, sleep
        self.waited_s = 0.0
        self.retries = 0
        self.time_zone: str | None = None
        self.read: dict[str, tuple[date, date]] = {}  # table -> the days this sync reads
        self.quota_exhausted: QuotaExhausted | None = None

    @property
    def notices(self) -> dict[str, str]:
        """What the load report records about this sync (no data values)."""
        return {**{f"read_{table}": f"{start.isoformat()}..{end.isoformat()}"
                   for table, (start, end) in sorted(self.read.items())},
                **({"time_zone": self.time_zone} if self.time_zone else {}),
                **({"quota_exhausted": "operations per day"} if self.quota_exhausted else {}),
                "retries": str(self.retries), "api_version": self.client.api_version}

    @property
    def cursor_lag(self) -> float:
        """Days behind the cursor whose rows load again (the trailing window re-read, late
        conversions): the load's incremental must let them through to be merged."""
        return float(self.trailing_days)

    def __call__(self, raw: RawTable) -> Iterable[pa.Table]:
        if raw.name not in reports.RESOURCES:
            return ()
        reports.columns(raw.schema)  # a contract column the API does not have fails now
        return self._chunks(raw)

    def _chunks(self, raw: RawTable) -> Iterator[pa.Table]:
        if self.quota_exhausted is not None:
            return  # the day's quota is spent: no further query
        try:
            start, end = self.days(raw.name)
            self.read[raw.name] = (start, end)
            for first, last in windows(start, end, self.chunk_days):
                table = self._read_whole(raw, reports.gaql(raw, first, last))
                if table.num_rows:
                    yield table
        except QuotaExhausted as spent:
            self.quota_exhausted = spent

    def days(self, table: str) -> tuple[date, date]:
        """The first and last day this sync reads of `table`."""
        today = self.today()
        oldest = today - timedelta(days=self.history_days - 1)
        last_loaded = as_date(self.cursor(table))
        if last_loaded is None:
            return oldest, today
        return max(oldest, min(last_loaded, today) - timedelta(days=self.trailing_days)), today

    def today(self) -> date:
        """Today in the account's time zone (asked once: one operation of the daily quota)."""
        if self._today is not None:
            return self._today()
        if self.time_zone is None:
            self.time_zone = self._account_time_zone()
        return datetime.now(ZoneInfo(self.time_zone)).date()

    def _account_time_zone(self) -> str:
        zones = [row.customer.time_zone
                 for batch in self._retried(lambda: list(self.client.search_stream(
                     "SELECT customer.time_zone FROM customer")))
                 for row in batch.results]
        try:
            ZoneInfo(zones[0])
        except (IndexError, ValueError, ZoneInfoNotFoundError):
            raise GoogleAdsError(f"Google Ads customer {self.client.customer_id}: the account's "
                                 "time zone is missing or unknown") from None
        return zones[0]

    def _read_whole(self, raw: RawTable, query: str) -> pa.Table:
        """The whole result of one chunk's stream, read again from the start if it breaks."""
        def read() -> pa.Table:
            pieces = [reports.batch_table(raw.schema, batch.results)
                      for batch in self.client.search_stream(query) if len(batch.results)]
            return pa.concat_tables(pieces) if pieces else raw.schema.empty_table()
        return self._retried(read)

    def _retried(self, attempt: Callable[[], Any]) -> Any:
        for number in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except Transient as failure:
                delay = self._delay(failure, number)
                if number == self.max_attempts or self.waited_s + delay > self.max_wait_s:
                    raise GoogleAdsUnavailable(
                        f"Google Ads customer {self.client.customer_id}: still failing after "
                        f"{number} attempts ({failure.reason})") from None
                self.retries += 1
                self.waited_s += delay
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, failure: Transient, attempt: int) -> float:
        if failure.retry_delay is not None:
            return failure.retry_delay
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
