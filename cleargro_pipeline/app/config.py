"""What the app service knows for its lifetime, read once when it is made (each secret-store
read is an audit entry): the secret Shopify signs webhooks with, the platform's Shopify app and
Google OAuth client (each absent: its routes answer 503), the public URL Shopify and Google send
merchants back to, and the flows in progress."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field

from cleargro_pipeline.app.installs import PendingInstalls, UsedLinks
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.privacy import webhooks as privacy_webhooks
from cleargro_pipeline.security import secret_store
from cleargro_pipeline.sources import google_oauth
from cleargro_pipeline.sources.shopify import credentials
from cleargro_pipeline.sources.shopify.credentials import ShopifyApp

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8787


class AppConfigError(CleargroError):
    pass


@dataclass
class AppConfig:
    webhook_secret: bytes = field(repr=False)
    shopify_app: ShopifyApp | None
    public_url: str | None  # https://host[:port], no path: where Shopify sends merchants back
    installs: PendingInstalls = field(default_factory=PendingInstalls)
    google_client: google_oauth.GoogleClient | None = None
    consents: PendingInstalls = field(default_factory=PendingInstalls)  # Google consents
    used_links: UsedLinks = field(default_factory=UsedLinks)
    max_body: int = privacy_webhooks.MAX_BODY_BYTES


def public_url(url: str | None) -> str | None:
    """The service's public base URL: https, or http to a loopback host (tests, a local
    proxy); no path, query or fragment."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if (parts.scheme != "https" and not (parts.scheme == "http" and loopback)) or not host \
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise AppConfigError(f"public URL {parts.scheme}://{host} refused: give the https base "
                             "URL Shopify reaches this service at (https://apps.example.com), "
                             "without a path; plain http only to a loopback host")
    return f"{parts.scheme}://{parts.netloc}"


def load(url: str | None = None) -> AppConfig:
    """Read the secrets once. The platform's Shopify app (`shopify_app`) signs webhooks with
    its client secret; without it, the privacy webhooks' `shopify_app_secret` is used and the
    OAuth routes are off. Neither stored: SecretMissing."""
    base = public_url(url)
    if credentials.platform_app_configured():
        app = credentials.platform_app(purpose="app_service")
        secret = app.client_secret
    else:
        try:
            app, secret = None, privacy_webhooks.platform_secret()
        except secret_store.SecretMissing:
            raise secret_store.SecretMissing(
                f"the Shopify app is not configured: store it with `cleargro secrets set platform "
                f"{credentials.PLATFORM_APP}` (JSON on stdin: "
                '{"client_id": ..., "client_secret": ...}); for the privacy webhooks alone, '
                f"`cleargro secrets set platform {privacy_webhooks.SECRET_NAME}` is enough") from None
    if not secret:
        raise privacy_webhooks.WebhookConfigError("the Shopify app's secret is empty")
    google = (google_oauth.platform_client(purpose="app_service")
              if google_oauth.platform_client_configured() else None)
    return AppConfig(webhook_secret=secret.encode(), shopify_app=app, public_url=base,
                     google_client=google)
