"""The figures of a report, read from the tenant's marts through a read-only connection:
revenue, orders and AOV, sessions and conversion rate, ad spend, ROAS and MER, new and returning
shoppers, top movers; compared like for like with the previous period and the same period last
year, and None ("n/a", never 0) where a source has no data for a whole window. The definitions
(also printed in the report's notes): `reports/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb
import polars as pl

from cleargro_pipeline.reports import periods
from cleargro_pipeline.reports.periods import Period, PeriodError, ReportError

SOURCES = {  # source -> (table, day column)
    "shop": ("marts.fct_daily_sales", "date_day"),
    "ga4": ("marts.fct_ga4_traffic_daily", "date_day"),
    "ads": ("marts.fct_ads_campaign_daily", "date_day"),
}
TREND_PERIODS = {"week": 13, "month": 13}
MOVERS = 5
OPPORTUNITIES = 10
# Opportunities in these states are no longer open; anything else (or no status) is shown.
CLOSED_STATUSES = ("dismissed", "resolved", "done", "closed", "snoozed", "ignored", "expired",
                   "fixed", "archived")


@dataclass(frozen=True)
class Coverage:
    first_day: date  # the earliest day any source has data for
    last_day: date  # the latest complete day (all synced sources, day not still running)
    sources: dict[str, tuple[date, date]]  # source -> (first, last day with rows)

    def describe(self) -> str:
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()}"

    def covers(self, source: str, start: date, end: date) -> bool:
        """Whether `source` has data for the whole of [start, end]."""
        if source not in self.sources:
            return False
        first, _ = self.sources[source]
        return first <= start and end <= self.last_day


@dataclass(frozen=True)
class Window:
    name: str  # current | previous | last_year
    period: Period
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def is_whole(self) -> bool:
        return (self.start, self.end) == (self.period.start, self.period.end)


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    fmt: str  # money | count | percent | ratio
    values: dict[str, float | None]  # window name -> value
    better: str = "higher"  # higher | neutral

    def change(self, against: str) -> float | None:
        """Relative change of the current value against a comparison window (0.1 = +10 %)."""
        now, then = self.values.get("current"), self.values.get(against)
        if now is None or then is None or then == 0:
            return None
        return (now - then) / abs(then)


@dataclass
class ReportData:
    tenant: str
    period: Period
    coverage: Coverage
    currency: str
    windows: dict[str, Window]
    kpis: list[Kpi]
    daily: pl.DataFrame  # window, day_index, day, revenue, orders
    trend: pl.DataFrame  # period, label, start, end, revenue, orders, ad_spend, partial
    movers_up: pl.DataFrame  # variant_id, display_name, sku, current, previous, change
    movers_down: pl.DataFrame
    opportunities: pl.DataFrame | None  # None: the table does not exist yet
    notes: list[str] = field(default_factory=list)

    @property
    def is_partial(self) -> bool:
        return not self.windows["current"].is_whole

    def kpi(self, key: str) -> Kpi:
        return next(k for k in self.kpis if k.key == key)


# --- coverage ------------------------------------------------------------------------------

def relation_exists(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return conn.execute(
        "select count(*) from information_schema.tables where table_catalog = current_database() "
        "and table_schema = ? and table_name = ?", [schema, name]).fetchone()[0] > 0


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> set[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_catalog = "
        "current_database() and table_schema = ? and table_name = ?", [schema, name]).fetchall()
    return {r[0] for r in rows}


def coverage(conn: duckdb.DuckDBPyConnection, tenant: str) -> Coverage:
    """The days the tenant's marts cover; ReportError if there are no marts or no rows."""
    missing = [t for t, _ in SOURCES.values() if not relation_exists(conn, *t.split("."))]
    if missing:
        raise ReportError(f"tenant '{tenant}' has no marts yet ({', '.join(missing)} missing); "
                          f"run `cleargro run --tenant {tenant}` first")
    sql = " union all ".join(
        f"select '{source}' as source, min({col}) as first_day, max({col}) as last_day from {table}"
        for source, (table, col) in SOURCES.items())
    sources = {s: (first, last) for s, first, last in conn.execute(sql).fetchall()
               if first is not None}
    if "shop" not in sources:
        raise ReportError(f"tenant '{tenant}' has no orders yet; nothing to report")
    last_day = min(last for _, last in sources.values())
    if relation_exists(conn, "insights", "int_insights__as_of"):
        # The insights' as-of day also leaves out a day still running when it was extracted.
        as_of = conn.execute("select max(as_of_date) from insights.int_insights__as_of").fetchone()[0]
        if as_of is not None:
            last_day = min(last_day, as_of)
    first_day = min(first for first, _ in sources.values())
    return Coverage(first_day, last_day, sources)


def windows(period: Period, cov: Coverage, tenant: str) -> dict[str, Window]:
    """The current window (the period cut to the data) and like-for-like comparison windows."""
    start, end = max(period.start, cov.first_day), min(period.end, cov.last_day)
    if start > end:
        raise PeriodError(f"tenant '{tenant}' has no data for {period.label}; its data covers "
                          f"{cov.describe()}")
    offset, length = (start - period.start).days, (end - start).days + 1
    out = {"current": Window("current", period, start, end)}
    for name, other in (("previous", period.previous()), ("last_year", period.last_year())):
        first = other.start + timedelta(days=offset)
        last = min(first + timedelta(days=length - 1), other.end)
        out[name] = Window(name, other, first, max(first, last))
    return out


# --- queries -------------------------------------------------------------------------------

def _values_cte(wins: list[tuple[str, date, date]]) -> tuple[str, list[Any]]:
    rows = ", ".join("(?, ?::date, ?::date)" for _ in wins)
    params = [v for w in wins for v in w]
    return f"windows(name, s, e) as (values {rows})", params


KPI_SQL = """
with {windows},
sales as (
    select w.name, sum(d.net_revenue)::double as revenue, sum(d.order_count)::bigint as orders
    from windows w left join marts.fct_daily_sales d on d.date_day between w.s and w.e
    group by w.name),
traffic as (
    select w.name, sum(t.sessions)::bigint as sessions, sum(t.ecommerce_purchases)::bigint as purchases
    from windows w left join marts.fct_ga4_traffic_daily t on t.date_day between w.s and w.e
    group by w.name),
ads as (
    select w.name, sum(a.cost)::double as ad_spend, sum(a.conversions_value)::double as conversion_value
    from windows w left join marts.fct_ads_campaign_daily a on a.date_day between w.s and w.e
    group by w.name),
firsts as (
    select customer_pseudonym, min(order_date) as first_day
    from marts.fct_orders
    where not coalesce(is_cancelled, false) and customer_pseudonym is not null
    group by customer_pseudonym),
shoppers as (
    select w.name,
        count(distinct o.customer_pseudonym) filter (where f.first_day >= w.s) as new_shoppers,
        count(distinct o.customer_pseudonym) filter (where f.first_day < w.s) as returning_shoppers,
        count(o.order_id) filter (where o.order_id is not null and o.customer_pseudonym is null)
            as guest_orders
    from windows w
    left join marts.fct_orders o
        on o.order_date between w.s and w.e and not coalesce(o.is_cancelled, false)
    left join firsts f on f.customer_pseudonym = o.customer_pseudonym
    group by w.name)
select * from sales join traffic using (name) join ads using (name) join shoppers using (name)
"""

DAILY_SQL = """
with {windows},
days as (
    select w.name as window, cast(g.d as date) as day, datediff('day', w.s, cast(g.d as date)) as day_index
    from windows w, generate_series(w.s, w.e, interval 1 day) as g(d))
select days.window, days.day_index, days.day,
    coalesce(d.net_revenue, 0)::double as revenue, coalesce(d.order_count, 0)::bigint as orders
from days left join marts.fct_daily_sales d on d.date_day = days.day
order by days.window, days.day_index
"""

TREND_SQL = """
with {windows}
select w.name as period, w.s as start, w.e as "end",
    (select sum(net_revenue)::double from marts.fct_daily_sales
     where date_day between w.s and w.e) as revenue,
    (select sum(order_count)::bigint from marts.fct_daily_sales
     where date_day between w.s and w.e) as orders,
    (select sum(cost)::double from marts.fct_ads_campaign_daily
     where date_day between w.s and w.e) as ad_spend
from windows w
order by w.s
"""

MOVERS_SQL = """
with {windows},
by_variant as (
    select v.variant_id,
        sum(v.net_revenue) filter (where w.name = 'current')::double as current,
        sum(v.net_revenue) filter (where w.name = 'previous')::double as previous
    from windows w join marts.fct_daily_variant_sales v on v.date_day between w.s and w.e
    group by v.variant_id),
changes as (
    select variant_id, coalesce(current, 0) as current, coalesce(previous, 0) as previous,
        coalesce(current, 0) - coalesce(previous, 0) as change
    from by_variant)
select c.variant_id, coalesce(d.display_name, 'Variant ' || c.variant_id) as display_name, d.sku,
    c.current, c.previous, c.change
from changes c left join marts.dim_variants d on d.variant_id = c.variant_id
where c.change <> 0
"""


def _kpis(conn: duckdb.DuckDBPyConnection, wins: dict[str, Window], cov: Coverage) -> list[Kpi]:
    cte, params = _values_cte([(w.name, w.start, w.end) for w in wins.values()])
    frame = conn.execute(KPI_SQL.format(windows=cte), params).pl()
    rows = {r["name"]: r for r in frame.to_dicts()}

    def pick(source: str, column: str) -> dict[str, float | None]:
        out = {}
        for name, w in wins.items():
            covered = cov.covers(source, w.start, w.end)
            value = rows[name][column] if covered else None
            out[name] = (value or 0) if covered else None
        return out

    def ratio(num: dict, den: dict) -> dict[str, float | None]:
        return {n: (num[n] / den[n]) if num[n] is not None and den[n] else None for n in wins}

    revenue, orders = pick("shop", "revenue"), pick("shop", "orders")
    sessions, purchases = pick("ga4", "sessions"), pick("ga4", "purchases")
    spend, value = pick("ads", "ad_spend"), pick("ads", "conversion_value")
    return [
        Kpi("revenue", "Revenue", "money", revenue),
        Kpi("orders", "Orders", "count", orders),
        Kpi("aov", "Average order value", "money", ratio(revenue, orders)),
        Kpi("sessions", "Sessions", "count", sessions),
        Kpi("conversion_rate", "Conversion rate", "percent", ratio(purchases, sessions)),
        Kpi("ad_spend", "Ad spend", "money", spend, better="neutral"),
        Kpi("roas", "ROAS", "ratio", ratio(value, spend)),
        Kpi("mer", "MER", "ratio", ratio(revenue, spend)),
        Kpi("new_shoppers", "New shoppers", "count", pick("shop", "new_shoppers")),
        Kpi("returning_shoppers", "Returning shoppers", "count", pick("shop", "returning_shoppers")),
        Kpi("guest_orders", "Guest orders", "count", pick("shop", "guest_orders"), better="neutral"),
    ]


def _daily(conn: duckdb.DuckDBPyConnection, wins: dict[str, Window], cov: Coverage) -> pl.DataFrame:
    usable = [w for w in wins.values() if cov.covers("shop", w.start, w.end)]
    if not usable:
        return pl.DataFrame(schema={"window": pl.Utf8, "day_index": pl.Int64, "day": pl.Date,
                                    "revenue": pl.Float64, "orders": pl.Int64})
    cte, params = _values_cte([(w.name, w.start, w.end) for w in usable])
    return conn.execute(DAILY_SQL.format(windows=cte), params).pl()


def _trend(conn: duckdb.DuckDBPyConnection, period: Period, cov: Coverage) -> pl.DataFrame:
    """Totals of the trailing periods (cut to the data), oldest first."""
    rows = []
    for p in periods.trailing(period, TREND_PERIODS[period.kind]):
        start, end = max(p.start, cov.first_day), min(p.end, cov.last_day)
        if start <= end:
            rows.append((p, start, end))
    cte, params = _values_cte([(p.label, s, e) for p, s, e in rows])
    frame = conn.execute(TREND_SQL.format(windows=cte), params).pl()
    ads_covered = pl.Series([cov.covers("ads", s, e) for _, s, e in rows])
    return frame.with_columns(
        pl.Series("label", [p.short() for p, _, _ in rows]),
        pl.Series("partial", [(s, e) != (p.start, p.end) for p, s, e in rows]),
        pl.col("revenue").fill_null(0.0),
        pl.col("orders").fill_null(0),
        pl.when(ads_covered).then(pl.col("ad_spend").fill_null(0.0)).otherwise(None)
        .alias("ad_spend"),
    )


def _movers(conn: duckdb.DuckDBPyConnection, wins: dict[str, Window],
            cov: Coverage) -> tuple[pl.DataFrame, pl.DataFrame]:
    current, previous = wins["current"], wins["previous"]
    if not cov.covers("shop", previous.start, previous.end):
        empty = pl.DataFrame(schema={"variant_id": pl.Int64, "display_name": pl.Utf8,
                                     "sku": pl.Utf8, "current": pl.Float64,
                                     "previous": pl.Float64, "change": pl.Float64})
        return empty, empty
    cte, params = _values_cte([(w.name, w.start, w.end) for w in (current, previous)])
    frame = conn.execute(MOVERS_SQL.format(windows=cte), params).pl()
    up = frame.filter(pl.col("change") > 0).sort(["change", "variant_id"], descending=[True, False])
    down = frame.filter(pl.col("change") < 0).sort(["change", "variant_id"])
    return up.head(MOVERS), down.head(MOVERS)


OPPORTUNITY_COLUMNS = ("opportunity_type", "entity_id", "title", "explanation", "impact_amount",
                       "impact_kind", "currency", "priority", "status")


def opportunities(conn: duckdb.DuckDBPyConnection, limit: int = OPPORTUNITIES) -> pl.DataFrame | None:
    """The first `limit` opportunities by the insights' own ranking (`priority`, 1 = first;
    only open and actioned ones have one), else by impact; None when `insights.opportunities`
    does not exist yet. Dismissed and resolved ones are never listed."""
    if not relation_exists(conn, "insights", "opportunities"):
        return None
    present = _columns(conn, "insights", "opportunities")
    select = ", ".join(
        (f"cast({c} as double) as {c}" if c == "impact_amount" else c) if c in present
        else f"null as {c}" for c in OPPORTUNITY_COLUMNS)
    where, order = ["true"], []
    if "as_of_date" in present:
        where.append("as_of_date = (select max(as_of_date) from insights.opportunities)")
    if "status" in present:
        closed = ", ".join(f"'{s}'" for s in CLOSED_STATUSES)
        where.append(f"coalesce(lower(cast(status as varchar)), 'open') not in ({closed})")
    if "priority" in present:
        where.append("priority is not null")
        order.append("priority")
    if "impact_amount" in present:
        order.append("impact_amount desc nulls last")
    order += [c for c in ("opportunity_type", "entity_id") if c in present] or ["1"]
    return conn.execute(
        f"select {select} from insights.opportunities where {' and '.join(where)} "
        f"order by {', '.join(order)} limit {int(limit)}").pl()


def _currency(conn: duckdb.DuckDBPyConnection) -> str:
    row = conn.execute("select max(currency) from marts.fct_daily_sales").fetchone()
    return (row and row[0]) or ""


def collect(conn: duckdb.DuckDBPyConnection, tenant: str, period: Period) -> ReportData:
    """Every figure of the report for `period`, from a (read-only) warehouse connection."""
    cov = coverage(conn, tenant)
    wins = windows(period, cov, tenant)
    up, down = _movers(conn, wins, cov)
    data = ReportData(
        tenant=tenant, period=period, coverage=cov, currency=_currency(conn), windows=wins,
        kpis=_kpis(conn, wins, cov), daily=_daily(conn, wins, cov), trend=_trend(conn, period, cov),
        movers_up=up, movers_down=down, opportunities=opportunities(conn))
    data.notes.extend(_notes(data))
    return data


def _notes(data: ReportData) -> list[str]:
    notes = []
    cur = data.windows["current"]
    if cur.end < data.period.end:
        notes.append(f"{data.period.label} is not complete yet: figures cover "
                     f"{periods.span(cur.start, cur.end)}, and comparisons use the same days of "
                     "the earlier periods.")
    elif cur.start > data.period.start:
        notes.append(f"The data starts on {cur.start.isoformat()}: figures cover "
                     f"{periods.span(cur.start, cur.end)}, and comparisons use the same days.")
    missing = [label for source, label in (("ga4", "Google Analytics"), ("ads", "Google Ads"))
               if source not in data.coverage.sources]
    if missing:
        notes.append(f"No {' or '.join(missing)} data: the figures that need it are n/a.")
    for name, label in (("previous", "previous period"), ("last_year", "same period last year")):
        w = data.windows[name]
        if not data.coverage.covers("shop", w.start, w.end):
            notes.append(f"No comparison with the {label} ({periods.span(w.start, w.end)}): "
                         f"the data starts on {data.coverage.first_day.isoformat()}.")
    return notes
