"""`cleargro backup` and `cleargro restore`: byte copies of a tenant's warehouse and their
verified restore."""

from __future__ import annotations

import click

from cleargro_pipeline.controls import backups
from cleargro_pipeline.privacy import shoppers


@click.group(name="backup", invoke_without_command=True)
@click.option("--tenant", help="Take a backup of this tenant now and print its id.")
@click.pass_context
def backup_group(ctx: click.Context, tenant: str | None) -> None:
    """Backups: byte copies of a tenant's warehouse, still encrypted with its data key."""
    if ctx.invoked_subcommand is not None:
        return
    if not tenant:
        raise click.UsageError("give --tenant T to take a backup, or `backup list --tenant T`")
    taken = backups.take(tenant)
    click.echo(f"{len(taken.tables)} tables, {taken.size:,} bytes, sha256 {taken.sha256}",
               err=True)
    click.echo(taken.id)


@backup_group.command(name="list")
@click.option("--tenant", required=True)
def backup_list(tenant: str) -> None:
    for b in backups.list_backups(tenant):
        rows = sum(t.rows for t in b.tables.values())
        click.echo(f"{b.id}\t{b.taken_at:%Y-%m-%d %H:%M:%S}Z\t{b.reason}\t{b.size:,} bytes\t"
                   f"{len(b.tables)} tables\t{rows:,} rows" + (f"\tPROBLEM: {b.problem}" if b.problem else ""))


@click.command(name="restore")
@click.option("--tenant", required=True)
@click.option("--backup", "backup_id", required=True, help="The id `cleargro backup list` shows.")
def restore(tenant: str, backup_id: str) -> None:
    """Restore a backup, verified by row counts and checksums; the replaced warehouse is kept
    as a backup."""
    report = shoppers.restore_backup(tenant, backup_id)
    click.echo(f"restored {backup_id}: {report.tables_verified} tables, "
               f"{report.rows_verified:,} rows verified"
               + ("" if report.checksums_compared else " (row counts only: another DuckDB version)"))
    if report.safety_backup:
        click.echo(f"the warehouse it replaced is backup {report.safety_backup.id}")
