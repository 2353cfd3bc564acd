"""Connecting a Google source by consent: `cleargro connect google` prints a signed one-time
link; the app service (a real uvicorn server on 127.0.0.1) starts Google's consent with PKCE and
state; the fake Google (tests/fake_google_oauth.py, real HTTP) checks the verifier against the
challenge; the refresh token is sealed in a real encrypted secret store. End to end in headless
Chromium, then every refusal, the refresh-token path, `invalid_grant`, and revocation on
disconnect."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.parse
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from cleargro_pipeline import tenants
from cleargro_pipeline.app import google as app_google
from cleargro_pipeline.app.service import AppServer
from cleargro_pipeline.cli import cli
from cleargro_pipeline.controls import disconnect
from cleargro_pipeline.errors import CredentialsRejected
from cleargro_pipeline.security import audit, keys, secret_store, signed_links
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources import google_oauth
from tests.delivery_servers import free_port
from test_app_service import CHROMIUM, CHROMIUM_ARGS, http_get

from fake_google_oauth import FakeGoogleOAuth

GA4_SCOPE = google_oauth.SCOPES["ga4"]


class Service:
    def __init__(self, server: AppServer, fake: FakeGoogleOAuth, base: str):
        self.server, self.fake, self.base = server, fake, base

    def get(self, url: str, cookie: str | None = None) -> tuple[int, dict[str, str], str, list[str]]:
        return http_get(url, f"{app_google.COOKIE}={cookie}" if cookie else None)

    def link(self, tenant: str, *args: str) -> str:
        """`cleargro connect google` for a GA4 property: the link it prints."""
        result = CliRunner().invoke(cli, ["connect", "google", "--tenant", tenant, "--source", "ga4",
                                          "--property", "123456789", "--public-url", self.base, *args])
        assert result.exit_code == 0, result.output
        return re.search(r"(http://\S+/google/connect\?link=\S+)", result.output).group(1)

    def start(self, link: str) -> tuple[str, str]:
        """The link opened: (the consent cookie, Google's consent URL)."""
        status, headers, body, cookies = self.get(link)
        assert status == 302, body
        [cookie] = [c for c in cookies if c.startswith(app_google.COOKIE + "=")]
        return cookie.split(";")[0].split("=", 1)[1], headers["location"]

    def consent(self, authorize_url: str, choice: str = "allow") -> str:
        """The merchant clicks Allow (or Cancel) on Google's screen: where it leads."""
        status, _, body, _ = self.get(authorize_url)
        assert status == 200, body
        href = re.search(rf'id="{choice}" href="([^"]+)"', body).group(1)
        return href.replace("&amp;", "&")

    def connect(self, tenant: str) -> tuple[int, str]:
        cookie, authorize = self.start(self.link(tenant))
        status, _, body, _ = self.get(self.consent(authorize), cookie)
        return status, body


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("google_oauth") / "data"
    env = {"CLEARGRO_DATA_DIR": str(data), keys.MASTER_KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
           "CLEARGRO_PRINCIPAL": "pytest"}
    with pytest.MonkeyPatch.context() as patch, FakeGoogleOAuth() as fake:
        for name, value in env.items():
            patch.setenv(name, value)
        secret_store.put("platform", "shopify_app", json.dumps(
            {"client_id": "shopify-client", "client_secret": "shopify-secret"}))
        secret_store.put("platform", google_oauth.PLATFORM_CLIENT, json.dumps(
            {"web": {"client_id": fake.client_id, "client_secret": fake.client_secret,
                     "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                     "token_uri": "https://oauth2.googleapis.com/token"}}))
        port = free_port()
        # `localhost`: a secure context for the browser, so it keeps the Secure cookie over http.
        with AppServer("127.0.0.1", port, public_url=f"http://localhost:{port}") as server:
            yield Service(server, fake, f"http://localhost:{port}")
    audit.verify(data / "audit" / "audit.log")


_count = iter(range(10_000))


@pytest.fixture
def svc(service: Service) -> Service:
    service.fake.granted_scopes, service.fake.offline = None, True
    return service


@pytest.fixture
def merchant(svc: Service) -> str:
    """A new tenant whose Google requests go to the fake."""
    name = f"m{next(_count)}"
    tenants.add(name)
    result = CliRunner().invoke(cli, ["tenants", "configure", name, "--endpoint",
                                      f"google_oauth={svc.fake.url}"])
    assert result.exit_code == 0, result.output
    return name


def refresh_token(tenant: str, source: str = "ga4") -> str:
    return secret_store.get(tenant, f"source.{source}.refresh_token")


def google_credentials(tenant: str) -> list[str]:
    return [n for n in secret_store.names(tenant) if n.startswith(("source.ga4.", "source.google_ads."))]


def last(action: str) -> dict[str, Any]:
    return [e for e in audit.entries() if e["action"] == action][-1]


def plaintext_files(*needles: str) -> list[str]:
    return [str(f) for f in paths().data.rglob("*") if f.is_file()
            for needle in needles if needle.encode() in f.read_bytes()]


# --- the consent, end to end in a browser --------------------------------------------------------

def test_consent_end_to_end_in_chromium(svc: Service, merchant: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    caplog.set_level(logging.INFO)
    link = svc.link(merchant)
    seen: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: seen.append(r.url))
            page.goto(link)
            assert page.url.startswith(f"{svc.fake.url}/o/oauth2/auth?")  # Google's consent
            [cookie] = page.context.cookies()
            assert (cookie["name"], cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
                app_google.COOKIE, True, True, "Lax")
            page.click("#allow")
            page.wait_for_load_state()
            assert page.url.startswith(f"{svc.base}/google/callback?")
            assert page.locator("h1").inner_text() == "Connected"
            assert "Google Analytics" in page.locator("p").inner_text()
            assert page.context.cookies() == [], "the consent's cookie is cleared"
        finally:
            browser.close()

    asked = svc.fake.authorize_requests[-1]
    assert (asked["scope"], asked["access_type"], asked["prompt"]) == (GA4_SCOPE, "offline", "consent")
    assert asked["code_challenge_method"] == "S256" and len(asked["state"]) >= 32
    assert asked["redirect_uri"] == f"{svc.base}/google/callback"
    config = tenants.get(merchant).sources["ga4"]
    assert (config["kind"], config["auth"], config["property"]) == ("ga4", "oauth", "123456789")
    assert config["scopes"] == [GA4_SCOPE] and config["oauth_endpoint"] == svc.fake.url
    token = refresh_token(merchant)
    assert svc.fake.grant_of(token) == GA4_SCOPE
    assert plaintext_files(token) == [], "the refresh token is only ever stored sealed"
    # A sync's access token: refreshed with google-auth, accepted by Google.
    assert svc.fake.accepts(google_oauth.token_source(merchant, "ga4")())
    assert last("google_connected")["tenant"] == merchant
    # Nothing of the flow in the access log or the audit log: paths and statuses only.
    assert "GET /google/callback -> 200" in caplog.text
    [callback_url] = [u for u in seen if u.startswith(f"{svc.base}/google/callback?")]
    callback = urllib.parse.parse_qs(urllib.parse.urlsplit(callback_url).query)
    link_token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["link"][0]
    for value in (callback["code"][0], callback["state"][0], token, link_token):
        assert value not in caplog.text and value not in json.dumps(audit.entries())


# --- refusals: a clear page, nothing stored, an audit entry --------------------------------------

def test_a_link_opens_one_consent_only(svc: Service, merchant: str) -> None:
    link = svc.link(merchant)
    svc.start(link)
    status, _, body, _ = svc.get(link)
    assert status == 400 and "already used" in body
    assert last("google_connect_refused")["detail"]["reason"] == "link_used"


@pytest.mark.parametrize("tamper", ["payload", "signature", "expired", "garbage"])
def test_forged_altered_or_expired_links_are_refused(svc: Service, merchant: str, tamper: str) -> None:
    link = urllib.parse.parse_qs(urllib.parse.urlsplit(svc.link(merchant)).query)["link"][0]
    payload, signature = link.split(".")
    if tamper == "payload":  # another tenant's name, the old signature
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        body["tenant"] = "someone-else"
        link = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=") + "." + signature
    elif tamper == "signature":
        link = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    elif tamper == "expired":
        link = signed_links.sign({"purpose": "google_consent", "tenant": merchant, "source": "ga4",
                                  "settings": {"property": "1"}}, ttl_s=-1)
    else:
        link = "not-a-link"
    status, _, body, cookies = svc.get(app_google.connect_url(svc.base, link))
    assert status == 400 and cookies == []
    assert ("expired" in body) if tamper == "expired" else ("cannot be used" in body)
    assert last("google_connect_refused")["detail"]["reason"] == "bad_link"


def test_a_callback_needs_its_cookie_and_its_state(svc: Service, merchant: str) -> None:
    cookie, authorize = svc.start(svc.link(merchant))
    callback = svc.consent(authorize)
    status, _, body, _ = svc.get(callback)  # another browser: no cookie
    assert status == 400 and last("google_callback_refused")["detail"]["reason"] == "no_cookie"
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    status, _, body, _ = svc.get(forged, cookie)
    assert status == 400 and last("google_callback_refused")["detail"]["reason"] == "state_mismatch"
    status, _, body, _ = svc.get(callback, cookie)  # the entry was taken: single use
    assert status == 400 and last("google_callback_refused")["detail"]["reason"] == "no_consent_in_progress"
    assert google_credentials(merchant) == []


def test_the_verifier_must_match_the_challenge(svc: Service) -> None:
    client = google_oauth.platform_client()
    at = google_oauth.Endpoints.at(svc.fake.url)
    consent = google_oauth.start_consent(client, "ga4", "https://app.test/cb", at, state="s" * 32)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(consent.url).query))
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        svc.consent(consent.url)).query))["code"]
    assert query["code_challenge_method"] == "S256"
    with pytest.raises(google_oauth.GoogleOAuthError, match=r"invalid_grant"):
        google_oauth.exchange_code(client, "ga4", "https://app.test/cb", at, state=consent.state,
                                   verifier="x" * 64, code=code)


def test_too_little_granted_stores_nothing_and_revokes_the_grant(svc: Service, merchant: str) -> None:
    svc.fake.granted_scopes = {"openid"}
    revoked = len(svc.fake.revoked)
    status, body = svc.connect(merchant)
    assert status == 403 and "Permissions missing" in body
    assert google_credentials(merchant) == [] and "ga4" not in tenants.synced_sources(tenants.get(merchant))
    assert len(svc.fake.revoked) == revoked + 1, "the grant Google handed out is revoked at once"
    assert last("google_callback_refused")["detail"]["reason"] == "scopes_missing"


def test_a_declined_consent_stores_nothing(svc: Service, merchant: str) -> None:
    cookie, authorize = svc.start(svc.link(merchant))
    status, _, body, _ = svc.get(svc.consent(authorize, "deny"), cookie)
    assert status == 403 and "declined" in body
    assert google_credentials(merchant) == []
    assert last("google_callback_refused")["detail"]["error"] == "access_denied"


def test_without_offline_access_nothing_is_stored(svc: Service, merchant: str) -> None:
    svc.fake.offline = False
    status, body = svc.connect(merchant)
    assert status == 502 and google_credentials(merchant) == []


# --- a refresh token from stdin, expiry of the grant, disconnect ----------------------------------

def connect_with_refresh_token(svc: Service, tenant: str, scopes: str = GA4_SCOPE) -> str:
    token = svc.fake.issue_refresh_token(scopes)
    result = CliRunner().invoke(cli, ["connect", "google", "--tenant", tenant, "--source", "ga4",
                                      "--property", "987654321", "--refresh-token-stdin"],
                                input=token + "\n")
    assert result.exit_code == 0, result.output
    assert token not in result.output
    return token


def test_refresh_token_from_stdin_connects_and_invalid_grant_rejects(svc: Service, merchant: str) -> None:
    token = connect_with_refresh_token(svc, merchant)
    assert refresh_token(merchant) == token
    assert tenants.get(merchant).sources["ga4"]["property"] == "987654321"
    access = google_oauth.token_source(merchant, "ga4")
    assert svc.fake.accepts(access())
    svc.fake.revoke_all()  # the merchant removed Cleargro's access in their Google account
    with pytest.raises(CredentialsRejected, match="invalid_grant") as rejected:
        google_oauth.token_source(merchant, "ga4")()
    assert token not in str(rejected.value)


def test_a_refresh_token_without_the_scope_is_refused(svc: Service, merchant: str) -> None:
    token = svc.fake.issue_refresh_token("https://www.googleapis.com/auth/adwords")
    result = CliRunner().invoke(cli, ["connect", "google", "--tenant", merchant, "--source", "ga4",
                                      "--property", "987654321", "--refresh-token-stdin"],
                                input=token + "\n")
    assert result.exit_code != 0 and "did not grant" in str(result.exception)
    assert google_credentials(merchant) == []


def test_disconnect_revokes_at_the_tenants_google(svc: Service, merchant: str) -> None:
    token = connect_with_refresh_token(svc, merchant)
    report = disconnect.disconnect(merchant, "ga4")
    assert report.revoked == ["source.ga4.refresh_token"] and svc.fake.grant_of(token) is None
    assert google_credentials(merchant) == []


@pytest.mark.parametrize("args, message", [
    (["--property", "12ab"], "property's number"),
    (["--customer", "123-456-7890"], "--customer and --login-customer are Google Ads settings"),
])
def test_ga4_settings_are_validated(svc: Service, merchant: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["connect", "google", "--tenant", merchant, "--source", "ga4",
                                      *args, "--public-url", svc.base])
    assert result.exit_code != 0 and message in result.output


def test_ads_customer_ids_are_ten_digits(svc: Service, merchant: str) -> None:
    base = ["connect", "google", "--tenant", merchant, "--source", "google_ads", "--public-url", svc.base]
    assert "has dashes" in CliRunner().invoke(cli, [*base, "--customer", "123-456-7890"]).output
    assert "ten digits" in CliRunner().invoke(cli, [*base, "--customer", "1234567890",
                                                    "--login-customer", "98765"]).output
    result = CliRunner().invoke(cli, [*base, "--customer", "1234567890", "--login-customer", "9876543210"])
    assert result.exit_code == 0, result.output
    link = urllib.parse.parse_qs(urllib.parse.urlsplit(re.search(r"(http://\S+)", result.output)
                                                       .group(1)).query)["link"][0]
    assert signed_links.verify(link)["settings"] == {"customer": "1234567890",
                                                     "login_customer": "9876543210"}


def test_only_a_loopback_google_endpoint_is_accepted(svc: Service, merchant: str) -> None:
    result = CliRunner().invoke(cli, ["tenants", "configure", merchant, "--endpoint",
                                      "google_oauth=https://evil.example.com"])
    assert result.exit_code != 0 and "loopback" in str(result.exception)
    assert tenants.get(merchant).sources["ga4"]["oauth_endpoint"] == svc.fake.url


def test_the_client_json_is_checked() -> None:
    inner = {"client_id": "id", "client_secret": "secret"}
    assert google_oauth.parse_client(json.dumps({"installed": inner})).client_id == "id"
    assert google_oauth.parse_client(json.dumps(inner)).client_secret == "secret"
    with pytest.raises(google_oauth.GoogleClientNotConfigured, match="client_id and a client_secret"):
        google_oauth.parse_client('{"web": {"client_id": "id"}}')
    with pytest.raises(google_oauth.GoogleClientNotConfigured):
        google_oauth.parse_client("not json")
