"""The Shopify app's OAuth install (authorization code grant, offline token): a merchant
installing the app from their Shopify admin lands on GET /shopify/install, is sent to Shopify's
consent screen, and comes back on GET /shopify/callback, which exchanges the code for a token
and stores it for the tenant that claims the shop. The checks, in order, and what each refusal
answers: `app/README.md`. Every start, success and refusal is an audit entry (reasons, shop
and tenant; never a code, state, cookie or token).
"""

from __future__ import annotations

import hmac
import logging
import time
import urllib.parse
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cleargro_pipeline import tenants
from cleargro_pipeline.app import pages
from cleargro_pipeline.app.config import AppConfig
from cleargro_pipeline.app.installs import PendingInstall
from cleargro_pipeline.controls import scopes
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.security import audit
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.shopify import credentials, endpoints, oauth

logger = logging.getLogger("cleargro_pipeline.app")

INSTALL_PATH = "/shopify/install"
CALLBACK_PATH = "/shopify/callback"
# The browser id of an install in progress. `__Host-`: set by this host only, over https,
# for every path, never by a sibling domain; HttpOnly (no script reads it); SameSite=Lax: sent
# on the top-level GET that brings the merchant back from Shopify, not on cross-site requests.
COOKIE = "__Host-cleargro_shopify_install"
# Shopify's own libraries refuse a signed request whose timestamp is further off than this.
MAX_CLOCK_SKEW_S = 90


class _Refused(Exception):
    def __init__(self, status: int, reason: str, title: str, message: str, *,
                 tenant: str | None = None, shop: str | None = None, **detail: Any):
        super().__init__(reason)
        self.status, self.reason, self.title, self.message = status, reason, title, message
        self.tenant, self.shop, self.detail = tenant, shop, detail


_BAD_LINK = ("Invalid link", "This link was not signed by Shopify. Open the Cleargro app from "
             "your Shopify admin to connect your shop.")
_START_AGAIN = "Start the installation again from your Shopify admin."


async def install(request: Request) -> Response:
    return await run_in_threadpool(_guarded, "install", _install, request.app.state.config,
                                   request.query_params.multi_items(), None)


async def callback(request: Request) -> Response:
    return await run_in_threadpool(_guarded, "oauth", _callback, request.app.state.config,
                                   request.query_params.multi_items(), request.cookies.get(COOKIE))


def _guarded(step: str, handler: Any, config: AppConfig, params: list[tuple[str, str]],
             browser: str | None) -> Response:
    """Run a handler; a refusal becomes its page and an audit entry, anything unexpected a
    generic page (the class is logged, never the message: it could quote a value)."""
    try:
        response = handler(config, params, browser)
    except _Refused as refused:
        audit.append(f"shopify_{step}_refused" if step == "install" else "shopify_oauth_failed",
                     tenant=refused.tenant, reason=refused.reason,
                     **({"shop": refused.shop} if refused.shop else {}), **refused.detail)
        response = pages.page(refused.status, refused.title, refused.message)
    except Exception as exc:  # noqa: BLE001
        logger.error("shopify %s: failed (%s)", step, type(exc).__name__)
        audit.append(f"shopify_{step}_refused" if step == "install" else "shopify_oauth_failed",
                     reason="error", error=type(exc).__name__)
        response = pages.error_page(500)
    if step == "oauth":
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _app(config: AppConfig) -> credentials.ShopifyApp:
    if config.shopify_app is None or config.public_url is None:
        raise _Refused(503, "not_configured", "Not available",
                       "Connecting a shop is not configured on this server yet.")
    return config.shopify_app


def _signed(params: list[tuple[str, str]], app: credentials.ShopifyApp) -> dict[str, str]:
    """The query, once Shopify's signature and timestamp are good."""
    if not oauth.verify_hmac(params, app.client_secret):
        raise _Refused(401, "bad_hmac", *_BAD_LINK)
    query = dict(params)  # no repeated names: verify_hmac refuses them
    try:
        skew = abs(time.time() - int(query.get("timestamp", "")))
    except ValueError:
        skew = None
    if skew is None or skew > MAX_CLOCK_SKEW_S:
        raise _Refused(400, "stale_request", "Expired link", "This link has expired. "
                       + _START_AGAIN)
    return query


def _shop(query: dict[str, str]) -> str:
    shop = (query.get("shop") or "").strip().lower()
    if not endpoints.SHOP_DOMAIN.match(shop):
        raise _Refused(400, "not_a_shop_domain", "Not a Shopify shop",
                       "The shop in this link is not a Shopify shop address (NAME.myshopify.com).")
    return shop


def _tenant(shop: str) -> str:
    try:
        tenant = request_log.tenant_for_shop(shop)
    except request_log.AmbiguousShopDomain:
        raise _Refused(409, "ambiguous_shop", "Shop registered twice",
                       f"The shop {shop} is registered for more than one Cleargro account. "
                       "Please contact Cleargro support.", shop=shop) from None
    if tenant is None:
        raise _Refused(404, "unknown_shop", "Shop not registered",
                       f"The shop {shop} is not registered with Cleargro. Please contact "
                       "Cleargro to set up your account first.", shop=shop)
    return tenant


# --- GET /shopify/install --------------------------------------------------------------------

def _install(config: AppConfig, params: list[tuple[str, str]], _: str | None) -> Response:
    app = _app(config)
    shop = _shop(_signed(params, app))
    tenant = _tenant(shop)
    registered = tenants.get(tenant)
    source = registered.sources.get(credentials.SOURCE) or {}
    base = endpoints.api_base(shop, source.get("endpoint"))
    browser, pending = config.installs.begin(shop=shop, tenant=tenant, base=base,
                                             scopes=_scopes(app, registered))
    query = urllib.parse.urlencode({
        "client_id": app.client_id, "scope": ",".join(pending.scopes),
        "redirect_uri": f"{config.public_url}{CALLBACK_PATH}", "state": pending.state}, safe=",")
    audit.append("shopify_install_started", tenant=tenant, shop=shop, scopes=list(pending.scopes))
    response = RedirectResponse(f"{base}{oauth.AUTHORIZE_PATH}?{query}", status_code=302,
                                headers=pages.SECURITY_HEADERS)
    response.set_cookie(COOKIE, browser, max_age=int(config.installs.ttl_s), path="/",
                        secure=True, httponly=True, samesite="lax")
    return response


def _scopes(app: credentials.ShopifyApp, tenant: tenants.Tenant) -> tuple[str, ...]:
    """Only what the tenant's data scope lets Cleargro read from the shop."""
    scope = scopes.of(tenant)
    readable = [raw.name for raw in contract.tables_of(credentials.SOURCE) if scope.allows_table(raw)]
    asked = app.scopes_for(readable, shopper_level=scope.shopper_level)
    if not asked:
        raise _Refused(403, "out_of_scope", "Not available",
                       "Your Cleargro account is set up not to read your shop's data, so there "
                       "is nothing to connect. Please contact Cleargro if that is not what you "
                       "want.", tenant=tenant.name, shop=_shop_domain(tenant))
    return asked


def _shop_domain(tenant: tenants.Tenant) -> str | None:
    return (tenant.sources.get(credentials.SOURCE) or {}).get("shop_domain")


# --- GET /shopify/callback -------------------------------------------------------------------

def _callback(config: AppConfig, params: list[tuple[str, str]], browser: str | None) -> Response:
    app = _app(config)
    query = _signed(params, app)
    pending = _pending(config, query, browser)
    shop = pending.shop
    code = query.get("code")
    if not code:
        raise _Refused(400, "no_code", "Installation not completed",
                       "Shopify did not send an authorization. " + _START_AGAIN,
                       tenant=pending.tenant, shop=shop)
    try:
        token = oauth.exchange_code(pending.base, app.client_id, app.client_secret, code)
    except oauth.TokenExchangeFailed as error:
        raise _Refused(502, "exchange_failed", "Installation not completed",
                       "Shopify did not hand out access for your shop. " + _START_AGAIN,
                       tenant=pending.tenant, shop=shop, error=type(error).__name__) from None
    missing = sorted(oauth.missing_scopes(pending.scopes, token.scopes))
    if missing:
        raise _Refused(403, "scopes_missing", "Permissions missing",
                       f"Cleargro needs these permissions to read your shop's data, and they "
                       f"were not granted: {', '.join(missing)}. Nothing was stored. "
                       + _START_AGAIN, tenant=pending.tenant, shop=shop, missing=missing)
    if _tenant(shop) != pending.tenant:  # the registry changed during the install
        raise _Refused(409, "tenant_changed", "Installation not completed",
                       "Your Cleargro account changed during the installation. " + _START_AGAIN,
                       tenant=pending.tenant, shop=shop)
    stored = credentials.store(pending.tenant, shop, token, "oauth")
    audit.append("shopify_oauth_connected", tenant=pending.tenant, shop=shop,
                 scopes=stored.get("scopes"), expiring=token.expires_at is not None)
    return pages.page(200, "Connected", f"Your shop {shop} is connected to Cleargro. Its data "
                      "arrives with the next daily sync. You can close this window.")


def _pending(config: AppConfig, query: dict[str, str], browser: str | None) -> PendingInstall:
    """This browser's install in progress, taken (single use), if the callback is its own."""
    pending = config.installs.take(browser)
    if pending is None:
        raise _Refused(400, "no_install_in_progress" if browser else "no_cookie",
                       "Installation not completed",
                       "This page was opened without an installation in progress in this "
                       "browser, or the link was already used. " + _START_AGAIN)
    state = query.get("state") or ""
    if not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise _Refused(400, "state_mismatch" if state else "no_state",
                       "Installation not completed",
                       "This link does not belong to the installation in progress in this "
                       "browser. " + _START_AGAIN, tenant=pending.tenant, shop=pending.shop)
    if pending.expired(config.installs.clock()):
        raise _Refused(400, "state_expired", "Installation not completed",
                       "The installation took too long. " + _START_AGAIN,
                       tenant=pending.tenant, shop=pending.shop)
    shop = (query.get("shop") or "").strip().lower()
    if shop != pending.shop:
        raise _Refused(400, "shop_mismatch", "Installation not completed",
                       "This link names another shop than the installation in progress. "
                       + _START_AGAIN, tenant=pending.tenant, shop=pending.shop)
    return pending


routes = [Route(INSTALL_PATH, install, methods=["GET"]),
          Route(CALLBACK_PATH, callback, methods=["GET"])]
