"""The tenant registry: configuration only, never customer data.

One folder per tenant under data/registry/<tenant>/ holds `tenant.json`
(which sources feed it and how) and `keys.json` (its wrapped keys).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import audit, keys
from cleargro_pipeline.settings import DBT_PROJECT_DIR, TENANT_NAME, paths

SOURCE_NAMES = ("shop", "ga4", "google_ads", "app")
# The Dagster run tag that names a run's tenant: dagster.yaml queues runs per value of it,
# the deletion job finds the runs to stop by it, alerts read the tenant from it.
RUN_TAG = "cleargro/tenant"


def run_tags(tenant: str) -> dict[str, str]:
    return {RUN_TAG: tenant}


class UnknownTenant(CleargroError):
    pass


class InvalidTenantName(CleargroError, ValueError):
    pass


class InvalidSetting(CleargroError, ValueError):
    pass


@dataclass
class Tenant:
    name: str
    created_at: str
    # source name -> configuration, e.g. {"kind": "demo", "size": "small", "seed": 7}.
    # A source absent here is not synced; data may still arrive by file drop.
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    currency: str = "USD"
    # Overrides of the opportunity-rule settings (dbt vars; defaults in dbt_project.yml).
    insights: dict[str, int | float] = field(default_factory=dict)
    # Alert channels without their targets: {"channel_id", "kind", "min_severity", "digest"}.
    # Webhook URLs (they carry tokens) and addresses are in the secret store (alerts.routing).
    alert_channels: list[dict[str, Any]] = field(default_factory=list)
    # --- data scopes, retention, disconnections (scopes.py, retention.py, disconnect.py) ---
    # What we may read: {"sources": [...], "tables": {source: [...]}, "shopper_level": bool};
    # every key optional, {} = everything the contract allows (validated by scopes.py).
    scopes: dict[str, Any] = field(default_factory=dict)
    # Months of raw history kept (retention.apply); None keeps all history.
    retention_months: int | None = None
    # source -> {"disconnected_at": ISO time, "kind": the sync kind it had, "data_deleted": bool}.
    # Cleared when the source is configured with a `kind` again.
    disconnected_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # --- end data scopes ---


def synced_sources(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """The sources the tenant syncs: configured with a `kind`. A source entry may also hold
    settings only (e.g. the shop's `shop_domain` for a tenant fed by file drops)."""
    return {system: config for system, config in tenant.sources.items() if config.get("kind")}


# Set when a source refused the stored credentials (or its app was uninstalled): the source
# is not synced again, and `credentials_invalid` stays raised, until it is reconnected
# (connecting writes a new configuration without it).
CREDENTIALS_REJECTED = "credentials_rejected_at"


def rejected_sources(tenant: Tenant) -> dict[str, str]:
    """Source -> when it refused the stored credentials."""
    return {system: config[CREDENTIALS_REJECTED] for system, config in tenant.sources.items()
            if config.get(CREDENTIALS_REJECTED)}


def mark_credentials_rejected(name: str, system: str) -> Tenant:
    """Stop syncing `system` until it is reconnected (idempotent: the first time stays)."""
    tenant = get(name)
    config = tenant.sources.setdefault(system, {})
    if not config.get(CREDENTIALS_REJECTED):
        config[CREDENTIALS_REJECTED] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write(tenant)
        audit.append("source_credentials_rejected", tenant=name, source=system)
    return tenant


def validate_name(name: str) -> str:
    if not TENANT_NAME.match(name or ""):
        raise InvalidTenantName(
            f"invalid tenant name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit")
    return name


def _config_file(name: str) -> Path:
    return paths().registry / name / "tenant.json"


def _write(tenant: Tenant) -> None:
    target = _config_file(tenant.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(tenant), indent=2, sort_keys=True))
    os.replace(tmp, target)


def demo_sources(size: str, hold_back_days: int = 0, seed: int = 7) -> dict[str, dict[str, Any]]:
    """Every source fed by the embedded demo shop of `size` (optionally synced days late)."""
    config = {"kind": "demo", "size": size, "seed": seed}
    if hold_back_days:
        config["hold_back_days"] = hold_back_days
    return {system: dict(config) for system in SOURCE_NAMES}


def add(name: str, sources: dict[str, dict[str, Any]] | None = None) -> Tenant:
    validate_name(name)
    if _config_file(name).exists():
        raise ValueError(f"tenant '{name}' already exists")
    for source in sources or {}:
        if source not in SOURCE_NAMES:
            raise ValueError(f"unknown source {source!r}; sources are {', '.join(SOURCE_NAMES)}")
    tenant = Tenant(name=name, created_at=datetime.now(timezone.utc).isoformat(),
                    sources=dict(sources or {}))
    keys.create_tenant_keys(name)
    _write(tenant)
    audit.append("tenant_added", tenant=name, sources=sorted(tenant.sources))
    return tenant


def require(name: str) -> str:
    """`name`, once it is valid and registered (raises UnknownTenant otherwise): the guard of a
    layer handed a bare name, without reading the configuration again."""
    validate_name(name)
    if not _config_file(name).exists():
        known = ", ".join(t.name for t in all_tenants()) or "none"
        raise UnknownTenant(f"unknown tenant '{name}' (known tenants: {known}); "
                            f"add it with `cleargro tenants add {name}`")
    return name


def get(name: str) -> Tenant:
    """The tenant's registry entry: look it up once per operation and pass it down."""
    return Tenant(**json.loads(_config_file(require(name)).read_text()))


def configure_source(name: str, system: str, config: dict[str, Any]) -> Tenant:
    """Set how one source of the tenant is synced (replaces its configuration)."""
    if system not in SOURCE_NAMES:
        raise InvalidSetting(f"unknown source {system!r}; sources are {', '.join(SOURCE_NAMES)}")
    tenant = get(name)
    tenant.sources[system] = dict(config)
    # --- data scopes: syncing a disconnected source again reconnects it ---
    if config.get("kind"):
        tenant.disconnected_sources.pop(system, None)
    # --- end data scopes ---
    _write(tenant)
    audit.append("tenant_configured", tenant=name, source=system)
    return tenant


# --- data scopes, retention, disconnections: stored here, validated by their modules ---

def set_scopes(name: str, scopes: dict[str, Any]) -> Tenant:
    """Store the tenant's (already validated, see scopes.configure) data scopes."""
    tenant = get(name)
    tenant.scopes = dict(scopes)
    _write(tenant)
    audit.append("tenant_configured", tenant=name, scopes=sorted(tenant.scopes))
    return tenant


def set_retention_months(name: str, months: int | None) -> Tenant:
    """Keep `months` of raw history (None: all of it); retention.apply enforces it."""
    if months is not None and (isinstance(months, bool) or not isinstance(months, int)
                               or months < 1):
        raise InvalidSetting(f"retention must be a whole number of months >= 1, not {months!r}")
    tenant = get(name)
    tenant.retention_months = months
    _write(tenant)
    audit.append("tenant_configured", tenant=name, retention_months=months)
    return tenant


# Source settings that say who the source is rather than how we sync it: kept on disconnect
# (privacy webhooks find the tenant by its shop domain).
SOURCE_IDENTITY_SETTINGS = ("shop_domain",)


def mark_disconnected(name: str, system: str, *, data_deleted: bool) -> Tenant:
    """Stop syncing `system`: its sync configuration (`kind` and the kind's settings) moves
    into the disconnection record, identity settings (shop_domain) stay. Idempotent: a
    second call keeps the first record's time."""
    if system not in SOURCE_NAMES:
        raise InvalidSetting(f"unknown source {system!r}; sources are {', '.join(SOURCE_NAMES)}")
    tenant = get(name)
    config = tenant.sources.pop(system, {})
    kept = {k: v for k, v in config.items() if k in SOURCE_IDENTITY_SETTINGS}
    if kept:
        tenant.sources[system] = kept
    sync_config = {k: v for k, v in config.items() if k not in SOURCE_IDENTITY_SETTINGS}
    record = tenant.disconnected_sources.setdefault(
        system, {"disconnected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "kind": sync_config.get("kind"), "config": sync_config, "data_deleted": False})
    record["data_deleted"] = bool(record.get("data_deleted")) or data_deleted
    _write(tenant)
    return tenant

# --- end data scopes ---


def set_alert_channels(name: str, channels: list[dict[str, Any]]) -> Tenant:
    tenant = get(name)
    tenant.alert_channels = [dict(c) for c in channels]
    _write(tenant)
    audit.append("tenant_configured", tenant=name,
                 alert_channels=[c["channel_id"] for c in channels])
    return tenant


def insight_defaults() -> dict[str, float]:
    """The opportunity-rule settings and their defaults, as dbt_project.yml declares them."""
    import yaml

    declared = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    return {name: value for name, value in declared.items() if name != "tenant"}


def configure_insights(name: str, values: dict[str, str], unset: tuple[str, ...] = ()) -> Tenant:
    """Override (or with `unset`, restore the default of) opportunity-rule settings."""
    tenant = get(name)
    defaults = insight_defaults()
    for setting in [*values, *unset]:
        if setting not in defaults:
            raise InvalidSetting(f"unknown insight setting {setting!r}; settings: {', '.join(defaults)}")
    for setting, text in values.items():
        try:
            value = float(text)
        except ValueError:
            raise InvalidSetting(f"insight setting {setting} must be a number, not {text!r}") from None
        if value < 0:
            raise InvalidSetting(f"insight setting {setting} must not be negative")
        if isinstance(defaults[setting], int):  # day counts stay whole: dates add integers
            if not value.is_integer():
                raise InvalidSetting(f"insight setting {setting} must be a whole number, not {text!r}")
            value = int(value)
        tenant.insights[setting] = value
    for setting in unset:
        tenant.insights.pop(setting, None)
    _write(tenant)
    audit.append("tenant_configured", tenant=name, insights=sorted(tenant.insights))
    return tenant


def dbt_vars(name: str) -> dict[str, Any]:
    """The vars a dbt run of this tenant gets: its name (part of opportunity ids) and overrides."""
    return {"tenant": name, **get(name).insights}


def exists(name: str) -> bool:
    return TENANT_NAME.match(name or "") is not None and _config_file(name).exists()


def all_tenants() -> list[Tenant]:
    registry = paths().registry
    if not registry.exists():
        return []
    return [Tenant(**json.loads(p.read_text())) for p in sorted(registry.glob("*/tenant.json"))]
