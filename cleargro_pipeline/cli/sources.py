"""A tenant's source data: `cleargro import` (a file drop), `cleargro disconnect` (stop
syncing a source) and `cleargro retention` (cut history older than the tenant's window)."""

from __future__ import annotations

from pathlib import Path

import click

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.controls import disconnect, retention


@click.command(name="import")
@click.option("--tenant", required=True)
@click.option("--from", "directory", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_(tenant: str, directory: Path) -> None:
    """Load a directory of Shopify API bodies and GA4 / Google Ads CSV exports."""
    tenants.get(tenant)
    reports = ingest.load(tenant, ingest.FileDropPlan(directory.resolve()))
    if not reports:
        raise click.ClickException(f"{directory} holds no file this import understands")
    for report in reports:
        for table, rows in report.rows.items():
            click.echo(f"raw_{report.system}.{table}: {rows} rows")
    click.echo(f"imported into tenant '{tenant}'; run `cleargro run --tenant {tenant}` to build "
               "its marts")


@click.command(name="disconnect")
@click.option("--tenant", required=True)
@click.option("--source", required=True, type=click.Choice(["shop", "ga4", "google_ads"]))
@click.option("--delete-data", is_flag=True,
              help="Also drop the source's raw tables and rebuild the marts without them.")
def disconnect_(tenant: str, source: str, delete_data: bool) -> None:
    """Stop syncing a source: revoke its OAuth token, delete its stored credentials and, with
    --delete-data, its raw data and what the marts built from it."""
    report = disconnect.disconnect(tenant, source, delete_data=delete_data)
    click.echo(f"{source} disconnected from '{tenant}'"
               + ("" if report.was_synced else " (it was not being synced)"))
    for name in report.revoked:
        click.echo(f"revoked at the provider: {name}")
    for name in report.already_revoked:
        click.echo(f"already revoked: {name}")
    click.echo(f"credentials deleted: {', '.join(report.deleted_credentials) or 'none stored'}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.data_deleted:
        click.echo(f"data deleted: {', '.join(report.dropped) or 'nothing stored'}"
                   + ("; models rebuilt" if report.rebuilt else ""))


@click.command(name="retention")
@click.option("--tenant", required=True)
def retention_(tenant: str) -> None:
    """Apply the tenant's retention window now (the daily retention job does it too)."""
    report = retention.apply(tenant)
    if report.cutoff is None:
        click.echo(f"'{tenant}' keeps all history: nothing to cut")
        return
    deleted = {t: n for t, n in report.deleted.items() if n}
    click.echo(f"cut at {report.cutoff.date()}: {sum(deleted.values())} rows deleted"
               + "".join(f"\n  {t}: {n}" for t, n in sorted(deleted.items()))
               + (f"\n{'models rebuilt; ' if report.rebuilt else ''}warehouse rewritten "
                  f"({report.file_bytes} bytes)" if report.file_bytes else "\nnothing older than the window"))
