"""`make eval`: how good are the opportunities? Measured against the demo's planted truth.

Runs the whole pipeline for a fresh demo tenant in a throwaway data folder and ends
with one line:
    eval: recall=<r> precision=<p> impact_error=<e>
- recall: planted situations (of opportunity kinds) raised with the right type and entity;
- precision: raised opportunities of the planted kinds that match a planted situation
  (the generator keeps every other entity clear of every rule by construction);
- impact_error: median relative error of the raised impact against the planted one.
"Raised" means detected as of the latest complete day and not snoozed by a dismissal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cleargro_pipeline import warehouse
from cleargro_pipeline.demo.truth import PlantedSituation

# Planted kinds that are alerts (issue 4), not opportunities.
ALERT_KINDS = {"revenue_drop"}
RAISED_STATUSES = ("open", "actioned")


@dataclass
class EvalResult:
    recall: float
    precision: float
    impact_error: float
    missed: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    errors: dict[tuple[str, str], float] = field(default_factory=dict)

    def line(self) -> str:
        return (f"eval: recall={self.recall:.2f} precision={self.precision:.2f} "
                f"impact_error={self.impact_error:.3f}")


def raised_opportunities(tenant: str) -> dict[tuple[str, str], float]:
    """(type, entity_id) -> impact of the opportunities raised as of the latest day."""
    with warehouse.open_warehouse(tenant, purpose="eval", read_only=True) as conn:
        rows = conn.execute(
            "select opportunity_type, entity_id, impact_amount::double from insights.opportunities "
            "where last_detected_at = as_of_date and status in (select unnest(?))",
            [list(RAISED_STATUSES)]).fetchall()
    return {(kind, entity): impact for kind, entity, impact in rows}


def evaluate(raised: dict[tuple[str, str], float], planted: list[PlantedSituation]) -> EvalResult:
    truth = {(s.kind, s.entity_id): s.expected_impact for s in planted if s.kind not in ALERT_KINDS}
    kinds = {kind for kind, _ in truth}
    considered = {key: impact for key, impact in raised.items() if key[0] in kinds}
    hits = truth.keys() & considered.keys()
    errors = {key: abs(considered[key] - truth[key]) / abs(truth[key]) for key in hits}
    return EvalResult(
        recall=len(hits) / len(truth) if truth else 1.0,
        precision=len(hits) / len(considered) if considered else 0.0,
        impact_error=statistics.median(errors.values()) if errors else float("nan"),
        missed=sorted(truth.keys() - hits), unexpected=sorted(considered.keys() - hits),
        errors=errors)


def run(size: str, keep: Path | None = None) -> EvalResult:
    """A fresh demo tenant in a throwaway data folder (removed afterwards unless `keep`)."""
    folder = keep or Path(tempfile.mkdtemp(prefix="cleargro-eval-"))
    os.environ["CLEARGRO_DATA_DIR"] = str(folder)
    os.environ["DAGSTER_HOME"] = str(folder / "dagster_home")
    try:
        from cleargro_pipeline import bootstrap, tenants
        from cleargro_pipeline.demo.generator import DemoShop
        from cleargro_pipeline.orchestration.runner import materialize_tenant

        bootstrap.init()
        tenant = "eval"
        if not tenants.exists(tenant):
            tenants.add(tenant, tenants.demo_sources(size))
        materialize_tenant(tenant)
        return evaluate(raised_opportunities(tenant), DemoShop(size, tenant=tenant).ground_truth())
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["small", "medium", "large"])
    args = parser.parse_args(argv)
    result = run(args.size)
    for kind, entity in result.missed:
        print(f"missed: {kind} {entity}")
    for kind, entity in result.unexpected:
        print(f"unexpected: {kind} {entity}")
    for (kind, entity), error in sorted(result.errors.items(), key=lambda e: -e[1])[:5]:
        print(f"impact error {error:.3f}: {kind} {entity}")
    print(result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
