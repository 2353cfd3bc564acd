"""Credentials at rest (SMTP relay password, API tokens), sealed under the master key.

One `secrets.json` per scope: `data/registry/<tenant>/secrets.json` for a tenant,
`data/registry/_platform/secrets.json` for the platform (tenant names cannot start
with '_', so the folder never collides with a tenant). Each value is sealed with
AES-256-GCM under the master key, with the scope and the secret's name as
associated data: a sealed value copied to another name or scope does not open.
The file holds names and ciphertext only; every store, read and delete is audited
by name, never by value.
"""

from __future__ import annotations

import base64
import json
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit, keys
from cleargro_pipeline.settings import TENANT_NAME, paths

PLATFORM = "platform"
# Names land in the audit log and in error messages: identifiers only.
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class SecretMissing(CleargroError):
    """No secret of that name in that scope; the message names both, never a value."""


class SecretUnreadable(CleargroError):
    """A stored secret does not decrypt (wrong master key, altered or moved)."""


class InvalidSecretName(CleargroError, ValueError):
    pass


def _check(scope: str, name: str | None = None) -> None:
    if scope != PLATFORM and not TENANT_NAME.match(scope or ""):
        raise InvalidSecretName(f"invalid secret scope {scope!r}: a tenant name or '{PLATFORM}'")
    if name is not None and not SECRET_NAME.match(name or ""):
        raise InvalidSecretName(f"invalid secret name {name!r}: use letters, digits, '_', '.', '-'")


def _file(scope: str) -> Path:
    folder = "_platform" if scope == PLATFORM else scope
    return paths().registry / folder / "secrets.json"


def _aad(scope: str, name: str) -> bytes:
    return f"cleargro/secret/scope={scope}/name={name}".encode()


def _tenant(scope: str) -> str | None:
    return None if scope == PLATFORM else scope


@contextmanager
def _locked(scope: str) -> Iterator[Path]:
    """Serialise read-modify-write of one scope's file across processes."""
    target = _file(scope)
    with file_lock(target.with_suffix(".lock")):
        yield target


def _load(target: Path) -> dict[str, Any]:
    if not target.exists():
        return {}
    try:
        return json.loads(target.read_text())["secrets"]
    except (ValueError, KeyError, TypeError):
        raise SecretUnreadable(f"secret file {target} is malformed") from None


def _save(target: Path, secrets: dict[str, Any]) -> None:
    write_atomic(target, json.dumps({"version": 1, "secrets": secrets}, indent=2,
                                    sort_keys=True).encode())


def put(scope: str, name: str, value: str) -> None:
    """Store (or replace) one secret."""
    _check(scope, name)
    if not isinstance(value, str):
        raise TypeError(f"secret '{name}': value must be a string")
    nonce = os.urandom(12)
    sealed = AESGCM(keys.master_key()).encrypt(nonce, value.encode(), _aad(scope, name))
    with _locked(scope) as target:
        secrets = _load(target)
        replaced = name in secrets
        secrets[name] = {"alg": "AES-256-GCM", "nonce": base64.b64encode(nonce).decode(),
                         "sealed": base64.b64encode(sealed).decode(),
                         "stored_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _save(target, secrets)
    audit.append("secret_stored", tenant=_tenant(scope), scope=scope, name=name, replaced=replaced)


def get(scope: str, name: str, *, purpose: str = "unspecified") -> str:
    """Return one secret's value, recording who asked and why before returning it."""
    _check(scope, name)
    record = _load(_file(scope)).get(name)
    if record is None:
        raise SecretMissing(f"no secret '{name}' is stored for scope '{scope}'")
    try:
        nonce, sealed = base64.b64decode(record["nonce"]), base64.b64decode(record["sealed"])
        value = AESGCM(keys.master_key()).decrypt(nonce, sealed, _aad(scope, name))
    except InvalidTag:
        raise SecretUnreadable(
            f"secret '{name}' of scope '{scope}' does not decrypt: wrong master key, or the "
            "sealed value was altered or moved here from another secret or scope") from None
    except (KeyError, ValueError, TypeError):
        raise SecretUnreadable(f"secret '{name}' of scope '{scope}': record is malformed") from None
    audit.append("secret_read", tenant=_tenant(scope), purpose=purpose, scope=scope, name=name)
    return value.decode()


def names(scope: str) -> list[str]:
    _check(scope)
    return sorted(_load(_file(scope)))


def delete(scope: str, name: str) -> None:
    """Remove one secret; raises SecretMissing if there is none to remove."""
    _check(scope, name)
    with _locked(scope) as target:
        secrets = _load(target)
        if name not in secrets:
            raise SecretMissing(f"no secret '{name}' is stored for scope '{scope}'")
        del secrets[name]
        _save(target, secrets)
    audit.append("secret_deleted", tenant=_tenant(scope), scope=scope, name=name)


def delete_scope(scope: str) -> list[str]:
    """Remove every secret of a scope (a tenant being deleted); returns the names removed."""
    _check(scope)
    with _locked(scope) as target:
        removed = sorted(_load(target))
        target.unlink(missing_ok=True)
    for name in removed:
        audit.append("secret_deleted", tenant=_tenant(scope), scope=scope, name=name)
    return removed
