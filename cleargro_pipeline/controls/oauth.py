"""Revoking OAuth tokens at the provider (RFC 7009 style), e.g. when a source is disconnected.

`revoke(token)` POSTs `token=<token>` form-encoded to the provider's revocation endpoint over
TLS 1.2+ (Google's by default). 200 means revoked; 400 with `invalid_token` means the token
was already revoked or expired, which is the state we want, so it counts as done. Anything
else raises `RevokeFailed`, whose message names the endpoint's host and the HTTP status or
error class, never the token (nor the provider's free text, which could echo it).
Plain http is refused except to 127.0.0.1 (the tests' fake endpoint). Redirects are refused:
they could move the token elsewhere.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security.tls import connection_failure, tls_context

GOOGLE_REVOKE_ENDPOINT = "https://oauth2.googleapis.com/revoke"
TIMEOUT_S = 15
REVOKED, ALREADY_REVOKED = "revoked", "already_revoked"
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class RevokeFailed(CleargroError):
    """The provider did not confirm the revocation; never carries the token."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


def _check_endpoint(endpoint: str) -> str:
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return parts.hostname
    if parts.scheme == "http" and parts.hostname == "127.0.0.1":
        return parts.hostname
    raise RevokeFailed(f"revocation endpoint must be https:// (http:// only to 127.0.0.1), "
                       f"not {parts.scheme or 'no scheme'}://{parts.hostname or ''}")


def _error_code(body: bytes) -> str | None:
    """The OAuth `error` field of a JSON reply, if it is a plain code (safe to print)."""
    try:
        code = json.loads(body.decode("utf-8", "replace")).get("error")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None


def revoke(token: str, *, endpoint: str = GOOGLE_REVOKE_ENDPOINT, ca_file: str | None = None,
           timeout: float = TIMEOUT_S) -> str:
    """Revoke `token` at `endpoint`; returns "revoked" or "already_revoked"."""
    if not token or not isinstance(token, str):
        raise RevokeFailed("no token to revoke")
    host = _check_endpoint(endpoint)
    body = urllib.parse.urlencode({"token": token}).encode()
    request = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "cleargro-oauth/1"})
    opener = urllib.request.build_opener(
        _NoRedirect, urllib.request.HTTPSHandler(context=tls_context(ca_file)))
    try:
        with opener.open(request, timeout=timeout) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as error:
        status = error.code
        code = _error_code(error.read(65536) or b"")
        error.close()
        if status == 400 and code == "invalid_token":
            return ALREADY_REVOKED
        raise RevokeFailed(f"revocation at {host} failed: HTTP {status}"
                           + (f" ({code})" if code else "")) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise RevokeFailed(f"revocation at {host} failed: {connection_failure(error)}") from None
    if 200 <= status < 300:  # RFC 7009: 200; a 204 from a looser provider means the same
        return REVOKED
    raise RevokeFailed(f"revocation at {host} failed: HTTP {status}")


