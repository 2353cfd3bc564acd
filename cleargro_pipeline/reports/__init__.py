"""Weekly and monthly merchant reports, stored encrypted in the tenant's warehouse.

Public API (used by the CLI and the Dagster report assets; no Dagster import here):

- `build_report(tenant, period)`: read the marts, render one self-contained HTML document and
  store it in `reports.documents` inside the tenant's encrypted warehouse.
- `export_report(tenant, period, out, fmt="html"|"pdf")`: write a plaintext copy where the
  user asks (rendering the report first if it is not stored yet); audited.
- `list_reports(tenant)`, `latest_complete_week(tenant)`.

Periods are `2026-W47` (ISO week, Monday to Sunday) or `2026-11` (calendar month).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from cleargro_pipeline.reports import metrics, periods, render, store
from cleargro_pipeline.reports.periods import Period, PeriodError, ReportError
from cleargro_pipeline.reports.store import StoredReport, list_reports
from cleargro_pipeline.warehouse import open_warehouse

__all__ = ["build_report", "export_report", "list_reports", "latest_complete_week",
           "render_report", "StoredReport", "Period", "PeriodError", "ReportError"]


def render_report(tenant: str, period: str | Period,
                  generated_at: datetime | None = None) -> tuple[metrics.ReportData, str]:
    """Figures and HTML of a report, without storing it."""
    p = period if isinstance(period, Period) else periods.parse(period)
    with open_warehouse(tenant, purpose=store.PURPOSE, read_only=True) as conn:
        data = metrics.collect(conn, tenant, p)
    return data, render.render(data, generated_at=generated_at)


def build_report(tenant: str, period: str) -> StoredReport:
    """Render the report of `period` (`2026-W47` or `2026-11`) and store it encrypted."""
    p = periods.parse(period)
    generated_at = datetime.now(timezone.utc)
    data, html = render_report(tenant, p, generated_at)
    return store.save(tenant, period_kind=p.kind, period=p.label, period_start=p.start,
                      period_end=p.end, as_of_date=data.coverage.last_day,
                      data_through=data.windows["current"].end, generated_at=generated_at,
                      html=html)


def export_report(tenant: str, period: str, out: Path, fmt: str = "html") -> Path:
    """Write the stored report of `period` to `out` as plaintext HTML or PDF (audited);
    build it first if it is not stored yet."""
    if fmt not in ("html", "pdf"):
        raise ReportError(f"unknown export format '{fmt}' (html or pdf)")
    label = periods.parse(period).label
    found = store.load(tenant, label)
    if found is None:
        build_report(tenant, label)
        found = store.load(tenant, label)
    stored, html = found
    return store.export(tenant, stored, html, Path(out), fmt)


def latest_complete_week(tenant: str) -> str:
    """The last ISO week fully covered by the tenant's data, e.g. `2026-W47`."""
    with open_warehouse(tenant, purpose=store.PURPOSE, read_only=True) as conn:
        cov = metrics.coverage(conn, tenant)
    week = periods.latest_complete_week(cov.last_day)
    if week.start < cov.first_day:
        raise ReportError(f"tenant '{tenant}' has no complete week of data yet; its data covers "
                          f"{cov.describe()}")
    return week.label
