"""`cleargro tenants`: the tenant registry (add, list, show, cancel) and a tenant's settings
(insight rules, alert channels, shop domain, data scope, retention, test endpoints)."""

from __future__ import annotations

import json

import click

from cleargro_pipeline import bootstrap, tenants, warehouse
from cleargro_pipeline.alerts import routing
from cleargro_pipeline.controls import deletion, retention, scopes
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.orchestration.partitions import sync_tenant_partitions
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources import google_oauth
from cleargro_pipeline.sources.google_ads import endpoints as ads_endpoints
from cleargro_pipeline.sources.shopify.endpoints import loopback_endpoint
from cleargro_pipeline.warehouse import queries


@click.group(name="tenants")
def tenants_group() -> None:
    """The tenant registry (configuration only, never customer data)."""


@tenants_group.command(name="add")
@click.argument("name")
@click.option("--demo", "demo_size", type=click.Choice(["small", "medium", "large"]),
              help="Feed every source from the embedded demo shop of this size.")
def tenants_add(name: str, demo_size: str | None) -> None:
    """Register a tenant and create its keys."""
    sources = tenants.demo_sources(demo_size) if demo_size else {}
    tenant = tenants.add(name, sources)
    _register_partitions()
    feeds = ", ".join(tenants.synced_sources(tenant)) or "none; load data with `cleargro import`"
    click.echo(f"added tenant '{tenant.name}' (sources: {feeds})")


def _register_partitions() -> None:
    """Show the tenant in the Dagster UI at once (its partition), not only after a first run."""
    sync_tenant_partitions(bootstrap.dagster_instance())


@tenants_group.command(name="cancel")
@click.argument("name")
@click.option("--reason", required=True, help="Why the merchant left (no customer data).")
def tenants_cancel(name: str, reason: str) -> None:
    """Cancel a tenant: its syncs stop and its deletion is requested (done within 30 days by
    the deletion_requests sensor; `cleargro delete --tenant NAME --now` does it at once)."""
    requested = deletion.request(name, reason, "registry")
    click.echo(f"tenant '{name}' cancelled; deletion {requested.request_id} {requested.status}")


@tenants_group.command(name="list")
def tenants_list() -> None:
    for tenant in tenants.all_tenants():
        click.echo(f"{tenant.name}\t{','.join(sorted(tenants.synced_sources(tenant))) or '-'}\t{tenant.created_at}")


@tenants_group.command(name="show")
@click.argument("name")
def tenants_show(name: str) -> None:
    tenant = tenants.get(name)
    shown = {**tenant.__dict__, "warehouse": str(paths().warehouse(name)),
             "data_scope": scopes.describe(tenant)}
    if "google_ads" in tenants.synced_sources(tenant) and warehouse.exists(name):
        # Read from the warehouse (an audited read): spend is the merchant's, never in tenant.json.
        try:
            shown["google_ads_product_match"] = queries.ads_product_match(name, lock_timeout=5)
        except CleargroError as busy:
            shown["google_ads_product_match"] = f"unavailable: {busy}"
    click.echo(json.dumps(shown, indent=2, default=str))


@tenants_group.command(name="configure")
@click.argument("name")
@click.option("--set", "settings", multiple=True, metavar="SETTING=VALUE",
              help="Override an opportunity or alert setting, e.g. --set target_roas=3.5 (repeatable).")
@click.option("--unset", multiple=True, metavar="SETTING", help="Restore a setting's default.")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="Send alerts to this JSON (Slack-compatible) webhook (repeatable).")
@click.option("--email", "emails", multiple=True, metavar="ADDR",
              help="Send alerts by email (SMTP relay with STARTTLS) to ADDR (repeatable).")
@click.option("--min-severity", type=click.Choice(["info", "warning", "critical"]),
              help="Lowest severity sent to the channels named here (or to all channels).")
@click.option("--digest/--immediate", default=None,
              help="One daily digest instead of a message per alert (channels named here, or all).")
@click.option("--remove-channel", "removed", multiple=True, metavar="ID|TARGET",
              help="Stop sending alerts to a channel.")
@click.option("--shop-domain", metavar="NAME.myshopify.com",
              help="The Shopify shop of this tenant (matches Shopify's privacy webhooks).")
@click.option("--scope", "scope_items", multiple=True, metavar="ITEM",
              help="What we may read (repeatable, in order): all | sources=shop,ga4 | "
                   "<source>=T1,T2 (or <source>=all) | shopper_level=true|false. Data already "
                   "stored beyond it is removed.")
@click.option("--retention-months", metavar="N|all", help="Keep N months of raw history (all: everything).")
@click.option("--endpoint", "endpoints", multiple=True, metavar="SOURCE=URL",
              help="Send a source's API requests to this loopback base URL instead (tests, "
                   "staging): shop=http://127.0.0.1:8080, ga4=URL, google_ads=127.0.0.1:PORT "
                   "(gRPC), google_oauth=URL (Google's authorize, token and revoke endpoints); "
                   "SOURCE= removes it.")
def tenants_configure(name: str, settings: tuple[str, ...], unset: tuple[str, ...],
                      webhooks: tuple[str, ...], emails: tuple[str, ...], min_severity: str | None,
                      digest: bool | None, removed: tuple[str, ...], shop_domain: str | None,
                      scope_items: tuple[str, ...], retention_months: str | None,
                      endpoints: tuple[str, ...]) -> None:
    """Change a tenant's settings; the next run uses them."""
    channels_changed = bool(webhooks or emails or min_severity or digest is not None or removed)
    if channels_changed:
        _configure_alert_channels(name, webhooks, emails, min_severity, digest, removed)
    if shop_domain:
        _configure_shop_domain(name, shop_domain)
    if scope_items:
        _configure_scope(name, scope_items)
    if retention_months is not None:
        _configure_retention(name, retention_months)
    for item in endpoints:
        _configure_endpoint(name, item)
    if settings or unset or not (channels_changed or shop_domain or scope_items or endpoints
                                 or retention_months is not None):
        _configure_insights(name, settings, unset)


def _configure_scope(name: str, items: tuple[str, ...]) -> None:
    configured = scopes.configure(name, scopes.parse_options(items, tenants.get(name).scopes))
    purged = scopes.purge(name)
    for line in scopes.describe(configured):
        click.echo(line)
    if purged.dropped_tables or any(purged.cleared_columns.values()):
        cleared = ", ".join(c for c, n in purged.cleared_columns.items() if n) or "nothing"
        click.echo(f"removed from the warehouse: {', '.join(purged.dropped_tables) or 'no table'}; "
                   f"cleared: {cleared}{'; models rebuilt' if purged.rebuilt else ''}")


def _configure_retention(name: str, text: str) -> None:
    if text.strip().lower() == "all":
        months = None
    else:
        try:
            months = int(text)
        except ValueError:
            raise click.BadParameter("a whole number of months, or 'all'",
                                     param_hint="--retention-months") from None
    configured = retention.configure(name, months)
    click.echo(f"retention: {retention.describe(configured)} (applied by the daily retention job, "
               f"or now with `cleargro retention --tenant {name}`)")


def _configure_shop_domain(name: str, domain: str) -> None:
    domain = request_log.normalise_shop_domain(domain)
    tenants.configure_source(name, "shop", {**tenants.get(name).sources.get("shop", {}),
                                            "shop_domain": domain})
    click.echo(f"shop domain = {domain}")


# --endpoint NAME=URL: the sources whose requests it redirects, and the setting it is stored in.
ENDPOINTS = {"shop": (("shop",), "endpoint"), "ga4": (("ga4",), "endpoint"),
             "google_ads": (("google_ads",), "endpoint"),
             "google_oauth": (google_oauth.SOURCES, google_oauth.ENDPOINT_SETTING)}


def _configure_endpoint(name: str, item: str) -> None:
    target, sep, url = item.partition("=")
    if not sep or target not in ENDPOINTS:
        raise click.BadParameter(f"expected {'|'.join(ENDPOINTS)}=URL, got {item!r}",
                                 param_hint="--endpoint")
    sources, setting = ENDPOINTS[target]
    value = _test_endpoint(target, url) if url else None
    for source in sources:
        config = dict(tenants.get(name).sources.get(source, {}))
        if value:
            config[setting] = value
        else:
            config.pop(setting, None)
        tenants.configure_source(name, source, config)
    click.echo(f"{target} endpoint = {value or 'the provider (default)'}")


def _test_endpoint(target: str, url: str) -> str:
    """A loopback test server only: a base URL, or HOST:PORT for Google Ads' gRPC."""
    if target == "google_ads":
        address = ads_endpoints.endpoint(url)
        if not address.plaintext:
            raise ads_endpoints.EndpointRefused("Google Ads test endpoint: give 127.0.0.1:PORT")
        return address.address
    return loopback_endpoint(url)


def _configure_alert_channels(name, webhooks, emails, min_severity, digest, removed) -> None:  # type: ignore[no-untyped-def]
    routing.configure(name, webhooks=webhooks, emails=emails, min_severity=min_severity,
                      digest=digest, remove=removed)
    for line in routing.describe(name) or ["no alert channels"]:
        click.echo(f"alert channel {line}" if line != "no alert channels" else line)


def _configure_insights(name: str, settings: tuple[str, ...], unset: tuple[str, ...]) -> None:
    values = {}
    for item in settings:
        setting, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected SETTING=VALUE, got {item!r}", param_hint="--set")
        values[setting.strip()] = value.strip()
    tenant = tenants.configure_insights(name, values, unset)
    defaults = tenants.insight_defaults()
    for setting, value in sorted(tenant.insights.items()):
        click.echo(f"{setting} = {value:g} (default {defaults[setting]:g})")
    if not tenant.insights:
        click.echo("all insight settings at their defaults")
