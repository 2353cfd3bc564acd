"""`cleargro sql`: one read-only, audited query of a tenant's warehouse for an analyst. A query
DuckDB refuses (a typo, a file read, a write) ends as one line on stderr (see `main`)."""

from __future__ import annotations

import json
import shutil

import click
import polars as pl

from cleargro_pipeline.warehouse import queries


@click.command(name="sql")
@click.option("--tenant", required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.argument("sql")
def sql(tenant: str, fmt: str, sql: str) -> None:
    """Run one read-only query against a tenant's warehouse (audited)."""
    frame = queries.analyst_query(tenant, sql)
    if fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(frame.to_dicts(), default=str, indent=2))
    else:
        width = shutil.get_terminal_size((200, 50)).columns
        with pl.Config(tbl_rows=200, tbl_cols=50, fmt_str_lengths=60, tbl_width_chars=width):
            click.echo(frame)
