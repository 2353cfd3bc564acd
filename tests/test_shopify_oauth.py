"""Shopify's token endpoint and a tenant's Shopify credentials, over real HTTP against the fake
Shopify (tests/fake_shopify.py) with real encrypted secret stores: the signatures Shopify puts
on install and callback links, code exchange, expiring offline tokens refreshed (and rotated)
before they expire, client credentials requested again, and `cleargro connect shopify`."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from cleargro_pipeline import tenants
from cleargro_pipeline.cli import cli
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.errors import CredentialsRejected
from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources.shopify import credentials, oauth
from cleargro_pipeline.sources.shopify.client import ShopifyClient

from fake_shopify import FakeShopify

SHOP = "cleargro-demo.myshopify.com"
TOKEN = "shpat_" + "7" * 32
CHECK = "query { products(first: 1) { edges { node { id } } } }"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeShopify]:
    with FakeShopify(DemoShop(size="small", seed=7), token=TOKEN) as server:
        yield server


@pytest.fixture
def shop_tenant(tenant: str, fake: FakeShopify) -> str:
    """Tenant 'acme' whose shop requests go to the fake, and the platform's app set up."""
    fake.granted_scopes, fake.expiring_tokens, fake.clock = None, False, time.time
    fake.client_credentials_allowed = True
    fake.fail_next_token()
    fake.token_requests.clear()
    tenants.configure_source(tenant, "shop", {"shop_domain": SHOP, "endpoint": fake.url})
    secret_store.put("platform", credentials.PLATFORM_APP, json.dumps(
        {"client_id": fake.client_id, "client_secret": fake.client_secret}))
    return tenant


def works(fake: FakeShopify, token: str) -> bool:
    return fake.accepts(token)


def actions(name: str) -> list[dict[str, Any]]:
    return [e for e in audit.entries() if e["action"] == name]


def authorize(fake: FakeShopify, scopes: tuple[str, ...] = oauth.SCOPES) -> str:
    """A code, as the merchant's consent hands it to the app's callback."""
    query = f"client_id={fake.client_id}&scope={','.join(scopes)}&redirect_uri=https://app.test/cb&state=s1"
    with urllib.request.urlopen(f"{fake.url}/admin/oauth/authorize?{query}", timeout=10) as page:
        link = re.search(r'id="install" href="([^"]+)"', page.read().decode()).group(1)
    return re.search(r"code=([^&]+)", link).group(1)


def age(tenant: str, left: timedelta) -> None:
    """Make the stored token expire `left` from now, as if it had been issued a while ago."""
    config = tenants.get(tenant).sources["shop"]
    moment = datetime.now(timezone.utc) + left
    tenants.configure_source(tenant, "shop", {**config, "token_expires_at": moment.isoformat()})


def connect_oauth(tenant: str, fake: FakeShopify) -> oauth.ShopToken:
    token = oauth.exchange_code(fake.url, fake.client_id, fake.client_secret, authorize(fake))
    credentials.store(tenant, SHOP, token, "oauth")
    return token


# --- signatures and scopes ---------------------------------------------------------------------

def test_hmac_of_shopifys_own_examples() -> None:
    # The examples of Shopify's OAuth documentation (secret "hush"), as its libraries test them.
    callback = [("code", "0907a61c0c8d55e99db179b68161bc00"), ("shop", "some-shop.myshopify.com"),
                ("state", "0.6784241404160823"), ("timestamp", "1337178173"),
                ("hmac", "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf")]
    assert oauth.verify_hmac(callback, "hush")
    assert oauth.verify_hmac(dict(reversed(callback)), "hush"), "order does not matter"
    assert oauth.verify_hmac({"code": "0907a61c0c8d55e99db179b68161bc00",
                              "shop": "some-shop.myshopify.com", "timestamp": "1337178173",
                              "hmac": "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"},
                             "hush")
    assert oauth.verify_hmac([*callback, ("signature", "ignored")], "hush")
    assert not oauth.verify_hmac(callback, "hush!"), "another secret"
    tampered = [(k, "other-shop.myshopify.com" if k == "shop" else v) for k, v in callback]
    assert not oauth.verify_hmac(tampered, "hush")
    assert not oauth.verify_hmac([p for p in callback if p[0] != "hmac"], "hush"), "unsigned"
    assert not oauth.verify_hmac([*callback, ("shop", "some-shop.myshopify.com")], "hush"), \
        "a repeated parameter is ambiguous"
    # A value cannot smuggle a separator into the signed text.
    assert oauth.signed_message({"a": "1&b=2"}) != oauth.signed_message({"a": "1", "b": "2"})
    assert oauth.sign(dict(callback), "hush") == callback[-1][1]


def test_missing_scopes_know_that_write_implies_read() -> None:
    asked = ("read_products", "read_orders", "read_all_orders")
    assert oauth.missing_scopes(asked, "write_products,read_orders,read_all_orders") == set()
    assert oauth.missing_scopes(asked, {"read_products"}) == {"read_orders", "read_all_orders"}
    assert oauth.missing_scopes("read_orders", "write_products") == {"read_orders"}
    assert oauth.missing_scopes(["unauthenticated_read_checkouts"],
                                ["unauthenticated_write_checkouts"]) == set()


# --- the token endpoint ------------------------------------------------------------------------

def test_code_exchange_gives_an_expiring_token_that_works(fake: FakeShopify, shop_tenant: str) -> None:
    code = authorize(fake)
    token = oauth.exchange_code(fake.url, fake.client_id, fake.client_secret, code)
    assert token.scopes == frozenset(oauth.SCOPES) and token.refresh_token
    assert timedelta(minutes=59) < token.expires_at - datetime.now(timezone.utc) <= timedelta(hours=1)
    assert works(fake, token.access_token)
    assert token.access_token not in repr(token) and token.refresh_token not in repr(token)
    # A code works once; its second use is a failed exchange, not refused credentials.
    with pytest.raises(oauth.TokenExchangeFailed, match="HTTP 400") as used:
        oauth.exchange_code(fake.url, fake.client_id, fake.client_secret, code)
    assert not isinstance(used.value, CredentialsRejected) and code not in str(used.value)
    # A wrong client secret is refused credentials, and never quoted.
    with pytest.raises(CredentialsRejected, match="HTTP 401") as refused:
        oauth.exchange_code(fake.url, fake.client_id, "wrong-secret", authorize(fake))
    assert "127.0.0.1" in str(refused.value) and "wrong-secret" not in str(refused.value)


def test_store_seals_everything_and_keeps_the_endpoint(fake: FakeShopify, shop_tenant: str) -> None:
    token = connect_oauth(shop_tenant, fake)
    config = tenants.get(shop_tenant).sources["shop"]
    assert config == {"kind": "shopify", "shop_domain": SHOP, "auth": "oauth", "api_version": "2026-10",
                      "endpoint": fake.url, "scopes": sorted(oauth.SCOPES),
                      "token_expires_at": token.expires_at.isoformat()}
    assert {n for n in secret_store.names(shop_tenant) if n.startswith("source.shop.")} == {
        credentials.ACCESS_TOKEN, credentials.REFRESH_TOKEN}
    for secret in (token.access_token, token.refresh_token):
        for file in paths().data.rglob("*"):
            if file.is_file():
                assert secret.encode() not in file.read_bytes(), file
    [stored] = actions("shopify_credentials_stored")
    assert stored["detail"]["auth"] == "oauth" and stored["detail"]["refresh_token"] is True


# --- expiring offline tokens -------------------------------------------------------------------

def test_a_token_about_to_expire_is_refreshed_and_rotated(fake: FakeShopify, shop_tenant: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = connect_oauth(shop_tenant, fake)
    assert credentials.access_token(shop_tenant) == first.access_token  # an hour left: as stored
    assert fake.token_requests.count("refresh_token") == 0

    order: list[tuple[str, str]] = []
    real_put, real_delete = secret_store.put, secret_store.delete
    monkeypatch.setattr(secret_store, "put", lambda scope, name, value: (
        order.append(("put", name)), real_put(scope, name, value))[1])
    monkeypatch.setattr(secret_store, "delete", lambda scope, name: (
        order.append(("delete", name)), real_delete(scope, name))[1])
    age(shop_tenant, timedelta(minutes=4))  # within the 5 minutes
    token = credentials.access_token(shop_tenant)

    assert token != first.access_token and works(fake, token) and not works(fake, first.access_token)
    assert ShopifyClient(SHOP, lambda: credentials.access_token(shop_tenant),
                         endpoint=fake.url).query(CHECK, name="check")["products"]
    # The new refresh token is sealed first, the old one is replaced by it and never deleted.
    assert order == [("put", credentials.REFRESH_TOKEN), ("put", credentials.ACCESS_TOKEN)]
    rotated = secret_store.get(shop_tenant, credentials.REFRESH_TOKEN)
    assert rotated != first.refresh_token
    config = tenants.get(shop_tenant).sources["shop"]
    assert datetime.fromisoformat(config["token_expires_at"]) >= first.expires_at
    [refreshed] = actions("shopify_token_refreshed")
    assert refreshed["tenant"] == shop_tenant and refreshed["detail"]["refresh_token_rotated"]
    assert token not in json.dumps(audit.entries()) and rotated not in json.dumps(audit.entries())
    assert fake.token_requests.count("refresh_token") == 1


def test_a_crash_after_the_new_refresh_token_is_sealed_loses_nothing(
        fake: FakeShopify, shop_tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = connect_oauth(shop_tenant, fake)
    real_put = secret_store.put

    def crash_on_access_token(scope: str, name: str, value: str) -> None:
        if name == credentials.ACCESS_TOKEN:
            raise OSError(28, "No space left on device")
        real_put(scope, name, value)

    monkeypatch.setattr(secret_store, "put", crash_on_access_token)
    age(shop_tenant, timedelta(minutes=1))
    with pytest.raises(OSError):
        credentials.access_token(shop_tenant)
    sealed = secret_store.get(shop_tenant, credentials.REFRESH_TOKEN)
    assert sealed != first.refresh_token, "the new refresh token was sealed before the failure"
    monkeypatch.setattr(secret_store, "put", real_put)
    # The next call refreshes with the sealed successor, which Shopify accepts.
    token = credentials.access_token(shop_tenant)
    assert works(fake, token) and secret_store.get(shop_tenant, credentials.REFRESH_TOKEN) != sealed


def test_concurrent_callers_refresh_once(fake: FakeShopify, shop_tenant: str) -> None:
    connect_oauth(shop_tenant, fake)
    age(shop_tenant, timedelta(minutes=2))
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(credentials.access_token(shop_tenant)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 4 and len(set(got)) == 1 and works(fake, got[0])
    assert fake.token_requests.count("refresh_token") == 1


@pytest.mark.parametrize("fault", ["unauthorized", "invalid_grant"])
def test_a_refused_refresh_is_credentials_rejected(fake: FakeShopify, shop_tenant: str,
                                                    fault: str) -> None:
    first = connect_oauth(shop_tenant, fake)
    fake.fail_next_token(fault)
    age(shop_tenant, timedelta(0))
    with pytest.raises(CredentialsRejected, match="HTTP 40[01]") as refused:
        credentials.access_token(shop_tenant)
    assert first.refresh_token not in str(refused.value)
    assert fake.url.removeprefix("http://") in str(refused.value), "the message names the shop"
    [failed] = actions("shopify_token_renewal_failed")
    assert failed["detail"]["error"] == "TokenRejected"
    # Nothing was replaced: the stored credentials are the ones that were refused.
    assert secret_store.get(shop_tenant, credentials.REFRESH_TOKEN) == first.refresh_token


def test_an_expiring_token_without_a_refresh_token_cannot_be_renewed(fake, shop_tenant) -> None:
    first = connect_oauth(shop_tenant, fake)
    secret_store.delete(shop_tenant, credentials.REFRESH_TOKEN)
    with pytest.raises(CredentialsRejected, match="no refresh token"):
        credentials.access_token(shop_tenant, now=first.expires_at)


# --- client credentials and the CLI ------------------------------------------------------------

def _cli(*args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=code != 0)
    assert result.exit_code == code, result.output
    return result.output + (str(result.exception) if code and result.exception else "")


def test_connect_with_client_credentials_and_request_again_when_expired(fake, shop_tenant) -> None:
    output = _cli("connect", "shopify", "--tenant", shop_tenant, "--shop", SHOP,
                  "--client-credentials", input=f"{fake.client_id}\n{fake.client_secret}\n")
    assert f"shop {SHOP} connected to '{shop_tenant}'" in output and "renewed" in output
    config = tenants.get(shop_tenant).sources["shop"]
    assert (config["kind"], config["auth"], config["endpoint"]) == ("shopify", "client_credentials", fake.url)
    expires = datetime.fromisoformat(config["token_expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(timezone.utc) < timedelta(hours=24)
    assert {n for n in secret_store.names(shop_tenant) if n.startswith("source.shop.")} == {
        credentials.ACCESS_TOKEN, credentials.CLIENT_ID, credentials.CLIENT_SECRET}
    first = credentials.access_token(shop_tenant)
    assert works(fake, first) and fake.token_requests == ["client_credentials"]

    # A day later the token is dead; the next caller gets a new one.
    later = expires + timedelta(minutes=1)
    fake.clock = lambda: later.timestamp()
    assert not works(fake, first)
    token = credentials.access_token(shop_tenant, now=later)
    assert token != first and works(fake, token)
    assert fake.token_requests == ["client_credentials"] * 2
    assert [e["detail"]["auth"] for e in actions("shopify_token_requested")] == ["client_credentials"]


def test_client_credentials_refused_store_nothing(fake, shop_tenant) -> None:
    output = _cli("connect", "shopify", "--tenant", shop_tenant, "--shop", SHOP,
                  "--client-credentials", input=f"{fake.client_id}\nnot-the-secret\n", code=1)
    assert "HTTP 401" in output and "invalid_client" in output and "not-the-secret" not in output
    fake.client_credentials_allowed = False  # an app of another organisation
    output = _cli("connect", "shopify", "--tenant", shop_tenant, "--shop", SHOP,
                  "--client-credentials", input=f"{fake.client_id}\n{fake.client_secret}\n", code=1)
    assert "shop_not_permitted" in output and fake.client_secret not in output
    assert tenants.get(shop_tenant).sources["shop"].get("kind") is None
    assert not [n for n in secret_store.names(shop_tenant) if n.startswith("source.shop.")]
    usage = _cli("connect", "shopify", "--tenant", shop_tenant, "--shop", SHOP,
                 "--client-credentials", input=f"{fake.client_id}\n", code=2)
    assert "two lines" in usage


def test_access_token_stdin_still_connects_without_expiry(fake, shop_tenant) -> None:
    connect_oauth(shop_tenant, fake)  # switching from an OAuth connection drops its refresh token
    _cli("connect", "shopify", "--tenant", shop_tenant, "--shop", SHOP, "--access-token-stdin",
         input=TOKEN + "\n")
    config = tenants.get(shop_tenant).sources["shop"]
    assert (config["auth"], "token_expires_at" in config) == ("access_token", False)
    assert {n for n in secret_store.names(shop_tenant) if n.startswith("source.shop.")} == {
        credentials.ACCESS_TOKEN}
    assert credentials.access_token(shop_tenant, now=datetime(2030, 1, 1, tzinfo=timezone.utc)) == TOKEN


def test_the_platform_app_secret_is_checked_without_quoting_it(data_dir) -> None:
    with pytest.raises(credentials.ShopifyAppNotConfigured, match="secrets set platform shopify_app"):
        credentials.platform_app()
    secret_store.put("platform", credentials.PLATFORM_APP, '{"client_id": "id", "secret": "s3cr3t"}')
    with pytest.raises(credentials.ShopifyAppNotConfigured) as malformed:
        credentials.platform_app()
    assert "s3cr3t" not in str(malformed.value)
    secret_store.put("platform", credentials.PLATFORM_APP,
                     '{"client_id": "id", "client_secret": "s", "read_all_orders": true}')
    app = credentials.platform_app()
    assert app.scopes == (*oauth.SCOPES, "read_all_orders") and "'s'" not in repr(app)
