"""`cleargro export` and `cleargro export-open`: every raw table and mart in an encrypted
archive whose key is printed once, and opening one on the requester's side."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cleargro_pipeline.controls import export


@click.command(name="export")
@click.option("--tenant", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The encrypted archive to write (never overwritten).")
def export_(tenant: str, out: Path) -> None:
    """Every raw table and mart as Parquet with a manifest, in an encrypted archive whose key
    is printed once, here; the archive is deleted after 7 days. Audited."""
    result = export.export(tenant, out)
    click.echo(f"wrote {result.path}: {result.tables} tables, {result.rows:,} rows, "
               f"{result.bytes:,} bytes; expires {result.expires_at:%Y-%m-%d %H:%M} UTC")
    click.echo("Archive key (shown once, stored nowhere; give it to the requester separately):")
    click.echo(result.key_text)


@click.command(name="export-open")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new folder for the decrypted Parquet files and manifest.")
def export_open(archive: Path, dest: Path) -> None:
    """Decrypt an export (the requester's side); the key is read hidden or from stdin."""
    key = (click.prompt("archive key", hide_input=True) if sys.stdin.isatty()
           else sys.stdin.read().strip())
    files = export.decrypt(archive, key, dest)
    click.echo(f"{len(files)} files in {dest}")
