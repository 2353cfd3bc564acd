"""`cleargro init`: set up this machine (idempotent)."""

from __future__ import annotations

import click

from cleargro_pipeline import bootstrap


@click.command(name="init")
def init() -> None:
    """Set up this machine (idempotent): local demo master key, DuckDB httpfs, Dagster home, dbt manifest."""
    for what, where in bootstrap.init().items():
        click.echo(f"{what}: {where}")
