"""Pure helpers of the loader."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pyarrow as pa

from cleargro_pipeline import ingest
from cleargro_pipeline.sources import contract


def test_hold_back_keeps_rows_before_the_cutoff_by_each_tables_cursor():
    cutoff = date(2026, 11, 27)
    ga4 = pa.table({"date": pa.array([date(2026, 11, 26), date(2026, 11, 27)], pa.date32()),
                    "itemId": ["a", "b"]})
    kept = list(ingest._until([ga4], contract.table("raw_ga4", "items_daily"), cutoff))
    assert kept[0].column("itemId").to_pylist() == ["a"]

    ts = pa.timestamp("us", tz="UTC")
    orders = pa.table({"updated_at": pa.array([datetime(2026, 11, 26, 23, 59, tzinfo=timezone.utc),
                                               datetime(2026, 11, 27, 0, 0, tzinfo=timezone.utc),
                                               None], ts), "id": [1, 2, 3]})
    kept = list(ingest._until([orders], contract.table("raw_shop", "orders"), cutoff))
    # A row without a cursor value is never withheld: it could not be synced later either.
    assert kept[0].column("id").to_pylist() == [1, 3]


def test_a_synced_source_loads_only_what_is_new_since_the_last_load(tenant):
    """Incremental cursors survive the loader's throwaway working folder (restored from the
    warehouse): the same data twice loads nothing; one more day loads that day only."""
    day_before = ingest.DemoPlan(size="small", hold_back_days=1)
    first = ingest.load(tenant, day_before, ("ga4",))[0].rows
    assert first["items_daily"] > 10_000
    assert ingest.load(tenant, day_before, ("ga4",))[0].rows == {}
    next_day = ingest.load(tenant, ingest.DemoPlan(size="small"), ("ga4",))[0].rows
    assert next_day["traffic_daily"] == 6  # one day x the demo's six source / medium pairs
    assert 0 < next_day["items_daily"] < first["items_daily"] / 300
