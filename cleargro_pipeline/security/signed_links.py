"""Links the platform hands to a merchant (e.g. `cleargro connect google` prints one): a small
JSON payload, an expiry and a nonce, signed with HMAC-SHA256 (`cryptography`) under the platform
secret `connect_link_key` (32 random bytes, made on first use). The payload is readable by whoever
holds the link: it names a tenant and a source, never a secret. The service that opens a link
verifies the signature and expiry here, and makes it single use by remembering its nonce until
it expires.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import secret_store

KEY_NAME = "connect_link_key"
TTL_S = 15 * 60
MAX_TOKEN_CHARS = 4096


class LinkInvalid(CleargroError):
    """Not a link this platform signed, or no longer valid; the message says which."""


def sign(payload: dict[str, Any], *, ttl_s: float = TTL_S,
         clock: Callable[[], float] = time.time) -> str:
    body = {**payload, "exp": int(clock() + ttl_s), "nonce": secrets.token_urlsafe(16)}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return f"{_b64(raw)}.{_b64(_mac(_key(create=True), raw))}"


def verify(token: str, *, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The payload of a link this platform signed and that has not expired (with its `exp` and
    `nonce`), or LinkInvalid."""
    raw, mac = _parts(token)
    key = _key(create=False)
    check = HMAC(key, hashes.SHA256())
    check.update(raw)
    try:
        check.verify(mac)  # constant time
    except InvalidSignature:
        raise LinkInvalid("the link was not signed by this platform (altered or forged)") from None
    body = json.loads(raw)
    if not isinstance(body, dict) or not isinstance(body.get("exp"), int):
        raise LinkInvalid("the link's payload is malformed")
    if clock() >= body["exp"]:
        raise LinkInvalid("the link has expired: ask for a new one")
    return body


def _parts(token: str) -> tuple[bytes, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise LinkInvalid("the link is malformed")
    try:
        return tuple(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split("."))  # type: ignore[return-value]
    except ValueError:
        raise LinkInvalid("the link is malformed") from None


def _mac(key: bytes, raw: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(raw)
    return mac.finalize()


def _key(*, create: bool) -> bytes:
    try:
        return bytes.fromhex(secret_store.get(secret_store.PLATFORM, KEY_NAME, purpose="signed_link"))
    except secret_store.SecretMissing:
        if not create:
            raise LinkInvalid("no link was ever signed on this platform") from None
    secret_store.put(secret_store.PLATFORM, KEY_NAME, os.urandom(32).hex())
    return _key(create=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
