"""`cleargro serve`: the app service (Shopify's webhooks, the Shopify app's OAuth install, a
health check) in the foreground."""

from __future__ import annotations

import logging

import click

from cleargro_pipeline.app import service


@click.command(name="serve")
@click.option("--host", default=service.DEFAULT_HOST, show_default=True,
              help="Bind address (put a TLS reverse proxy in front).")
@click.option("--port", default=service.DEFAULT_PORT, show_default=True, type=int)
@click.option("--public-url", envvar="CLEARGRO_PUBLIC_URL", metavar="URL",
              help="The https base URL Shopify reaches this service at (the OAuth callback is "
                   "URL/shopify/callback); without it, installs are refused. "
                   "Env: CLEARGRO_PUBLIC_URL.")
def serve(host: str, port: int, public_url: str | None) -> None:
    """Serve Shopify's webhooks and the Shopify app's install (Ctrl-C to stop).
    The app: `cleargro secrets set platform shopify_app` (JSON on stdin:
    {"client_id": ..., "client_secret": ..., "read_all_orders": false}); a tenant's shop:
    `cleargro tenants configure T --shop-domain NAME.myshopify.com`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    service.serve(host, port, public_url=public_url)
