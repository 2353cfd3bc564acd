"""Which Google Ads account, and where its queries may go: customer ids as ten digits, and the
endpoint rules (Google's API hosts over TLS, or a loopback test server over plaintext gRPC).
Standard library only, so the CLI validates a tenant's settings without loading google-ads."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from cleargro_pipeline.errors import CleargroError

GOOGLE_ENDPOINT = "googleads.googleapis.com"
GOOGLE_DOMAIN = ".googleapis.com"
CUSTOMER_ID = re.compile(r"^\d{10}$")
DASHED_CUSTOMER_ID = re.compile(r"^\d{3}-\d{3}-\d{4}$")


class InvalidCustomerId(CleargroError, ValueError):
    """A customer id that is not ten digits."""


class EndpointRefused(CleargroError, ValueError):
    """An endpoint the Ads client may not send a merchant's token to."""


def customer_id(value: Any, what: str = "customer id") -> str:
    """A Google Ads customer id as the API takes it: ten digits, no dashes."""
    text = str(value if value is not None else "").strip()
    if CUSTOMER_ID.match(text):
        return text
    if DASHED_CUSTOMER_ID.match(text):
        raise InvalidCustomerId(f"Google Ads {what} '{text}' has dashes: give the ten digits "
                                f"alone ({text.replace('-', '')})")
    raise InvalidCustomerId(f"Google Ads {what} must be ten digits (as in 1234567890)")


@dataclass(frozen=True)
class Endpoint:
    address: str  # host:port as gRPC dials it
    plaintext: bool


def endpoint(value: str | None) -> Endpoint:
    """Where queries go: None is Google's endpoint; `127.0.0.1:PORT` (or `http://` to a loopback
    address) is plaintext gRPC; `https://HOST[:PORT]` or `HOST[:PORT]` on googleapis.com is TLS."""
    if not value:
        return Endpoint(GOOGLE_ENDPOINT, plaintext=False)
    scheme, _, rest = value.rpartition("://")
    if scheme not in ("", "http", "https") or not rest or "/" in rest.rstrip("/"):
        raise EndpointRefused("Google Ads endpoint refused: give HOST:PORT (127.0.0.1:PORT for "
                              "a local test server)")
    address = rest.rstrip("/")
    host = _host(address)
    if _loopback(host):
        return Endpoint(address, plaintext=scheme != "https")
    if scheme == "http":
        raise EndpointRefused(f"Google Ads endpoint '{host}' refused: plaintext gRPC is allowed "
                              "to a loopback address only (127.0.0.1:PORT); every other "
                              "endpoint uses TLS")
    if not host.endswith(GOOGLE_DOMAIN):
        raise EndpointRefused(f"Google Ads endpoint '{host}' refused: only Google's API hosts "
                              f"(*{GOOGLE_DOMAIN}) or a loopback test server may receive the token")
    return Endpoint(address, plaintext=False)


def _host(address: str) -> str:
    if address.startswith("["):  # [::1]:PORT
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
