"""Disconnecting a source from a tenant (`cleargro disconnect --tenant T --source S`): syncing
stops first, the source's OAuth tokens are revoked at the provider (`oauth.revoke`) and every
stored credential deleted, and with `delete_data` its raw schemas (and the snapshots copying
them) are dropped, the models downstream rebuilt and the file rewritten. Every step is
idempotent and audited without values. Which credential is revoked how, and what is not
touched: `controls/README.md`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.controls import oauth, retention
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.sources import google_oauth

DISCONNECTABLE = ("shop", "ga4", "google_ads")
OAUTH_SOURCES = ("ga4", "google_ads")
TOKEN_SUFFIXES = ("refresh_token", "access_token")  # revoked in this order
PURPOSE = "disconnect"
SHOP_NOTE = ("Shopify offline tokens cannot be revoked by API call: the stored token was "
             "deleted; it stops working at Shopify when the merchant uninstalls the Cleargro "
             "app from the shop admin")


class DisconnectError(CleargroError):
    """A disconnect could not finish; the message says what was done and how to resume."""


def credential_prefix(source: str) -> str:
    return f"source.{source}."


def credential_name(source: str, field_name: str) -> str:
    """The secret-store name of one credential of a source, e.g. `source.ga4.refresh_token`."""
    return credential_prefix(source) + field_name


def credentials(tenant: str, source: str) -> list[str]:
    """Names of the source's stored credentials (tenant scope)."""
    return [n for n in secret_store.names(tenant) if n.startswith(credential_prefix(source))]


def _is_oauth_token(name: str) -> bool:
    return name.endswith(TOKEN_SUFFIXES) and any(
        name.startswith(credential_prefix(source)) for source in OAUTH_SOURCES)


def _revocable(names: list[str]) -> list[str]:
    """OAuth tokens among `names`, refresh tokens first (revoking one at Google ends its
    access tokens too: those then answer invalid_token, which counts as done)."""
    return sorted((n for n in names if _is_oauth_token(n)),
                  key=lambda n: (TOKEN_SUFFIXES.index(next(s for s in TOKEN_SUFFIXES
                                                            if n.endswith(s))), n))


def provider_revoker(*, endpoint: str | None = None,
                     ca_file: str | None = None) -> Callable[[str, str], str | None]:
    """`revoke(name, value)`: a stored OAuth token of an OAuth source is revoked at the
    provider (each token value once) and the outcome returned (`oauth.REVOKED` or
    `ALREADY_REVOKED`); other credentials have nothing to call (None). A failure raises
    `oauth.RevokeFailed`. Used by `disconnect` and by tenant deletion."""
    outcomes: dict[str, str] = {}  # the same token stored under two names: one call

    def revoke(name: str, value: str) -> str | None:
        if not _is_oauth_token(name):
            return None
        if value not in outcomes:
            outcomes[value] = oauth.revoke(value, endpoint=endpoint or oauth.GOOGLE_REVOKE_ENDPOINT,
                                           ca_file=ca_file)
        return outcomes[value]

    return revoke


@dataclass
class DisconnectReport:
    tenant: str
    source: str
    was_synced: bool = False
    revoked: list[str] = field(default_factory=list)  # credential names revoked at the provider
    already_revoked: list[str] = field(default_factory=list)
    deleted_credentials: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data_deleted: bool = False
    dropped: list[str] = field(default_factory=list)  # schemas and tables dropped
    rebuilt: bool = False
    file_bytes: int | None = None
    seconds: float = 0.0


def disconnect(tenant: str, source: str, *, delete_data: bool = False,
               revoke_endpoint: str | None = None, ca_file: str | None = None) -> DisconnectReport:
    """Stop syncing `source` for `tenant`, revoke and delete its credentials, and with
    `delete_data` drop its raw data and rebuild what depends on it."""
    if source not in DISCONNECTABLE:
        raise DisconnectError(f"cannot disconnect {source!r}; sources: {', '.join(DISCONNECTABLE)}")
    started = time.monotonic()
    config = tenants.get(tenant)
    report = DisconnectReport(tenant, source,
                              was_synced=source in tenants.synced_sources(config))
    # 1. Stop syncing first: whatever fails later, no new data of this source arrives.
    tenants.mark_disconnected(tenant, source, data_deleted=False)

    # 2. Credentials.
    names = credentials(tenant, source)
    if source in OAUTH_SOURCES:
        # Google's, or the loopback fake a test configured for the source.
        revoke_endpoint = revoke_endpoint or google_oauth.Endpoints.at(
            (config.sources.get(source) or {}).get(google_oauth.ENDPOINT_SETTING)).revoke
        revoke = provider_revoker(endpoint=revoke_endpoint, ca_file=ca_file)
        for name in _revocable(names):
            try:
                outcome = revoke(name, secret_store.get(tenant, name, purpose=PURPOSE))
            except oauth.RevokeFailed as error:
                raise DisconnectError(
                    f"tenant '{tenant}': {source} is no longer synced, but revoking "
                    f"{name} failed ({error}); the credential is kept: run the disconnect "
                    "again to retry") from None
            (report.revoked if outcome == oauth.REVOKED else
             report.already_revoked).append(name)
            secret_store.delete(tenant, name)
            report.deleted_credentials.append(name)
    elif names:
        report.notes.append(SHOP_NOTE)
    for name in names:
        if name not in report.deleted_credentials:
            secret_store.delete(tenant, name)
            report.deleted_credentials.append(name)
    audit.append("source_disconnected", tenant=tenant, source=source, was_synced=report.was_synced,
                 revoked=report.revoked, already_revoked=report.already_revoked,
                 deleted_credentials=report.deleted_credentials, delete_data=delete_data)

    # 3. Data.
    if delete_data:
        report.dropped, report.rebuilt, report.file_bytes = delete_source_data(tenant, source)
        report.data_deleted = True
        tenants.mark_disconnected(tenant, source, data_deleted=True)
        audit.append("source_data_deleted", tenant=tenant, source=source,
                     dropped=report.dropped, rebuilt=report.rebuilt)
    report.seconds = round(time.monotonic() - started, 2)
    return report


def delete_source_data(tenant: str, source: str) -> tuple[list[str], bool, int | None]:
    """Drop the source's raw schemas (and the snapshots copying them), rebuild what depends
    on it, rewrite the file. Returns (dropped, rebuilt, new file size)."""
    if not warehouse.exists(tenant):
        return [], False, None
    dropped: list[str] = []
    with warehouse.open_warehouse(tenant, purpose=PURPOSE) as conn:
        schemas = {s for (s,) in conn.execute(
            "select schema_name from duckdb_schemas() where database_name = ?",
            [warehouse.ALIAS]).fetchall()}
        for schema in (f"raw_{source}", f"raw_{source}_staging"):
            if schema in schemas:
                conn.execute(f'drop schema "{schema}" cascade')
                dropped.append(schema)
        # dbt snapshots of the source's tables are copies of its data (snap_<source>__*).
        for (table,) in conn.execute(
                "select table_name from duckdb_tables() where database_name = ? and "
                "schema_name = 'snapshots' and starts_with(table_name, ?)",
                [warehouse.ALIAS, f"snap_{source}__"]).fetchall():
            conn.execute(f'drop table snapshots."{table}"')
            dropped.append(f"snapshots.{table}")
    rebuilt = retention.rebuild_models(tenant, [source])
    size = warehouse.rewrite(tenant, purpose=PURPOSE)
    return dropped, rebuilt, size
