"""Deletion certificates: Ed25519-signed JSON in `data/certificates/`, outside every tenant
folder. The signing key is sealed in the secret store (scope `platform`) and its public key is
published beside the certificates as `signing_key.pub` (PEM). `verify_certificate` fails on any
edited byte: the file must be exactly the canonical serialisation of what it holds (`file_bytes`),
and the signature covers the canonical certificate body (`canonical`)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cleargro_pipeline.controls.deletion.requests import DeletionError, store_dir
from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.settings import paths

SIGNING_KEY_NAME = "deletion_certificate_signing_key"
CERTIFICATE_FORMAT = "cleargro-deletion-certificate/1"


class CertificateInvalid(CleargroError):
    """A certificate does not verify: edited, unsigned, or signed by another key."""


def certificates_dir() -> Path:
    return paths().data / "certificates"


def signing_public_key_path() -> Path:
    return certificates_dir() / "signing_key.pub"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def signing_key() -> Ed25519PrivateKey:
    """The certificate signing key: created on first use, sealed in the secret store."""
    folder = certificates_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(store_dir() / "signing.lock"):
        if SIGNING_KEY_NAME in secret_store.names(secret_store.PLATFORM):
            pem = secret_store.get(secret_store.PLATFORM, SIGNING_KEY_NAME,
                                   purpose="deletion_certificate")
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise DeletionError(f"platform secret {SIGNING_KEY_NAME} is not an Ed25519 key")
        else:
            private = Ed25519PrivateKey.generate()
            pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
            secret_store.put(secret_store.PLATFORM, SIGNING_KEY_NAME, pem)
            audit.append("deletion_signing_key_created",
                         fingerprint=fingerprint(private.public_key()))
        published = _public_pem(private.public_key())
        target = signing_public_key_path()
        if not target.exists():
            write_atomic(target, published, mode=0o644)
        elif target.read_bytes() != published:
            raise DeletionError(f"{target} does not match the sealed signing key; refusing to sign "
                                "(restore the published key or rotate it deliberately)")
    return private


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes the signature covers."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def file_bytes(wrapper: dict[str, Any]) -> bytes:
    """The one serialisation of a certificate file: any other bytes are an edit."""
    return (json.dumps(wrapper, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()


def _b64decode_strict(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise CertificateInvalid(f"certificate {what} is missing or not text")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise CertificateInvalid(f"certificate {what} is not valid base64 (edited)") from None
    if base64.b64encode(raw).decode() != text:
        raise CertificateInvalid(f"certificate {what} is not canonical base64 (edited)")
    return raw


@dataclass(frozen=True)
class Certificate:
    path: Path
    body: dict[str, Any]
    public_key_fingerprint: str

    @property
    def tenant(self) -> str:
        return self.body["tenant"]

    @property
    def completed_at(self) -> str:
        return self.body["completed_at"]

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.body["items"]


def verify_certificate(path: Path | str, public_key_path: Path | str | None = None) -> Certificate:
    """Check a certificate against the public key (default: data/certificates/signing_key.pub).

    Raises CertificateInvalid on any edited byte, a missing signature or another key.
    """
    path = Path(path)
    key_file = Path(public_key_path) if public_key_path else signing_public_key_path()
    try:
        trusted = serialization.load_pem_public_key(key_file.read_bytes())
    except FileNotFoundError:
        raise CertificateInvalid(f"no public key at {key_file}; pass the signer's public key") from None
    except ValueError:
        raise CertificateInvalid(f"{key_file} is not a PEM public key") from None
    if not isinstance(trusted, Ed25519PublicKey):
        raise CertificateInvalid(f"{key_file} is not an Ed25519 public key")
    raw = path.read_bytes()
    try:
        wrapper = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CertificateInvalid(f"{path} is not valid JSON (edited or truncated)") from None
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("certificate"), dict):
        raise CertificateInvalid(f"{path} holds no certificate")
    if "signature" not in wrapper:
        raise CertificateInvalid(f"{path} has no signature")
    if set(wrapper) != {"certificate", "signature", "public_key"}:
        raise CertificateInvalid(f"{path} has unexpected or missing fields (edited)")
    if raw != file_bytes(wrapper):
        raise CertificateInvalid(f"{path} is not byte-for-byte the form it was signed in (edited)")
    signature = _b64decode_strict(wrapper["signature"], "signature")
    embedded = _b64decode_strict(wrapper["public_key"], "public key")
    expected = fingerprint(trusted)
    raw_trusted = trusted.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = wrapper["certificate"]
    claimed = (body.get("signer") or {}).get("public_key_fingerprint")
    if embedded != raw_trusted or claimed != expected:
        raise CertificateInvalid(f"{path} was signed by a different key ({claimed}), not by "
                                 f"{expected} from {key_file}")
    try:
        trusted.verify(signature, canonical(body))
    except InvalidSignature:
        raise CertificateInvalid(f"{path}: signature does not match its content (edited)") from None
    return Certificate(path, body, expected)


def write(target: Path, body: dict[str, Any], private: Ed25519PrivateKey) -> None:
    """Sign `body` and write the certificate (public, mode 0644) at `target`."""
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    wrapper = {"certificate": body,
               "signature": base64.b64encode(private.sign(canonical(body))).decode(),
               "public_key": base64.b64encode(public_raw).decode()}
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, file_bytes(wrapper), mode=0o644)
