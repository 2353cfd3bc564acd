"""Google's OAuth 2.0 endpoints on 127.0.0.1, for the tests: what a client sees of
accounts.google.com and oauth2.googleapis.com, under one base URL.

- GET  /o/oauth2/auth  the consent screen: checks the client, `response_type=code`, the
  redirect URI, a `state`, a PKCE challenge with `code_challenge_method=S256`, and
  `access_type=offline`; answers a page whose "Allow" link leads back to the redirect URI with
  `code`, `scope` and `state` (Google's query) and whose "Cancel" link with
  `error=access_denied`. `granted_scopes` narrows what "Allow" grants (granular consent).
- POST /token  `authorization_code` (the code once, the same redirect URI, and the verifier
  whose S256 hash is the challenge, else `invalid_grant`) and `refresh_token` grants, client
  authenticated by HTTP Basic or in the body (`invalid_client` otherwise), JSON answers as
  Google's: `{"access_token", "expires_in", "refresh_token", "scope", "token_type"}`, errors
  `{"error", "error_description"}` with 400 (401 for the client).
- POST /revoke  `token=` (a refresh token revokes its access tokens too): 200, or 400
  `invalid_token` for one it does not know or revoked already.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scopes: str
    used: bool = False


@dataclass
class _Grant:
    scopes: str
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


class FakeGoogleOAuth:
    def __init__(self, *, client_id: str = "fake-client.apps.googleusercontent.com",
                 client_secret: str = "fake-google-secret", access_token: str | None = None):
        self.client_id, self.client_secret = client_id, client_secret
        # One access token for every grant (the fake GA4 and Google Ads accept one token);
        # None: a new random one each time.
        self.access_token = access_token
        self.granted_scopes: set[str] | None = None  # None: what the consent asked for
        self.offline = True  # False: no refresh token (as without access_type=offline)
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[str] = []  # grant types, in order
        self.revoked: list[str] = []
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}  # refresh token -> grant
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGoogleOAuth:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what tests set up and look at ---------------------------------------------------------

    def issue_refresh_token(self, scopes: str) -> str:
        """A refresh token as an earlier consent would have handed out."""
        token = "1//" + secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = _Grant(scopes)
        return token

    def revoke_all(self) -> None:
        """The merchant removes the app's access in their Google account."""
        with self._lock:
            for grant in self._grants.values():
                grant.revoked = True

    def accepts(self, access_token: str) -> bool:
        with self._lock:
            return any(access_token in g.access_tokens and not g.revoked
                       for g in self._grants.values())

    def grant_of(self, refresh_token: str) -> str | None:
        with self._lock:
            grant = self._grants.get(refresh_token)
            return None if grant is None or grant.revoked else grant.scopes

    # --- the endpoints -------------------------------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> tuple[int, str, str]:
        self.authorize_requests.append(query)
        problems = [name for name, ok in (
            ("client_id", query.get("client_id") == self.client_id),
            ("response_type", query.get("response_type") == "code"),
            ("redirect_uri", query.get("redirect_uri", "").startswith(("http://", "https://"))),
            ("state", bool(query.get("state"))),
            ("code_challenge", len(query.get("code_challenge", "")) == 43),
            ("code_challenge_method", query.get("code_challenge_method") == "S256"),
            ("access_type", query.get("access_type") == "offline"),
            ("scope", bool(query.get("scope")))) if not ok]
        if problems:
            return 400, "text/html", f"<p>Error 400: invalid_request ({', '.join(problems)})</p>"
        asked = query["scope"].split()
        granted = [s for s in asked if self.granted_scopes is None or s in self.granted_scopes]
        code = "4/" + secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(query["client_id"], query["redirect_uri"],
                                      query["code_challenge"], " ".join(granted))
        back = query["redirect_uri"]
        allow = back + "?" + urllib.parse.urlencode(
            {"state": query["state"], "code": code, "scope": " ".join(granted)})
        deny = back + "?" + urllib.parse.urlencode({"error": "access_denied", "state": query["state"]})
        page = (f"<html><body><h1>Cleargro wants to access your Google Account</h1>"
                f"<p>{html.escape(' '.join(asked))}</p>"
                f'<a id="allow" href="{html.escape(allow)}">Allow</a> '
                f'<a id="deny" href="{html.escape(deny)}">Cancel</a></body></html>')
        return 200, "text/html", page

    def _token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        grant_type = form.get("grant_type", "")
        self.token_requests.append(grant_type)
        if grant_type == "authorization_code":
            return self._exchange(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + grant_type[:40]}

    def _exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            code = self._codes.get(form.get("code", ""))
            if code is None or code.used:
                return 400, {"error": "invalid_grant", "error_description": "Malformed auth code."}
            code.used = True
            if form.get("redirect_uri") != code.redirect_uri:
                return 400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
            verifier = form.get("code_verifier", "")
            if not verifier:
                return 400, {"error": "invalid_grant", "error_description": "Missing code verifier."}
            if _s256(verifier) != code.challenge:
                return 400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
            access = self._new_access_token()
            answer = {"access_token": access, "expires_in": 3599, "scope": code.scopes,
                      "token_type": "Bearer"}
            if self.offline:
                refresh = "1//" + secrets.token_urlsafe(32)
                self._grants[refresh] = _Grant(code.scopes, {access})
                answer["refresh_token"] = refresh
            return 200, answer

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self._grants.get(form.get("refresh_token", ""))
            if grant is None or grant.revoked:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            access = self._new_access_token()
            grant.access_tokens.add(access)
            return 200, {"access_token": access, "expires_in": 3599, "scope": grant.scopes,
                         "token_type": "Bearer"}

    def _new_access_token(self) -> str:
        return self.access_token or "ya29." + secrets.token_urlsafe(32)

    def _revoke(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form.get("token", "")
        with self._lock:
            grant = self._grants.get(token) or next(
                (g for g in self._grants.values() if token in g.access_tokens), None)
            if grant is None or grant.revoked:
                return 400, {"error": "invalid_token", "error_description": "Token expired or revoked"}
            grant.revoked = True
            self.revoked.append(token)
            return 200, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                if parts.path != "/o/oauth2/auth":
                    return self._send(404, "text/plain", "Not Found")
                query = dict(urllib.parse.parse_qsl(parts.query))
                self._send(*fake._authorize(query))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                path = urllib.parse.urlsplit(self.path).path
                if path == "/token":
                    status, body = fake._token(form, _basic(self.headers.get("Authorization")))
                elif path == "/revoke":
                    status, body = fake._revoke(form)
                else:
                    return self._send(404, "text/plain", "Not Found")
                self._send(status, "application/json; charset=utf-8", json.dumps(body))

            def _send(self, status: int, content_type: str, body: str) -> None:
                raw = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(raw)

        return Handler


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return urllib.parse.unquote(user), urllib.parse.unquote(password)
