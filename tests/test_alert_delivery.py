"""At-least-once alert delivery against real receivers on 127.0.0.1 and a real encrypted warehouse."""

from __future__ import annotations

import dataclasses
import json
import signal
import smtplib
import ssl
import subprocess
import sys
import urllib.request
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from delivery_servers import (
    SmtpServer,
    WebhookReceiver,
    make_pki,
    permissive_client_context,
    server_context,
)

from cleargro_pipeline.alerts import channels, delivery
from cleargro_pipeline.alerts.channels import Channel, DeliveryFailed, InvalidChannel, SmtpSettings
from cleargro_pipeline.alerts.model import Alert, alert_id
from cleargro_pipeline.security import audit, secret_store, verify_at_rest
from cleargro_pipeline.settings import PROJECT_ROOT, paths
from cleargro_pipeline.warehouse import open_warehouse

NOW = datetime(2024, 5, 2, 9, 30, tzinfo=timezone.utc)
SMTP_PASSWORD = "relay-Pa55word-for-tests"


def _alert(tenant, n, severity="critical", alert_type="revenue_drop"):
    day = date(2024, 5, 1)
    entity = f"store-{n}"
    return Alert(alert_id(tenant, alert_type, entity, day), tenant, alert_type, severity, "store",
                 entity, "revenue", 1234.5 + n, 4321.0, day,
                 f"Revenue fell to 29% of the usual level ({n})", link="cleargro sql --tenant x")


def _dispatch(tenant, alerts, chans, now=NOW, **kwargs):
    with open_warehouse(tenant, purpose="alerts") as conn:
        return delivery.dispatch(conn, tenant, alerts, chans, now=now, **kwargs)


def _log(tenant):
    with open_warehouse(tenant, purpose="alerts") as conn:
        return {row["delivery_key"]: row for row in delivery.deliveries(conn)}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


# --- channels ----------------------------------------------------------------------------------

def test_channel_config_is_validated_and_ids_name_no_address():
    hook = Channel.from_config({"kind": "webhook", "url": "https://hooks.example/T1/B2/tok",
                                "min_severity": "warning", "digest": False})
    assert hook.to_config() == {"kind": "webhook", "url": "https://hooks.example/T1/B2/tok",
                                "min_severity": "warning", "digest": False}
    assert hook.channel_id.startswith("webhook:") and "hooks" not in hook.channel_id
    assert hook.channel_id == Channel("webhook", "https://hooks.example/T1/B2/tok").channel_id
    mail = Channel.from_config({"kind": "email", "to": "ops@merchant.example",
                                "min_severity": "critical", "digest": True})
    assert mail.digest and mail.channel_id.startswith("email:")
    Channel("webhook", "http://127.0.0.1:9/x")  # a local receiver may use plain http
    bad = [({"kind": "sms", "to": "+1"}, "unknown channel kind"),
           ({"kind": "webhook", "url": "http://hooks.example/x"}, "https is required"),
           ({"kind": "webhook", "url": "ftp://127.0.0.1/x"}, "'ftp' is not allowed"),
           ({"kind": "webhook", "url": "https://u:p@hooks.example/x"}, "credentials"),
           ({"kind": "email", "to": "ops@merchant.example\r\nBcc: x@evil.example"}, "plain address"),
           ({"kind": "email", "to": "not-an-address"}, "plain address"),
           ({"kind": "email", "to": "a@b.example", "min_severity": "urgent"}, "min_severity"),
           ({"kind": "email", "to": "a@b.example", "min_severty": "info"}, "unknown setting")]
    for config, message in bad:
        with pytest.raises(InvalidChannel, match=message) as error:
            Channel.from_config(config)
        assert isinstance(error.value, ValueError)
    with pytest.raises(InvalidChannel) as error:
        Channel.from_config({"kind": "webhook", "url": "http://hooks.example/T1/secret-token"})
    assert "secret-token" not in str(error.value)


def test_smtp_settings_from_env(monkeypatch):
    for name in ("HOST", "PORT", "USERNAME", "SENDER", "CA_FILE"):
        monkeypatch.delenv(f"CLEARGRO_SMTP_{name}", raising=False)
    assert SmtpSettings.from_env() is None  # no relay configured
    monkeypatch.setenv("CLEARGRO_SMTP_HOST", "relay.example")
    assert SmtpSettings.from_env() == SmtpSettings("relay.example")
    monkeypatch.setenv("CLEARGRO_SMTP_PORT", "25x")
    with pytest.raises(channels.InvalidSmtpSettings, match="CLEARGRO_SMTP_PORT"):
        SmtpSettings.from_env()


def test_backoff_is_exponential_and_capped():
    assert [delivery.backoff(n).total_seconds() for n in (1, 2, 3, 6, 7, 20)] == \
        [60, 120, 240, 1920, 3600, 3600]


# --- email over the SMTP relay -----------------------------------------------------------------

@pytest.fixture
def smtp_env(data_dir, pki, monkeypatch):
    def configure(server, username=None):
        monkeypatch.setenv("CLEARGRO_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CLEARGRO_SMTP_PORT", str(server.port))
        monkeypatch.setenv("CLEARGRO_SMTP_CA_FILE", str(pki.ca_file))
        monkeypatch.setenv("CLEARGRO_SMTP_SENDER", "alerts@cleargro.example")
        if username:
            monkeypatch.setenv("CLEARGRO_SMTP_USERNAME", username)
        return SmtpSettings.from_env()
    return configure


def test_email_goes_over_starttls_with_auth_from_the_secret_store(tenant, pki, smtp_env):
    server = SmtpServer(tls=server_context(pki), user="cleargro", password=SMTP_PASSWORD)
    try:
        secret_store.put("platform", "smtp_password", SMTP_PASSWORD)
        smtp = smtp_env(server, username="cleargro")
        mail = Channel("email", "ops@merchant.example", min_severity="warning")
        alert = _alert(tenant, 1)
        result = _dispatch(tenant, [alert], [mail], smtp=smtp)
    finally:
        server.stop()

    key = delivery.immediate_key(tenant, alert.alert_id, mail)
    assert result.sent == [key] and result.notified_alert_ids == {alert.alert_id}
    [received] = server.mails
    assert received.tls_version in ("TLSv1.2", "TLSv1.3") and received.authenticated
    assert server.handler.auth_attempts == [("cleargro", True, True)]  # one login, over TLS
    assert received.rcpt_tos == ["ops@merchant.example"]
    assert received.message["Message-ID"] == f"<{key}@cleargro.invalid>"
    assert received.message["X-Cleargro-Idempotency-Key"] == key
    assert received.message["Subject"] == "[Cleargro] critical revenue_drop for acme"
    body = received.message.get_content()
    assert "observed 1,235.50, expected 4,321.00" in body and "2024-05-01" in body
    reads = [e for e in audit.entries() if e["action"] == "secret_read"]
    assert [(e["purpose"], e["detail"]["name"]) for e in reads] == [("smtp_login", "smtp_password")]
    assert verify_at_rest.scan([paths().data], [SMTP_PASSWORD, alert.message]) == []


def test_wrong_smtp_password_fails_without_revealing_it(tenant, pki, smtp_env):
    server = SmtpServer(tls=server_context(pki), user="cleargro", password=SMTP_PASSWORD)
    try:
        secret_store.put("platform", "smtp_password", "wrong-Pa55word")
        smtp = smtp_env(server, username="cleargro")
        mail = Channel("email", "ops@merchant.example")
        with pytest.raises(DeliveryFailed, match=r"email:\w+: SMTPAuthenticationError 535") as error:
            channels.send(mail, tenant, [_alert(tenant, 1)], "k1", smtp=smtp)
    finally:
        server.stop()
    assert "wrong-Pa55word" not in str(error.value) and "ops@" not in str(error.value)
    assert server.mails == []


def test_relay_without_starttls_is_refused_before_auth_or_data(tenant, smtp_env):
    # This relay offers AUTH in clear and would accept mail in clear.
    server = SmtpServer(tls=None, user="cleargro", password=SMTP_PASSWORD, auth_in_clear=True)
    try:
        secret_store.put("platform", "smtp_password", SMTP_PASSWORD)
        smtp = smtp_env(server, username="cleargro")
        mail = Channel("email", "ops@merchant.example")
        with pytest.raises(DeliveryFailed, match="does not offer STARTTLS; refusing"):
            channels.send(mail, tenant, [_alert(tenant, 1)], "k1", smtp=smtp)
        # Through the dispatcher the refusal is a failed, retryable delivery.
        result = _dispatch(tenant, [_alert(tenant, 1)], [mail], smtp=smtp)
    finally:
        server.stop()
    assert server.mails == [] and server.handler.auth_attempts == []
    assert len(result.failed) == 1 and result.notified_alert_ids == set()
    [row] = _log(tenant).values()
    assert row["status"] == "failed" and "STARTTLS" in row["last_error"]


# --- TLS 1.1 is refused ------------------------------------------------------------------------

def _negotiates_tls11_or_skip(check) -> None:
    try:
        version = check()
    except (ssl.SSLError, OSError) as error:
        pytest.skip(f"this OpenSSL cannot negotiate TLS 1.1 even with a permissive client "
                    f"({type(error).__name__}: {error}); nothing to prove")
    assert version == "TLSv1.1"


def test_webhook_refuses_a_tls11_only_server(tenant, pki, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))  # trust the test CA (OpenSSL default path)
    modern = WebhookReceiver(tls=server_context(pki))
    legacy = WebhookReceiver(tls=server_context(pki, tls11_only=True))
    try:
        # Control 1: with the CA trusted, our client does reach a TLS >= 1.2 receiver.
        channels.send(Channel("webhook", modern.url()), tenant, [_alert(tenant, 1)], "k-modern")
        assert list(modern.processed) == ["k-modern"] and modern.tls_versions[0] in ("TLSv1.2", "TLSv1.3")

        # Control 2: a permissive client really gets TLS 1.1 from the legacy receiver.
        def permissive_post():
            request = urllib.request.Request(legacy.url(), data=b"{}", method="POST",
                                             headers={"Idempotency-Key": "control"})
            urllib.request.urlopen(request, context=permissive_client_context(pki), timeout=5).close()
            return legacy.tls_versions[-1]
        _negotiates_tls11_or_skip(permissive_post)

        with pytest.raises(DeliveryFailed, match=r"webhook:\w+: SSLError") as error:
            channels.send(Channel("webhook", legacy.url()), tenant, [_alert(tenant, 1)], "k-legacy")
    finally:
        modern.stop()
        legacy.stop()
    assert "PROTOCOL" in str(error.value).upper() or "VERSION" in str(error.value).upper()
    assert list(legacy.processed) == ["control"]  # our payload never reached it


def test_smtp_starttls_refuses_a_tls11_only_relay(tenant, pki, smtp_env):
    server = SmtpServer(tls=server_context(pki, tls11_only=True))
    try:
        def permissive_starttls():
            with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
                client.starttls(context=permissive_client_context(pki))
                return client.sock.version()
        _negotiates_tls11_or_skip(permissive_starttls)

        smtp = smtp_env(server)
        # The relay hangs up on a hello that offers nothing below TLS 1.2 (or we refuse its 1.1).
        with pytest.raises(DeliveryFailed, match=r"email:\w+: SSL\w*Error"):
            channels.send(Channel("email", "ops@merchant.example"), tenant, [_alert(tenant, 1)],
                          "k1", smtp=smtp)
    finally:
        server.stop()
    assert server.mails == []


# --- at-least-once, exactly once by key ----------------------------------------------------------

@pytest.mark.parametrize("outage", ["port closed", "HTTP 503"])
def test_channel_down_then_back_delivers_every_alert_exactly_once(tenant, outage):
    down = WebhookReceiver(status=503)
    port = down.port
    if outage == "port closed":
        down.stop()
    hook = Channel("webhook", f"http://127.0.0.1:{port}/hook")
    alerts = [_alert(tenant, n) for n in range(5)]
    keys = {delivery.immediate_key(tenant, a.alert_id, hook) for a in alerts}

    first = _dispatch(tenant, alerts, [hook])
    assert set(first.failed) == keys and first.sent == [] and first.pending == 5
    assert first.notified_alert_ids == set()
    log = _log(tenant)
    assert {r["status"] for r in log.values()} == {"failed"}
    assert {r["attempts"] for r in log.values()} == {1}
    assert {r["next_attempt_at"] for r in log.values()} == {NOW + timedelta(seconds=60)}
    errors = sorted(r["last_error"] for r in log.values())
    expected = "ConnectionRefusedError" if outage == "port closed" else "HTTP 503"
    assert sum(e == f"channel {hook.channel_id}: {expected}" for e in errors) == 1  # tried once per call
    assert all(expected in e for e in errors)
    if outage == "HTTP 503":
        assert down.requests == 1 and down.processed == {}
        down.stop()

    # Before the backoff has passed nothing is tried.
    early = _dispatch(tenant, alerts, [hook], now=NOW + timedelta(seconds=30))
    assert early.sent == early.failed == [] and early.pending == 5

    back = WebhookReceiver(port=port)
    try:
        later = _dispatch(tenant, alerts, [hook], now=NOW + timedelta(seconds=61))
        again = _dispatch(tenant, alerts, [hook], now=NOW + timedelta(hours=2))
    finally:
        back.stop()
    assert set(later.sent) == keys and later.pending == 0
    assert later.notified_alert_ids == {a.alert_id for a in alerts}
    assert again.sent == again.failed == [] and again.notified_alert_ids == later.notified_alert_ids
    assert set(back.processed) == keys and back.duplicates == [] and back.requests == 5
    assert {p["cleargro"]["alerts"][0]["alert_id"] for p in back.processed.values()} == \
        {a.alert_id for a in alerts}
    log = _log(tenant)
    assert {r["status"] for r in log.values()} == {"sent"} and len(log) == 5
    assert {r["attempts"] for r in log.values()} == {2}
    dispatched = [e for e in audit.entries() if e["action"] == "alerts_dispatched"]
    assert [e["detail"]["sent"] for e in dispatched] == [0, 0, 5, 0]


CHILD = """
import json, sys
from datetime import date, datetime
from cleargro_pipeline.alerts import delivery
from cleargro_pipeline.alerts.channels import Channel
from cleargro_pipeline.alerts.model import Alert
from cleargro_pipeline.warehouse import open_warehouse

spec = json.loads(sys.stdin.read())
alerts = [Alert(**{**a, "for_date": date.fromisoformat(a["for_date"])}) for a in spec["alerts"]]
with open_warehouse(spec["tenant"], purpose="alerts") as conn:
    delivery.dispatch(conn, spec["tenant"], alerts, [Channel.from_config(spec["channel"])],
                      now=datetime.fromisoformat(spec["now"]))
print("dispatch returned: the receiver should have killed us", flush=True)
"""


def test_sender_killed_between_send_and_record_resends_with_the_same_key(tenant, receiver):
    hook = Channel("webhook", receiver.url())
    alerts = [_alert(tenant, n) for n in range(3)]
    keys = [delivery.immediate_key(tenant, a.alert_id, hook) for a in alerts]
    spec = {"tenant": tenant, "channel": hook.to_config(), "now": NOW.isoformat(),
            "alerts": [{**dataclasses.asdict(a), "for_date": a.for_date.isoformat()} for a in alerts]}

    receiver.arm_kill()
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=PROJECT_ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receiver.set_kill_target(child.pid)
    out, err = child.communicate(json.dumps(spec), timeout=60)
    assert child.returncode == -signal.SIGKILL, (out, err)
    assert receiver.requests == 1 and len(receiver.processed) == 1
    [first_key] = receiver.processed
    # What the dead process left (WAL, spill folder) holds no alert text in plaintext.
    assert list((paths().tenant_dir(tenant)).glob("*.wal")), "expected an uncheckpointed WAL"
    assert verify_at_rest.scan([paths().data], [a.message for a in alerts]) == []

    # The dead sender recorded 'sending' before its request went out.
    log = _log(tenant)
    assert log[first_key]["status"] == "sending" and log[first_key]["attempts"] == 1
    assert {log[k]["status"] for k in keys if k != first_key} == {"pending"}

    result = _dispatch(tenant, alerts, [hook], now=NOW + timedelta(minutes=1))
    assert sorted(result.sent) == sorted(keys) and result.failed == []
    assert receiver.duplicates == [first_key]  # resent under the same key and recognised
    assert sorted(receiver.processed) == sorted(keys)  # by key, every alert arrived exactly once
    assert receiver.requests == 4
    log = _log(tenant)
    assert {r["status"] for r in log.values()} == {"sent"}
    assert log[first_key]["attempts"] == 2
    payload = receiver.processed[first_key]
    assert payload["cleargro"]["idempotency_key"] == first_key and payload["text"]
    assert verify_at_rest.scan([paths().data], [a.message for a in alerts]) == []


def test_digest_is_sent_once_per_day_after_the_digest_hour(tenant, receiver):
    digest = Channel("webhook", receiver.url("/digest"), min_severity="info", digest=True)
    a, b, c = _alert(tenant, 1, "warning"), _alert(tenant, 2, "info"), _alert(tenant, 3)
    early = datetime(2024, 5, 2, 6, 59, tzinfo=timezone.utc)

    before = _dispatch(tenant, [a, b], [digest], now=early)
    assert before.sent == [] and receiver.requests == 0
    assert before.queued_alert_ids == {a.alert_id, b.alert_id} and before.notified_alert_ids == set()
    assert _log(tenant) == {}

    at_hour = _dispatch(tenant, [a, b], [digest], now=early + timedelta(minutes=31))
    key = delivery.digest_key(tenant, digest, date(2024, 5, 2))
    assert at_hour.sent == [key] and list(receiver.processed) == [key]
    sent = receiver.processed[key]["cleargro"]["alerts"]
    assert sorted(x["alert_id"] for x in sent) == sorted([a.alert_id, b.alert_id])
    assert at_hour.notified_alert_ids == {a.alert_id, b.alert_id} and at_hour.queued_alert_ids == set()

    # Same day: nothing re-sent; an alert raised later waits for tomorrow's digest.
    later = _dispatch(tenant, [a, b, c], [digest], now=early + timedelta(hours=3))
    assert later.sent == [] and receiver.requests == 1 and later.queued_alert_ids == {c.alert_id}
    tomorrow = _dispatch(tenant, [c], [digest], now=early + timedelta(days=1, hours=1))
    key2 = delivery.digest_key(tenant, digest, date(2024, 5, 3))
    assert tomorrow.sent == [key2] and receiver.requests == 2
    assert [x["alert_id"] for x in receiver.processed[key2]["cleargro"]["alerts"]] == [c.alert_id]
    # An empty digest is not sent.
    empty = _dispatch(tenant, [], [digest], now=early + timedelta(days=2, hours=1))
    assert empty.sent == [] and receiver.requests == 2 and receiver.duplicates == []
    assert [r["digest_date"] for r in _log(tenant).values()] == [date(2024, 5, 2), date(2024, 5, 3)]


def test_severity_filter_routes_alerts_per_channel(tenant, receiver):
    everything = Channel("webhook", receiver.url("/warn"), min_severity="warning")
    pager = Channel("webhook", receiver.url("/crit"), min_severity="critical")
    info, warning = _alert(tenant, 1, "info"), _alert(tenant, 2, "warning")
    # Alerts built from DuckDB rows may carry Decimal values.
    critical = dataclasses.replace(_alert(tenant, 3, "critical"), observed=Decimal("12.50"))
    result = _dispatch(tenant, [info, warning, critical], [everything, pager])
    assert len(result.sent) == 3 and receiver.duplicates == []
    by_path = sorted((receiver.paths[k], p["cleargro"]["alerts"][0]["severity"])
                     for k, p in receiver.processed.items())
    assert by_path == [("/crit", "critical"), ("/warn", "critical"), ("/warn", "warning")]
    assert {p["cleargro"]["alerts"][0]["observed"] for p in receiver.processed.values()} == {12.5, 1236.5}
    assert result.unrouted_alert_ids == {info.alert_id}
    assert result.notified_alert_ids == {warning.alert_id, critical.alert_id}
    assert _dispatch(tenant, [info, warning, critical], [everything, pager]).sent == []
    assert receiver.requests == 3


def test_dispatch_refuses_alerts_of_another_tenant(tenant):
    with pytest.raises(ValueError, match="another tenant"):
        _dispatch(tenant, [_alert("other", 1)], [Channel("webhook", "https://hooks.example/x")])
