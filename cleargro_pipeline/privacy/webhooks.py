"""The endpoint for Shopify's mandatory privacy webhooks (`cleargro webhooks serve`): POST
/webhooks/shopify with topic `customers/data_request`, `customers/redact` or `shop/redact` is
checked (size, then the `X-Shopify-Hmac-Sha256` signature before the body is parsed, then the
topic's shape), recorded and fsynced in the privacy-request log, and only then answered 200; a
`shop/redact` of a known tenant is handed to the tenant deletion queue. Bodies are never
logged; TLS belongs to the reverse proxy in front of it. The checks in order, with their status
codes: `privacy/README.md`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

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
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8787
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
_SAFE_DETAIL = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class WebhookConfigError(CleargroError):
    pass


class _Reject(Exception):
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


# --- the server -------------------------------------------------------------------------------

class PrivacyWebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], secret: bytes, *, path: str = WEBHOOK_PATH,
                 max_body: int = MAX_BODY_BYTES):
        self.secret = secret  # read once: each secret-store read is an audit entry
        self.webhook_path = path
        self.max_body = max_body
        self.handoff_lock = threading.Lock()
        super().__init__(address, _Handler)


def make_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                secret_provider: Callable[[], str | bytes] = platform_secret,
                path: str = WEBHOOK_PATH, max_body: int = MAX_BODY_BYTES) -> PrivacyWebhookServer:
    """A bound, not yet serving, server; `serve_forever()` it (in a thread for tests)."""
    secret = secret_provider()
    secret = secret.encode() if isinstance(secret, str) else secret
    if not secret:
        raise WebhookConfigError(f"the platform secret '{SECRET_NAME}' is empty")
    return PrivacyWebhookServer((host, port), secret, path=path, max_body=max_body)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until interrupted (`cleargro webhooks serve`)."""
    server = make_server(host, port)
    bound_host, bound_port = server.server_address[:2]
    logger.info("privacy webhooks: listening on http://%s:%s%s", bound_host, bound_port,
                server.webhook_path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: PrivacyWebhookServer
    server_version = "cleargro-webhooks"
    sys_version = ""
    timeout = 15  # seconds per socket read: a stalled sender does not hold a thread forever

    # Access log: method, path without query, status. Never headers or bodies.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info("%s %s -> %s", self.command, urlsplit(self.path or "").path[:200], code)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.warning("privacy webhooks: malformed request (%s)",
                       args[0] if args and isinstance(args[0], int) else "-")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    # -- methods --
    def do_POST(self) -> None:
        try:
            self._post()
        except _Reject as reject:
            if reject.status in (400, 401):
                audit.append("webhook_rejected", reason=reject.reason)
            self._answer(reject.status, reject.message)
        except Exception as exc:  # noqa: BLE001 - the class only: messages may quote values
            logger.error("privacy webhooks: request failed (%s)", type(exc).__name__)
            self._answer(500, "not recorded")

    def _not_allowed(self) -> None:
        if not self._on_path():
            return self._answer(404, "not found")
        self._discard_body()
        self._answer(405, "method not allowed", extra={"Allow": "POST"})

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    def do_HEAD(self) -> None:
        self._answer(404 if not self._on_path() else 405, "", extra={"Allow": "POST"})

    # -- the POST --
    def _on_path(self) -> bool:
        return urlsplit(self.path).path == self.server.webhook_path

    def _post(self) -> None:
        if not self._on_path():
            self._discard_body()
            raise _Reject(404, "not_found", "not found")
        body = self._read_body()
        failure = verify(self.server.secret, body, self.headers.get(HMAC_HEADER))
        if failure:
            raise _Reject(401, failure, "unauthorized")
        # Authentic from here on; the headers are not signed, so they are checked against the body.
        topic = (self.headers.get(TOPIC_HEADER) or "").strip()
        if topic not in TOPICS:
            raise _Reject(400, "unknown_topic", "unknown topic")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Reject(400, "invalid_json", "invalid json") from None
        try:
            minimal = minimal_payload(topic, payload)
            shop_domain = request_log.normalise_shop_domain(minimal["shop_domain"])
        except PrivacyRequestError:
            raise _Reject(400, "invalid_payload", "invalid payload") from None
        header_shop = self.headers.get(SHOP_HEADER)
        if header_shop is not None and header_shop.strip().lower() != shop_domain:
            raise _Reject(400, "shop_domain_mismatch", "shop domain mismatch")
        webhook_id = (self.headers.get(WEBHOOK_ID_HEADER) or "").strip() or None
        if webhook_id is not None and not request_log.WEBHOOK_ID.match(webhook_id):
            raise _Reject(400, "invalid_webhook_id", "invalid webhook id")

        request = self._record(topic, shop_domain, minimal, webhook_id)
        if request.topic == SHOP_REDACT and request.tenant is not None:
            self._hand_off_shop_redact(request)
        self._answer(200, "recorded")

    def _record(self, topic: str, shop_domain: str, minimal: dict[str, Any],
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
            raise _Reject(400, "invalid_payload", "invalid payload") from None
        if not request.duplicate:
            audit.append("webhook_unmatched_shop", topic=topic, shop_domain=shop_domain,
                         reason=why, request_id=request.request_id)
        return request

    def _hand_off_shop_redact(self, request: PrivacyRequest) -> None:
        """Queue the tenant's deletion; the privacy request stays pending if that fails, and a
        retry of the same webhook (or a sweep of `pending("shop/redact")`) tries again."""
        with self.server.handoff_lock:
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

    # -- I/O --
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _Reject(411, "length_required", "length required")
        length = self.headers.get("Content-Length")
        if length is None:
            raise _Reject(411, "length_required", "length required")
        if not length.strip().isdigit():
            raise _Reject(400, "bad_length", "bad content-length")
        size = int(length)
        if size > self.server.max_body:
            self._linger()
            raise _Reject(413, "too_large", "body too large")
        body = self.rfile.read(size)
        if len(body) != size:
            self.close_connection = True
            raise _Reject(400, "short_body", "incomplete body")
        return body

    def _discard_body(self) -> None:
        length = (self.headers.get("Content-Length") or "").strip()
        if length.isdigit() and 0 < int(length) <= self.server.max_body:
            try:
                self.rfile.read(int(length))
            except OSError:
                self.close_connection = True

    def _linger(self) -> None:
        """The body is refused unread: close after answering, and give the sender's bytes
        a moment to arrive so the kernel does not reset the connection over our answer."""
        self.close_connection = True
        self._drain_after_answer = True

    def _answer(self, status: int, message: str, *, extra: dict[str, str] | None = None) -> None:
        data = (message + "\n").encode() if message else b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            if self.close_connection or status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
            if getattr(self, "_drain_after_answer", False):
                self._drain()
        except OSError:
            self.close_connection = True  # the sender went away: nothing to answer

    def _drain(self, limit: int = 4 * MAX_BODY_BYTES, seconds: float = 2.0) -> None:
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(seconds)
            read = 0
            while read < limit:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                read += len(chunk)
        except OSError:
            pass


def _handoff_detail(result: Any) -> str:
    for attr in ("request_id", "deletion_id", "id"):
        value = getattr(result, attr, None) if not isinstance(result, dict) else result.get(attr)
        if isinstance(value, (str, int)) and _SAFE_DETAIL.match(str(value)):
            return f"deletion requested: {value}"
    if isinstance(result, str) and _SAFE_DETAIL.match(result):
        return f"deletion requested: {result}"
    return "deletion requested"
