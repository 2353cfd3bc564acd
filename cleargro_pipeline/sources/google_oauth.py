"""Google OAuth for the Google sources (GA4 and Google Ads): consent, sealed refresh tokens,
access tokens that renew themselves.

- **Consent**: authorization code with PKCE (S256) and `state`, offline access
  (`access_type=offline`, `prompt=consent`, so Google hands out a refresh token every time),
  through google-auth-oauthlib's `Flow`. `start_consent` gives the URL to send the merchant to,
  with the state and the code verifier the caller keeps server-side; `exchange_code` trades the
  code (with that verifier) for tokens and checks that the granted scopes cover the source's.
- **Storage**: the refresh token is sealed in the tenant's secret store as
  `source.<ga4|google_ads>.refresh_token` (`cleargro disconnect` revokes and deletes every
  `source.<source>.*`); the source's configuration (`tenant.json`, not secret) records
  `{"kind": source, "auth": "oauth", "scopes": [...], "connected_at"}` and the source's own
  settings (GA4 property, Ads customer ids), keeping any test endpoint.
- **Access tokens**: `token_source(tenant, source)` refreshes with google-auth when the last
  token is about to expire. `invalid_grant` (revoked, expired, unused for six months) raises
  `CredentialsRejected`: the run marks the source rejected (`credentials_invalid`, no retries)
  until the merchant consents again.
- **Endpoints**: Google's, unless the source configuration names a loopback `oauth_endpoint`
  (`cleargro tenants configure T --endpoint google_oauth=http://127.0.0.1:PORT`, tests): then
  `/o/oauth2/auth`, `/token` and `/revoke` under it.

The platform's OAuth client is the platform secret `google_oauth_client`: the client JSON
Google Cloud's console downloads (`{"web": {"client_id", "client_secret", ...}}`), from stdin
(`cleargro secrets set platform google_oauth_client < client.json`). No token, code, verifier
or secret ever appears in an error, a log line or an audit entry.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2 import OAuth2Error

from cleargro_pipeline import tenants
from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.sources.shopify.endpoints import EndpointRefused, loopback_endpoint

SOURCES = ("ga4", "google_ads")
SCOPES = {"ga4": "https://www.googleapis.com/auth/analytics.readonly",
          "google_ads": "https://www.googleapis.com/auth/adwords"}
PLATFORM_CLIENT = "google_oauth_client"
REFRESH_TOKEN = "refresh_token"
ENDPOINT_SETTING = "oauth_endpoint"
GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
RENEW_BEFORE = timedelta(minutes=5)
# Settings `store` writes; the rest of the source's configuration (its endpoints) is kept.
_MANAGED = ("kind", "auth", "scopes", "connected_at", tenants.CREDENTIALS_REJECTED)
_insecure_transport = threading.Lock()


class GoogleOAuthError(CleargroError):
    """Consent or token exchange failed; the message names the step and Google's error code."""


class GoogleClientNotConfigured(CleargroError):
    """The platform secret `google_oauth_client` is missing or not a Google client JSON."""


class ScopeNotGranted(GoogleOAuthError):
    """The consent left out the source's scope. Holds the refresh token Google handed out
    anyway (an attribute, never the message), so the caller can revoke it."""

    def __init__(self, message: str, refresh_token: str | None):
        super().__init__(message)
        self.refresh_token = refresh_token


class SourceNotConnected(CleargroError):
    """The tenant has no Google connection for the source."""


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    revoke: str

    @classmethod
    def at(cls, base: str | None) -> Endpoints:
        """Google's endpoints, or a loopback fake's under `base`."""
        if not base:
            return cls(GOOGLE_AUTHORIZE, GOOGLE_TOKEN, GOOGLE_REVOKE)
        base = loopback_endpoint(base)
        return cls(f"{base}/o/oauth2/auth", f"{base}/token", f"{base}/revoke")

    @property
    def loopback(self) -> bool:
        return not self.token.startswith("https://")


@dataclass(frozen=True)
class GoogleClient:
    """The platform's OAuth client (one for every merchant)."""
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class Consent:
    """A consent in progress: the URL for the merchant, and what the callback must match."""
    url: str
    state: str
    verifier: str = field(repr=False)


@dataclass(frozen=True)
class Grant:
    refresh_token: str = field(repr=False)
    scopes: frozenset[str]


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise GoogleOAuthError(f"unknown Google source {source!r}; sources are {', '.join(SOURCES)}")
    return source


# --- the platform's client ----------------------------------------------------------------------

def platform_client_configured() -> bool:
    return PLATFORM_CLIENT in secret_store.names(secret_store.PLATFORM)


def platform_client(*, purpose: str = "google_oauth") -> GoogleClient:
    try:
        value = secret_store.get(secret_store.PLATFORM, PLATFORM_CLIENT, purpose=purpose)
    except secret_store.SecretMissing:
        raise GoogleClientNotConfigured(
            f"the platform's Google OAuth client is not configured: store the client JSON from "
            f"Google Cloud's console with `cleargro secrets set platform {PLATFORM_CLIENT}` "
            "(on stdin)") from None
    return parse_client(value)


def parse_client(value: str) -> GoogleClient:
    """A Google client JSON (`{"web": {...}}` or `{"installed": {...}}`), or the inner object."""
    try:
        config = json.loads(value)
    except ValueError:
        config = None
    if isinstance(config, dict) and len(config) == 1 and next(iter(config)) in ("web", "installed"):
        config = next(iter(config.values()))
    client_id = config.get("client_id") if isinstance(config, dict) else None
    client_secret = config.get("client_secret") if isinstance(config, dict) else None
    if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str)
            and client_secret):
        raise GoogleClientNotConfigured(
            f"the platform secret '{PLATFORM_CLIENT}' is not a Google OAuth client JSON with a "
            "client_id and a client_secret (download it from Google Cloud's console: "
            "APIs & Services > Credentials > OAuth client > Download JSON)")
    return GoogleClient(client_id, client_secret)


def endpoints(tenant: str, source: str) -> Endpoints:
    config = tenants.get(tenant).sources.get(check_source(source)) or {}
    try:
        return Endpoints.at(config.get(ENDPOINT_SETTING))
    except EndpointRefused as refused:
        raise GoogleOAuthError(f"tenant '{tenant}': {source} OAuth endpoint: {refused}") from None


# --- consent ------------------------------------------------------------------------------------

def start_consent(client: GoogleClient, source: str, redirect_uri: str, at: Endpoints, *,
                  state: str) -> Consent:
    """Where to send the merchant: Google's consent for the source's scope, offline access,
    with `state` and a fresh PKCE verifier (S256 challenge)."""
    flow = _flow(client, source, redirect_uri, at, state=state)
    with _transport(at):
        url, state = flow.authorization_url(access_type="offline", prompt="consent",
                                            include_granted_scopes="false")
    return Consent(url, state, flow.code_verifier)


def exchange_code(client: GoogleClient, source: str, redirect_uri: str, at: Endpoints, *,
                  state: str, verifier: str, code: str) -> Grant:
    """Trade the callback's code (with the consent's verifier) for a refresh token, checking
    that Google granted the source's scope and handed out a refresh token."""
    flow = _flow(client, source, redirect_uri, at, state=state, verifier=verifier)
    try:
        with _transport(at):
            token = flow.fetch_token(code=code)
    except Warning as changed:  # oauthlib: the granted scopes differ from the requested ones
        token = getattr(changed, "token", None) or {}
    except OAuth2Error as error:
        raise GoogleOAuthError(f"Google refused the code exchange ({_safe_code(error.error)})") from None
    except google.auth.exceptions.GoogleAuthError as error:
        raise GoogleOAuthError(f"the code exchange failed ({type(error).__name__})") from None
    return _grant(source, token)


def check_refresh_token(client: GoogleClient, source: str, at: Endpoints,
                        refresh_token: str) -> Grant:
    """An existing refresh token (`--refresh-token-stdin`): one refresh proves it works and
    tells which scopes it carries."""
    credentials = _credentials(client, source, at, refresh_token)
    _refresh(credentials, f"the refresh token for {source}")
    granted = credentials.granted_scopes or credentials.scopes or ()
    return _grant(source, {"refresh_token": refresh_token, "scope": " ".join(granted)})


def _grant(source: str, token: dict[str, Any]) -> Grant:
    scopes = _scopes(token.get("scope"))
    refresh_token = token.get("refresh_token")
    if SCOPES[source] not in scopes:
        raise ScopeNotGranted(
            f"the consent did not grant the scope {source} needs ({SCOPES[source]}); nothing "
            "was stored: the merchant must tick it on Google's consent screen",
            refresh_token if isinstance(refresh_token, str) else None)
    if not isinstance(refresh_token, str) or not refresh_token:
        raise GoogleOAuthError("Google answered without a refresh token (offline access was not "
                               "granted); nothing was stored")
    return Grant(refresh_token, scopes)


def _scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(s for s in value if isinstance(s, str))
    return frozenset()


def _flow(client: GoogleClient, source: str, redirect_uri: str, at: Endpoints, *,
          state: str | None = None, verifier: str | None = None) -> Flow:
    config = {"web": {"client_id": client.client_id, "client_secret": client.client_secret,
                      "auth_uri": at.authorize, "token_uri": at.token}}
    return Flow.from_client_config(config, scopes=[SCOPES[check_source(source)]],
                                   redirect_uri=redirect_uri, state=state,
                                   code_verifier=verifier, autogenerate_code_verifier=True)


class _transport:
    """oauthlib refuses plain http outright (OAUTHLIB_INSECURE_TRANSPORT lifts it for the whole
    process). Plain http is only ever a loopback fake's (`Endpoints.at` refuses anything else),
    so it is lifted for that one call; such calls are serialised while it is."""

    VARIABLE = "OAUTHLIB_INSECURE_TRANSPORT"

    def __init__(self, at: Endpoints):
        self.lift, self.before = at.loopback, None

    def __enter__(self) -> None:
        if self.lift:
            _insecure_transport.acquire()
            self.before = os.environ.get(self.VARIABLE)
            os.environ[self.VARIABLE] = "1"

    def __exit__(self, *exc: Any) -> None:
        if self.lift:
            if self.before is None:
                os.environ.pop(self.VARIABLE, None)
            else:
                os.environ[self.VARIABLE] = self.before
            _insecure_transport.release()


def _safe_code(code: Any) -> str:
    text = str(code or "error")
    return text if text.replace("_", "").isalnum() and len(text) <= 64 else "error"


# --- storing ------------------------------------------------------------------------------------

def store(tenant: str, source: str, grant: Grant, settings: dict[str, Any]) -> dict[str, Any]:
    """Seal the refresh token for the tenant and record the connection (its settings: the GA4
    property, the Ads customer ids); returns the source configuration written. The previous
    token (a reconnection) is replaced only once the new one is sealed."""
    secret_store.put(tenant, _secret(source), grant.refresh_token)
    current = tenants.get(tenant).sources.get(source) or {}
    config = {**{k: v for k, v in current.items() if k not in _MANAGED and k not in settings},
              **settings, "kind": source, "auth": "oauth", "scopes": sorted(grant.scopes),
              "connected_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tenants.configure_source(tenant, source, config)
    audit.append("google_connected", tenant=tenant, source=source, scopes=sorted(grant.scopes))
    return config


def _secret(source: str) -> str:
    return f"source.{check_source(source)}.{REFRESH_TOKEN}"


# --- access tokens for a sync -------------------------------------------------------------------

def token_source(tenant: str, source: str) -> Callable[[], str]:
    """The access token a sync sends: refreshed by google-auth when it is about to expire (the
    refresh token is read, and audited, once per sync). `invalid_grant` raises
    CredentialsRejected."""
    held: dict[str, google.oauth2.credentials.Credentials] = {}

    def token() -> str:
        credentials = held.get("credentials")
        if credentials is None:
            credentials = held["credentials"] = _stored_credentials(tenant, source)
        expiry = credentials.expiry  # naive UTC, google-auth's convention
        if not credentials.token or expiry is None or \
                expiry - RENEW_BEFORE <= datetime.now(timezone.utc).replace(tzinfo=None):
            _refresh(credentials, f"tenant '{tenant}': {source}")
        return credentials.token

    return token


def _stored_credentials(tenant: str, source: str) -> google.oauth2.credentials.Credentials:
    config = tenants.get(tenant).sources.get(check_source(source)) or {}
    if config.get("auth") != "oauth":
        raise SourceNotConnected(f"tenant '{tenant}' has no Google connection for {source}: "
                                 f"`cleargro connect google --tenant {tenant} --source {source}`")
    try:
        refresh_token = secret_store.get(tenant, _secret(source), purpose=f"{source}_sync")
    except secret_store.SecretMissing:
        raise SourceNotConnected(f"tenant '{tenant}': the {source} refresh token is missing; "
                                 "connect the source again") from None
    return _credentials(platform_client(purpose=f"{source}_sync"), source,
                        endpoints(tenant, source), refresh_token)


def _credentials(client: GoogleClient, source: str, at: Endpoints,
                 refresh_token: str) -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(
        token=None, refresh_token=refresh_token, token_uri=at.token, client_id=client.client_id,
        client_secret=client.client_secret, scopes=[SCOPES[source]])


def _refresh(credentials: google.oauth2.credentials.Credentials, what: str) -> None:
    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.RefreshError as error:
        code = _refresh_error_code(error)
        if code in ("invalid_grant", "invalid_client", "unauthorized_client"):
            raise CredentialsRejected(f"{what}: Google refused the refresh token ({code}); the "
                                      "merchant must connect the source again") from None
        raise GoogleOAuthError(f"{what}: the token refresh failed ({code})") from None
    except google.auth.exceptions.TransportError as error:
        raise GoogleOAuthError(f"{what}: the token endpoint could not be reached "
                               f"({type(error).__name__})") from None


def _refresh_error_code(error: google.auth.exceptions.RefreshError) -> str:
    """Google's OAuth error code from a RefreshError (its second argument is the answer)."""
    for arg in error.args[1:]:
        if isinstance(arg, dict) and isinstance(arg.get("error"), str):
            return _safe_code(arg["error"])
    text = str(error.args[0]) if error.args else ""
    return _safe_code(text.split(":", 1)[0]) if ":" in text else "error"

