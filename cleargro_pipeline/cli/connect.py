"""`cleargro connect`: connect a merchant's live source to a tenant.

Credentials arrive on stdin only (never argv, which other users of the machine can read), are
checked against the source before anything is stored, and are sealed in the tenant's secret
store (`sources/shopify/credentials.py`); the source's configuration then names its kind, so
`cleargro run` and the daily schedule sync it.
"""

from __future__ import annotations

import sys

import click

from cleargro_pipeline import tenants
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.sources import shopify
from cleargro_pipeline.sources.shopify import credentials, endpoints, oauth
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
@click.option("--client-credentials", is_flag=True,
              help="Read the client id, then the client secret (two lines) of an app of the "
                   "shop's own organisation from stdin; tokens are requested with them (about "
                   "24 h each) and requested again before they expire.")
def connect_shopify(tenant: str, shop: str, access_token_stdin: bool,
                    client_credentials: bool) -> None:
    """Connect a Shopify shop with credentials read from stdin (merchants installing the
    Cleargro app connect through `cleargro serve` instead)."""
    if access_token_stdin == client_credentials:
        raise click.UsageError("say how the shop is connected: --access-token-stdin or "
                               "--client-credentials")
    shop = request_log.normalise_shop_domain(shop)
    endpoint = (tenants.get(tenant).sources.get("shop") or {}).get("endpoint")
    if access_token_stdin:
        value = sys.stdin.readline().strip()
        if not value:
            raise click.UsageError("no access token on stdin")
        token, auth, client = oauth.ShopToken(value, frozenset(), None), "access_token", {}
    else:
        client_id, client_secret = sys.stdin.readline().strip(), sys.stdin.readline().strip()
        if not client_id or not client_secret:
            raise click.UsageError("expected two lines on stdin: the client id, then the "
                                   "client secret")
        # Refused credentials raise here (naming the shop and Shopify's code), nothing stored.
        token = oauth.client_credentials(endpoints.api_base(shop, endpoint), client_id,
                                         client_secret)
        auth, client = "client_credentials", {"client_id": client_id,
                                              "client_secret": client_secret}
    check = ShopifyClient(shop, lambda: token.access_token, endpoint=endpoint)
    check.query(CHECK, name="connection check")  # refused credentials raise here, nothing stored
    credentials.store(tenant, shop, token, auth, **client)
    expiry = (f"; the token is renewed before it expires ({token.expires_at:%Y-%m-%d %H:%M} UTC)"
              if token.expires_at else "")
    click.echo(f"shop {shop} connected to '{tenant}' (Admin API {shopify.API_VERSION}){expiry}; "
               f"`cleargro run --tenant {tenant}` syncs it, and so does the daily schedule")
