"""`cleargro alerts`: evaluate and send a tenant's alerts (what the Dagster sensors do), list
them, acknowledge one."""

from __future__ import annotations

import click

from cleargro_pipeline import tenants
from cleargro_pipeline.alerts import service
from cleargro_pipeline.cli.output import print_alerts
from cleargro_pipeline.orchestration.partitions import dagster_instance


@click.group(name="alerts")
def alerts_group() -> None:
    """A tenant's alerts: evaluate and send them, list them, acknowledge one."""


@alerts_group.command(name="run")
@click.option("--tenant", required=True)
def alerts_run(tenant: str) -> None:
    """Evaluate the tenant's alerts and send what is owed (what the Dagster sensors do)."""
    outcome = service.run(tenants.get(tenant).name, instance=dagster_instance())
    sent = outcome.dispatch
    click.echo(f"tenant '{tenant}': {len(outcome.raised)} raised, {len(outcome.resolved)} resolved, "
               f"{len(outcome.active)} active; deliveries: {len(sent.sent)} sent, "
               f"{len(sent.failed)} failed (retried with backoff), {sent.pending} pending")
    print_alerts(outcome.active)


@alerts_group.command(name="list")
@click.option("--tenant", required=True)
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved alerts.")
def alerts_list(tenant: str, include_resolved: bool) -> None:
    print_alerts(service.listing(tenant, include_resolved=include_resolved))


@alerts_group.command(name="ack")
@click.option("--tenant", required=True)
@click.argument("alert_id")
def alerts_ack(tenant: str, alert_id: str) -> None:
    """Acknowledge an alert: it stays until its condition clears, but is not sent again."""
    service.acknowledge(tenant, alert_id)
    click.echo(f"alert {alert_id} acknowledged")
