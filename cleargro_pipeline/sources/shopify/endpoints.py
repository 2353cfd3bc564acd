"""Where a shop's requests go: `https://NAME.myshopify.com`, or a loopback base URL for tests
and staging. Nothing else is accepted, so a configured endpoint cannot send a merchant's token
anywhere else. (Standard library only: the CLI validates endpoints without loading dlt.)"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from cleargro_pipeline.errors import CleargroError

SHOP_DOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")


class EndpointRefused(CleargroError, ValueError):
    """Not a shop domain, or not a loopback base URL."""


def api_base(shop: str, endpoint: str | None = None) -> str:
    """The base URL of the shop's Admin API."""
    if endpoint:
        return loopback_endpoint(endpoint)
    if not SHOP_DOMAIN.match(shop or ""):
        raise EndpointRefused(f"'{shop}' is not a shop domain (NAME.myshopify.com)")
    return f"https://{shop}"


def loopback_endpoint(endpoint: str) -> str:
    """A test or staging base URL: http(s) to a loopback address, without a path."""
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback or parts.path not in ("", "/"):
        raise EndpointRefused(f"endpoint '{parts.scheme}://{host}' refused: only a loopback base "
                              "URL (http://127.0.0.1:PORT) may replace the shop's address")
    return f"{parts.scheme}://{parts.netloc}"
