"""Connecting a merchant's Google source (GA4 or Google Ads) by consent: `cleargro connect
google` prints a one-time link (signed, 15 minutes) that the merchant opens here.

GET /google/connect?link=...  checks the link (signature, expiry, not used before), keeps the
    consent's state and PKCE verifier server-side under a browser id (cookie), and redirects to
    Google's consent screen (offline access, the source's scope only).
GET /google/callback  takes that entry (single use: a replay finds nothing), checks `state`,
    exchanges the code with the verifier, checks the granted scope, and seals the refresh token
    for the tenant. A consent that granted too little is revoked at Google, and nothing is
    stored.

Every start, success and refusal is an audit entry (reason, tenant, source; never a code,
state, verifier, cookie or token).
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cleargro_pipeline import tenants
from cleargro_pipeline.app import pages
from cleargro_pipeline.app.config import AppConfig
from cleargro_pipeline.controls import oauth as revocation
from cleargro_pipeline.security import audit, signed_links
from cleargro_pipeline.sources import google_oauth
from cleargro_pipeline.sources.google_oauth import GoogleOAuthError

logger = logging.getLogger("cleargro_pipeline.app")

CONNECT_PATH = "/google/connect"
CALLBACK_PATH = "/google/callback"
# The browser id of a consent in progress (`__Host-`, HttpOnly, Secure; Lax: sent on the
# top-level GET that brings the merchant back from Google).
COOKIE = "__Host-cleargro_google_consent"
_ASK_AGAIN = "Ask Cleargro for a new link to connect your account."


@dataclass(frozen=True)
class PendingConsent:
    state: str
    verifier: str = field(repr=False)
    tenant: str
    source: str
    settings: dict[str, Any]
    endpoints: google_oauth.Endpoints
    url: str  # Google's consent screen, with the state and the PKCE challenge
    expires: float

    def expired(self, now: float) -> bool:
        return now >= self.expires


class _Refused(Exception):
    def __init__(self, status: int, reason: str, title: str, message: str, *,
                 tenant: str | None = None, source: str | None = None, **detail: Any):
        super().__init__(reason)
        self.status, self.reason, self.title, self.message = status, reason, title, message
        self.tenant, self.source, self.detail = tenant, source, detail


async def connect(request: Request) -> Response:
    return await run_in_threadpool(_guarded, "connect", _connect, request.app.state.config,
                                   dict(request.query_params), None)


async def callback(request: Request) -> Response:
    return await run_in_threadpool(_guarded, "callback", _callback, request.app.state.config,
                                   dict(request.query_params), request.cookies.get(COOKIE))


def _guarded(step: str, handler: Any, config: AppConfig, query: dict[str, str],
             browser: str | None) -> Response:
    try:
        response = handler(config, query, browser)
    except _Refused as refused:
        audit.append(f"google_{step}_refused", tenant=refused.tenant, source=refused.source,
                     reason=refused.reason, **refused.detail)
        response = pages.page(refused.status, refused.title, refused.message)
    except Exception as exc:  # noqa: BLE001 - the class is logged, never the message
        logger.error("google %s: failed (%s)", step, type(exc).__name__)
        audit.append(f"google_{step}_refused", reason="error", error=type(exc).__name__)
        response = pages.error_page(500)
    if step == "callback":
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _client(config: AppConfig) -> google_oauth.GoogleClient:
    if config.google_client is None or config.public_url is None:
        raise _Refused(503, "not_configured", "Not available",
                       "Connecting a Google account is not configured on this server yet.")
    return config.google_client


def _redirect_uri(config: AppConfig) -> str:
    return f"{config.public_url}{CALLBACK_PATH}"


# --- GET /google/connect ------------------------------------------------------------------------

def _connect(config: AppConfig, query: dict[str, str], _: str | None) -> Response:
    client = _client(config)
    try:
        link = signed_links.verify(query.get("link") or "")
    except signed_links.LinkInvalid as invalid:
        raise _Refused(400, "bad_link", "Invalid link", f"This link cannot be used: {invalid}. "
                       + _ASK_AGAIN) from None
    tenant, source = link.get("tenant"), link.get("source")
    if link.get("purpose") != "google_consent" or source not in google_oauth.SOURCES \
            or not isinstance(tenant, str) or not tenants.exists(tenant):
        raise _Refused(400, "bad_link", "Invalid link", "This link is not a link to connect a "
                       "Google account. " + _ASK_AGAIN)
    if not config.used_links.claim(str(link.get("nonce")), float(link["exp"])):
        raise _Refused(400, "link_used", "Link already used", "This link was already used. "
                       + _ASK_AGAIN, tenant=tenant, source=source)
    try:
        at = google_oauth.endpoints(tenant, source)
    except GoogleOAuthError:
        raise _Refused(500, "bad_endpoint", "Not available", "This account's Google settings "
                       "are not valid. Please contact Cleargro support.", tenant=tenant,
                       source=source) from None
    settings = link.get("settings") if isinstance(link.get("settings"), dict) else {}

    def begin(state: str, expires: float) -> PendingConsent:
        consent = google_oauth.start_consent(client, source, _redirect_uri(config), at, state=state)
        return PendingConsent(consent.state, consent.verifier, tenant, source, settings, at,
                              consent.url, expires)

    browser, pending = config.consents.hold(begin)
    audit.append("google_consent_started", tenant=tenant, source=source)
    response = RedirectResponse(pending.url, status_code=302, headers=pages.SECURITY_HEADERS)
    response.set_cookie(COOKIE, browser, max_age=int(config.consents.ttl_s), path="/",
                        secure=True, httponly=True, samesite="lax")
    return response


# --- GET /google/callback -----------------------------------------------------------------------

def _callback(config: AppConfig, query: dict[str, str], browser: str | None) -> Response:
    client = _client(config)
    pending = _pending(config, query, browser)
    tenant, source = pending.tenant, pending.source
    if query.get("error"):
        error = query["error"] if query["error"].replace("_", "").isalnum() else "error"
        raise _Refused(403, "consent_declined", "Not connected",
                       "Google did not give Cleargro access (the consent was declined or "
                       "cancelled). Nothing was stored. " + _ASK_AGAIN,
                       tenant=tenant, source=source, error=error[:64])
    code = query.get("code")
    if not code:
        raise _Refused(400, "no_code", "Not connected", "Google did not send an authorization. "
                       + _ASK_AGAIN, tenant=tenant, source=source)
    try:
        grant = google_oauth.exchange_code(client, source, _redirect_uri(config),
                                           pending.endpoints, state=pending.state,
                                           verifier=pending.verifier, code=code)
    except google_oauth.ScopeNotGranted as missing:
        _revoke(missing.refresh_token, pending)
        raise _Refused(403, "scopes_missing", "Permissions missing",
                       f"Cleargro needs read access to your {_NAMES[source]} data, and it was "
                       "not granted. Nothing was stored. " + _ASK_AGAIN,
                       tenant=tenant, source=source) from None
    except GoogleOAuthError as error:
        raise _Refused(502, "exchange_failed", "Not connected", "Google did not hand out "
                       "access for your account. " + _ASK_AGAIN, tenant=tenant, source=source,
                       error=type(error).__name__) from None
    if not tenants.exists(tenant):
        _revoke(grant.refresh_token, pending)
        raise _Refused(409, "tenant_gone", "Not connected", "This Cleargro account no longer "
                       "exists. Nothing was stored.", tenant=tenant, source=source)
    google_oauth.store(tenant, source, grant, pending.settings)
    return pages.page(200, "Connected", f"Your {_NAMES[source]} account is connected to "
                      "Cleargro. Its data arrives with the next daily sync. You can close "
                      "this window.")


_NAMES = {"ga4": "Google Analytics", "google_ads": "Google Ads"}


def _pending(config: AppConfig, query: dict[str, str], browser: str | None) -> PendingConsent:
    """This browser's consent in progress, taken (single use), if the callback is its own."""
    pending = config.consents.take(browser)
    if not isinstance(pending, PendingConsent):
        raise _Refused(400, "no_consent_in_progress" if browser else "no_cookie",
                       "Not connected", "This page was opened without a connection in "
                       "progress in this browser, or the link was already used. " + _ASK_AGAIN)
    state = query.get("state") or ""
    if not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise _Refused(400, "state_mismatch" if state else "no_state", "Not connected",
                       "This link does not belong to the connection in progress in this "
                       "browser. " + _ASK_AGAIN, tenant=pending.tenant, source=pending.source)
    if pending.expired(config.consents.clock()):
        raise _Refused(400, "state_expired", "Not connected", "The connection took too long. "
                       + _ASK_AGAIN, tenant=pending.tenant, source=pending.source)
    return pending


def _revoke(refresh_token: str | None, pending: PendingConsent) -> None:
    """A token we will not keep is revoked at once (best effort: it is never stored)."""
    if not refresh_token:
        return
    try:
        revocation.revoke(refresh_token, endpoint=pending.endpoints.revoke)
    except revocation.RevokeFailed as failed:
        logger.warning("google %s: revoking an unused grant failed (%s)", pending.source,
                       type(failed).__name__)


def connect_url(public_url: str, link: str) -> str:
    return f"{public_url}{CONNECT_PATH}?{urllib.parse.urlencode({'link': link})}"


routes = [Route(CONNECT_PATH, connect, methods=["GET"]),
          Route(CALLBACK_PATH, callback, methods=["GET"])]
