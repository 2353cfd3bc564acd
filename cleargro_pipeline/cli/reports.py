"""`cleargro report` and `cleargro reports`: write one of a tenant's weekly or monthly
reports as a plaintext file, and list the reports stored in its warehouse."""

from __future__ import annotations

from pathlib import Path

import click

from cleargro_pipeline import reports, tenants


@click.command(name="report")
@click.option("--tenant", required=True)
@click.option("--period", required=True, help="An ISO week (2026-W47) or a month (2026-11).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the plaintext copy (the stored report stays encrypted).")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default="html",
              show_default=True)
def report(tenant: str, period: str, out: Path, fmt: str) -> None:
    """Write a tenant's weekly or monthly report to FILE (rendered first if not stored yet; audited)."""
    tenants.get(tenant)
    written = reports.export_report(tenant, period, out, fmt=fmt)
    click.echo(f"report {period} of tenant '{tenant}' written to {written} (plaintext: keep it safe)")


@click.command(name="reports")
@click.option("--tenant", required=True)
def reports_(tenant: str) -> None:
    """List the reports stored (encrypted) in a tenant's warehouse."""
    tenants.get(tenant)
    stored = reports.list_reports(tenant)
    for r in stored:
        state = "complete" if r.is_complete else f"partial, data through {r.data_through}"
        click.echo(f"{r.period}\t{r.period_start} to {r.period_end}\t{state}\t"
                   f"{r.size_bytes:,} bytes\tgenerated {r.generated_at:%Y-%m-%d %H:%M} UTC")
    if not stored:
        click.echo(f"no reports stored for tenant '{tenant}' yet: "
                   f"`cleargro report --tenant {tenant} --period 2026-W47 --out FILE` builds one")
