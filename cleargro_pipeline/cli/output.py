"""How the command line prints what several commands show: a tenant's alerts (`cleargro
alerts` and the end of `cleargro demo`)."""

from __future__ import annotations

import click

from cleargro_pipeline.alerts.model import Alert, format_value


def print_alerts(alerts: list[Alert]) -> None:
    if not alerts:
        click.echo("no alerts")
        return
    for a in alerts:
        figures = ("" if a.observed is None else f" observed {format_value(a.observed)}"
                   f" vs expected {format_value(a.expected)}")
        click.echo(f"  {a.for_date}  {a.severity:<8} {a.status:<12} {a.alert_type:<32} "
                   f"{a.entity_id:<24}{figures}")
        click.echo(f"      {a.message}  [{a.alert_id}]")
