"""The durable log of privacy requests: Shopify's three mandatory webhooks and the CLI's own.

One append-only JSON-lines file, `data/privacy/requests.jsonl`. A request is one line
(`"kind": "request"`) written, flushed and fsynced before `record` returns, so a webhook is
answered 200 only once its request would survive a crash. Later status changes are further
lines (`"kind": "status"`); nothing is rewritten. Shopify retries a webhook with the same
`X-Shopify-Webhook-Id`: a request whose webhook id is already in the log is not recorded twice.

The log holds no direct identifier of a shopper: the Shopify customer id is replaced by the
tenant's keyed pseudonym (the same HMAC the warehouse stores in `customer_pseudonym`), and
emails and phones are never accepted. What stays: topic, tenant, shop domain and id, the
shopper's pseudonym, order ids, Shopify's data-request id, times and status.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from cleargro_pipeline import tenants
from cleargro_pipeline.durable import fsync_path
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.locks import file_lock
from cleargro_pipeline.security import audit, keys
from cleargro_pipeline.settings import paths

CUSTOMERS_REDACT = "customers/redact"
CUSTOMERS_DATA_REQUEST = "customers/data_request"
SHOP_REDACT = "shop/redact"
TOPICS = (CUSTOMERS_REDACT, CUSTOMERS_DATA_REQUEST, SHOP_REDACT)

PENDING = "pending"
# pending: to be acted on; unmatched: no tenant holds data of that shop (nothing to do);
# in_progress / done / failed: set by whoever processes it; handed_off: passed to another
# process that owns it from there (shop/redact -> the tenant deletion queue).
STATUSES = (PENDING, "unmatched", "in_progress", "handed_off", "done", "failed")
SOURCES = ("shopify_webhook", "cli")

# What `record` accepts in `payload_minimal`; anything else is refused, not silently kept.
ALLOWED_FIELDS = frozenset({"shop_domain", "shop_id", "customer_id", "customer_pseudonym",
                            "orders_to_redact", "orders_requested", "data_request_id"})
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}\.myshopify\.com$")
WEBHOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
_SHOPIFY_GID = re.compile(r"^gid://shopify/Customer/([0-9]+)$")


class PrivacyRequestError(CleargroError, ValueError):
    """A request that cannot be recorded as given; names the field, never its value."""


class UnknownPrivacyRequest(CleargroError, KeyError):
    pass


@dataclass(frozen=True)
class PrivacyRequest:
    request_id: str
    topic: str
    tenant: str | None  # None: the shop domain maps to no tenant (status "unmatched")
    source: str  # "shopify_webhook" or "cli"
    webhook_id: str | None
    shop_domain: str | None
    shop_id: int | None
    customer_pseudonym: str | None
    orders_to_redact: tuple[int, ...]
    orders_requested: tuple[int, ...]
    data_request_id: int | None
    received_at: str
    status: str = PENDING
    detail: str | None = None
    updated_at: str | None = None
    # True when `record` found this webhook id already logged and wrote nothing (not stored).
    duplicate: bool = field(default=False, compare=False)


_STORED_FIELDS = frozenset(PrivacyRequest.__dataclass_fields__) - {"duplicate", "updated_at"}


def log_file() -> Path:
    return paths().data / "privacy" / "requests.jsonl"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def shopper_pseudonym(tenant: str, customer_id: int | str, *, purpose: str = "privacy_request") -> str:
    """The warehouse's pseudonym of a Shopify customer id (the tenant's keyed HMAC-SHA256).

    Accepts the numeric id (int or digits) or its GraphQL form `gid://shopify/Customer/N`;
    the warehouse hashes the REST id's decimal text, so all three give the same pseudonym.
    """
    # Start-up cost: pyarrow (about 0.5 s) only when a shopper id is pseudonymised.
    import pyarrow as pa

    text = _customer_id_text(customer_id)
    pseudonymise = keys.pseudonymiser(tenant, purpose)
    return pseudonymise(pa.array([text], pa.string()))[0].as_py()


def _customer_id_text(customer_id: int | str) -> str:
    if isinstance(customer_id, bool):
        raise PrivacyRequestError("customer id must be a number")
    if isinstance(customer_id, int):
        if customer_id <= 0:
            raise PrivacyRequestError("customer id must be positive")
        return str(customer_id)
    if isinstance(customer_id, str):
        text = customer_id.strip()
        gid = _SHOPIFY_GID.match(text)
        if gid:
            text = gid.group(1)
        if text.isascii() and text.isdigit() and int(text) > 0:
            return str(int(text))
    raise PrivacyRequestError("customer id must be a Shopify customer id (digits)")


def _ids(name: str, values: Any) -> tuple[int, ...]:
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)) or len(values) > 100_000:
        raise PrivacyRequestError(f"{name} must be a list of ids")
    return tuple(_one_id(name, v) for v in values)


def _one_id(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise PrivacyRequestError(f"{name} must hold numeric ids")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    raise PrivacyRequestError(f"{name} must hold numeric ids")


def normalise_shop_domain(domain: Any) -> str:
    if not isinstance(domain, str) or not SHOP_DOMAIN.match(domain.strip().lower()):
        raise PrivacyRequestError("shop domain must look like 'name.myshopify.com'")
    return domain.strip().lower()


class AmbiguousShopDomain(CleargroError):
    """More than one tenant claims the same shop domain: a request for it is acted on by none."""


def tenant_for_shop(shop_domain: str) -> str | None:
    """The tenant whose shop source is that Shopify shop (`sources["shop"]["shop_domain"]`).

    None when no tenant claims it; AmbiguousShopDomain (naming the tenants) when several do.
    """
    wanted = normalise_shop_domain(shop_domain)
    claims = []
    for tenant in tenants.all_tenants():
        configured = (tenant.sources.get("shop") or {}).get("shop_domain")
        if isinstance(configured, str) and configured.strip().lower() == wanted:
            claims.append(tenant.name)
    if len(claims) > 1:
        raise AmbiguousShopDomain(f"shop domain {wanted} is configured for tenants "
                                  f"{', '.join(claims)}: fix the registry")
    return claims[0] if claims else None


# --- the file ---------------------------------------------------------------------------------

@contextmanager
def _locked() -> Iterator[Path]:
    """Serialise writers (server threads, CLI processes): flock on a side file."""
    target = log_file()
    _ensure_dir(target.parent)
    with file_lock(target.with_suffix(".lock")):
        yield target


def _ensure_dir(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return
    fsync_path(folder.parent)  # the new folder's entry is durable too


def _append(target: Path, line: dict[str, Any]) -> None:
    """One line, flushed and fsynced; a new file's directory entry is fsynced as well."""
    created = not target.exists()
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as f:
        data = (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode()
        if not created and _ends_torn(target):
            data = b"\n" + data  # a crash mid-write left half a line: never glue onto it
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if created:
        fsync_path(target.parent)


def _ends_torn(target: Path) -> bool:
    with open(target, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _lines(target: Path | None = None) -> list[dict[str, Any]]:
    target = target or log_file()
    if not target.exists():
        return []
    out = []
    for raw in target.read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            # Only a write torn by a crash, before its fsync: never acknowledged, so Shopify
            # retries it (and a CLI caller saw the error).
            continue
        if isinstance(line, dict):
            out.append(line)
    return out


def _fold(lines: list[dict[str, Any]]) -> dict[str, PrivacyRequest]:
    """Requests by id with their latest status, in the order they were received."""
    requests: dict[str, PrivacyRequest] = {}
    for line in lines:
        if line.get("kind") == "request":
            fields = {k: v for k, v in line.items() if k in _STORED_FIELDS}
            fields["orders_to_redact"] = tuple(fields.get("orders_to_redact") or ())
            fields["orders_requested"] = tuple(fields.get("orders_requested") or ())
            requests[line["request_id"]] = PrivacyRequest(**fields)
        elif line.get("kind") == "status" and line.get("request_id") in requests:
            requests[line["request_id"]] = replace(
                requests[line["request_id"]], status=line["status"], detail=line.get("detail"),
                updated_at=line.get("at"))
    return requests


# --- the API ----------------------------------------------------------------------------------

def record(topic: str, tenant: str | None, payload_minimal: dict[str, Any],
           webhook_id: str | None = None, *, source: str | None = None,
           status: str = PENDING, detail: str | None = None) -> PrivacyRequest:
    """Record one request durably (fsynced) and return it.

    `payload_minimal` holds only ALLOWED_FIELDS; a raw `customer_id` is replaced by the
    tenant's pseudonym before anything is written (pass `customer_pseudonym` if it is
    already one). `tenant` None records an unmatched request: its customer id is dropped,
    since no tenant's key can pseudonymise it and no tenant holds data of that shop.
    With a `webhook_id` already in the log, the existing request is returned unchanged
    with `duplicate=True` (nothing written).
    """
    if topic not in TOPICS:
        raise PrivacyRequestError(f"unknown privacy topic {topic!r}; topics: {', '.join(TOPICS)}")
    source = source or ("shopify_webhook" if webhook_id else "cli")
    if source not in SOURCES:
        raise PrivacyRequestError(f"unknown source {source!r}")
    if status not in (PENDING, "unmatched"):
        raise PrivacyRequestError(f"a new request is 'pending' or 'unmatched', not {status!r}")
    if tenant is None and status != "unmatched":
        raise PrivacyRequestError("a request without a tenant is recorded as 'unmatched'")
    if webhook_id is not None and not WEBHOOK_ID.match(webhook_id):
        raise PrivacyRequestError("webhook id must be 1-128 letters, digits, '_', '.', ':', '-'")
    unknown = set(payload_minimal) - ALLOWED_FIELDS
    if unknown:
        raise PrivacyRequestError(f"privacy request fields not stored: {', '.join(sorted(unknown))} "
                                  f"(allowed: {', '.join(sorted(ALLOWED_FIELDS))})")
    if webhook_id is not None and _by_webhook_id(_lines(), webhook_id) is not None:
        with _locked() as target:  # a retry: skip unwrapping the key, confirm under the lock
            existing = _by_webhook_id(_lines(target), webhook_id)
            if existing is not None:
                return _duplicate(target, existing)
    if tenant is not None:
        tenants.get(tenant)  # raises UnknownTenant
    shop_domain = payload_minimal.get("shop_domain")
    shop_domain = normalise_shop_domain(shop_domain) if shop_domain is not None else None
    shop_id = payload_minimal.get("shop_id")
    shop_id = _one_id("shop_id", shop_id) if shop_id is not None else None
    data_request_id = payload_minimal.get("data_request_id")
    if data_request_id is not None:
        data_request_id = _one_id("data_request_id", data_request_id)
    pseudonym = payload_minimal.get("customer_pseudonym")
    if pseudonym is not None and not (isinstance(pseudonym, str) and PSEUDONYM.match(pseudonym)):
        raise PrivacyRequestError("customer_pseudonym must be 64 lowercase hex digits")
    if payload_minimal.get("customer_id") is not None:
        if pseudonym is not None:
            raise PrivacyRequestError("give customer_id or customer_pseudonym, not both")
        customer_id = _customer_id_text(payload_minimal["customer_id"])  # validate before keys
        pseudonym = shopper_pseudonym(tenant, customer_id) if tenant is not None else None
    if topic == SHOP_REDACT and pseudonym is not None:
        raise PrivacyRequestError("shop/redact concerns a whole shop, not a shopper")
    if topic == SHOP_REDACT and tenant is None and shop_domain is None:
        raise PrivacyRequestError("shop/redact needs a tenant or a shop domain")

    candidate = PrivacyRequest(
        request_id=f"pr_{uuid.uuid4().hex}", topic=topic, tenant=tenant, source=source,
        webhook_id=webhook_id, shop_domain=shop_domain, shop_id=shop_id,
        customer_pseudonym=pseudonym,
        orders_to_redact=_ids("orders_to_redact", payload_minimal.get("orders_to_redact")),
        orders_requested=_ids("orders_requested", payload_minimal.get("orders_requested")),
        data_request_id=data_request_id, received_at=_now(), status=status, detail=detail)
    with _locked() as target:
        existing = _by_webhook_id(_lines(target), webhook_id) if webhook_id else None
        if existing is not None:
            return _duplicate(target, existing)
        line = {"kind": "request", **asdict(candidate)}
        for transient in ("updated_at", "duplicate"):
            line.pop(transient)
        _append(target, line)
    audit.append("privacy_request_recorded", tenant=tenant, topic=topic,
                 request_id=candidate.request_id, source=source, status=status)
    return candidate


def _by_webhook_id(lines: list[dict[str, Any]], webhook_id: str) -> PrivacyRequest | None:
    return next((r for r in _fold(lines).values() if r.webhook_id == webhook_id), None)


def _duplicate(target: Path, existing: PrivacyRequest) -> PrivacyRequest:
    """A retry of a recorded delivery. Its first write may have failed to sync (and been
    answered 500): sync again, so this answer too comes only once the line is on disk."""
    fsync_path(target)
    audit.append("privacy_request_duplicate", tenant=existing.tenant, topic=existing.topic,
                 request_id=existing.request_id)
    return replace(existing, duplicate=True)


def mark(request_id: str, status: str, detail: str | None = None) -> PrivacyRequest:
    """Append a status line (nothing is rewritten); returns the request as it now stands.

    `detail` is stored and shown: ids, counts and error classes only, never shopper values.
    """
    if status not in STATUSES:
        raise PrivacyRequestError(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}")
    if detail is not None and (not isinstance(detail, str) or len(detail) > 500):
        raise PrivacyRequestError("detail must be a short text (at most 500 characters)")
    with _locked() as target:
        current = _fold(_lines(target)).get(request_id)
        if current is None:
            raise UnknownPrivacyRequest(f"no privacy request {request_id!r}")
        at = _now()
        _append(target, {"kind": "status", "request_id": request_id, "status": status,
                         "detail": detail, "at": at})
    audit.append("privacy_request_status", tenant=current.tenant, topic=current.topic,
                 request_id=request_id, status=status)
    return replace(current, status=status, detail=detail, updated_at=at)


def get(request_id: str) -> PrivacyRequest:
    request = _fold(_lines()).get(request_id)
    if request is None:
        raise UnknownPrivacyRequest(f"no privacy request {request_id!r}")
    return request


def all_requests() -> list[PrivacyRequest]:
    return list(_fold(_lines()).values())


def redacted_pseudonyms(tenant: str) -> frozenset[str]:
    """The shoppers the tenant must not hold: every `customers/redact` request's pseudonym,
    whatever its status (pending or failed ones are still to be erased). Loads drop them and
    a restore erases them again, so neither a re-sync nor an old backup brings one back."""
    return frozenset(r.customer_pseudonym for r in all_requests()
                     if r.tenant == tenant and r.topic == CUSTOMERS_REDACT and r.customer_pseudonym)


def pending(topic: str | None = None, tenant: str | None = None) -> list[PrivacyRequest]:
    """Requests still to be acted on (status 'pending'), oldest first."""
    if topic is not None and topic not in TOPICS:
        raise PrivacyRequestError(f"unknown privacy topic {topic!r}; topics: {', '.join(TOPICS)}")
    return [r for r in all_requests() if r.status == PENDING
            and (topic is None or r.topic == topic) and (tenant is None or r.tenant == tenant)]
