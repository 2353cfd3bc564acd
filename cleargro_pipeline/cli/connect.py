"""`cleargro connect`: connect a merchant's live source to a tenant.

Credentials arrive on stdin only (never argv, which other users of the machine can read), are
checked against the source before anything is stored, and are sealed in the tenant's secret
store; the source's configuration then names its kind, so `cleargro run` and the daily
schedule sync it.
"""

from __future__ import annotations

import sys

import click

from cleargro_pipeline import tenants
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.security import secret_store
from cleargro_pipeline.sources import shopify
from cleargro_pipeline.sources.shopify.client import ShopifyClient

# The smallest read that proves the token works and may read the catalogue.
CHECK = "query Check { products(first: 1) { edges { node { id } } } }"


@click.group(name="connect")
def connect_group() -> None:
    """Connect a live source (Shopify) to a tenant."""


@connect_group.command(name="shopify")
@click.option("--tenant", required=True)
@click.option("--shop", required=True, metavar="NAME.myshopify.com")
@click.option("--access-token-stdin", is_flag=True,
              help="Read an existing Admin API access token (an admin-created custom app's) "
                   "from stdin.")
def connect_shopify(tenant: str, shop: str, access_token_stdin: bool) -> None:
    """Connect a Shopify shop with an Admin API access token read from stdin."""
    if not access_token_stdin:
        raise click.UsageError("say how the shop is connected: --access-token-stdin")
    shop = request_log.normalise_shop_domain(shop)
    config = tenants.get(tenant).sources.get("shop", {})
    token = sys.stdin.readline().strip()
    if not token:
        raise click.UsageError("no access token on stdin")
    client = ShopifyClient(shop, lambda: token, endpoint=config.get("endpoint"))
    client.query(CHECK, name="connection check")  # refused credentials raise here, nothing stored
    secret_store.put(tenant, shopify.TOKEN_SECRET, token)
    tenants.configure_source(tenant, "shop", {
        **{k: v for k, v in config.items() if k == "endpoint"},
        "kind": "shopify", "shop_domain": shop, "auth": "access_token",
        "api_version": shopify.API_VERSION})
    click.echo(f"shop {shop} connected to '{tenant}' (Admin API {shopify.API_VERSION}); "
               f"`cleargro run --tenant {tenant}` syncs it, and so does the daily schedule")
