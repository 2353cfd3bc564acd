"""POST /webhooks/shopify: every webhook of the Shopify app, one endpoint, the topic in the
`X-Shopify-Topic` header. The checks run in the order of `privacy/webhooks.py` (declared size
before a byte of the body is read, the body's signature under the app's secret before it is
parsed), then the topic's handler: the privacy topics (`customers/data_request`,
`customers/redact`, `shop/redact`) are recorded by `privacy.webhooks.handle`; `app/uninstalled`
disconnects the tenant's shop and marks its credentials rejected, so `credentials_invalid`
tells the merchant's team and nothing syncs until the shop is connected again. Answers are
short fixed texts; a body is never logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from cleargro_pipeline import tenants
from cleargro_pipeline.app import pages
from cleargro_pipeline.app.config import AppConfig
from cleargro_pipeline.controls import disconnect
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.privacy import webhooks as privacy
from cleargro_pipeline.privacy.webhooks import Reject
from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.sources.shopify import credentials

logger = logging.getLogger("cleargro_pipeline.app")

APP_UNINSTALLED = "app/uninstalled"
BODY_TIMEOUT_S = 15  # a sender that stalls mid-body does not hold a request open


async def shopify_webhook(request: Request) -> Response:
    config: AppConfig = request.app.state.config
    try:
        size = privacy.declared_length(request.headers, config.max_body)
        body = await _body(request, size)
        # Signature check, file appends with fsync, locks: blocking work, off the event loop.
        message = await run_in_threadpool(_handle, config, body, request.headers)
        return pages.text(200, message)
    except Reject as reject:
        await run_in_threadpool(privacy.audit_rejection, reject)
        return pages.text(reject.status, reject.message)
    except Exception as exc:  # noqa: BLE001 - the class only: a message may quote values
        logger.error("webhooks: request failed (%s)", type(exc).__name__)
        return pages.text(500, "not recorded")


async def _body(request: Request, size: int) -> bytes:
    chunks, received = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                received += len(chunk)
                if received > size:
                    raise Reject(400, "bad_length", "bad content-length")
                chunks.append(chunk)
    except TimeoutError:
        raise Reject(408, "body_timeout", "request timeout") from None
    except ClientDisconnect:
        raise Reject(400, "short_body", "incomplete body") from None
    if received != size:
        raise Reject(400, "short_body", "incomplete body")
    return b"".join(chunks)


def _handle(config: AppConfig, body: bytes, headers: Mapping[str, str]) -> str:
    privacy.authenticate(config.webhook_secret, body, headers)
    topic = privacy.topic_of(headers)
    if topic == APP_UNINSTALLED:
        return app_uninstalled(config, body, headers)
    return privacy.handle(topic, body, headers)


# --- app/uninstalled -------------------------------------------------------------------------

def app_uninstalled(config: AppConfig, body: bytes, headers: Mapping[str, str]) -> str:
    """The merchant uninstalled the app: the tokens it issued are dead. A shop connected
    through it is disconnected (syncing stops, its credentials are deleted, its data kept)
    and marked as having refused its credentials. A retry of the webhook changes nothing."""
    payload = privacy.json_body(body)
    if not isinstance(payload, dict):
        raise Reject(400, "invalid_payload", "invalid payload")
    shop = payload.get("myshopify_domain") or headers.get(privacy.SHOP_HEADER.lower())
    try:
        shop = request_log.normalise_shop_domain(shop)
    except request_log.PrivacyRequestError:
        raise Reject(400, "invalid_payload", "invalid payload") from None
    privacy.check_shop_header(headers, shop)
    try:
        tenant, why = request_log.tenant_for_shop(shop), "no_tenant"
    except request_log.AmbiguousShopDomain:
        tenant, why = None, "ambiguous"
    if tenant is None:
        audit.append("webhook_unmatched_shop", topic=APP_UNINSTALLED, shop_domain=shop, reason=why)
        return "recorded"
    source = tenants.get(tenant).sources.get(credentials.SOURCE) or {}
    if source.get("kind") != "shopify" or not _through_the_app(tenant, source, config):
        # Already disconnected, or connected with credentials of another app (an admin-created
        # custom app's token, the merchant's own client credentials): still valid.
        audit.append("shopify_app_uninstalled", tenant=tenant, shop=shop,
                     outcome="already_disconnected" if source.get("kind") != "shopify"
                     else "not_connected_through_the_app")
        return "recorded"
    disconnect.disconnect(tenant, credentials.SOURCE, delete_data=False)
    tenants.mark_credentials_rejected(tenant, credentials.SOURCE)
    audit.append("shopify_app_uninstalled", tenant=tenant, shop=shop, outcome="disconnected")
    return "recorded"


def _through_the_app(tenant: str, source: dict[str, Any], config: AppConfig) -> bool:
    """Whether the shop's stored credentials came from the app this webhook is about."""
    if source.get("auth") == "oauth":
        return True
    if source.get("auth") == "client_credentials" and config.shopify_app is not None:
        try:
            client_id = secret_store.get(tenant, credentials.CLIENT_ID, purpose="app_uninstalled")
        except secret_store.SecretMissing:
            return False
        return client_id == config.shopify_app.client_id
    return False


routes = [Route(privacy.WEBHOOK_PATH, shopify_webhook, methods=["POST"])]
