"""A report's figures -> one self-contained HTML document (styles and charts inline).

The template and the stylesheet live in `assets/reports/`. The document fetches nothing:
charts are inline SVG, there is no script, no web font and no image, and a
Content-Security-Policy (`default-src 'none'`) makes the browser refuse any fetch a future
template change might add.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from cleargro_pipeline.reports import charts, fmt, periods
from cleargro_pipeline.reports.metrics import Kpi, ReportData
from cleargro_pipeline.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "assets" / "reports"
TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"
HEADLINE = ("revenue", "orders", "aov", "sessions", "conversion_rate", "ad_spend", "roas", "mer")


@lru_cache(maxsize=4)
def _environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(money=fmt.money, count=fmt.count, percent=fmt.percent,
                       change=fmt.percent_change, money_change=fmt.money_change)
    return env


def tone(kpi: Kpi, against: str) -> str:
    """CSS class of a change: up/down when higher is better, neutral otherwise."""
    change = kpi.change(against)
    if change is None or abs(change) < 0.005:
        return "flat"
    if kpi.better == "neutral":
        return "neutral"
    return "good" if change > 0 else "bad"


def render(data: ReportData, *, generated_at: datetime | None = None,
           templates: Path = TEMPLATES) -> str:
    generated_at = generated_at or datetime.now(timezone.utc)
    env = _environment(templates)
    css = (templates / STYLESHEET).read_text()
    svgs = {name: Markup(svg) for name, svg in charts.render_all(data).items()}
    kpis = {k.key: k for k in data.kpis}
    return env.get_template(TEMPLATE).render(
        data=data, period=data.period, windows=data.windows, kpis=kpis,
        headline=[kpis[k] for k in HEADLINE], charts=svgs, css=Markup(css), csp=CSP,
        generated_at=generated_at, fmt=fmt, tone=tone,
        kind_title="Weekly report" if data.period.kind == "week" else "Monthly report",
        span=periods.span)
