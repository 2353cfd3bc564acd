"""`cleargro connect`: connect a merchant's live source to a tenant.

Credentials arrive on stdin only (never argv, which other users of the machine can read), are
checked against the source before anything is stored, and are sealed in the tenant's secret
store (`sources/shopify/credentials.py`, `sources/google_oauth.py`); the source's configuration
then names its kind, so `cleargro run` and the daily schedule sync it. A Google source is
usually connected by the merchant's own consent: the command prints a signed one-time link to
the app service (`app/google.py`).
"""

from __future__ import annotations

import sys

import click

from cleargro_pipeline import tenants
from cleargro_pipeline.app import config as app_config
from cleargro_pipeline.app import google as app_google
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.security import audit, signed_links
from cleargro_pipeline.sources import google_oauth, shopify
from cleargro_pipeline.sources.ga4 import endpoints as ga4_endpoints
from cleargro_pipeline.sources.google_ads import endpoints as ads_endpoints
from cleargro_pipeline.sources.shopify import credentials, endpoints, oauth
from cleargro_pipeline.sources.shopify.client import ShopifyClient

# The smallest read that proves the token works and may read the catalogue.
CHECK = "query Check { products(first: 1) { edges { node { id } } } }"


@click.group(name="connect")
def connect_group() -> None:
    """Connect a live source (Shopify, GA4, Google Ads) to a tenant."""


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


# --- Google (GA4, Google Ads) -------------------------------------------------------------------


@connect_group.command(name="google")
@click.option("--tenant", required=True)
@click.option("--source", required=True, type=click.Choice(google_oauth.SOURCES))
@click.option("--property", "property_id", metavar="ID",
              help="GA4: the property's numeric id (Admin > Property details).")
@click.option("--customer", metavar="1234567890", help="Google Ads: the account's customer id "
              "(ten digits, no dashes).")
@click.option("--login-customer", metavar="1234567890", help="Google Ads: the manager account "
              "the access goes through, if any (ten digits).")
@click.option("--history-days", type=click.IntRange(1, 3650), metavar="N",
              help="Days the first sync backfills (default 730, as far as the source has data).")
@click.option("--trailing-days", type=click.IntRange(0, 90), metavar="N",
              help="Days re-read on every sync because the source revises them (default: GA4 3, "
                   "Google Ads 30).")
@click.option("--refresh-token-stdin", is_flag=True,
              help="Connect with an existing refresh token read from stdin (migrations, tests) "
                   "instead of printing a consent link.")
@click.option("--public-url", envvar="CLEARGRO_PUBLIC_URL", metavar="URL",
              help="The https base URL of `cleargro serve` the link points at. "
                   "Env: CLEARGRO_PUBLIC_URL.")
def connect_google(tenant: str, source: str, property_id: str | None, customer: str | None,
                   login_customer: str | None, history_days: int | None,
                   trailing_days: int | None, refresh_token_stdin: bool,
                   public_url: str | None) -> None:
    """Connect a tenant's GA4 property or Google Ads account: print a one-time consent link for
    the merchant (15 minutes; opened on `cleargro serve`), or read a refresh token from stdin."""
    tenants.require(tenant)
    settings = {**_google_settings(source, property_id, customer, login_customer),
                **({"history_days": history_days} if history_days else {}),
                **({"trailing_days": trailing_days} if trailing_days is not None else {})}
    client = google_oauth.platform_client(purpose="connect")
    if refresh_token_stdin:
        value = sys.stdin.readline().strip()
        if not value:
            raise click.UsageError("no refresh token on stdin")
        # A refused token raises here (Google's error code named), nothing stored.
        grant = google_oauth.check_refresh_token(client, source,
                                                 google_oauth.endpoints(tenant, source), value)
        google_oauth.store(tenant, source, grant, settings)
        click.echo(f"{source} connected to '{tenant}'; `cleargro run --tenant {tenant}` syncs it, "
                   "and so does the daily schedule")
        return
    base = app_config.public_url(public_url)
    if base is None:
        raise click.UsageError("say where `cleargro serve` is reached: --public-url URL "
                               "(or CLEARGRO_PUBLIC_URL)")
    link = signed_links.sign({"purpose": "google_consent", "tenant": tenant, "source": source,
                              "settings": settings})
    audit.append("google_consent_link_issued", tenant=tenant, source=source)
    click.echo(f"Send this link to the merchant (valid for {signed_links.TTL_S // 60} minutes, "
               f"once):\n{app_google.connect_url(base, link)}")


def _google_settings(source: str, property_id: str | None, customer: str | None,
                     login_customer: str | None) -> dict[str, str]:
    """The source's own settings, checked as its API takes them."""
    if source == "ga4":
        if customer or login_customer:
            raise click.UsageError("--customer and --login-customer are Google Ads settings")
        try:
            return {"property": ga4_endpoints.valid_property_id(property_id or "")}
        except ga4_endpoints.PropertyIdInvalid as invalid:
            raise click.BadParameter(str(invalid), param_hint="--property") from None
    if property_id:
        raise click.UsageError("--property is a GA4 setting")
    settings = {}
    for key, value, hint in (("customer", customer, "--customer"),
                             ("login_customer", login_customer, "--login-customer")):
        if value is None and key == "login_customer":
            continue
        try:
            settings[key] = ads_endpoints.customer_id(value, hint.lstrip("-").replace("-", " "))
        except ads_endpoints.InvalidCustomerId as invalid:
            raise click.BadParameter(str(invalid), param_hint=hint) from None
    return settings
