"""Insight quality on the small demo: every planted situation found, nothing else raised of
those kinds, impacts close to the planted ones (the targets of `make eval`)."""

from __future__ import annotations

from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.demo.truth import PlantedSituation
from cleargro_pipeline.evaluation import evaluate, raised_opportunities


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
