"""Shopify's OAuth token endpoint and the signatures of its install and callback requests.

Every token comes from `POST {base}/admin/oauth/access_token` (`base` from
`endpoints.api_base`: the shop's own https address, or a loopback base in tests), form-encoded,
over the one TLS client context (TLS 1.2+, certificates verified), with redirects refused (a
redirect could carry the client secret elsewhere):

- `exchange_code`: the authorization code grant's last step (the app's OAuth callback); asks
  for an expiring offline token (`expiring=1`: 60 minutes, with a refresh token);
- `refresh`: `grant_type=refresh_token`; Shopify rotates the refresh token on every use;
- `client_credentials`: `grant_type=client_credentials`, for an app of the merchant's own
  organisation; the token lasts about 24 h and has no refresh token.

Errors name the shop and the HTTP status or Shopify's error code (a short identifier), never a
client secret, code or token, nor Shopify's free text (which could echo one). A 401 or 403,
or an OAuth `invalid_grant` / `invalid_client` / `unauthorized_client` / `shop_not_permitted`,
means the credentials themselves were refused: `TokenRejected`, a `CredentialsRejected`, so a
sync that meets it raises the `credentials_invalid` alert.

`verify_hmac` checks the `hmac` query parameter Shopify signs install and callback requests
with (hex HMAC-SHA256 under the client secret), `missing_scopes` what a grant left out.
Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.security.tls import connection_failure, tls_context
from cleargro_pipeline.sources.shopify import documents
from cleargro_pipeline.sources.shopify.endpoints import loopback_endpoint

TOKEN_PATH = "/admin/oauth/access_token"
AUTHORIZE_PATH = "/admin/oauth/authorize"
TIMEOUT_S = 30
MAX_ANSWER_BYTES = 1 << 16
# Everything the connector can read (each document names its own scopes): products and
# variants; inventory items and levels; locations (`Location.name` and the rest need
# read_locations since 2024-07, `id` alone read_inventory); orders with their lines and
# refunds; customers (level 1 of protected customer data: id and order statistics only). An
# install asks for what the tenant's data scope reads (`documents.access_scopes`).
SCOPES = documents.access_scopes(documents.BY_TABLE)
# Orders older than 60 days: only once Shopify approved the app's request for it.
ALL_ORDERS_SCOPE = "read_all_orders"
# OAuth error codes that mean the client or the grant was refused (RFC 6749 5.2, and
# Shopify's answer to a client credentials grant from an app outside the shop's organisation).
REJECTED_CODES = frozenset({"invalid_grant", "invalid_client", "unauthorized_client",
                            "shop_not_permitted"})
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCOPE = re.compile(r"^[a-z_]{1,64}$")


class TokenExchangeFailed(CleargroError):
    """The token endpoint did not hand out a token; names the shop and the status or code."""


class TokenRejected(TokenExchangeFailed, CredentialsRejected):
    """The token endpoint refused the credentials themselves (401/403, invalid_grant, ...):
    asking again cannot help until the merchant reconnects the shop."""


@dataclass(frozen=True)
class ShopToken:
    """What the token endpoint handed out. The token values stay out of `repr` (and so out of
    tracebacks and logs)."""
    access_token: str = field(repr=False)
    scopes: frozenset[str]
    expires_at: datetime | None  # None: a token that does not expire
    refresh_token: str | None = field(default=None, repr=False)


# --- the token endpoint ---------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None  # the 3xx itself surfaces as an HTTPError


def exchange_code(base: str, client_id: str, client_secret: str, code: str, *,
                  expiring: bool = True, ca_file: str | None = None) -> ShopToken:
    """The offline token for an authorization code (single use, from the OAuth callback)."""
    _require(code, "authorization code")
    form = {"client_id": client_id, "client_secret": client_secret, "code": code}
    if expiring:
        form["expiring"] = "1"
    return _request(base, form, "authorization code exchange", ca_file=ca_file)


def refresh(base: str, client_id: str, client_secret: str, refresh_token: str, *,
            ca_file: str | None = None) -> ShopToken:
    """A new expiring offline token, and the refresh token that replaces `refresh_token`."""
    _require(refresh_token, "refresh token")
    return _request(base, {"client_id": client_id, "client_secret": client_secret,
                           "grant_type": "refresh_token", "refresh_token": refresh_token},
                    "token refresh", ca_file=ca_file)


def client_credentials(base: str, client_id: str, client_secret: str, *,
                       ca_file: str | None = None) -> ShopToken:
    """A token for the shop's own organisation's app (about 24 h, no refresh token)."""
    return _request(base, {"client_id": client_id, "client_secret": client_secret,
                           "grant_type": "client_credentials"},
                    "client credentials grant", ca_file=ca_file)


def _require(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise TokenExchangeFailed(f"no {what} to exchange")


def _shop_of(base: str) -> str:
    return urllib.parse.urlsplit(base).netloc or base


def _request(base: str, form: dict[str, str], what: str, *, ca_file: str | None) -> ShopToken:
    shop = _shop_of(base)
    for name in ("client_id", "client_secret"):
        _require(form.get(name, ""), name.replace("_", " "))
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/"):
        raise TokenExchangeFailed(f"{what} for {shop}: not a shop base URL")
    if parts.scheme == "http":
        loopback_endpoint(base)  # plain http only to a loopback fake: the secret goes in the body
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}{TOKEN_PATH}",
        data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Accept": "application/json", "User-Agent": "cleargro-shopify/1"})
    opener = urllib.request.build_opener(
        _NoRedirect, urllib.request.HTTPSHandler(context=tls_context(ca_file)))
    issued = datetime.now(timezone.utc)
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            status, body = response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(MAX_ANSWER_BYTES) or b""
        error.close()
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise TokenExchangeFailed(
            f"{what} for {shop} failed: {connection_failure(error)}") from None
    if status != 200:
        code = _error_code(body)
        detail = f"HTTP {status}" + (f" ({code})" if code else "")
        if status in (401, 403) or code in REJECTED_CODES:
            raise TokenRejected(f"shop {shop} refused the {what}: {detail}; the app was "
                                "uninstalled or its credentials revoked: reconnect the shop")
        raise TokenExchangeFailed(f"{what} for {shop} failed: {detail}")
    return _token(body, shop, what, issued)


def _token(body: bytes, shop: str, what: str, issued: datetime) -> ShopToken:
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise TokenExchangeFailed(f"{what} for {shop}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise TokenExchangeFailed(f"{what} for {shop}: the answer is not a JSON object")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenExchangeFailed(f"{what} for {shop}: the answer holds no access token")
    expires_in = answer.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int)
                                   or expires_in <= 0):
        raise TokenExchangeFailed(f"{what} for {shop}: expires_in is not a positive number "
                                  "of seconds")
    refresh_token = answer.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise TokenExchangeFailed(f"{what} for {shop}: the refresh token is malformed")
    return ShopToken(
        access_token=token, scopes=parse_scopes(answer.get("scope")),
        expires_at=(issued + timedelta(seconds=expires_in)).replace(microsecond=0)
        if expires_in else None,
        refresh_token=refresh_token)


def _error_code(body: bytes) -> str | None:
    """The OAuth `error` (or Shopify's `error_code`) of an error answer, when it is a plain
    identifier: never the description, which is free text."""
    try:
        answer = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    for key in ("error", "error_code"):
        code = answer.get(key)
        if isinstance(code, str) and _ERROR_CODE.match(code):
            return code
    return None


# --- scopes ----------------------------------------------------------------------------------

def parse_scopes(value: Any) -> frozenset[str]:
    """Shopify's comma-separated `scope` (a list is accepted too); unknown shapes are dropped."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(s.strip() for s in items if isinstance(s, str) and _SCOPE.match(s.strip()))


def implied(scopes: Iterable[str]) -> frozenset[str]:
    """`scopes` with what they imply: a `write_X` scope grants `read_X` too (Shopify answers
    the write scope alone), and `unauthenticated_write_X` grants `unauthenticated_read_X`."""
    out = set(scopes)
    for scope in list(out):
        prefix, write, rest = scope.rpartition("write_")
        if write and rest and prefix in ("", "unauthenticated_"):
            out.add(f"{prefix}read_{rest}")
    return frozenset(out)


def missing_scopes(asked: Iterable[str] | str, granted: Iterable[str] | str) -> set[str]:
    """The scopes asked for that the grant does not cover."""
    asked_set = parse_scopes(asked) if isinstance(asked, str) else set(asked)
    granted_set = parse_scopes(granted) if isinstance(granted, str) else frozenset(granted)
    return set(asked_set) - implied(granted_set)


# --- signed install and callback requests ----------------------------------------------------

def _pairs(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        return [(str(k), str(v)) for k, v in params.items()]
    return [(str(k), str(v)) for k, v in params]


def signed_message(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """What Shopify signs: every parameter but `hmac` (and `signature`), `key=value` sorted and
    joined with '&', values decoded; '%' and '&' (and '=' in keys) escaped so no value can
    forge a separator (as the ShopifyAPI library does); repeated `key[]` parameters as
    `key=["a", "b"]`. None when a parameter other than `key[]` is repeated (ambiguous)."""
    singles: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for key, value in _pairs(params):
        if key in ("hmac", "signature"):
            continue
        if key.endswith("[]"):
            lists.setdefault(key[:-2], []).append(value)
        elif key in singles:
            return None
        else:
            singles[key] = value
    encoded = []
    for key, value in [*singles.items(), *((k, json.dumps(v, separators=(", ", ":")))
                                           for k, v in lists.items())]:
        key = key.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
        value = value.replace("%", "%25").replace("&", "%26")
        encoded.append(f"{key}={value}")
    return "&".join(sorted(encoded))


def sign(params: Mapping[str, str] | Iterable[tuple[str, str]], client_secret: str) -> str:
    """The hex `hmac` Shopify would send with `params`."""
    message = signed_message(params)
    if message is None:
        raise ValueError("a parameter is repeated")
    return hmac.new(client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_hmac(query_params: Mapping[str, str] | Iterable[tuple[str, str]],
                client_secret: str) -> bool:
    """Whether the request's `hmac` parameter is Shopify's signature of the other parameters
    under the app's client secret (compared in constant time)."""
    pairs = _pairs(query_params)
    given = [v for k, v in pairs if k == "hmac"]
    message = signed_message(pairs)
    if len(given) != 1 or message is None or not client_secret:
        return False
    expected = hmac.new(client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given[0].strip().lower().encode("ascii", "replace"))
