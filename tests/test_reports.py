"""Merchant reports: periods, figures against hand-written queries, storage inside the
encrypted warehouse (no plaintext at rest), audited exports, and the rendered page in a real
headless Chromium that is allowed to fetch nothing but the page itself."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import private_demo
from markupsafe import escape

from cleargro_pipeline import reports
from cleargro_pipeline.reports import metrics, periods, render, store
from cleargro_pipeline.reports.periods import PeriodError
from cleargro_pipeline.security import audit, verify_at_rest
from cleargro_pipeline.warehouse import open_warehouse

CHROMIUM = Path(os.environ.get("CLEARGRO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_URL = "http://report.cleargro.test/report.html"
WEEK, MONTH = "2026-W47", "2026-11"  # the demo shop's data ends on Friday 2026-11-27
CHARTS = {"trend", "daily", "comparison", "shoppers", "movers"}


# --- periods (no warehouse) ----------------------------------------------------------------

def test_weeks_are_iso_weeks_monday_to_sunday():
    p = periods.parse("2026-W47")
    assert (p.kind, p.start, p.end, p.days) == ("week", date(2026, 11, 16), date(2026, 11, 22), 7)
    assert p.previous().label == "2026-W46" and p.next().label == "2026-W48"
    assert p.last_year().label == "2025-W47" and p.last_year().start == date(2025, 11, 17)
    assert periods.parse("2026-W01").previous().label == "2025-W52"
    assert periods.parse("2026-W53").end == date(2027, 1, 3)  # 2026 has 53 ISO weeks
    assert periods.parse("2026-W53").last_year().label == "2025-W52"  # 2025 has 52
    assert periods.parse("2021-W01").start == date(2021, 1, 4)
    assert p.title() == "Week 47, 2026 (16-22 Nov 2026)"


def test_months_are_calendar_months():
    p = periods.parse("2026-11")
    assert (p.kind, p.start, p.end) == ("month", date(2026, 11, 1), date(2026, 11, 30))
    assert periods.parse("2024-02").days == 29 and periods.parse("2026-12").end == date(2026, 12, 31)
    assert periods.parse("2026-01").previous().label == "2025-12"
    assert p.last_year().label == "2025-11"
    assert [x.label for x in periods.trailing(periods.parse("2026-02"), 3)] == \
        ["2025-12", "2026-01", "2026-02"]


@pytest.mark.parametrize("text, message", [
    ("2026-47", "period '2026-47': month must be 01 to 12; week 47 is 2026-W47"),
    ("26-W47", "is not an ISO week (YYYY-Www, e.g. 2026-W47) or a month (YYYY-MM, e.g. 2026-11)"),
    ("2026-W5", "is not an ISO week"),
    ("W47", "is not an ISO week"),
    ("2026/11", "is not an ISO week"),
    ("", "is not an ISO week"),
    ("2026-W00", "2026 has ISO weeks W01 to W53"),
    ("2025-W53", "2025 has ISO weeks W01 to W52"),
    ("2026-13", "month must be 01 to 12"),
    ("2026-00", "month must be 01 to 12"),
    ("0000-01", "year must be between"),
])
def test_malformed_periods_are_refused_with_the_reason(text, message):
    with pytest.raises(PeriodError, match=re.escape(message)):
        periods.parse(text)


def test_latest_complete_week_ends_on_a_sunday_on_or_before_the_last_day():
    assert periods.latest_complete_week(date(2026, 11, 27)).label == "2026-W47"  # a Friday
    assert periods.latest_complete_week(date(2026, 11, 29)).label == "2026-W48"  # a Sunday
    assert periods.latest_complete_week(date(2026, 11, 30)).label == "2026-W48"  # a Monday


def test_comparisons_of_a_running_period_use_the_same_days():
    cov = metrics.Coverage(date(2024, 11, 28), date(2026, 11, 27),
                           {"shop": (date(2024, 11, 28), date(2026, 11, 27))})
    w = metrics.windows(periods.parse("2026-11"), cov, "t")
    assert (w["current"].start, w["current"].end) == (date(2026, 11, 1), date(2026, 11, 27))
    assert (w["previous"].start, w["previous"].end) == (date(2026, 10, 1), date(2026, 10, 27))
    assert (w["last_year"].start, w["last_year"].end) == (date(2025, 11, 1), date(2025, 11, 27))
    # The data starts inside the week: the comparison weeks are cut the same way.
    w = metrics.windows(periods.parse("2024-W48"), cov, "t")
    assert (w["current"].start, w["previous"].start) == (date(2024, 11, 28), date(2024, 11, 21))
    assert not cov.covers("shop", w["previous"].start, w["previous"].end)
    with pytest.raises(PeriodError, match=re.escape(
            "tenant 't' has no data for 2026-W49; its data covers 2024-11-28 to 2026-11-27")):
        metrics.windows(periods.parse("2026-W49"), cov, "t")


# --- opportunities (an in-memory DuckDB stands in for the insights table) -------------------

def _opportunities_table(conn, with_priority: bool) -> None:
    conn.execute("create schema if not exists insights")
    conn.execute("drop table if exists insights.opportunities")
    conn.execute("""create table insights.opportunities (as_of_date date, opportunity_type varchar,
        entity_id varchar, title varchar, explanation varchar, impact_amount decimal(18, 2),
        impact_kind varchar, currency varchar, priority integer, status varchar)""")
    # Ranked as the insights layer does: priority 1 first, only open and actioned ranked.
    rows = [(date(2026, 11, 27), "wasted_keyword", f"kw-{i}", f"Title {i}", "why", 100.0 + i,
             "monthly", "USD", 12 - i, "actioned" if i == 5 else "open") for i in range(12)]
    rows += [(date(2026, 11, 27), "declining_product", "SKU-X", "Dismissed", "why", 9999.0,
              "monthly", "USD", None, "dismissed"),
             (date(2026, 11, 27), "declining_product", "SKU-R", "Resolved", "why", 8888.0,
              "monthly", "USD", None, "resolved")]
    conn.executemany("insert into insights.opportunities values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     rows)
    if not with_priority:
        conn.execute("alter table insights.opportunities drop column priority")


def test_top_opportunities_follow_the_insights_ranking():
    conn = duckdb.connect(":memory:")
    assert metrics.opportunities(conn) is None  # the table is not built yet
    _opportunities_table(conn, with_priority=True)
    top = metrics.opportunities(conn)
    assert top.columns == list(metrics.OPPORTUNITY_COLUMNS)
    assert top["entity_id"].to_list() == [f"kw-{i}" for i in range(11, 1, -1)]
    assert top["priority"].to_list() == list(range(1, 11))
    assert "actioned" in top["status"].to_list()
    # Without a ranking: open ones by impact; dismissed and resolved ones never.
    _opportunities_table(conn, with_priority=False)
    top = metrics.opportunities(conn)
    assert top["entity_id"].to_list() == [f"kw-{i}" for i in range(11, 1, -1)]
    assert top["priority"].null_count() == 10


# --- a demo tenant, built once for the tests below -----------------------------------------

@dataclass
class Demo:
    tenant: str
    data: Path
    exports: Path


@pytest.fixture(scope="module")
def demo(built_demo, tmp_path_factory) -> Demo:
    """A private copy of the session's demo tenant (conftest `built_demo`): these tests write
    reports into the warehouse and scan the data folder, so they get a data folder of their own."""
    root = tmp_path_factory.mktemp("reports")
    exports = root / "exports"
    exports.mkdir()
    with private_demo(built_demo, root) as data:
        yield Demo("demo", data, exports)


@pytest.fixture(scope="module")
def week_report(demo) -> tuple[reports.StoredReport, str]:
    reports.build_report(demo.tenant, WEEK)
    found = store.load(demo.tenant, WEEK)
    assert found is not None
    return found


def _query(tenant: str, sql: str, params=None) -> pl.DataFrame:
    with open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return conn.execute(sql, params or []).pl()


def test_figures_match_hand_checked_queries(demo):
    with open_warehouse(demo.tenant, purpose="test", read_only=True) as conn:
        data = metrics.collect(conn, demo.tenant, periods.parse(WEEK))
    # Written independently of metrics.py: from the order facts, not the daily sales mart.
    orders = _query(demo.tenant, """
        select order_date, customer_pseudonym, is_cancelled, net_revenue::double as net_revenue
        from marts.fct_orders""")
    live = orders.filter(~pl.col("is_cancelled"))

    def expected(start: date, end: date) -> dict[str, float]:
        inside = live.filter(pl.col("order_date").is_between(start, end))
        firsts = live.drop_nulls("customer_pseudonym").group_by("customer_pseudonym").agg(
            pl.col("order_date").min().alias("first"))
        shoppers = inside.drop_nulls("customer_pseudonym").select("customer_pseudonym").unique() \
            .join(firsts, on="customer_pseudonym")
        return {"revenue": round(inside["net_revenue"].sum(), 2), "orders": inside.height,
                "new_shoppers": shoppers.filter(pl.col("first") >= start).height,
                "returning_shoppers": shoppers.filter(pl.col("first") < start).height}

    for name, (start, end) in {"current": (date(2026, 11, 16), date(2026, 11, 22)),
                               "previous": (date(2026, 11, 9), date(2026, 11, 15)),
                               "last_year": (date(2025, 11, 17), date(2025, 11, 23))}.items():
        want = expected(start, end)
        got = {k: data.kpi(k).values[name] for k in want}
        assert round(got["revenue"], 2) == want["revenue"], name
        assert {k: got[k] for k in want if k != "revenue"} == \
            {k: want[k] for k in want if k != "revenue"}, name
        assert want["orders"] > 0 and want["new_shoppers"] > 0 and want["returning_shoppers"] > 0

    traffic = _query(demo.tenant, """select sum(sessions)::bigint, sum(ecommerce_purchases)::bigint
        from marts.fct_ga4_traffic_daily where date_day between '2026-11-16' and '2026-11-22'""")
    ads = _query(demo.tenant, """select sum(cost)::double, sum(conversions_value)::double
        from marts.fct_ads_campaign_daily where date_day between '2026-11-16' and '2026-11-22'""")
    sessions, purchases = traffic.row(0)
    spend, value = ads.row(0)
    cur = {k.key: k.values["current"] for k in data.kpis}
    assert cur["sessions"] == sessions
    assert cur["conversion_rate"] == pytest.approx(purchases / sessions)
    assert cur["ad_spend"] == pytest.approx(spend)
    assert cur["roas"] == pytest.approx(value / spend)
    assert cur["mer"] == pytest.approx(cur["revenue"] / spend)
    assert cur["aov"] == pytest.approx(cur["revenue"] / cur["orders"])
    before = data.kpi("revenue").values["previous"]
    assert data.kpi("revenue").change("previous") == pytest.approx((cur["revenue"] - before) / before)

    # Top movers: variant revenue change against the previous week, by hand.
    by_variant = _query(demo.tenant, """
        select variant_id,
            coalesce(sum(net_revenue) filter (where date_day >= '2026-11-16'), 0)::double
          - coalesce(sum(net_revenue) filter (where date_day < '2026-11-16'), 0)::double as change
        from marts.fct_daily_variant_sales where date_day between '2026-11-09' and '2026-11-22'
        group by variant_id""")
    top = by_variant.sort(["change", "variant_id"], descending=[True, False]).head(metrics.MOVERS)
    bottom = by_variant.sort(["change", "variant_id"]).head(metrics.MOVERS)
    assert data.movers_up["variant_id"].to_list() == top["variant_id"].to_list()
    assert data.movers_down["variant_id"].to_list() == bottom["variant_id"].to_list()


def test_a_running_month_is_compared_on_the_same_days(demo):
    with open_warehouse(demo.tenant, purpose="test", read_only=True) as conn:
        data = metrics.collect(conn, demo.tenant, periods.parse(MONTH))
    assert data.is_partial and data.windows["current"].end == date(2026, 11, 27)
    assert data.windows["previous"].end == date(2026, 10, 27)
    october = _query(demo.tenant, """select sum(net_revenue)::double from marts.fct_orders
        where not is_cancelled and order_date between '2026-10-01' and '2026-10-27'""").item()
    assert data.kpi("revenue").values["previous"] == pytest.approx(october)
    assert any("not complete yet" in n for n in data.notes)


def test_periods_without_data_and_latest_week(demo):
    assert reports.latest_complete_week(demo.tenant) == WEEK
    for period in ("2026-W49", "2023-05"):
        message = f"tenant 'demo' has no data for {period}; its data covers 2024-11-28 to 2026-11-27"
        with pytest.raises(PeriodError, match=re.escape(message)):
            reports.build_report(demo.tenant, period)
    with pytest.raises(PeriodError, match="is not an ISO week"):
        reports.build_report(demo.tenant, "2026-w47")


def test_report_is_stored_encrypted_and_nowhere_in_plaintext(demo, week_report):
    stored, html = week_report
    assert stored.period == WEEK and stored.period_kind == "week" and stored.is_complete
    assert stored.sha256 == hashlib.sha256(html.encode()).hexdigest()
    assert stored.size_bytes == len(html.encode()) and 40_000 < stored.size_bytes < 400_000
    assert [r.period for r in reports.list_reports(demo.tenant)] == [WEEK]
    # Building again replaces the period's report.
    again = reports.build_report(demo.tenant, WEEK)
    assert [r.id for r in reports.list_reports(demo.tenant)] == [again.id]
    stored, html = store.load(demo.tenant, WEEK)

    distinctive = [
        "How these figures are made",
        f"Weekly report {WEEK} \u00b7 demo",
        re.search(r'<p class="value">(\$[\d,]+\.\d\d)</p>', html)[1],  # this week's revenue
        re.search(r'data-chart="movers"', html)[0],
        "Returning shoppers",
    ]
    for text in distinctive:
        assert text in html
    findings = verify_at_rest.scan([demo.data], distinctive)
    assert findings == [], findings
    assert not [p for p in demo.data.rglob("*") if p.suffix in (".html", ".pdf", ".svg")]
    entry = [e for e in audit.entries() if e["action"] == "report_stored"][-1]
    assert entry["detail"]["sha256"] == stored.sha256 and entry["purpose"] == "report"


def test_report_page_is_self_contained(demo, week_report):
    _, html = week_report
    assert "<script" not in html.lower()
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:|//)", html, re.I)
    assert "@import" not in html and "url(http" not in html and "@font-face" not in html
    assert f'content="{escape(render.CSP)}"' in html
    assert set(re.findall(r'data-chart="(\w+)"', html)) == CHARTS
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids are unique across the inlined charts"
    # Opportunities as the warehouse has them (the insights layer may or may not be built).
    with open_warehouse(demo.tenant, purpose="test", read_only=True) as conn:
        listed = metrics.opportunities(conn)
    if listed is None:
        assert "No opportunities computed yet." in html
    elif listed.height == 0:
        assert "No open opportunities." in html
    else:
        assert html.count('<li class="opportunity">') == listed.height
        assert str(escape(listed["title"][0])) in html


def test_opportunities_are_listed_and_escaped(demo):
    with open_warehouse(demo.tenant, purpose="test", read_only=True) as conn:
        data = metrics.collect(conn, demo.tenant, periods.parse(WEEK))
    html = render.render(replace(data, opportunities=None))
    assert "No opportunities computed yet." in html
    opportunities = pl.DataFrame({
        "opportunity_type": ["ads_on_out_of_stock"], "entity_id": ["SKU-1"],
        "title": ["Pause ads for <b>SKU-1</b>"], "explanation": ["Spent $120 & sold 0."],
        "impact_amount": [514.29], "impact_kind": ["monthly"], "currency": ["USD"],
        "priority": [1], "status": ["open"]})
    html = render.render(replace(data, opportunities=opportunities))
    assert "Pause ads for &lt;b&gt;SKU-1&lt;/b&gt;" in html and "<b>SKU-1" not in html
    assert "Spent $120 &amp; sold 0." in html and "$514.29" in html and "/ month" in html


def test_export_writes_where_asked_and_is_audited(demo, week_report):
    stored, html = store.load(demo.tenant, WEEK)  # the latest build of the week
    out = demo.exports / "week.html"
    assert reports.export_report(demo.tenant, WEEK, out) == out.resolve()
    assert out.read_text() == html
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    entry = audit.entries()[-1]
    assert entry["action"] == "report_export" and entry["tenant"] == demo.tenant
    assert entry["detail"] == {"period": WEEK, "report_id": stored.id, "sha256": stored.sha256,
                               "format": "html", "path": str(out.resolve()),
                               "size_bytes": out.stat().st_size}
    assert audit.verify().entries == len(audit.entries())

    # A period not stored yet is built (and stored) first.
    october = reports.export_report(demo.tenant, "2026-10", demo.exports / "october.html")
    assert "October 2026" in october.read_text()
    assert [r.period for r in reports.list_reports(demo.tenant)] == ["2026-10", WEEK]

    with pytest.raises(reports.ReportError, match="unknown export format"):
        reports.export_report(demo.tenant, WEEK, demo.exports / "x.doc", fmt="doc")
    assert not (demo.exports / "x.doc").exists()


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    return CHROMIUM


def test_pdf_export(demo, week_report, chromium):
    out = demo.exports / "week.pdf"
    reports.export_report(demo.tenant, WEEK, out, fmt="pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
    assert not [p for p in demo.exports.iterdir() if p.name.startswith(".cleargro-pdf-")]
    entry = audit.entries()[-1]
    assert entry["action"] == "report_export" and entry["detail"]["format"] == "pdf"


def test_report_renders_in_chromium_without_any_request(demo, week_report, chromium):
    from playwright.sync_api import sync_playwright

    out = reports.export_report(demo.tenant, WEEK, demo.exports / "browser.html")
    body = out.read_bytes()
    requests: list[str] = []
    refused: list[str] = []
    problems: list[str] = []

    def route(r):
        requests.append(r.request.url)
        if r.request.url == PAGE_URL:
            r.fulfill(status=200, body=body, headers={"content-type": "text/html; charset=utf-8",
                                                       "cache-control": "no-store"})
        else:
            refused.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            # Scripts off: the charts must not need any.
            context = browser.new_context(java_script_enabled=False,
                                          viewport={"width": 1000, "height": 800})
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            started = time.perf_counter()
            page.goto(PAGE_URL, wait_until="load")
            loaded = time.perf_counter() - started

            charts = page.locator("svg[data-chart]")
            assert charts.count() == len(CHARTS)
            for i in range(charts.count()):
                chart = charts.nth(i)
                box = chart.bounding_box()
                assert box and box["width"] > 300 and box["height"] > 100, \
                    chart.get_attribute("data-chart")
                assert chart.locator("path").count() > 10
            # Something was actually drawn: the trend chart's area is not one flat colour.
            png = page.locator('svg[data-chart="trend"]').screenshot()
            assert len(png) > 5_000
            assert page.locator("h1").inner_text().startswith("Week 47, 2026")
            assert page.locator(".card").count() == len(render.HEADLINE)
        finally:
            browser.close()
    assert requests == [PAGE_URL], f"requests other than the page: {refused}"
    assert problems == []
    print(f"report: {len(body) / 1024:.0f} kB, loaded and laid out in {loaded * 1000:.0f} ms")
