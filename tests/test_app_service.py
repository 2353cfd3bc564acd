"""The app service (`cleargro serve`): a real uvicorn server on 127.0.0.1 in a thread, the fake
Shopify (tests/fake_shopify.py) as the merchant's shop and Shopify's consent screen, real
encrypted stores. The OAuth install end to end in headless Chromium; every way a callback or an
install is refused; `app/uninstalled`; the health check. (The privacy webhooks on the same
server: tests/test_webhooks.py.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import http.client
import json
import logging
import os
import re
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from cleargro_pipeline import tenants
from cleargro_pipeline.app import shopify as app_shopify
from cleargro_pipeline.app.service import AppServer
from cleargro_pipeline.controls import scopes
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.security import audit, keys, secret_store
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources.shopify import credentials, oauth
from cleargro_pipeline.sources.shopify.client import ShopifyClient
from tests.delivery_servers import free_port

from fake_shopify import FakeShopify

CHROMIUM = Path(os.environ.get("CLEARGRO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECK = "query { products(first: 1) { edges { node { id } } } }"
SHOPS = {"acme": "acme.myshopify.com", "beta": "beta.myshopify.com", "gamma": "gamma.myshopify.com",
         "delta": "delta.myshopify.com"}


def http_get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], str, list[str]]:
    """(status, headers, body, Set-Cookie headers) of one GET with an optional Cookie header,
    no redirect followed."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path,
                     headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read().decode(), response.headers.get_all("Set-Cookie") or [])
    finally:
        conn.close()


class Service:
    """The running service, the fake, and a client speaking raw HTTP to the service."""

    def __init__(self, server: AppServer, fake: FakeShopify, base: str):
        self.server, self.fake, self.base = server, fake, base

    def get(self, url: str, cookie: str | None = None) -> tuple[int, dict[str, str], str, list[str]]:
        return http_get(url, f"{app_shopify.COOKIE}={cookie}" if cookie else None)

    def post_webhook(self, topic: str, body: dict[str, Any], *, secret: str | None = None,
                     shop: str | None = None) -> int:
        raw = json.dumps(body).encode()
        key = (secret or self.fake.client_secret).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=15)
        try:
            conn.request("POST", "/webhooks/shopify", body=raw, headers={
                "Content-Type": "application/json", "X-Shopify-Topic": topic,
                "X-Shopify-Shop-Domain": shop or body.get("myshopify_domain", ""),
                "X-Shopify-Webhook-Id": os.urandom(8).hex(),
                "X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(key, raw, hashlib.sha256).digest()).decode()})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def install_link(self, shop: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
        """What Shopify opens when the merchant installs the app: signed with the app's secret
        (computed here as Shopify documents it, not with the code under test)."""
        params = {"shop": shop, "timestamp": str(timestamp or int(time.time())),
                  "host": base64.b64encode(f"admin.shopify.com/store/{shop}".encode()).decode().rstrip("=")}
        message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["hmac"] = hmac.new((secret or self.fake.client_secret).encode(), message.encode(),
                                  hashlib.sha256).hexdigest()
        return f"{self.base}{app_shopify.INSTALL_PATH}?{urllib.parse.urlencode(params)}"

    def start_install(self, shop: str) -> tuple[str, str]:
        """The install link followed: (the cookie's value, the consent page's URL)."""
        status, headers, _, cookies = self.get(self.install_link(shop))
        assert status == 302, status
        [cookie] = [c for c in cookies if c.startswith(app_shopify.COOKIE + "=")]
        return cookie.split(";")[0].split("=", 1)[1], headers["location"]

    def consent(self, authorize_url: str) -> str:
        """The merchant clicks "Install app": the callback URL it leads to."""
        status, _, body, _ = self.get(authorize_url)
        assert status == 200, body
        return html.unescape(re.search(r'id="install" href="([^"]+)"', body).group(1))

    def install(self, shop: str) -> tuple[int, str]:
        cookie, authorize = self.start_install(shop)
        status, _, body, _ = self.get(self.consent(authorize), cookie)
        return status, body


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("app_service") / "data"
    env = {"CLEARGRO_DATA_DIR": str(data), keys.MASTER_KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
           "CLEARGRO_PRINCIPAL": "pytest"}
    with pytest.MonkeyPatch.context() as patch, FakeShopify(DemoShop(size="small", seed=7)) as fake:
        for name, value in env.items():
            patch.setenv(name, value)
        for tenant, shop in SHOPS.items():
            tenants.add(tenant)
            tenants.configure_source(tenant, "shop", {"shop_domain": shop, "endpoint": fake.url})
        secret_store.put("platform", credentials.PLATFORM_APP, json.dumps(
            {"client_id": fake.client_id, "client_secret": fake.client_secret}))
        port = free_port()
        # `localhost`: a secure context for the browser, so it keeps the Secure cookie over http.
        with AppServer("127.0.0.1", port, public_url=f"http://localhost:{port}") as server:
            yield Service(server, fake, f"http://localhost:{port}")
    audit.verify(data / "audit" / "audit.log")


@pytest.fixture
def svc(service: Service) -> Service:
    service.fake.granted_scopes = None
    service.fake.shop_domain = SHOPS["acme"]
    return service


def shop_credentials(tenant: str) -> list[str]:
    return [n for n in secret_store.names(tenant) if n.startswith("source.shop.")]


def last(action: str) -> dict[str, Any]:
    return [e for e in audit.entries() if e["action"] == action][-1]


def plaintext_files(*needles: str) -> list[str]:
    hits = []
    for file in paths().data.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            hits += [f"{file}" for needle in needles if needle.encode() in content]
    return hits


# --- the install, end to end in a browser -------------------------------------------------------

def test_oauth_install_end_to_end_in_chromium(svc: Service, caplog: pytest.LogCaptureFixture) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    caplog.set_level(logging.INFO)
    seen: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: seen.append(r.url))
            page.goto(svc.install_link(SHOPS["acme"]))
            # Shopify's consent screen (the fake's), on the shop's own address.
            assert page.url.startswith(f"{svc.fake.url}/admin/oauth/authorize?")
            assert page.locator("h1").inner_text() == f"Install app on {SHOPS['acme']}"
            [cookie] = page.context.cookies()
            assert (cookie["name"], cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
                app_shopify.COOKIE, True, True, "Lax")
            page.click("#install")
            page.wait_for_load_state()
            assert page.url.startswith(f"{svc.base}/shopify/callback?")
            assert page.locator("h1").inner_text() == "Connected"
            assert SHOPS["acme"] in page.locator("p").inner_text()
            assert page.context.cookies() == [], "the install's cookie is cleared"
        finally:
            browser.close()

    asked = svc.fake.authorize_requests[-1]
    assert asked["client_id"] == svc.fake.client_id
    assert asked["redirect_uri"] == f"{svc.base}/shopify/callback"
    assert asked["scope"] == ",".join(oauth.SCOPES) and len(asked["state"]) >= 32
    config = tenants.get("acme").sources["shop"]
    assert (config["kind"], config["auth"], config["shop_domain"]) == ("shopify", "oauth", SHOPS["acme"])
    assert config["scopes"] == sorted(oauth.SCOPES) and config["endpoint"] == svc.fake.url
    assert datetime.fromisoformat(config["token_expires_at"]) > datetime.now().astimezone()
    assert sorted(shop_credentials("acme")) == [credentials.ACCESS_TOKEN, credentials.REFRESH_TOKEN]
    token = secret_store.get("acme", credentials.ACCESS_TOKEN)
    refresh = secret_store.get("acme", credentials.REFRESH_TOKEN)
    assert plaintext_files(token, refresh) == [], "tokens are only ever stored sealed"
    # The token works against the shop's GraphQL Admin API.
    client = ShopifyClient(SHOPS["acme"], lambda: credentials.access_token("acme"), endpoint=svc.fake.url)
    assert client.query(CHECK, name="check")["products"]["edges"]
    assert last("shopify_install_started")["tenant"] == "acme"
    connected = last("shopify_oauth_connected")
    assert (connected["tenant"], connected["detail"]["shop"]) == ("acme", SHOPS["acme"])
    # The access log has paths and statuses, never a query (code, state, signature).
    assert "GET /shopify/callback -> 200" in caplog.text
    [callback_url] = [u for u in seen if u.startswith(f"{svc.base}/shopify/callback?")]
    callback = urllib.parse.parse_qs(urllib.parse.urlsplit(callback_url).query)
    for value in (callback["code"][0], callback["state"][0], callback["hmac"][0], token):
        assert value not in caplog.text and value not in json.dumps(audit.entries())


# --- refusals: clear status and page, nothing stored, an audit entry -----------------------------

def test_a_forged_signature_is_refused_and_burns_nothing(svc: Service) -> None:
    svc.fake.shop_domain = SHOPS["beta"]
    status, _, body, cookies = svc.get(svc.install_link(SHOPS["beta"], secret="not-the-app-secret"))
    assert (status, cookies) == (401, []) and "not signed by Shopify" in body
    assert last("shopify_install_refused")["detail"]["reason"] == "bad_hmac"

    cookie, authorize = svc.start_install(SHOPS["beta"])
    callback = svc.consent(authorize)
    forged = re.sub(r"hmac=[0-9a-f]+", "hmac=" + "0" * 64, callback)
    status, _, body, _ = svc.get(forged, cookie)
    assert status == 401 and "not signed by Shopify" in body
    assert last("shopify_oauth_failed")["detail"]["reason"] == "bad_hmac"
    assert shop_credentials("beta") == [] and "kind" not in tenants.get("beta").sources["shop"]
    # The genuine callback still completes: the forgery consumed nothing.
    status, _, body, _ = svc.get(callback, cookie)
    assert status == 200 and tenants.get("beta").sources["shop"]["auth"] == "oauth"


def test_a_replayed_state_is_refused(svc: Service) -> None:
    svc.fake.shop_domain = SHOPS["acme"]
    cookie, authorize = svc.start_install(SHOPS["acme"])
    callback = svc.consent(authorize)
    assert svc.get(callback, cookie)[0] == 200
    stored = secret_store.get("acme", credentials.ACCESS_TOKEN)
    exchanges = svc.fake.token_requests.count("authorization_code")
    status, _, body, _ = svc.get(callback, cookie)
    assert status == 400 and "already used" in body
    assert last("shopify_oauth_failed")["detail"]["reason"] == "no_install_in_progress"
    assert svc.fake.token_requests.count("authorization_code") == exchanges, "no second exchange"
    assert secret_store.get("acme", credentials.ACCESS_TOKEN) == stored


def test_a_callback_without_its_cookie_or_state_is_refused(svc: Service) -> None:
    svc.fake.shop_domain = SHOPS["gamma"]
    cookie, authorize = svc.start_install(SHOPS["gamma"])
    callback = svc.consent(authorize)
    status, _, body, _ = svc.get(callback)  # another browser: no cookie
    assert status == 400 and "without an installation in progress" in body
    assert last("shopify_oauth_failed")["detail"]["reason"] == "no_cookie"
    # The right browser, a link without the state (re-signed, as a forger cannot):
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    del query["state"], query["hmac"]
    query["hmac"] = svc.fake.sign(query)
    status, _, body, cookies = svc.get(f"{svc.base}/shopify/callback?{urllib.parse.urlencode(query)}", cookie)
    assert status == 400 and "does not belong" in body
    assert last("shopify_oauth_failed")["detail"]["reason"] == "no_state"
    assert any(c.startswith(app_shopify.COOKIE + '=""') or "Max-Age=0" in c for c in cookies)
    # Another browser's install: its state does not match this browser's.
    mine, _ = svc.start_install(SHOPS["gamma"])
    assert svc.get(callback, mine)[0] == 400
    assert last("shopify_oauth_failed")["detail"]["reason"] == "state_mismatch"
    assert shop_credentials("gamma") == [] and "kind" not in tenants.get("gamma").sources["shop"]


def test_an_install_left_too_long_is_refused(svc: Service) -> None:
    svc.fake.shop_domain = SHOPS["delta"]
    installs = svc.server.config.installs
    installs.ttl_s = 0.0  # the merchant took longer than the state lives
    try:
        cookie, authorize = svc.start_install(SHOPS["delta"])
    finally:
        installs.ttl_s = 600.0
    status, _, body, _ = svc.get(svc.consent(authorize), cookie)
    assert status == 400 and "took too long" in body
    assert last("shopify_oauth_failed")["detail"]["reason"] == "state_expired"
    assert shop_credentials("delta") == []


@pytest.mark.parametrize("shop, status, reason", [
    ("evil.example.com", 400, "not_a_shop_domain"),
    ("acme.myshopify.com.evil.com", 400, "not_a_shop_domain"),
    ("nobody.myshopify.com", 404, "unknown_shop"),
])
def test_a_foreign_shop_is_refused(svc: Service, shop: str, status: int, reason: str) -> None:
    answer, _, body, cookies = svc.get(svc.install_link(shop))
    assert (answer, cookies) == (status, [])
    assert ("not registered with Cleargro" if status == 404 else "not a Shopify shop") in body
    entry = last("shopify_install_refused")
    assert entry["detail"]["reason"] == reason


def test_a_callback_for_another_shop_is_refused(svc: Service) -> None:
    cookie, authorize = svc.start_install(SHOPS["delta"])
    svc.fake.shop_domain = SHOPS["gamma"]  # Shopify signs a callback for another shop
    status, _, body, _ = svc.get(svc.consent(authorize), cookie)
    assert status == 400 and "another shop" in body
    assert last("shopify_oauth_failed")["detail"]["reason"] == "shop_mismatch"
    assert shop_credentials("delta") == shop_credentials("gamma") == []


def test_too_few_granted_scopes_store_nothing(svc: Service) -> None:
    svc.fake.shop_domain = SHOPS["delta"]
    svc.fake.granted_scopes = {"read_products", "write_orders"}  # write_orders covers read_orders
    status, body = svc.install(SHOPS["delta"])
    assert status == 403
    assert "read_customers, read_inventory, read_locations" in body and "read_orders" not in body
    assert "Nothing was stored" in body
    entry = last("shopify_oauth_failed")
    assert entry["detail"]["reason"] == "scopes_missing"
    assert entry["detail"]["missing"] == ["read_customers", "read_inventory", "read_locations"]
    assert shop_credentials("delta") == [] and "kind" not in tenants.get("delta").sources["shop"]


def test_an_install_asks_only_for_what_the_tenants_data_scope_reads(svc: Service) -> None:
    scopes.configure("delta", {"tables": {"shop": ["products", "product_variants", "orders"]},
                               "shopper_level": False})
    try:
        _, authorize = svc.start_install(SHOPS["delta"])
        asked = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))["scope"]
        assert asked == "read_products,read_inventory,read_orders"  # no read_customers
        scopes.configure("delta", {"sources": ["ga4"]})  # nothing of the shop
        status, _, body, _ = svc.get(svc.install_link(SHOPS["delta"]))
        assert status == 403 and "not to read your shop" in body
        assert last("shopify_install_refused")["detail"]["reason"] == "out_of_scope"
    finally:
        scopes.configure("delta", {})


def test_a_stale_link_is_refused(svc: Service) -> None:
    status, _, body, _ = svc.get(svc.install_link(SHOPS["delta"], timestamp=int(time.time()) - 3600))
    assert status == 400 and "expired" in body
    assert last("shopify_install_refused")["detail"]["reason"] == "stale_request"


# --- app/uninstalled ----------------------------------------------------------------------------

def test_app_uninstalled_disconnects_the_shop(svc: Service) -> None:
    svc.fake.shop_domain = SHOPS["gamma"]
    assert svc.install(SHOPS["gamma"])[0] == 200
    assert shop_credentials("gamma")
    body = {"id": 548380009, "name": "Gamma", "myshopify_domain": SHOPS["gamma"], "domain": "gamma.example"}

    assert svc.post_webhook("app/uninstalled", body, secret="forged-secret") == 401
    assert tenants.get("gamma").sources["shop"]["kind"] == "shopify", "a forgery changes nothing"
    assert last("webhook_rejected")["detail"]["reason"] == "bad_signature"

    assert svc.post_webhook("app/uninstalled", body) == 200
    source = tenants.get("gamma").sources["shop"]
    assert "kind" not in source and source["shop_domain"] == SHOPS["gamma"]
    assert datetime.fromisoformat(source[tenants.CREDENTIALS_REJECTED]).utcoffset().total_seconds() == 0
    assert tenants.rejected_sources(tenants.get("gamma")) == {"shop": source[tenants.CREDENTIALS_REJECTED]}
    assert shop_credentials("gamma") == []
    assert last("shopify_app_uninstalled")["detail"]["outcome"] == "disconnected"
    # Shopify's retry changes nothing.
    assert svc.post_webhook("app/uninstalled", body) == 200
    assert tenants.get("gamma").sources["shop"] == source
    assert last("shopify_app_uninstalled")["detail"]["outcome"] == "already_disconnected"
    # Installing again reconnects it.
    source = tenants.get("gamma").sources["shop"]
    tenants.configure_source("gamma", "shop", {**source, "endpoint": svc.fake.url})
    assert svc.install(SHOPS["gamma"])[0] == 200
    assert tenants.rejected_sources(tenants.get("gamma")) == {}


def test_app_uninstalled_leaves_a_shop_connected_with_its_own_token(svc: Service) -> None:
    tenants.add("own-app")
    tenants.configure_source("own-app", "shop", {"shop_domain": "own-app.myshopify.com"})
    credentials.store("own-app", "own-app.myshopify.com",
                      oauth.ShopToken("shpat_" + "1" * 32, frozenset(), None), "access_token")
    assert svc.post_webhook("app/uninstalled", {"myshopify_domain": "own-app.myshopify.com"}) == 200
    assert tenants.get("own-app").sources["shop"]["auth"] == "access_token"
    assert last("shopify_app_uninstalled")["detail"]["outcome"] == "not_connected_through_the_app"
    assert svc.post_webhook("app/uninstalled", {"myshopify_domain": "stranger.myshopify.com"}) == 200
    assert last("webhook_unmatched_shop")["detail"]["topic"] == "app/uninstalled"


# --- the rest of the service --------------------------------------------------------------------

def test_healthz_and_generic_pages(svc: Service) -> None:
    status, headers, body, _ = svc.get(f"{svc.base}/healthz")
    assert (status, json.loads(body), headers["content-type"]) == (200, {"status": "ok"}, "application/json")
    status, headers, body, _ = svc.get(f"{svc.base}/admin")
    assert status == 404 and "There is nothing" in body
    assert headers["x-frame-options"] == "DENY" and "default-src 'none'" in headers["content-security-policy"]
    assert "server" not in headers, "the server does not advertise itself"


def test_without_the_platform_app_installs_are_not_available(svc: Service) -> None:
    from cleargro_pipeline.app.config import AppConfig

    config = AppConfig(webhook_secret=b"x", shopify_app=None, public_url=None)
    with AppServer("127.0.0.1", 0, config=config) as bare:
        status, _, body, _ = svc.get(f"http://127.0.0.1:{bare.port}{app_shopify.INSTALL_PATH}?shop=x")
    assert status == 503 and "not configured" in body
