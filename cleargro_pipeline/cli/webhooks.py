"""`cleargro webhooks serve`: the receiver of Shopify's mandatory privacy webhooks."""

from __future__ import annotations

import logging

import click

from cleargro_pipeline.privacy import webhooks


@click.group(name="webhooks")
def webhooks_group() -> None:
    """Shopify's mandatory privacy webhooks."""


@webhooks_group.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address (put a TLS reverse proxy in front).")
@click.option("--port", default=8787, show_default=True, type=int)
def webhooks_serve(host: str, port: int) -> None:
    """Receive customers/data_request, customers/redact and shop/redact (Ctrl-C to stop).
    The app secret: `cleargro secrets set platform shopify_app_secret`; a tenant's shop:
    `cleargro tenants configure T --shop-domain NAME.myshopify.com`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    webhooks.serve(host, port)
