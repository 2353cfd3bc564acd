"""`cleargro demo`: the demo tenant built end to end (data, every asset, a weekly report,
alerts), then a summary of what it holds and where to look next."""

from __future__ import annotations

import time

import click
import dagster as dg

from cleargro_pipeline import bootstrap, reports, tenants
from cleargro_pipeline.alerts import service
from cleargro_pipeline.cli.output import print_alerts
from cleargro_pipeline.settings import paths
from cleargro_pipeline.warehouse import queries

DEMO_TENANT = "demo"


@click.command(name="demo")
@click.option("--size", type=click.Choice(["small", "medium", "large"]), default="small",
              show_default=True)
def demo(size: str) -> None:
    """Create the demo tenant if missing, generate its data and materialize everything."""
    bootstrap.init()
    # Imported after init(): the runner loads the dbt assets, which read the manifest init writes.
    from cleargro_pipeline import runner

    if not tenants.exists(DEMO_TENANT):
        tenants.add(DEMO_TENANT, tenants.demo_sources(size))
    elif tenants.get(DEMO_TENANT).sources.get("shop", {}).get("size") != size:
        raise click.ClickException(
            f"tenant '{DEMO_TENANT}' exists with another demo size; remove data/ to start over")
    started = time.monotonic()
    summary = runner.materialize_tenant(DEMO_TENANT)
    week = reports.latest_complete_week(DEMO_TENANT)
    runner.materialize_report(DEMO_TENANT, week)
    elapsed = time.monotonic() - started
    _print_summary(summary, queries.table_row_counts(DEMO_TENANT), elapsed)
    _print_opportunities(DEMO_TENANT, queries.top_opportunities(DEMO_TENANT, limit=5))
    _print_demo_alerts(DEMO_TENANT, runner.dagster_instance())
    click.echo(f"\nLatest weekly report ({week}), stored encrypted in the warehouse. Export it:")
    click.echo(f"  .venv/bin/cleargro report --tenant {DEMO_TENANT} --period {week} "
               f"--out {DEMO_TENANT}-{week}.html")


def _print_summary(summary, counts: dict[str, int], elapsed: float) -> None:  # type: ignore[no-untyped-def]
    echo = click.echo
    echo(f"\nDemo tenant '{summary.tenant}': run {summary.run_id} succeeded in {elapsed:.1f} s")
    echo("\nTime per stage:")
    for step, seconds in summary.step_seconds.items():
        echo(f"  {step:<28} {seconds:8.1f} s")
    echo("\nRows per table:")
    for table, rows in counts.items():
        echo(f"  {table:<48} {rows:>12,}")
    echo(f"\nWarehouse (AES-256-GCM encrypted): {paths().warehouse(summary.tenant)}")
    echo(f"Dagster home (runs, event log):    {paths().dagster_home}")
    echo("\nOpen the Dagster UI:  make dev   (http://127.0.0.1:3000)")
    echo(f"Query as an analyst:  .venv/bin/cleargro sql --tenant {summary.tenant} "
         "\"select * from marts.fct_daily_sales order by date_day desc limit 7\"")


def _print_demo_alerts(tenant: str, instance: dg.DagsterInstance) -> None:
    outcome = service.run(tenant, instance=instance)
    click.echo(f"\nAlerts ({len(outcome.active)} active; send them somewhere with "
               f"`cleargro tenants configure {tenant} --webhook URL`):")
    print_alerts(outcome.active)


def _print_opportunities(tenant: str, top: list[dict]) -> None:
    echo = click.echo
    if not top:
        echo("\nNo open opportunities.")
        return
    echo(f"\nTop opportunities (as of {top[0]['as_of_date']}):")
    for o in top:
        per = "/month" if o["impact_kind"] == "monthly" else " once"
        echo(f"  {o['priority']:>2}. {o['opportunity_type']:<36} {o['entity_id']:<28} "
             f"{o['impact_amount']:>10,.2f} {o['currency']}{per}")
        echo(f"      {o['explanation']}")
    echo(f"  All of them: .venv/bin/cleargro sql --tenant {tenant} "
         "\"select * from insights.opportunities order by priority\"")
