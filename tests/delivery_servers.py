"""Real receivers on 127.0.0.1 for the alert-delivery tests: a test CA, an HTTP(S) webhook
receiver that deduplicates by Idempotency-Key, and an aiosmtpd SMTP server with STARTTLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


# --- a test CA and a server certificate for 127.0.0.1 / localhost ------------------------------

@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path) -> Pki:
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Cleargro Test CA"))
          .issuer_name(_name("Cleargro Test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
              .issuer_name(ca.subject).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([
                  x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                  critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pki


def server_context(pki: Pki, *, tls11_only: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    if tls11_only:
        _legacy(context)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def permissive_client_context(pki: Pki) -> ssl.SSLContext:
    """A client that still accepts TLS 1.0/1.1: the control proving the old server really speaks 1.1."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    _legacy(context)
    return context


def _legacy(context: ssl.SSLContext) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    # OpenSSL 3 refuses TLS < 1.2 at the default security level.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the webhook receiver ----------------------------------------------------------------------

class WebhookReceiver:
    """Records each POST; a repeated Idempotency-Key is answered 200 but counted as a duplicate.

    `status` other than 200 answers every request with it (an unhealthy receiver, nothing
    processed). `kill_first_sender()` arms it to SIGKILL the given process on the first
    request, after recording it and before answering: the crash window of the sender.
    """

    def __init__(self, *, port: int = 0, tls: ssl.SSLContext | None = None, status: int = 200):
        self.status = status
        self.processed: dict[str, dict[str, Any]] = {}  # idempotency key -> first payload
        self.paths: dict[str, str] = {}
        self.duplicates: list[str] = []
        self.requests = 0
        self.tls_versions: list[str] = []
        self._lock = threading.Lock()
        self._kill_pid: int | None = None
        self._armed = threading.Event()
        self._want_kill = False
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def arm_kill(self) -> None:
        self._want_kill = True

    def set_kill_target(self, pid: int) -> None:
        self._kill_pid = pid
        self._armed.set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._receive(self, self.headers.get("Idempotency-Key"), json.loads(body))

        return Handler

    def _receive(self, handler: BaseHTTPRequestHandler, key: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.requests += 1
            if isinstance(handler.connection, ssl.SSLSocket):
                self.tls_versions.append(handler.connection.version())
            if self.status != 200:
                return self._answer(handler, self.status)
            if key in self.processed:
                self.duplicates.append(key)
            else:
                self.processed[key] = payload
                self.paths[key] = handler.path
            if self._want_kill:
                self._want_kill = False
                assert self._armed.wait(30), "the test never told the receiver whom to kill"
                os.kill(self._kill_pid, signal.SIGKILL)
                handler.close_connection = True
                return None  # the sender is dead: no answer
        return self._answer(handler, 200)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


# --- the SMTP server ---------------------------------------------------------------------------

@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls_version: str | None
    authenticated: bool


@dataclass
class MailHandler:
    user: str | None = None
    password: str | None = None
    mails: list[Mail] = field(default_factory=list)
    auth_attempts: list[tuple[str, bool, bool]] = field(default_factory=list)  # login, ok, over TLS

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        ssl_object = (session.ssl or {}).get("ssl_object")
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                               message_from_bytes(envelope.original_content, policy=policy.default),
                               ssl_object.version() if ssl_object else None,
                               bool(session.authenticated)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = login == self.user and password == self.password
        self.auth_attempts.append((login, ok, session.ssl is not None))
        return AuthResult(success=ok, handled=False)  # let aiosmtpd answer 235 or 535


class SmtpServer:
    """aiosmtpd on 127.0.0.1; with `tls` it offers STARTTLS (and, with a user, requires AUTH)."""

    def __init__(self, *, tls: ssl.SSLContext | None, user: str | None = None,
                 password: str | None = None, auth_in_clear: bool = False):
        self.handler = MailHandler(user, password)
        self.port = free_port()
        kwargs: dict[str, Any] = {"authenticator": self.handler.authenticate,
                                  "auth_require_tls": not auth_in_clear}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True, auth_required=user is not None)
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    @property
    def mails(self) -> list[Mail]:
        return self.handler.mails

    def stop(self) -> None:
        self._controller.stop()
