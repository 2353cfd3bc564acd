"""The alert record and the vocabulary shared by detection, lifecycle and delivery."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("open", "notified", "acknowledged", "resolved")

BUSINESS_TYPES = (
    "revenue_drop", "orders_drop", "sessions_drop", "conversion_rate_drop",
    "ad_spend_spike_without_revenue", "roas_drop", "bestseller_stockout",
)
PLATFORM_TYPES = ("data_stale", "pipeline_failed", "credentials_invalid", "deletion_overdue",
                  "source_api_version", "source_quota")


def severity_rank(severity: str) -> int:
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; severities are {', '.join(SEVERITIES)}")
    return SEVERITIES.index(severity)


def format_value(value: float | None) -> str:
    """Money and counts with two decimals; rates (under 1) with four, so 0.0048 is not 0.00."""
    if value is None:
        return "n/a"
    value = float(value)
    return f"{value:,.2f}" if value == 0 or abs(value) >= 1 else f"{value:.4f}"


def alert_id(tenant: str, alert_type: str, entity_id: str, for_date: date) -> str:
    """Stable id of one condition episode: tenant, type, entity and the day it began."""
    text = f"{tenant}|{alert_type}|{entity_id}|{for_date.isoformat()}"
    return hashlib.md5(text.encode()).hexdigest()


@dataclass(frozen=True)
class Alert:
    alert_id: str
    tenant: str
    alert_type: str
    severity: str
    entity_type: str
    entity_id: str
    metric: str
    observed: float | None
    expected: float | None
    for_date: date
    message: str
    status: str = "open"
    # Where the merchant can look next: a Dagster run URL or a CLI command.
    link: str | None = None
