"""`cleargro run`: materialize everything for one tenant through the Dagster instance, as the
schedule does."""

from __future__ import annotations

import click

from cleargro_pipeline import tenants
from cleargro_pipeline.runner import materialize_tenant


@click.command(name="run")
@click.option("--tenant", required=True)
def run(tenant: str) -> None:
    """Materialize everything for one tenant through the Dagster instance."""
    tenants.get(tenant)
    summary = materialize_tenant(tenant)
    click.echo(f"run {summary.run_id} succeeded for tenant '{tenant}'")
    for step, seconds in summary.step_seconds.items():
        click.echo(f"  {step}: {seconds:.1f} s")
