"""Shopify's mandatory privacy webhooks: the checks and the handling that the app service's
POST /webhooks/shopify (`cleargro serve`, `app/webhooks.py`) calls in order. A request with
topic `customers/data_request`, `customers/redact` or `shop/redact` is checked (size:
`declared_length`, then the `X-Shopify-Hmac-Sha256` signature before the body is parsed:
`authenticate`, then the topic's shape: `handle`), recorded and fsynced in the privacy-request
log, and only then answered 200; a `shop/redact` of a known tenant is handed to the tenant
deletion queue. A check that fails raises `Reject` (status, reason, short fixed message);
`audit_rejection` records the 400s and 401s. Bodies are never logged; TLS belongs to the
reverse proxy in front of the service. The checks in order, with their status codes:
`privacy/README.md`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from typing import Any, Mapping

from cleargro_pipeline.controls import deletion
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.privacy.request_log import (
    CUSTOMERS_DATA_REQUEST,
    CUSTOMERS_REDACT,
    SHOP_REDACT,
    TOPICS,
    PrivacyRequest,
    PrivacyRequestError,
)
from cleargro_pipeline.security import audit, secret_store

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/shopify"
MAX_BODY_BYTES = 1 << 20
SECRET_NAME = "shopify_app_secret"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
_SAFE_DETAIL = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class WebhookConfigError(CleargroError):
    pass


class Reject(Exception):
    """Answer `status` with `message` (short, fixed text) and audit the reason."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(reason)
        self.status, self.reason, self.message = status, reason, message


def platform_secret() -> str:
    return secret_store.get(secret_store.PLATFORM, SECRET_NAME, purpose="webhook_verify")


def signature(secret: bytes | str, body: bytes) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify sends for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def verify(secret: bytes, body: bytes, header: str | None) -> str | None:
    """None when `header` is a valid signature of `body`; otherwise the reason it is not."""
    if not header:
        return "missing_signature"
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "malformed_signature"
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    return None if hmac.compare_digest(expected, given) else "bad_signature"


# --- payloads ---------------------------------------------------------------------------------

def minimal_payload(topic: str, body: Any) -> dict[str, Any]:
    """What `request_log.record` needs from a verified body, its shape checked by topic.

    Email and phone are never read. The shape check binds the (unsigned) topic header to the
    (signed) body: a data request's body replayed under `shop/redact` or `customers/redact`
    does not pass.
    """
    if not isinstance(body, dict):
        raise PrivacyRequestError("body is not a JSON object")
    out: dict[str, Any] = {"shop_domain": body.get("shop_domain"), "shop_id": body.get("shop_id")}
    if out["shop_domain"] is None:
        raise PrivacyRequestError("shop_domain is missing")
    if topic == SHOP_REDACT:
        if any(k in body for k in ("customer", "orders_to_redact", "orders_requested", "data_request")):
            raise PrivacyRequestError("body is not a shop/redact payload")
        return out
    customer = body.get("customer")
    if customer is not None and not isinstance(customer, dict):
        raise PrivacyRequestError("customer is not an object")
    out["customer_id"] = (customer or {}).get("id")
    if topic == CUSTOMERS_REDACT:
        if "orders_to_redact" not in body or "data_request" in body:
            raise PrivacyRequestError("body is not a customers/redact payload")
        out["orders_to_redact"] = body["orders_to_redact"]
        if out["customer_id"] is None and not out["orders_to_redact"]:
            raise PrivacyRequestError("customers/redact names no customer and no order")
    elif topic == CUSTOMERS_DATA_REQUEST:
        request = body.get("data_request")
        if not isinstance(request, dict) or "orders_to_redact" in body:
            raise PrivacyRequestError("body is not a customers/data_request payload")
        out["data_request_id"] = request.get("id")
        out["orders_requested"] = body.get("orders_requested")
        if out["customer_id"] is None:
            raise PrivacyRequestError("customers/data_request names no customer")
    return out


# --- the checks, in order --------------------------------------------------------------------
# `headers`: any mapping whose `get` ignores the name's case (Starlette's Headers, email's
# Message); names are given in lower case.

def declared_length(headers: Mapping[str, str], max_body: int = MAX_BODY_BYTES) -> int:
    """The body's declared size, before a byte of it is read: a Content-Length (411 without
    one, or with a chunked body), a number (400), at most `max_body` (413)."""
    if headers.get("transfer-encoding"):
        raise Reject(411, "length_required", "length required")
    length = headers.get("content-length")
    if length is None:
        raise Reject(411, "length_required", "length required")
    if not length.strip().isdigit():
        raise Reject(400, "bad_length", "bad content-length")
    size = int(length)
    if size > max_body:
        raise Reject(413, "too_large", "body too large")
    return size


def authenticate(secret: bytes, body: bytes, headers: Mapping[str, str]) -> None:
    """401 unless `X-Shopify-Hmac-Sha256` signs the raw `body` under the app's secret."""
    failure = verify(secret, body, headers.get(HMAC_HEADER.lower()))
    if failure:
        raise Reject(401, failure, "unauthorized")


def topic_of(headers: Mapping[str, str]) -> str:
    """The (unsigned) topic header; each topic's handler checks it against the signed body."""
    return (headers.get(TOPIC_HEADER.lower()) or "").strip()


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Reject(400, "invalid_json", "invalid json") from None


def check_shop_header(headers: Mapping[str, str], shop_domain: str) -> None:
    """The shop header, when sent, must name the body's shop."""
    header_shop = headers.get(SHOP_HEADER.lower())
    if header_shop is not None and header_shop.strip().lower() != shop_domain:
        raise Reject(400, "shop_domain_mismatch", "shop domain mismatch")


def audit_rejection(reject: Reject) -> None:
    if reject.status in (400, 401):
        audit.append("webhook_rejected", reason=reject.reason)


# --- handling an authentic privacy webhook ----------------------------------------------------

_handoff_lock = threading.Lock()


def handle(topic: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Record an authenticated privacy webhook (and hand a `shop/redact` on); returns the 200
    answer's text. Raises Reject for a topic or body that is not what it claims."""
    if topic not in TOPICS:
        raise Reject(400, "unknown_topic", "unknown topic")
    payload = json_body(body)
    try:
        minimal = minimal_payload(topic, payload)
        shop_domain = request_log.normalise_shop_domain(minimal["shop_domain"])
    except PrivacyRequestError:
        raise Reject(400, "invalid_payload", "invalid payload") from None
    check_shop_header(headers, shop_domain)
    webhook_id = (headers.get(WEBHOOK_ID_HEADER.lower()) or "").strip() or None
    if webhook_id is not None and not request_log.WEBHOOK_ID.match(webhook_id):
        raise Reject(400, "invalid_webhook_id", "invalid webhook id")

    request = _record(topic, shop_domain, minimal, webhook_id)
    if request.topic == SHOP_REDACT and request.tenant is not None:
        _hand_off_shop_redact(request)
    return "recorded"


def _record(topic: str, shop_domain: str, minimal: dict[str, Any],
            webhook_id: str | None) -> PrivacyRequest:
    try:
        tenant, why = request_log.tenant_for_shop(shop_domain), "no_tenant"
    except request_log.AmbiguousShopDomain:
        tenant, why = None, "ambiguous"
    try:
        if tenant is not None:
            return request_log.record(topic, tenant, minimal, webhook_id,
                                      source="shopify_webhook")
        request = request_log.record(
            topic, None, minimal, webhook_id, source="shopify_webhook", status="unmatched",
            detail="shop domain claimed by " + ("several tenants" if why == "ambiguous"
                                                else "no tenant"))
    except PrivacyRequestError:
        raise Reject(400, "invalid_payload", "invalid payload") from None
    if not request.duplicate:
        audit.append("webhook_unmatched_shop", topic=topic, shop_domain=shop_domain,
                     reason=why, request_id=request.request_id)
    return request


def _hand_off_shop_redact(request: PrivacyRequest) -> None:
    """Queue the tenant's deletion; the privacy request stays pending if that fails, and a
    retry of the same webhook (or a sweep of `pending("shop/redact")`) tries again."""
    with _handoff_lock:
        if request_log.get(request.request_id).status != request_log.PENDING:
            return  # already handed off (a retry of a delivery that succeeded)
        try:
            result = deletion.request(request.tenant, reason="shopify shop/redact",
                                      source="shopify_shop_redact")
        except Exception as exc:  # noqa: BLE001 - recorded already: answer 200, retry later
            logger.error("privacy webhooks: deletion request for %s failed (%s); it stays "
                         "pending", request.request_id, type(exc).__name__)
            return
        request_log.mark(request.request_id, "handed_off", _handoff_detail(result))


def _handoff_detail(result: Any) -> str:
    for attr in ("request_id", "deletion_id", "id"):
        value = getattr(result, attr, None) if not isinstance(result, dict) else result.get(attr)
        if isinstance(value, (str, int)) and _SAFE_DETAIL.match(str(value)):
            return f"deletion requested: {value}"
    if isinstance(result, str) and _SAFE_DETAIL.match(result):
        return f"deletion requested: {result}"
    return "deletion requested"
