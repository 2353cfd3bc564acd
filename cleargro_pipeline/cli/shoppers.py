"""`cleargro shopper`: one shopper's data (erase it, export it, fetch the archive answering a
Shopify data request); each is recorded as a privacy request."""

from __future__ import annotations

from pathlib import Path

import click

from cleargro_pipeline.privacy import shoppers


@click.group(name="shopper")
def shopper_group() -> None:
    """One shopper's data (GDPR; Shopify's customers/redact and customers/data_request)."""


@shopper_group.command(name="erase")
@click.option("--tenant", required=True)
@click.option("--shopper-id", required=True, help="Shopify customer id (digits or gid://shopify/Customer/N).")
def shopper_erase(tenant: str, shopper_id: str) -> None:
    """Remove the shopper from every raw and modelled table, rebuild the marts, rewrite the file."""
    report = shoppers.erase(tenant, shopper_id=shopper_id)  # recorded as a privacy request
    click.echo(f"{report.request_id}: {report.summary()}")


@shopper_group.command(name="export")
@click.option("--tenant", required=True)
@click.option("--shopper-id", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def shopper_export(tenant: str, shopper_id: str, out: Path) -> None:
    """Everything held about the shopper, in an encrypted archive; the key is printed once."""
    path, key_text = shoppers.export(tenant, shopper_id=shopper_id, out=out,
                                     source="cli")  # recorded as a privacy request
    click.echo(f"wrote {path}; open it with `cleargro export-open`. Key (shown once):")
    click.echo(key_text)


@shopper_group.command(name="fetch-export")
@click.option("--tenant", required=True)
@click.option("--request", "request_id", required=True)
def shopper_fetch_export(tenant: str, request_id: str) -> None:
    """The archive answering a Shopify data request, and its key (shown once)."""
    path, key_text = shoppers.retrieve_export(tenant, request_id)
    click.echo(f"archive: {path}; key (shown once):")
    click.echo(key_text)
