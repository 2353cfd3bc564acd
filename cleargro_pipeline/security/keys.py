"""Envelope encryption of per-tenant keys (the only place keys are made or unwrapped).

Each tenant has random 256-bit keys (a data key for its warehouse, a
pseudonym key for shopper ids), never derived from the master key, so that
destroying them later is a real crypto-shred. They are stored only wrapped
with AES-256-GCM under the master key, with the tenant, key kind and version
as associated data: a wrapped key copied to another tenant does not unwrap.
Every unwrap is written to the audit log before the key is returned. `destroy` shreds a
tenant's wrapped keys; `pseudonymiser` hands out the tenant's keyed shopper pseudonyms.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleargro_pipeline.durable import shred, write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import paths

if TYPE_CHECKING:
    from cleargro_pipeline.security.pseudonyms import Pseudonymise

KEY_KINDS = ("data", "pseudonym")
MASTER_KEY_ENV = "CLEARGRO_MASTER_KEY"


class KeyUnavailable(CleargroError):
    """A key cannot be produced; the message names the tenant (or master key) and the cause."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def master_key() -> bytes:
    """The master key: `CLEARGRO_MASTER_KEY` (base64) in production, else the local demo file."""
    encoded = os.environ.get(MASTER_KEY_ENV)
    origin = MASTER_KEY_ENV
    if not encoded:
        key_file = paths().master_key_file
        if not key_file.exists():
            raise KeyUnavailable(
                f"no master key: set {MASTER_KEY_ENV} (base64 of 32 bytes) or run "
                "`cleargro init` to create the local demo key file")
        encoded, origin = key_file.read_text().strip(), str(key_file)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyUnavailable(f"master key from {origin} is not valid base64") from None
    if len(key) != 32:
        raise KeyUnavailable(f"master key from {origin} is {len(key)} bytes; 32 are required")
    return key


def ensure_local_master_key() -> Path | None:
    """Create data/keys/master.key (mode 0600) for the embedded default, unless one is supplied."""
    if os.environ.get(MASTER_KEY_ENV):
        return None
    key_file = paths().master_key_file
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_b64(os.urandom(32)) + "\n")
    return key_file


def _key_file(tenant: str) -> Path:
    return paths().registry / tenant / "keys.json"


def _aad(tenant: str, kind: str, version: int) -> bytes:
    return f"cleargro/tenant={tenant}/kind={kind}/version={version}".encode()


def create_tenant_keys(tenant: str) -> None:
    """Generate and store wrapped keys for a new tenant (refuses to overwrite)."""
    key_file = _key_file(tenant)
    if key_file.exists():
        raise KeyUnavailable(f"tenant '{tenant}' already has keys; refusing to replace them")
    wrapper = AESGCM(master_key())
    wrapped = {}
    for kind in KEY_KINDS:
        nonce, version = os.urandom(12), 1
        sealed = wrapper.encrypt(nonce, AESGCM.generate_key(bit_length=256), _aad(tenant, kind, version))
        wrapped[kind] = {"alg": "AES-256-GCM", "version": version, "nonce": _b64(nonce),
                         "wrapped": _b64(sealed)}
    key_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(key_file, json.dumps(wrapped, indent=2).encode(), mode=0o600)
    audit.append("tenant_keys_created", tenant=tenant, kinds=list(KEY_KINDS))


def unwrap_tenant_key(tenant: str, kind: str, purpose: str) -> bytes:
    """Return the tenant's raw key of `kind`, recording who asked and why."""
    key_file = _key_file(tenant)
    if not key_file.exists():
        raise KeyUnavailable(f"tenant '{tenant}': no {kind} key is stored ({key_file} is missing)")
    try:
        record = json.loads(key_file.read_text())[kind]
        nonce = base64.b64decode(record["nonce"])
        sealed = base64.b64decode(record["wrapped"])
        version = int(record["version"])
    except (KeyError, ValueError, TypeError):
        raise KeyUnavailable(f"tenant '{tenant}': stored {kind} key record is malformed") from None
    try:
        key = AESGCM(master_key()).decrypt(nonce, sealed, _aad(tenant, kind, version))
    except InvalidTag:
        raise KeyUnavailable(f"tenant '{tenant}': the master key cannot unwrap the {kind} key "
                             "(wrong master key, or the wrapped key was altered)") from None
    audit.append("key_unwrapped", tenant=tenant, purpose=purpose, key_kind=kind,
                 key_version=version)
    return key


def pseudonymiser(tenant: str, purpose: str) -> Pseudonymise:
    """The tenant's shopper pseudonyms: HMAC-SHA256 under its pseudonym key (unwrap audited)."""
    # Start-up cost: pseudonyms imports pyarrow (~0.5 s), and every module that knows the
    # registry imports keys; only loads and privacy requests pseudonymise.
    from cleargro_pipeline.security.pseudonyms import hmac_pseudonymiser

    return hmac_pseudonymiser(unwrap_tenant_key(tenant, "pseudonym", purpose), namespace=tenant)


def destroy(tenant: str) -> bool:
    """Crypto-shred the tenant's wrapped keys: keys.json, and any copy of it an interrupted
    write left, overwritten with random bytes, fsynced and unlinked. Every copy of the data
    they encrypted is unreadable from then on. Returns whether keys.json was there."""
    key_file = _key_file(tenant)
    folder = key_file.parent
    # write_atomic's temp files, and keys.json.tmp of the writer before it
    interrupted = ([*folder.glob(f".{key_file.name}.*.tmp"), key_file.with_suffix(".tmp")]
                   if folder.is_dir() else [])
    found = shred(key_file)
    for leftover in interrupted:
        shred(leftover)
    return found
