"""Where a tenant's alerts go: its channels, configured in the registry.

The registry keeps each channel's id, kind, minimum severity and digest choice; the target
(a webhook URL carries a token, an address is personal data) is sealed in the secret store
under a name derived from the channel id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from cleargro_pipeline import tenants
from cleargro_pipeline.alerts.channels import Channel, InvalidChannel
from cleargro_pipeline.alerts.model import severity_rank
from cleargro_pipeline.security import secret_store


def _secret_name(channel_id: str) -> str:
    return "alert_channel." + channel_id.replace(":", ".")


def configure(tenant: str, *, webhooks: Iterable[str] = (), emails: Iterable[str] = (),
              min_severity: str | None = None, digest: bool | None = None,
              remove: Iterable[str] = ()) -> list[Channel]:
    """Add or update channels; `min_severity` / `digest` apply to the channels named in this
    call, or to every channel when none is named. `remove` takes channel ids or targets."""
    if min_severity is not None:
        severity_rank(min_severity)
    current = {c.channel_id: c for c in channels(tenant)}
    named = [Channel("webhook", url) for url in webhooks] + [Channel("email", to) for to in emails]
    for gone in remove:
        channel_id = next((i for i, c in current.items() if gone in (i, c.target)), None)
        if channel_id is None:
            raise InvalidChannel(f"tenant '{tenant}' has no alert channel {gone!r}")
        secret_store.delete(tenant, _secret_name(channel_id))
        del current[channel_id]
    for channel in named:
        current.setdefault(channel.channel_id, channel)
    for channel_id in [c.channel_id for c in named] or list(current):
        current[channel_id] = replace(
            current[channel_id],
            min_severity=min_severity or current[channel_id].min_severity,
            digest=current[channel_id].digest if digest is None else digest)
    for channel in named:
        secret_store.put(tenant, _secret_name(channel.channel_id), channel.target)
    tenants.set_alert_channels(tenant, [
        {"channel_id": c.channel_id, "kind": c.kind, "min_severity": c.min_severity,
         "digest": c.digest} for c in current.values()])
    return list(current.values())


def channels(tenant: str) -> list[Channel]:
    """The tenant's channels with their targets (unsealed for this use only)."""
    return [Channel(entry["kind"],
                    secret_store.get(tenant, _secret_name(entry["channel_id"]), purpose="alerts"),
                    entry["min_severity"], entry["digest"])
            for entry in tenants.get(tenant).alert_channels]


def describe(tenant: str) -> list[str]:
    """One line per channel without its target, for `tenants show`."""
    return [f"{c['channel_id']} min_severity={c['min_severity']}"
            f"{' daily digest' if c['digest'] else ''}"
            for c in tenants.get(tenant).alert_channels]
