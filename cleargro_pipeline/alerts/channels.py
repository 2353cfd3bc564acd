"""The two kinds of alert channel a tenant can configure, and sending one message to one.

A webhook gets a Slack-compatible JSON POST; an email goes through the platform's SMTP
relay. Both refuse anything below TLS 1.2 and verify certificates; SMTP insists on
STARTTLS before it sends or authenticates anything. Every message carries its
idempotency key (`Idempotency-Key` header, `Message-ID`) so that a receiver can drop
the duplicate an at-least-once resend may produce. Failures raise `DeliveryFailed`
naming the channel id and the error class or status: never an address, payload or password.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Mapping
from urllib.parse import urlsplit

from cleargro_pipeline.alerts.model import SEVERITIES, Alert, format_value, severity_rank
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import secret_store
from cleargro_pipeline.security.tls import tls_context

KINDS = ("webhook", "email")
TIMEOUT_S = 10.0
MESSAGE_ID_DOMAIN = "cleargro.invalid"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_TARGET_KEY = {"webhook": "url", "email": "to"}
# One plain address: no display name, no list, no whitespace (so no header injection).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")
_SLACK_MAX_ALERT_BLOCKS = 40  # Slack allows 50 blocks per message; the rest go in a summary line


class InvalidChannel(CleargroError, ValueError):
    pass


class InvalidSmtpSettings(CleargroError, ValueError):
    pass


class DeliveryFailed(CleargroError):
    """One send did not succeed; safe to store and show (channel id and error class only)."""


def _check_url(url: str) -> None:
    # The URL is not echoed: webhook URLs often embed a token in their path.
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidChannel("webhook url is not a valid URL") from None
    if parts.username or parts.password:
        raise InvalidChannel("webhook url must not carry credentials (user:password@)")
    if not host:
        raise InvalidChannel("webhook url has no host")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOCAL_HOSTS):
        return
    raise InvalidChannel(f"webhook url scheme {parts.scheme!r} is not allowed: https is required "
                         "(plain http only for a receiver on 127.0.0.1 or localhost)")


@dataclass(frozen=True)
class Channel:
    kind: str
    target: str  # webhook URL or email address
    min_severity: str = "warning"
    digest: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidChannel(f"unknown channel kind {self.kind!r}; "
                                 f"kinds are {', '.join(KINDS)}")
        if not isinstance(self.target, str) or not self.target:
            raise InvalidChannel(f"{self.kind} channel needs '{_TARGET_KEY[self.kind]}'")
        if self.kind == "webhook":
            _check_url(self.target)
        elif not _EMAIL.fullmatch(self.target):
            raise InvalidChannel("email channel 'to' is not a single plain address "
                                 "(like ops@merchant.example)")
        if self.min_severity not in SEVERITIES:
            raise InvalidChannel(f"unknown min_severity {self.min_severity!r}; severities are "
                                 f"{', '.join(SEVERITIES)}")
        if not isinstance(self.digest, bool):
            raise InvalidChannel("channel 'digest' must be true or false")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Channel:
        if not isinstance(config, Mapping):
            raise InvalidChannel("a channel is configured as a mapping with 'kind'")
        kind = config.get("kind")
        if kind not in KINDS:
            raise InvalidChannel(f"unknown channel kind {kind!r}; kinds are {', '.join(KINDS)}")
        target_key = _TARGET_KEY[kind]
        unknown = set(config) - {"kind", target_key, "min_severity", "digest"}
        if unknown:  # a typo such as "min_severty" must not silently fall back to a default
            raise InvalidChannel(f"{kind} channel: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(kind, config.get(target_key), config.get("min_severity", "warning"),
                   config.get("digest", False))

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, _TARGET_KEY[self.kind]: self.target,
                "min_severity": self.min_severity, "digest": self.digest}

    @property
    def channel_id(self) -> str:
        """Stable, address-free id for logs: the same target always gets the same id."""
        return f"{self.kind}:{hashlib.sha256(self.target.encode()).hexdigest()[:12]}"

    def accepts(self, alert: Alert) -> bool:
        return severity_rank(alert.severity) >= severity_rank(self.min_severity)


@dataclass(frozen=True)
class SmtpSettings:
    """The platform's SMTP relay (one for all tenants); the password lives in the secret store."""
    host: str
    port: int = 587
    username: str | None = None
    password_secret: str = "smtp_password"
    sender: str = "alerts@cleargro.invalid"
    ca_file: str | None = None  # a CA bundle to trust instead of the system's

    @classmethod
    def from_env(cls) -> SmtpSettings | None:
        """Settings from CLEARGRO_SMTP_*; None when no relay is configured (no HOST)."""
        host = os.environ.get("CLEARGRO_SMTP_HOST")
        if not host:
            return None
        port = os.environ.get("CLEARGRO_SMTP_PORT") or "587"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidSmtpSettings(f"CLEARGRO_SMTP_PORT={port!r} is not a port number")
        sender = os.environ.get("CLEARGRO_SMTP_SENDER") or cls.sender
        if not _EMAIL.fullmatch(sender):
            raise InvalidSmtpSettings("CLEARGRO_SMTP_SENDER is not a single plain address")
        return cls(host, int(port), os.environ.get("CLEARGRO_SMTP_USERNAME") or None,
                   sender=sender, ca_file=os.environ.get("CLEARGRO_SMTP_CA_FILE") or None)


def _error_text(error: BaseException) -> str:
    # Class name plus a code (SSL reason, HTTP status, SMTP code): never the exception's
    # free text, which may quote a URL, a server reply or the message.
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return _error_text(error.reason)
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{type(error).__name__} {error.reason}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.smtp_code}"
    return type(error).__name__


# --- message content ---------------------------------------------------------------------

def as_float(value: Any) -> float | None:
    # Alerts built from DuckDB rows may carry Decimal, which JSON cannot encode.
    return None if value is None else float(value)


def _alert_record(alert: Alert) -> dict[str, Any]:
    return {"alert_id": alert.alert_id, "alert_type": alert.alert_type, "severity": alert.severity,
            "entity_type": alert.entity_type, "entity_id": alert.entity_id, "metric": alert.metric,
            "observed": as_float(alert.observed), "expected": as_float(alert.expected),
            "for_date": alert.for_date.isoformat(), "message": alert.message, "link": alert.link}


def _top_severity(alerts: list[Alert]) -> str:
    return max((a.severity for a in alerts), key=severity_rank)


def _title(tenant: str, alerts: list[Alert]) -> str:
    if len(alerts) == 1:
        return f"[Cleargro] {alerts[0].severity} {alerts[0].alert_type} for {tenant}"
    return f"[Cleargro] {_top_severity(alerts)}: {len(alerts)} alerts for {tenant}"


def _alert_lines(alert: Alert) -> list[str]:
    lines = [f"{alert.severity.upper()} {alert.alert_type} ({alert.entity_type} {alert.entity_id})",
             alert.message,
             f"{alert.metric}: observed {format_value(alert.observed)}, "
             f"expected {format_value(alert.expected)} (for {alert.for_date.isoformat()})"]
    if alert.link:
        lines.append(f"Next: {alert.link}")
    return lines


def webhook_payload(tenant: str, alerts: list[Alert], idempotency_key: str) -> dict[str, Any]:
    """Slack-compatible (`text`, `blocks`) plus the structured alerts under `cleargro`."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(tenant, alerts)[:150]}}]
    for alert in alerts[:_SLACK_MAX_ALERT_BLOCKS]:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": "\n".join(_alert_lines(alert))[:3000]}})
    if len(alerts) > _SLACK_MAX_ALERT_BLOCKS:
        more = len(alerts) - _SLACK_MAX_ALERT_BLOCKS
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {more} more alert(s)"}]})
    return {"text": _title(tenant, alerts), "blocks": blocks,
            "cleargro": {"tenant": tenant, "idempotency_key": idempotency_key,
                         "alerts": [_alert_record(a) for a in alerts]}}


def email_message(tenant: str, alerts: list[Alert], idempotency_key: str, *, sender: str,
                  to: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = _title(tenant, alerts)
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    # The same key on every resend: mail systems and readers can drop the duplicate.
    message["Message-ID"] = f"<{idempotency_key}@{MESSAGE_ID_DOMAIN}>"
    message["X-Cleargro-Idempotency-Key"] = idempotency_key
    body = [f"Cleargro alerts for {tenant}", ""]
    for alert in alerts:
        body += _alert_lines(alert) + [""]
    message.set_content("\n".join(body))
    return message


# --- sending -----------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could downgrade to http or move the payload elsewhere: treat it as a failure.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


def _send_webhook(channel: Channel, tenant: str, alerts: list[Alert], key: str) -> None:
    body = json.dumps(webhook_payload(tenant, alerts, key)).encode()
    request = urllib.request.Request(channel.target, data=body, method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": key,
        "User-Agent": "cleargro-alerts/1"})
    opener = urllib.request.build_opener(
        _NoRedirect, urllib.request.HTTPSHandler(context=tls_context()))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            status = response.status
            response.read(65536)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DeliveryFailed(f"channel {channel.channel_id}: {_error_text(error)}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"channel {channel.channel_id}: HTTP {status}")


def _smtp_password(channel: Channel, smtp: SmtpSettings) -> str | None:
    if not smtp.username:
        return None
    try:
        return secret_store.get(secret_store.PLATFORM, smtp.password_secret, purpose="smtp_login")
    except CleargroError as error:  # its message names scope and secret only
        raise DeliveryFailed(f"channel {channel.channel_id}: {error}") from None


def _send_email(channel: Channel, tenant: str, alerts: list[Alert], key: str,
                smtp: SmtpSettings | None) -> None:
    if smtp is None:
        raise DeliveryFailed(f"channel {channel.channel_id}: no SMTP relay is configured "
                             "(set CLEARGRO_SMTP_HOST)")
    message = email_message(tenant, alerts, key, sender=smtp.sender, to=channel.target)
    password = _smtp_password(channel, smtp)
    client, sent = None, False
    try:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_S)
        client.ehlo()
        if not client.has_extn("starttls"):
            # Never send (or authenticate) in clear: the relay must offer STARTTLS.
            raise DeliveryFailed(f"channel {channel.channel_id}: SMTP relay does not offer "
                                 "STARTTLS; refusing to send in clear")
        client.starttls(context=tls_context(smtp.ca_file))
        client.ehlo()
        if smtp.username:
            client.login(smtp.username, password)
        client.send_message(message)
        sent = True
    except DeliveryFailed:
        raise
    except (smtplib.SMTPException, OSError, ValueError) as error:
        raise DeliveryFailed(f"channel {channel.channel_id}: {_error_text(error)}") from None
    finally:
        if client is not None:
            _close(client, polite=sent)


def _close(client: smtplib.SMTP, *, polite: bool) -> None:
    # Once the relay has accepted the message a failing QUIT must not turn it into a
    # failure (and a resend); after an error (a broken TLS handshake) just drop the socket.
    try:
        if polite:
            client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


def send(channel: Channel, tenant: str, alerts: list[Alert], idempotency_key: str, *,
         smtp: SmtpSettings | None = None) -> None:
    """Deliver one message (one alert, or a digest of several) to one channel.

    Returns once the receiver accepted it (HTTP 2xx, SMTP 250); raises DeliveryFailed otherwise.
    """
    if not alerts:
        raise ValueError("send() needs at least one alert")
    if channel.kind == "webhook":
        _send_webhook(channel, tenant, alerts, idempotency_key)
    else:
        _send_email(channel, tenant, alerts, idempotency_key, smtp)
