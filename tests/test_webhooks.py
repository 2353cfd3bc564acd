"""Shopify's mandatory privacy webhooks, through real HTTP requests to a server on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import types
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from cleargro_pipeline import tenants
from cleargro_pipeline.app.service import AppServer
from cleargro_pipeline.privacy import request_log, webhooks
from cleargro_pipeline.privacy.request_log import (
    CUSTOMERS_DATA_REQUEST,
    CUSTOMERS_REDACT,
    SHOP_REDACT,
)
from cleargro_pipeline.security import audit, keys, secret_store
from tests.delivery_servers import free_port

SHOP = "acme.myshopify.com"
CUSTOMER_ID = 7391167001
EMAIL = "jane.shopper@example.org"
PHONE = "+1-555-625-1199"


def payload(topic: str, shop: str = SHOP) -> dict[str, Any]:
    """Bodies as Shopify documents them, with the shopper's email and phone included."""
    customer = {"id": CUSTOMER_ID, "email": EMAIL, "phone": PHONE}
    if topic == CUSTOMERS_REDACT:
        return {"shop_id": 954889, "shop_domain": shop, "customer": customer,
                "orders_to_redact": [299938, 280263]}
    if topic == CUSTOMERS_DATA_REQUEST:
        return {"shop_id": 954889, "shop_domain": shop, "orders_requested": [299938, 280263],
                "customer": customer, "data_request": {"id": 9999}}
    return {"shop_id": 954889, "shop_domain": shop}


class Endpoint:
    """The app service (`cleargro serve`) serving in a thread, and a client speaking raw HTTP
    to it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = AppServer("127.0.0.1", self.port).start()

    def stop(self) -> None:
        self.server.stop()

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body if method != "GET" else None, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read(), response
        finally:
            conn.close()

    def deliver(self, topic: str, body: bytes | dict[str, Any], *, secret: str | bytes | None = None,
                webhook_id: str | None = None, hmac_header: str | None = "sign",
                shop: str | None = SHOP) -> int:
        """POST like Shopify: signed with `secret` (the app's own by default)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
                   "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
                   "X-Shopify-API-Version": "2025-07"}
        if shop:
            headers["X-Shopify-Shop-Domain"] = shop
        if hmac_header == "sign":
            headers["X-Shopify-Hmac-Sha256"] = webhooks.signature(secret or self.server.secret, raw)
        elif hmac_header is not None:
            headers["X-Shopify-Hmac-Sha256"] = hmac_header
        return self.request("POST", webhooks.WEBHOOK_PATH, raw, headers)[0]


@pytest.fixture
def app_secret(data_dir: Path) -> str:
    value = base64.b64encode(os.urandom(24)).decode()
    secret_store.put("platform", "shopify_app_secret", value)
    return value


@pytest.fixture
def shop_tenant(tenant: str) -> str:
    tenants.configure_source(tenant, "shop", {"kind": "demo", "size": "small", "seed": 7,
                                              "shop_domain": SHOP})
    return tenant


@pytest.fixture
def deletions(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """A stand-in for the tenant deletion queue the webhooks hand `shop/redact` to."""
    calls: list[tuple] = []

    def request(tenant: str, reason: str, source: str) -> dict[str, str]:
        calls.append((tenant, reason, source))
        return {"request_id": f"del_{len(calls)}"}

    monkeypatch.setattr(webhooks, "deletion", types.SimpleNamespace(request=request))
    return calls


@pytest.fixture
def endpoint(app_secret: str, shop_tenant: str, deletions: list) -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.stop()


def log_bytes() -> bytes:
    path = request_log.log_file()
    return path.read_bytes() if path.exists() else b""


def actions(name: str) -> list[dict[str, Any]]:
    return [e for e in audit.entries() if e["action"] == name]


# --- accepted ---------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", [CUSTOMERS_REDACT, CUSTOMERS_DATA_REQUEST, SHOP_REDACT])
def test_signed_webhook_is_recorded_without_direct_identifiers(endpoint: Endpoint, topic: str) -> None:
    assert endpoint.deliver(topic, payload(topic), webhook_id=f"wh-{topic.replace('/', '-')}") == 200

    [request] = request_log.all_requests()
    assert (request.topic, request.tenant, request.source) == (topic, "acme", "shopify_webhook")
    assert request.shop_domain == SHOP and request.webhook_id == f"wh-{topic.replace('/', '-')}"
    stored = log_bytes()
    for identifier in (str(CUSTOMER_ID), EMAIL, PHONE, "email", "phone"):
        assert identifier.encode() not in stored
    audit_text = request_log.paths().audit_log.read_bytes()
    assert str(CUSTOMER_ID).encode() not in audit_text and EMAIL.encode() not in audit_text
    [entry] = actions("privacy_request_recorded")
    assert entry["detail"]["request_id"] == request.request_id and entry["tenant"] == "acme"

    if topic == SHOP_REDACT:
        assert request.customer_pseudonym is None and request.status == "handed_off"
        return
    assert request.status == "pending" and [r.request_id for r in request_log.pending(topic)] \
        == [request.request_id]
    # The pseudonym is the warehouse's own: the key to finding the shopper's rows.
    import pyarrow as pa

    warehouse_pseudonym = keys.pseudonymiser("acme", "ingest")(pa.array([CUSTOMER_ID]))[0].as_py()
    assert request.customer_pseudonym == warehouse_pseudonym
    if topic == CUSTOMERS_REDACT:
        assert request.orders_to_redact == (299938, 280263)
    else:
        assert (request.orders_requested, request.data_request_id) == ((299938, 280263), 9999)


def test_shop_redact_is_handed_to_the_deletion_queue_once(endpoint: Endpoint, deletions: list) -> None:
    for _ in range(3):  # Shopify's retries of one delivery
        assert endpoint.deliver(SHOP_REDACT, payload(SHOP_REDACT), webhook_id="wh-shop") == 200
    assert deletions == [("acme", "shopify shop/redact", "shopify_shop_redact")]
    [request] = request_log.all_requests()
    assert (request.status, request.detail) == ("handed_off", "deletion requested: del_1")


def test_shop_redact_whose_deletion_request_fails_stays_pending_and_retries(
        app_secret: str, shop_tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(tenant: str, reason: str, source: str) -> None:
        raise OSError("the deletion queue cannot be written")

    monkeypatch.setattr(webhooks, "deletion", types.SimpleNamespace(request=unavailable))
    server = Endpoint()
    try:
        assert server.deliver(SHOP_REDACT, payload(SHOP_REDACT), webhook_id="wh-shop") == 200
        [request] = request_log.pending(SHOP_REDACT)
        calls: list[str] = []
        monkeypatch.setattr(webhooks, "deletion", types.SimpleNamespace(
            request=lambda tenant, reason, source: calls.append(tenant)))
        # Shopify's retry of the same delivery completes the hand-off.
        assert server.deliver(SHOP_REDACT, payload(SHOP_REDACT), webhook_id="wh-shop") == 200
        assert calls == ["acme"] and request_log.get(request.request_id).status == "handed_off"
        assert len(request_log.all_requests()) == 1
    finally:
        server.stop()


def test_unmapped_shop_is_recorded_unmatched_and_answered_200(endpoint: Endpoint,
                                                              deletions: list) -> None:
    other = "stranger.myshopify.com"
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_REDACT, other), shop=other) == 200
    assert endpoint.deliver(SHOP_REDACT, payload(SHOP_REDACT, other), shop=other) == 200

    requests = request_log.all_requests()
    assert [(r.topic, r.tenant, r.status, r.shop_domain) for r in requests] == [
        (CUSTOMERS_REDACT, None, "unmatched", other), (SHOP_REDACT, None, "unmatched", other)]
    assert requests[0].customer_pseudonym is None  # no tenant key: the id is dropped, not kept
    assert str(CUSTOMER_ID).encode() not in log_bytes()
    assert request_log.pending() == [] and deletions == []
    assert [e["detail"]["reason"] for e in actions("webhook_unmatched_shop")] == ["no_tenant"] * 2


def test_replayed_webhook_id_is_recorded_once(endpoint: Endpoint) -> None:
    body = payload(CUSTOMERS_REDACT)
    assert [endpoint.deliver(CUSTOMERS_REDACT, body, webhook_id="wh-1") for _ in range(3)] == [200] * 3
    assert len(request_log.all_requests()) == 1
    assert log_bytes().count(b'"kind":"request"') == 1
    assert len(actions("privacy_request_duplicate")) == 2
    assert len(actions("key_unwrapped")) == 1  # a retry does not unwrap the tenant's key again
    # Another delivery (another webhook id) is another request.
    assert endpoint.deliver(CUSTOMERS_REDACT, body, webhook_id="wh-2") == 200
    assert len(request_log.all_requests()) == 2


# --- refused ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["forged", "missing", "other_body", "other_secret", "not_base64",
                                  "empty"])
def test_bad_signature_is_401_and_nothing_is_recorded(endpoint: Endpoint, app_secret: str,
                                                      case: str) -> None:
    body = json.dumps(payload(CUSTOMERS_REDACT)).encode()
    header = {
        "forged": base64.b64encode(os.urandom(32)).decode(),
        "missing": None,
        "other_body": webhooks.signature(app_secret, body + b" "),
        "other_secret": webhooks.signature(app_secret + "x", body),
        "not_base64": "not*base64!",
        "empty": "",
    }[case]
    status, text, _ = endpoint.request("POST", webhooks.WEBHOOK_PATH, body, {
        "X-Shopify-Topic": CUSTOMERS_REDACT, "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": "wh-x", **({} if header is None else {"X-Shopify-Hmac-Sha256": header})})
    assert status == 401 and len(text) < 64
    assert request_log.all_requests() == [] and log_bytes() == b""
    [rejected] = actions("webhook_rejected")
    assert set(rejected["detail"]) == {"reason"}
    assert rejected["detail"]["reason"] in {"missing_signature", "bad_signature", "malformed_signature"}
    # The genuine delivery afterwards still goes through: a forgery burned nothing.
    assert endpoint.deliver(CUSTOMERS_REDACT, body, webhook_id="wh-x") == 200


def test_oversized_body_is_413(endpoint: Endpoint) -> None:
    # Refused from the declared length, before a byte of the body is read ...
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    conn.putrequest("POST", webhooks.WEBHOOK_PATH)
    conn.putheader("Content-Length", str(webhooks.MAX_BODY_BYTES + 1))
    conn.putheader("X-Shopify-Topic", CUSTOMERS_REDACT)
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    # ... and a sender that pushes the whole body still gets the answer.
    big = b"{" + b" " * (webhooks.MAX_BODY_BYTES + 10) + b"}"
    assert endpoint.deliver(CUSTOMERS_REDACT, big) == 413
    assert request_log.all_requests() == []


def test_method_path_and_body_checks(endpoint: Endpoint) -> None:
    status, _, response = endpoint.request("GET", webhooks.WEBHOOK_PATH)
    assert status == 405 and response.getheader("Allow") == "POST"
    assert endpoint.request("PUT", webhooks.WEBHOOK_PATH, b"{}")[0] == 405
    assert endpoint.request("GET", "/")[0] == 404
    signed = {"X-Shopify-Topic": CUSTOMERS_REDACT,
              "X-Shopify-Hmac-Sha256": webhooks.signature(endpoint.server.secret, b"{}")}
    assert endpoint.request("POST", "/webhooks/other", b"{}", signed)[0] == 404
    assert endpoint.request("POST", "/", b"{}", signed)[0] == 404
    # Valid signatures over bodies that are not what the topic says.
    assert endpoint.deliver(CUSTOMERS_REDACT, b'{"shop_domain": "acme.myshopify.com",') == 400
    assert endpoint.deliver(CUSTOMERS_REDACT, b"\xff\xfe") == 400
    assert endpoint.deliver(CUSTOMERS_REDACT, b"[1, 2]") == 400
    assert endpoint.deliver("orders/create", payload(CUSTOMERS_REDACT)) == 400
    assert endpoint.deliver(CUSTOMERS_REDACT,
                            {"shop_domain": "not a domain", "orders_to_redact": []}) == 400
    # The topic header is not signed: a data request's body replayed as shop/redact is refused.
    assert endpoint.deliver(SHOP_REDACT, payload(CUSTOMERS_DATA_REQUEST)) == 400
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_DATA_REQUEST)) == 400
    # Neither is a body whose shop differs from the shop header.
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_REDACT),
                            shop="other.myshopify.com") == 400
    assert request_log.all_requests() == []
    assert {e["detail"]["reason"] for e in actions("webhook_rejected")} == {
        "invalid_json", "invalid_payload", "unknown_topic", "shop_domain_mismatch"}


# --- durability -------------------------------------------------------------------------------

def test_request_is_on_disk_when_200_arrives_and_survives_a_restart(
        endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    assert endpoint.deliver(CUSTOMERS_DATA_REQUEST, payload(CUSTOMERS_DATA_REQUEST),
                            webhook_id="wh-durable") == 200
    log = request_log.log_file()
    assert str(log) in synced and str(log.parent) in synced  # the line and the new file's entry
    [line] = [json.loads(x) for x in log.read_bytes().splitlines()]
    assert (line["webhook_id"], line["status"]) == ("wh-durable", "pending")
    assert oct(log.stat().st_mode & 0o777) == "0o600"

    endpoint.stop()
    restarted = Endpoint()
    try:
        [request] = request_log.pending(CUSTOMERS_DATA_REQUEST)
        assert request.webhook_id == "wh-durable"
        # The restarted server still knows the delivery: Shopify's retry is not a new request.
        assert restarted.deliver(CUSTOMERS_DATA_REQUEST, payload(CUSTOMERS_DATA_REQUEST),
                                 webhook_id="wh-durable") == 200
        assert len(request_log.all_requests()) == 1
    finally:
        restarted.stop()
    endpoint.stop = lambda: None  # type: ignore[method-assign]  # already stopped


def test_no_200_unless_the_request_reached_the_disk(endpoint: Endpoint,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync, log = os.fsync, request_log.log_file()

    def failing_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(log):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_REDACT), webhook_id="wh-io") == 500
    synced: list[str] = []

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", fsync)
    # Shopify retries; the line written before the failed sync is found, and synced this time
    # before the 200.
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_REDACT), webhook_id="wh-io") == 200
    assert str(log) in synced
    assert len(request_log.all_requests()) == 1


# --- the secret, logs, audit ------------------------------------------------------------------

def test_secret_is_read_once_per_server_and_required(endpoint: Endpoint, data_dir: Path) -> None:
    for topic in (CUSTOMERS_REDACT, CUSTOMERS_DATA_REQUEST, SHOP_REDACT):
        assert endpoint.deliver(topic, payload(topic)) == 200
    reads = actions("secret_read")
    assert [(e["purpose"], e["detail"]["name"]) for e in reads] == [
        ("webhook_verify", "shopify_app_secret")]
    secret_store.delete("platform", "shopify_app_secret")
    with pytest.raises(secret_store.SecretMissing):
        AppServer("127.0.0.1", free_port())
    audit.verify()


def test_bodies_never_reach_the_log(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_REDACT)) == 200
    assert endpoint.deliver(CUSTOMERS_REDACT, payload(CUSTOMERS_REDACT), hmac_header="bad") == 401
    assert endpoint.deliver(CUSTOMERS_REDACT, b'{"email": "' + EMAIL.encode() + b'"') == 400
    assert "POST /webhooks/shopify -> 200" in caplog.text
    for value in (EMAIL, PHONE, str(CUSTOMER_ID)):
        assert value not in caplog.text


# --- the store, as the CLI uses it ------------------------------------------------------------

def test_store_api_for_cli_requests(shop_tenant: str) -> None:
    with pytest.raises(request_log.PrivacyRequestError, match="email"):
        request_log.record(CUSTOMERS_REDACT, "acme", {"customer_id": 5, "email": EMAIL})
    with pytest.raises(tenants.UnknownTenant):
        request_log.record(CUSTOMERS_REDACT, "nobody", {"customer_id": 5})
    erase = request_log.record(CUSTOMERS_REDACT, "acme",
                                    {"customer_id": "gid://shopify/Customer/5"})
    export = request_log.record(CUSTOMERS_DATA_REQUEST, "acme", {"customer_id": 5})
    assert erase.source == "cli" and erase.webhook_id is None
    pseudonym = request_log.shopper_pseudonym("acme", 5)
    assert erase.customer_pseudonym == export.customer_pseudonym == pseudonym
    assert [r.request_id for r in request_log.pending()] == [erase.request_id, export.request_id]

    request_log.mark(erase.request_id, "in_progress")
    done = request_log.mark(erase.request_id, "done", "rows removed: 3")
    assert request_log.get(erase.request_id) == done and done.status == "done"
    assert [r.request_id for r in request_log.pending()] == [export.request_id]
    with pytest.raises(request_log.PrivacyRequestError):
        request_log.mark(erase.request_id, "finished")
    with pytest.raises(request_log.UnknownPrivacyRequest):
        request_log.get("pr_missing")
    # Append-only: two requests and two status lines.
    kinds = [json.loads(x)["kind"] for x in log_bytes().splitlines()]
    assert kinds == ["request", "request", "status", "status"]


def test_shop_domain_registry(tenant: str) -> None:
    assert request_log.tenant_for_shop(SHOP) is None
    tenants.configure_source(tenant, "shop", {"kind": "demo", "shop_domain": "ACME.myshopify.com"})
    assert request_log.tenant_for_shop(" acme.myshopify.com") == "acme"
    tenants.add("acme2", {"shop": {"kind": "demo", "shop_domain": SHOP}})
    with pytest.raises(request_log.AmbiguousShopDomain):
        request_log.tenant_for_shop(SHOP)


def test_shop_redact_reaches_the_real_deletion_queue(app_secret: str, shop_tenant: str) -> None:
    deletion = pytest.importorskip("cleargro_pipeline.controls.deletion")
    server = Endpoint()
    try:
        assert server.deliver(SHOP_REDACT, payload(SHOP_REDACT), webhook_id="wh-real") == 200
        assert server.deliver(SHOP_REDACT, payload(SHOP_REDACT), webhook_id="wh-real") == 200
    finally:
        server.stop()
    queued = deletion.status("acme")
    assert (queued.tenant, queued.source) == ("acme", "shopify_shop_redact")
    [request] = request_log.all_requests()
    assert (request.status, request.detail) == ("handed_off", f"deletion requested: {queued.request_id}")


def test_cli_sets_the_shop_domain_without_syncing_the_shop(data_dir):
    from click.testing import CliRunner

    from cleargro_pipeline.cli import cli
    from cleargro_pipeline.defs.jobs import tenant_selection
    from cleargro_pipeline.defs.transformation import dbt_models

    tenants.add("filedrop")  # fed by `cleargro import`: no synced source
    result = CliRunner().invoke(cli, ["tenants", "configure", "filedrop",
                                      "--shop-domain", "FileDrop.myshopify.com"])
    assert result.exit_code == 0, result.output
    assert request_log.tenant_for_shop("filedrop.myshopify.com") == "filedrop"
    assert tenants.synced_sources(tenants.get("filedrop")) == {}
    assert set(tenant_selection("filedrop")) == set(dbt_models.keys)
    bad = CliRunner().invoke(cli, ["tenants", "configure", "filedrop", "--shop-domain", "evil.com"])
    assert bad.exit_code != 0
