"""The one TLS client context: certificates verified, nothing below TLS 1.2. Alert webhooks,
SMTP's STARTTLS, OAuth token revocation and Shopify's token endpoint all connect through it."""

from __future__ import annotations

import ssl
import urllib.error


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Verifying client context that refuses anything below TLS 1.2."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def connection_failure(error: BaseException) -> str:
    """What failed in a connection, safe to show: the class and an SSL reason only (free text
    may quote the URL, a reply or a token)."""
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return connection_failure(error.reason)
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{type(error).__name__} {error.reason}"
    return type(error).__name__
