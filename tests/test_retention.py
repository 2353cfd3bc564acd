"""Retention: a per-tenant window of raw history.

Exact rules on a hand-made warehouse (orders by their order time, lines with their order,
interval histories keeping the version in force at the cut, current-state tables kept, dlt's
merge copies emptied, a crash between cut and rewrite recovered), then a 12-month window
cutting the small demo's two years in half on a private copy of the session demo (conftest
`built_demo`): nothing older than the cut remains, everything newer is unchanged, the marts
are rebuilt without the old days and with the same figures after the cut, and stored reports
are byte for byte what they were.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone

import pytest
from conftest import private_demo

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls import retention
from cleargro_pipeline.settings import paths
from cleargro_pipeline.tenants import InvalidSetting

UTC = timezone.utc


def _audit(action: str) -> list[dict]:
    entries = [json.loads(line) for line in paths().audit_log.read_text().splitlines()]
    return [e for e in entries if e["action"] == action]


# --- the window ------------------------------------------------------------------------------

def test_the_cut_is_midnight_utc_n_calendar_months_back():
    assert retention.months_before(date(2026, 11, 28), 12) == date(2025, 11, 28)
    assert retention.months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert retention.months_before(date(2024, 3, 31), 1) == date(2024, 2, 29)
    assert retention.months_before(date(2026, 1, 15), 1) == date(2025, 12, 15)
    assert retention.months_before(date(2026, 1, 15), 25) == date(2023, 12, 15)
    assert retention.cutoff(12, datetime(2026, 11, 28, 23, 30, tzinfo=UTC)) == datetime(
        2025, 11, 28, tzinfo=UTC)


def test_the_setting_defaults_to_all_history_and_takes_whole_months(tenant):
    assert tenants.get(tenant).retention_months is None
    assert retention.describe(tenants.get(tenant)) == "all history kept"
    for bad in (0, -3, 1.5, True, "12"):
        with pytest.raises(InvalidSetting, match="whole number of months"):
            retention.configure(tenant, bad)
    retention.configure(tenant, 18)
    assert tenants.get(tenant).retention_months == 18
    assert retention.describe(tenants.get(tenant)) == "18 months of raw history"
    assert _audit("tenant_configured")[-1]["detail"] == {"retention_months": 18}
    retention.configure(tenant, None)
    assert tenants.get(tenant).retention_months is None
    # Keeping all history: nothing is opened, nothing rewritten.
    assert retention.apply(tenant).cutoff is None and not paths().warehouse(tenant).exists()


# --- exact rules on a hand-made warehouse ---------------------------------------------------------

NOW = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)  # 1 month back: 2026-02-28 (no 31st in February)
CUT = datetime(2026, 2, 28, tzinfo=UTC)
SETUP = """
create schema raw_shop; create schema raw_ga4; create schema raw_shop_staging;
create table raw_shop.orders (id bigint, processed_at timestamptz, created_at timestamptz,
                              updated_at timestamptz);
insert into raw_shop.orders values
  (1, '2026-02-27 23:59:59+00', '2026-02-27 23:00:00+00', '2026-03-30 10:00:00+00'),  -- refunded later
  (2, null, '2026-02-28 00:00:00+00', '2026-02-28 00:00:00+00'),
  (3, '2026-03-01 12:00:00+00', '2026-03-01 12:00:00+00', '2026-03-01 12:00:00+00');
create table raw_shop.order_line_items (id bigint, order_id bigint, order_updated_at timestamptz);
insert into raw_shop.order_line_items values
  (11, 1, '2026-03-30 10:00:00+00'), (31, 3, '2026-03-01 12:00:00+00'),
  (91, 99, '2026-01-01 00:00:00+00'), (92, 98, '2026-03-02 00:00:00+00');  -- lines without their order
create table raw_shop.variant_price_history (variant_id bigint, price decimal(18, 2),
                                             compare_at_price decimal(18, 2), valid_from timestamptz);
insert into raw_shop.variant_price_history values
  (1, 10, null, '2025-12-01 00:00:00+00'), (1, 12, null, '2026-01-15 00:00:00+00'), (1, 15, null, '2026-03-10 00:00:00+00'),
  (2, 5, null, '2026-01-01 00:00:00+00'), (2, 6, null, '2026-02-28 00:00:00+00'),
  (3, 7, null, '2026-03-05 00:00:00+00');
create table raw_shop.products (id bigint, updated_at timestamptz);
insert into raw_shop.products values (1, '2020-01-01 00:00:00+00');
create table raw_ga4.items_daily (date date, item_id varchar);
insert into raw_ga4.items_daily values ('2026-02-27', 'a'), ('2026-02-28', 'a');
create table raw_shop_staging.orders as select * from raw_shop.orders;
"""


@pytest.fixture
def small(tenant):
    with warehouse.open_warehouse(tenant, purpose="test") as conn:
        conn.execute(SETUP)
    retention.configure(tenant, 1)
    return tenant


def _rows(tenant: str, sql: str) -> list[tuple]:
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_exact_cut_of_each_kind_of_table(small):
    report = retention.apply(small, now=NOW)
    assert report.cutoff == CUT
    assert {table: n for table, n in report.deleted.items() if n} == {
        "raw_shop.order_line_items": 2, "raw_shop.orders": 1,
        "raw_shop.variant_price_history": 2, "raw_ga4.items_daily": 1,
        "raw_shop_staging.orders": 3}
    assert report.clamped == {"raw_shop.variant_price_history": 1}
    assert report.rebuilt is False and report.file_bytes  # no models yet; file rewritten
    assert "raw_shop.products" in report.kept_whole

    # Orders by their order time (not the later update); lines with their order.
    assert _rows(small, "select id from raw_shop.orders order by id") == [(2,), (3,)]
    assert _rows(small, "select id from raw_shop.order_line_items order by id") == [(31,), (92,)]
    # The version in force at the cut starts at the cut; one starting exactly at it wins.
    cut = CUT
    assert _rows(small, "select variant_id, price::int, valid_from from "
                        "raw_shop.variant_price_history order by all") == [
        (1, 12, cut), (1, 15, datetime(2026, 3, 10, tzinfo=UTC)), (2, 6, cut),
        (3, 7, datetime(2026, 3, 5, tzinfo=UTC))]
    assert _rows(small, "select * from raw_ga4.items_daily") == [(date(2026, 2, 28), "a")]
    assert _rows(small, "select count(*) from raw_shop.products") == [(1,)]  # current state
    assert _rows(small, "select count(*) from raw_shop_staging.orders") == [(0,)]
    entry = _audit("retention_applied")[-1]
    assert entry["detail"]["cutoff"] == CUT.isoformat() and entry["detail"]["months"] == 1
    assert not (paths().tenant_dir(small) / "retention.pending").exists()

    # The next day's run finds nothing to cut: no rebuild, no rewrite.
    again = retention.apply(small, now=NOW)
    assert not again.changed and again.file_bytes is None


def test_a_crash_between_cut_and_rewrite_is_finished_by_the_next_run(small, monkeypatch):
    real = warehouse.rewrite

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(warehouse, "rewrite", crash)
    with pytest.raises(RuntimeError):
        retention.apply(small, now=NOW)
    assert (paths().tenant_dir(small) / "retention.pending").exists()
    monkeypatch.setattr(warehouse, "rewrite", real)
    report = retention.apply(small, now=NOW)
    assert not report.changed and report.file_bytes  # nothing left to cut, rewritten anyway
    assert not (paths().tenant_dir(small) / "retention.pending").exists()


# --- a 12-month window on the demo's two years ------------------------------------------------------

DEMO_NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # the demo's data ends 2026-11-27
DEMO_CUT = datetime(2025, 11, 28, tzinfo=UTC)
# Each cut table's row time, written here independently of the module.
TIMES = {
    "raw_shop.orders": "coalesce(processed_at, created_at)",
    "raw_shop.order_line_items": "(select coalesce(o.processed_at, o.created_at) from "
                                 "raw_shop.orders o where o.id = order_id)",
    "raw_shop.order_refund_line_items": "(select coalesce(o.processed_at, o.created_at) from "
                                        "raw_shop.orders o where o.id = order_id)",
    "raw_shop.customers": "updated_at",
    "raw_shop.variant_price_history": "valid_from",
    "raw_shop.inventory_level_history": "valid_from",
    "raw_ga4.items_daily": "date",
    "raw_ga4.traffic_daily": "date",
    "raw_google_ads.campaign_daily": "segments_date",
    "raw_google_ads.keyword_daily": "segments_date",
    "raw_google_ads.search_term_daily": "segments_date",
    "raw_google_ads.shopping_product_daily": "segments_date",
    "raw_app.app_events": "ts",
}
KEPT = ("raw_shop.products", "raw_shop.product_variants", "raw_shop.inventory_items",
        "raw_shop.inventory_levels", "raw_shop.locations")
EARLY_WEEK, LATE_WEEK = "2025-W10", "2026-W47"  # before and after the cut


@pytest.fixture(scope="module")
def demo_copy(built_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("retention")
    with private_demo(built_demo, root):
        yield "demo"


def _state(conn) -> dict:
    cut = DEMO_CUT.isoformat()
    state: dict = {"raw": {}, "kept": {}}
    for table, when in TIMES.items():
        total, old, newer, first = conn.execute(
            f"select count(*), count(*) filter (where {when} < ?::timestamptz), "
            f"count(*) filter (where {when} >= ?::timestamptz), min({when}) from {table}",
            [cut, cut]).fetchone()
        state["raw"][table] = {"total": total, "old": old, "newer": newer, "first": first}
    for table in KEPT:
        state["kept"][table] = conn.execute(f"select count(*) from {table}").fetchone()[0]
    state["daily_after_cut"] = sorted(conn.execute(
        "select * exclude (_source_load_id) from marts.fct_daily_sales where date_day >= ?::date",
        [cut[:10]]).fetchall())
    state["first_day"] = {m: conn.execute(f"select min({c}), count(*) filter (where {c} >= ?::date) "
                                          f"from marts.{m}", [cut[:10]]).fetchone()
                          for m, c in (("fct_daily_sales", "date_day"), ("fct_orders", "order_date"),
                                       ("fct_ga4_item_daily", "date_day"),
                                       ("fct_ads_campaign_daily", "date_day"))}
    state["price_keys"] = conn.execute(
        "select count(distinct variant_id) from raw_shop.variant_price_history").fetchone()[0]
    state["reports"] = sorted(conn.execute(
        "select period, sha256, sha256(html), generated_at from reports.documents").fetchall())
    return state


def test_a_12_month_window_cuts_the_demo_history_in_half(demo_copy):
    from cleargro_pipeline import reports

    tenant = demo_copy
    reports.build_report(tenant, EARLY_WEEK)
    reports.build_report(tenant, LATE_WEEK)
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        before = _state(conn)
        before["report_bytes"] = {period: hashlib.sha256(html.encode()).hexdigest() for period, html
                                  in conn.execute("select period, html from reports.documents")
                                  .fetchall()}
    orders = before["raw"]["raw_shop.orders"]
    assert orders["first"] < datetime(2024, 12, 1, tzinfo=UTC)  # two years of history
    assert 0.4 < orders["old"] / orders["total"] < 0.6  # the cut halves it
    assert len(before["reports"]) == 2

    retention.configure(tenant, 12)
    report = retention.apply(tenant, now=DEMO_NOW)
    assert report.cutoff == DEMO_CUT and report.rebuilt and report.file_bytes
    assert report.deleted["raw_shop.orders"] == orders["old"]

    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        after = _state(conn)
    for table, was in before["raw"].items():
        now = after["raw"][table]
        assert now["old"] == 0, table  # nothing older than the cut remains
        if table in retention.INTERVALS:  # each key's version in force at the cut stays
            assert now["total"] >= was["newer"] and now["first"] >= DEMO_CUT, table
        else:
            assert now["newer"] == now["total"] == was["newer"], table  # newer rows untouched
    assert after["price_keys"] == before["price_keys"]  # every variant still has its price
    assert after["kept"] == before["kept"]
    # Marts rebuilt: no day before the cut, the same rows and figures from the cut on.
    for mart, (first, newer) in after["first_day"].items():
        assert first >= DEMO_CUT.date(), mart
        assert newer == before["first_day"][mart][1], mart
    assert after["daily_after_cut"] == before["daily_after_cut"]
    # Reports already produced are byte for byte what they were.
    assert after["reports"] == before["reports"]
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        for period, digest in before["report_bytes"].items():
            html = conn.execute("select html from reports.documents where period = ?",
                                [period]).fetchone()[0]
            assert hashlib.sha256(html.encode()).hexdigest() == digest, period
    assert [e for e in reversed(_audit("retention_applied"))][0]["detail"]["rebuilt"] is True
