"""Where a tenant's Shopify credentials live, and how a sync gets a token that works.

Credentials are sealed in the tenant's secret store, named as every source credential is
(`cleargro disconnect --source shop` deletes every `source.shop.*`):

| secret | held for |
| --- | --- |
| `source.shop.access_token` | every connection |
| `source.shop.refresh_token` | `oauth` with an expiring offline token (rotated by Shopify on every refresh) |
| `source.shop.client_id`, `source.shop.client_secret` | `client_credentials` (the merchant's own organisation's app) |

The shop's source configuration (`tenant.json`, not secret) says how it was connected:
`{"kind": "shopify", "shop_domain", "auth": "access_token" | "oauth" | "client_credentials",
"api_version", "scopes": [...], "token_expires_at": ISO UTC (expiring tokens only), "endpoint"
(loopback, tests)}`.

`access_token(tenant)` is what a sync calls before each request: the stored token, or, when it
expires within 5 minutes, a new one (refreshed for `oauth`, requested again for
`client_credentials`), stored, then returned. Renewals of one tenant are serialised by a file
lock across processes, and whoever waited reads what the first one stored. `store` seals the
new refresh token before anything else, so the old one is only ever replaced by a sealed
successor (Shopify keeps the previous refresh token valid until its replacement is first
used: a crash after the exchange loses nothing). Every store and renewal is audited without
values.

The platform's own Shopify app (the OAuth client of `cleargro serve`) is the platform secret
`shopify_app`: JSON `{"client_id": ..., "client_secret": ..., "read_all_orders": true|false}`
(`cleargro secrets set platform shopify_app < app.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from cleargro_pipeline import tenants
from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources.shopify import API_VERSION, TOKEN_SECRET, documents, endpoints, oauth
from cleargro_pipeline.sources.shopify.oauth import ShopToken

SOURCE = "shop"
PREFIX = "source.shop."
ACCESS_TOKEN = TOKEN_SECRET
REFRESH_TOKEN = PREFIX + "refresh_token"
CLIENT_ID = PREFIX + "client_id"
CLIENT_SECRET = PREFIX + "client_secret"
AUTHS = ("access_token", "oauth", "client_credentials")
RENEW_BEFORE = timedelta(minutes=5)
LOCK_TIMEOUT_S = 2 * oauth.TIMEOUT_S + 10  # one renewal in progress elsewhere, and a margin
PLATFORM_APP = "shopify_app"
# Settings `store` writes; every other setting of the same shop's configuration is kept.
_MANAGED = ("kind", "shop_domain", "auth", "api_version", "scopes", "token_expires_at")


class ShopNotConnected(CleargroError):
    """The tenant has no Shopify shop connected."""


class ShopifyAppNotConfigured(CleargroError):
    """The platform secret `shopify_app` is missing or is not the expected JSON."""


@dataclass(frozen=True)
class ShopifyApp:
    """The platform's Shopify app: the OAuth client merchants install."""
    client_id: str
    client_secret: str = field(repr=False)
    read_all_orders: bool = False  # Shopify approved the app's request for read_all_orders

    @property
    def scopes(self) -> tuple[str, ...]:
        """What an install asks for when the tenant may read everything."""
        return self.scopes_for(documents.BY_TABLE)

    def scopes_for(self, tables: Iterable[str], *, shopper_level: bool = True) -> tuple[str, ...]:
        """What an install asks for when the tenant's data scope reads `tables` of the shop:
        the documents' scopes only, and read_all_orders (when the app has it) with orders."""
        asked = documents.access_scopes(tables, shopper_level=shopper_level)
        orders = self.read_all_orders and "read_orders" in asked
        return asked + ((oauth.ALL_ORDERS_SCOPE,) if orders else ())


def platform_app_configured() -> bool:
    return PLATFORM_APP in secret_store.names(secret_store.PLATFORM)


def platform_app(*, purpose: str = "shopify_app") -> ShopifyApp:
    """The platform's Shopify app client, from the platform secret `shopify_app`."""
    try:
        value = secret_store.get(secret_store.PLATFORM, PLATFORM_APP, purpose=purpose)
    except secret_store.SecretMissing:
        raise ShopifyAppNotConfigured(
            f"the platform's Shopify app is not configured: store its client id and secret "
            f"with `cleargro secrets set platform {PLATFORM_APP}` (JSON on stdin: "
            '{"client_id": ..., "client_secret": ...})') from None
    try:
        config = json.loads(value)
    except ValueError:
        config = None
    client_id = config.get("client_id") if isinstance(config, dict) else None
    client_secret = config.get("client_secret") if isinstance(config, dict) else None
    all_orders = config.get("read_all_orders", False) if isinstance(config, dict) else None
    if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str)
            and client_secret and isinstance(all_orders, bool)):
        raise ShopifyAppNotConfigured(
            f"the platform secret '{PLATFORM_APP}' is not a JSON object with a client_id and "
            'a client_secret (strings) and an optional "read_all_orders" (true or false)')
    return ShopifyApp(client_id, client_secret, all_orders)


# --- storing ---------------------------------------------------------------------------------

def store(tenant: str, shop: str, token: ShopToken, auth: str, *, client_id: str | None = None,
          client_secret: str | None = None) -> dict[str, Any]:
    """Seal the shop's credentials for `tenant` and record how it is connected; returns the
    source configuration written. Reconnecting the same shop keeps its other settings
    (endpoint, bulk_after_days, ...); another shop starts afresh, with the endpoint kept.
    Holds the tenant's token lock: a renewal in progress elsewhere finishes first."""
    with file_lock(_lock_file(tenants.require(tenant)), timeout=LOCK_TIMEOUT_S):
        return _store(tenant, shop, token, auth, client_id=client_id, client_secret=client_secret)


def _store(tenant: str, shop: str, token: ShopToken, auth: str, *, client_id: str | None,
           client_secret: str | None) -> dict[str, Any]:
    if auth not in AUTHS:
        raise ValueError(f"unknown Shopify auth {auth!r}; one of {', '.join(AUTHS)}")
    shop = (shop or "").strip().lower()
    if not endpoints.SHOP_DOMAIN.match(shop):
        raise endpoints.EndpointRefused(f"'{shop}' is not a shop domain (NAME.myshopify.com)")
    if (client_id is None) != (client_secret is None):
        raise ValueError("client_id and client_secret go together")
    stored = set(secret_store.names(tenant))
    if auth == "client_credentials" and client_id is None and not {CLIENT_ID, CLIENT_SECRET} <= stored:
        raise ValueError("a client credentials connection needs its client id and secret")
    current = tenants.get(tenant).sources.get(SOURCE) or {}

    # 1. Seal: the refresh token first (it mints the others), then the token, then the client.
    if token.refresh_token:
        secret_store.put(tenant, REFRESH_TOKEN, token.refresh_token)
    secret_store.put(tenant, ACCESS_TOKEN, token.access_token)
    if client_id is not None and client_secret is not None:
        secret_store.put(tenant, CLIENT_ID, client_id)
        secret_store.put(tenant, CLIENT_SECRET, client_secret)

    # 2. Record how the shop is connected.
    same_shop = current.get("kind") == "shopify" and current.get("shop_domain") == shop
    kept = ({k: v for k, v in current.items() if k not in _MANAGED
             and k != tenants.CREDENTIALS_REJECTED} if same_shop
            else {k: v for k, v in current.items() if k == "endpoint"})
    config = {**kept, "kind": "shopify", "shop_domain": shop, "auth": auth,
              "api_version": API_VERSION}
    if token.scopes:  # unknown for a pasted access token
        config["scopes"] = sorted(token.scopes)
    if token.expires_at is not None:
        config["token_expires_at"] = _iso(token.expires_at)
    tenants.configure_source(tenant, SOURCE, config)

    # 3. Only now drop what the new connection no longer uses.
    keep = {ACCESS_TOKEN}
    if token.refresh_token:
        keep.add(REFRESH_TOKEN)
    if auth == "client_credentials":
        keep |= {CLIENT_ID, CLIENT_SECRET}
    for name in sorted(secret_store.names(tenant)):
        if name.startswith(PREFIX) and name not in keep:
            secret_store.delete(tenant, name)
    audit.append("shopify_credentials_stored", tenant=tenant, shop=shop, auth=auth,
                 scopes=config.get("scopes"), expires_at=config.get("token_expires_at"),
                 refresh_token=bool(token.refresh_token))
    return config


# --- a token that works ----------------------------------------------------------------------

def access_token(tenant: str, *, purpose: str = "sync shop",
                 now: datetime | None = None) -> str:
    """The shop's access token, renewed first if it expires within `RENEW_BEFORE`."""
    config = _shop_config(tenant)
    if _due(config, now):
        with file_lock(_lock_file(tenant), timeout=LOCK_TIMEOUT_S):
            config = _shop_config(tenant)  # another process may have renewed it meanwhile
            if _due(config, now):
                _renew(tenant, config)
    return secret_store.get(tenant, ACCESS_TOKEN, purpose=purpose)


def token_source(tenant: str) -> Callable[[], str]:
    """The token a sync sends with each request: read (and audited) once, and again only when
    it is due for renewal, not once a request."""
    held: dict[str, Any] = {}

    def token() -> str:
        if "value" not in held or _due(held, None):
            held["value"] = access_token(tenant)
            held["token_expires_at"] = _shop_config(tenant).get("token_expires_at")
        return held["value"]

    return token


def _shop_config(tenant: str) -> dict[str, Any]:
    config = tenants.get(tenant).sources.get(SOURCE) or {}
    if config.get("kind") != "shopify":
        raise ShopNotConnected(f"tenant '{tenant}' has no Shopify shop connected: "
                               f"`cleargro connect shopify --tenant {tenant} ...`")
    return config


def _lock_file(tenant: str) -> Path:
    return paths().registry / tenant / "shopify_token.lock"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def expires_at(config: dict[str, Any]) -> datetime | None:
    value = config.get("token_expires_at")
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _due(config: dict[str, Any], now: datetime | None) -> bool:
    expiry = expires_at(config)
    return expiry is not None and expiry - (now or datetime.now(timezone.utc)) <= RENEW_BEFORE


def _renew(tenant: str, config: dict[str, Any]) -> None:
    shop, auth = config["shop_domain"], config.get("auth")
    purpose = "shopify_token_renewal"
    try:
        base = endpoints.api_base(shop, config.get("endpoint"))
        if auth == "oauth":
            try:
                refresh_token = secret_store.get(tenant, REFRESH_TOKEN, purpose=purpose)
            except secret_store.SecretMissing:
                raise CredentialsRejected(
                    f"shop {shop} of tenant '{tenant}': the access token expires and no refresh "
                    "token is stored; reconnect the shop") from None
            app = platform_app(purpose=purpose)
            token, action = oauth.refresh(base, app.client_id, app.client_secret,
                                          refresh_token), "shopify_token_refreshed"
        elif auth == "client_credentials":
            token, action = oauth.client_credentials(
                base, secret_store.get(tenant, CLIENT_ID, purpose=purpose),
                secret_store.get(tenant, CLIENT_SECRET, purpose=purpose)), "shopify_token_requested"
        else:
            raise CredentialsRejected(f"shop {shop} of tenant '{tenant}': the access token "
                                      f"expires and a '{auth}' connection cannot renew it; "
                                      "reconnect the shop")
    except (CleargroError, OSError) as error:
        audit.append("shopify_token_renewal_failed", tenant=tenant, shop=shop, auth=auth,
                     error=type(error).__name__)
        raise
    if not token.scopes:  # an answer without `scope`: the grant did not change
        token = replace(token, scopes=frozenset(config.get("scopes") or ()))
    _store(tenant, shop, token, auth, client_id=None, client_secret=None)  # the lock is held
    audit.append(action, tenant=tenant, shop=shop, auth=auth,
                 expires_at=_iso(token.expires_at) if token.expires_at else None,
                 refresh_token_rotated=bool(token.refresh_token))
