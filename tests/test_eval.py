"""Insight quality on the small demo: every planted situation found, nothing else raised of
those kinds, impacts close to the planted ones; every planted alert incident found, and at
most one false alert per tenant-month on the demo without incidents (the targets of
`make eval`)."""

from __future__ import annotations

import base64
import os
from datetime import date

import pytest

from cleargro_pipeline import tenants
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.demo.truth import PlantedSituation, incident_days
from cleargro_pipeline.evaluation import (
    EVAL_BACKTEST_DAYS,
    Episode,
    alert_episodes,
    backtest_days,
    evaluate,
    evaluate_alerts,
    raised_opportunities,
)
from cleargro_pipeline.security import keys


def test_small_demo_meets_the_quality_targets(demo_env):
    result = evaluate(raised_opportunities(demo_env), DemoShop("small", tenant=demo_env).ground_truth())
    assert not result.missed, result.missed
    assert result.recall == 1.0
    assert result.precision >= 0.95, result.unexpected
    assert result.impact_error <= 0.10, result.errors


def test_the_metrics_count_misses_strays_and_errors():
    planted = [PlantedSituation("wasted_keyword", "keyword", "a", 100.0),
               PlantedSituation("wasted_keyword", "keyword", "b", 50.0),
               PlantedSituation("revenue_drop", "shop", "shop", 10.0)]  # an alert: not counted
    raised = {("wasted_keyword", "a"): 110.0, ("wasted_keyword", "c"): 5.0,
              ("overstock_slow_mover", "x"): 1.0}  # a kind nothing planted: not counted
    result = evaluate(raised, planted)
    assert (result.recall, result.precision) == (0.5, 0.5)
    assert abs(result.impact_error - 0.1) < 1e-9
    assert result.missed == [("wasted_keyword", "b")] and result.unexpected == [("wasted_keyword", "c")]


@pytest.fixture(scope="module")
def calm_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The small demo without anything planted (`"incidents": false`), tenant 'calm', alerts
    evaluated over a 365-day window, in a data folder of its own. Returns its environment."""
    data = tmp_path_factory.mktemp("calm_demo") / "data"
    env = {"CLEARGRO_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home"),
           keys.MASTER_KEY_ENV: base64.b64encode(os.urandom(32)).decode(), "CLEARGRO_PRINCIPAL": "pytest"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        from cleargro_pipeline import bootstrap

        bootstrap.init()  # before the dbt assets read the manifest
        from cleargro_pipeline.runner import materialize_tenant

        tenants.add("calm", {s: {**c, "incidents": False} for s, c in tenants.demo_sources("small").items()})
        tenants.configure_insights("calm", {"alert_backtest_days": str(EVAL_BACKTEST_DAYS)})
        materialize_tenant("calm")
    return env


def test_small_demo_meets_the_alert_targets(demo_env, calm_demo, monkeypatch):
    planted = incident_days(DemoShop("small", tenant=demo_env))
    found = alert_episodes(demo_env)
    for name, value in calm_demo.items():
        monkeypatch.setenv(name, value)
    assert backtest_days("calm") == EVAL_BACKTEST_DAYS
    result = evaluate_alerts(found, planted, alert_episodes("calm"), backtest_days("calm"))
    assert len(planted) == 7 and not result.missed, result.missed
    assert result.recall == 1.0
    assert result.false_per_tenant_month <= 1.0, result.false_alerts


def test_the_alert_metrics_count_covered_days_and_calm_episodes():
    d = date.fromisoformat
    found = [Episode("roas_drop", "shop", d("2026-10-20"), d("2026-10-24"), "warning", "m"),
             Episode("bestseller_stockout", "SKU-1", d("2026-10-25"), d("2026-10-26"), "critical", "m")]
    planted = [("roas_drop", "shop", d("2026-10-22")),  # inside the episode
               ("bestseller_stockout", "SKU-2", d("2026-10-25")),  # another entity
               ("orders_drop", "shop", d("2026-10-24"))]  # another type
    calm = [Episode("revenue_drop", "shop", d("2026-03-27"), d("2026-03-27"), "warning", "m")] * 3
    result = evaluate_alerts(found, planted, calm, 365)
    assert abs(result.recall - 1 / 3) < 1e-9
    assert result.missed == planted[1:]
    assert abs(result.false_per_tenant_month - 3 / (365 / 30.44)) < 1e-9
    assert result.line() == "alerts: recall=0.33 false_per_tenant_month=0.25"
