"""The one TLS client context: certificates verified, nothing below TLS 1.2. Alert webhooks,
SMTP's STARTTLS and OAuth token revocation all connect through it."""

from __future__ import annotations

import ssl


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Verifying client context that refuses anything below TLS 1.2."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
