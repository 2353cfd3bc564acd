"""The `cleargro` command line."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import click

from cleargro_pipeline import tenants
from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import paths

DEMO_TENANT = "demo"
EXIT_ERROR = 2


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except CleargroError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_ERROR)


@click.group()
def cli() -> None:
    """Cleargro: per-merchant encrypted warehouses fed by dlt, modelled by dbt, run by Dagster."""


@cli.command()
def init() -> None:
    """Set up this machine (idempotent): local demo master key, DuckDB httpfs, Dagster home, dbt manifest."""
    from cleargro_pipeline import bootstrap

    for what, where in bootstrap.init().items():
        click.echo(f"{what}: {where}")


# --- tenants ---------------------------------------------------------------------------

@cli.group(name="tenants")
def tenants_group() -> None:
    """The tenant registry (configuration only, never customer data)."""


@tenants_group.command(name="add")
@click.argument("name")
@click.option("--demo", "demo_size", type=click.Choice(["small", "medium", "large"]),
              help="Feed every source from the embedded demo shop of this size.")
def tenants_add(name: str, demo_size: str | None) -> None:
    """Register a tenant and create its keys."""
    sources = tenants.demo_sources(demo_size) if demo_size else {}
    tenant = tenants.add(name, sources)
    _register_partitions()
    feeds = ", ".join(tenants.synced_sources(tenant)) or "none; load data with `cleargro import`"
    click.echo(f"added tenant '{tenant.name}' (sources: {feeds})")


def _register_partitions() -> None:
    """Show the tenant in the Dagster UI at once (its partition), not only after a first run."""
    import dagster as dg

    from cleargro_pipeline import bootstrap
    from cleargro_pipeline.orchestration.partitions import sync_tenant_partitions

    bootstrap.dagster_home()
    sync_tenant_partitions(dg.DagsterInstance.get())


@tenants_group.command(name="cancel")
@click.argument("name")
@click.option("--reason", required=True, help="Why the merchant left (no customer data).")
def tenants_cancel(name: str, reason: str) -> None:
    """Cancel a tenant: its syncs stop and its deletion is requested (done within 30 days by
    the deletion_requests sensor; `cleargro delete --tenant NAME --now` does it at once)."""
    from cleargro_pipeline.controls import deletion

    requested = deletion.request(name, reason, "registry")
    click.echo(f"tenant '{name}' cancelled; deletion {requested.request_id} {requested.status}")


@tenants_group.command(name="list")
def tenants_list() -> None:
    for tenant in tenants.all_tenants():
        click.echo(f"{tenant.name}\t{','.join(sorted(tenants.synced_sources(tenant))) or '-'}\t{tenant.created_at}")


@tenants_group.command(name="show")
@click.argument("name")
def tenants_show(name: str) -> None:
    from cleargro_pipeline.controls import scopes

    tenant = tenants.get(name)
    click.echo(json.dumps({**tenant.__dict__, "warehouse": str(paths().warehouse(name)),
                           "data_scope": scopes.describe(tenant)}, indent=2))


@tenants_group.command(name="configure")
@click.argument("name")
@click.option("--set", "settings", multiple=True, metavar="SETTING=VALUE",
              help="Override an opportunity or alert setting, e.g. --set target_roas=3.5 (repeatable).")
@click.option("--unset", multiple=True, metavar="SETTING", help="Restore a setting's default.")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="Send alerts to this JSON (Slack-compatible) webhook (repeatable).")
@click.option("--email", "emails", multiple=True, metavar="ADDR",
              help="Send alerts by email (SMTP relay with STARTTLS) to ADDR (repeatable).")
@click.option("--min-severity", type=click.Choice(["info", "warning", "critical"]),
              help="Lowest severity sent to the channels named here (or to all channels).")
@click.option("--digest/--immediate", default=None,
              help="One daily digest instead of a message per alert (channels named here, or all).")
@click.option("--remove-channel", "removed", multiple=True, metavar="ID|TARGET",
              help="Stop sending alerts to a channel.")
@click.option("--shop-domain", metavar="NAME.myshopify.com",
              help="The Shopify shop of this tenant (matches Shopify's privacy webhooks).")
@click.option("--scope", "scope_items", multiple=True, metavar="ITEM",
              help="What we may read (repeatable, in order): all | sources=shop,ga4 | "
                   "<source>=T1,T2 (or <source>=all) | shopper_level=true|false. Data already "
                   "stored beyond it is removed.")
@click.option("--retention-months", metavar="N|all", help="Keep N months of raw history (all: everything).")
def tenants_configure(name: str, settings: tuple[str, ...], unset: tuple[str, ...],
                      webhooks: tuple[str, ...], emails: tuple[str, ...], min_severity: str | None,
                      digest: bool | None, removed: tuple[str, ...], shop_domain: str | None,
                      scope_items: tuple[str, ...], retention_months: str | None) -> None:
    """Change a tenant's settings; the next run uses them."""
    channels_changed = bool(webhooks or emails or min_severity or digest is not None or removed)
    if channels_changed:
        _configure_alert_channels(name, webhooks, emails, min_severity, digest, removed)
    if shop_domain:
        _configure_shop_domain(name, shop_domain)
    if scope_items:
        _configure_scope(name, scope_items)
    if retention_months is not None:
        _configure_retention(name, retention_months)
    if settings or unset or not (channels_changed or shop_domain or scope_items
                                 or retention_months is not None):
        _configure_insights(name, settings, unset)


def _configure_scope(name: str, items: tuple[str, ...]) -> None:
    from cleargro_pipeline.controls import scopes

    scopes.configure(name, scopes.parse_options(items, tenants.get(name).scopes))
    purged = scopes.purge(name)
    for line in scopes.describe(name):
        click.echo(line)
    if purged.dropped_tables or any(purged.cleared_columns.values()):
        cleared = ", ".join(c for c, n in purged.cleared_columns.items() if n) or "nothing"
        click.echo(f"removed from the warehouse: {', '.join(purged.dropped_tables) or 'no table'}; "
                   f"cleared: {cleared}{'; models rebuilt' if purged.rebuilt else ''}")


def _configure_retention(name: str, text: str) -> None:
    from cleargro_pipeline.controls import retention

    if text.strip().lower() == "all":
        months = None
    else:
        try:
            months = int(text)
        except ValueError:
            raise click.BadParameter("a whole number of months, or 'all'",
                                     param_hint="--retention-months") from None
    retention.configure(name, months)
    click.echo(f"retention: {retention.describe(name)} (applied by the daily retention job, "
               f"or now with `cleargro retention --tenant {name}`)")


def _configure_shop_domain(name: str, domain: str) -> None:
    from cleargro_pipeline.privacy import request_log

    domain = request_log.normalise_shop_domain(domain)
    tenants.configure_source(name, "shop", {**tenants.get(name).sources.get("shop", {}),
                                            "shop_domain": domain})
    click.echo(f"shop domain = {domain}")


def _configure_alert_channels(name, webhooks, emails, min_severity, digest, removed) -> None:  # type: ignore[no-untyped-def]
    from cleargro_pipeline.alerts import routing

    routing.configure(name, webhooks=webhooks, emails=emails, min_severity=min_severity,
                      digest=digest, remove=removed)
    for line in routing.describe(name) or ["no alert channels"]:
        click.echo(f"alert channel {line}" if line != "no alert channels" else line)


def _configure_insights(name: str, settings: tuple[str, ...], unset: tuple[str, ...]) -> None:
    values = {}
    for item in settings:
        setting, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected SETTING=VALUE, got {item!r}", param_hint="--set")
        values[setting.strip()] = value.strip()
    tenant = tenants.configure_insights(name, values, unset)
    defaults = tenants.insight_defaults()
    for setting, value in sorted(tenant.insights.items()):
        click.echo(f"{setting} = {value:g} (default {defaults[setting]:g})")
    if not tenant.insights:
        click.echo("all insight settings at their defaults")


# --- secrets ---------------------------------------------------------------------------

@cli.group(name="secrets")
def secrets_group() -> None:
    """Credentials sealed under the master key (a tenant's, or the platform's: SCOPE 'platform')."""


@secrets_group.command(name="set")
@click.argument("scope")
@click.argument("name")
def secrets_set(scope: str, name: str) -> None:
    """Store a secret read from the terminal (hidden) or stdin: never from the command line,
    which other users and shell history can see. E.g. the SMTP relay's password:
    `cleargro secrets set platform smtp_password < password-file`."""
    from cleargro_pipeline.security import secret_store

    if sys.stdin.isatty():
        value = click.prompt(f"{scope}/{name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise click.ClickException("empty secret: nothing stored")
    secret_store.put(scope, name, value)
    click.echo(f"stored {scope}/{name}")


@secrets_group.command(name="list")
@click.argument("scope")
def secrets_list(scope: str) -> None:
    """Names only; values are never shown."""
    from cleargro_pipeline.security import secret_store

    for name in secret_store.names(scope):
        click.echo(name)


# --- backups ---------------------------------------------------------------------------

@cli.group(name="backup", invoke_without_command=True)
@click.option("--tenant", help="Take a backup of this tenant now and print its id.")
@click.pass_context
def backup_group(ctx: click.Context, tenant: str | None) -> None:
    """Backups: byte copies of a tenant's warehouse, still encrypted with its data key."""
    if ctx.invoked_subcommand is not None:
        return
    if not tenant:
        raise click.UsageError("give --tenant T to take a backup, or `backup list --tenant T`")
    from cleargro_pipeline.controls import backups

    taken = backups.take(tenant)
    click.echo(f"{len(taken.tables)} tables, {taken.size:,} bytes, sha256 {taken.sha256}",
               err=True)
    click.echo(taken.id)


@backup_group.command(name="list")
@click.option("--tenant", required=True)
def backup_list(tenant: str) -> None:
    from cleargro_pipeline.controls import backups

    for b in backups.list_backups(tenant):
        rows = sum(t.rows for t in b.tables.values())
        click.echo(f"{b.id}\t{b.taken_at:%Y-%m-%d %H:%M:%S}Z\t{b.reason}\t{b.size:,} bytes\t"
                   f"{len(b.tables)} tables\t{rows:,} rows" + (f"\tPROBLEM: {b.problem}" if b.problem else ""))


@cli.command()
@click.option("--tenant", required=True)
@click.option("--backup", "backup_id", required=True, help="The id `cleargro backup list` shows.")
def restore(tenant: str, backup_id: str) -> None:
    """Restore a backup, verified by row counts and checksums; the replaced warehouse is kept
    as a backup."""
    from cleargro_pipeline.controls import backups

    report = backups.restore(tenant, backup_id)
    click.echo(f"restored {backup_id}: {report.tables_verified} tables, "
               f"{report.rows_verified:,} rows verified"
               + ("" if report.checksums_compared else " (row counts only: another DuckDB version)"))
    if report.safety_backup:
        click.echo(f"the warehouse it replaced is backup {report.safety_backup.id}")


# --- export --------------------------------------------------------------------------

@cli.command(name="export")
@click.option("--tenant", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The encrypted archive to write (never overwritten).")
def export_(tenant: str, out: Path) -> None:
    """Every raw table and mart as Parquet with a manifest, in an encrypted archive whose key
    is printed once, here; the archive is deleted after 7 days. Audited."""
    from cleargro_pipeline.controls import export

    result = export.export(tenant, out)
    click.echo(f"wrote {result.path}: {result.tables} tables, {result.rows:,} rows, "
               f"{result.bytes:,} bytes; expires {result.expires_at:%Y-%m-%d %H:%M} UTC")
    click.echo("Archive key (shown once, stored nowhere; give it to the requester separately):")
    click.echo(result.key_text)


@cli.command(name="export-open")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new folder for the decrypted Parquet files and manifest.")
def export_open(archive: Path, dest: Path) -> None:
    """Decrypt an export (the requester's side); the key is read hidden or from stdin."""
    from cleargro_pipeline.controls import export

    key = (click.prompt("archive key", hide_input=True) if sys.stdin.isatty()
           else sys.stdin.read().strip())
    files = export.decrypt(archive, key, dest)
    click.echo(f"{len(files)} files in {dest}")


# --- deletion --------------------------------------------------------------------------

@cli.command()
@click.option("--tenant", required=True)
@click.option("--reason", default="", help="Why (kept in the certificate; no customer data).")
@click.option("--now", "at_once", is_flag=True,
              help="Run the deletion job at once; its last line is the certificate's path.")
def delete(tenant: str, reason: str, at_once: bool) -> None:
    """Request a tenant's deletion (recorded durably first; the deletion_requests sensor runs
    the job), or with --now run it here and print the signed certificate's path."""
    from cleargro_pipeline.controls import deletion

    if not at_once and not reason:
        raise click.UsageError("give --reason TEXT (or --now to delete at once)")
    requested = deletion.request(tenant, reason or "deleted at once from the CLI", "cli")
    click.echo(f"deletion {requested.request_id} of '{tenant}': {requested.status}")
    if at_once:
        click.echo(str(deletion.run(tenant, instance=_plain_instance())))


def _plain_instance():  # type: ignore[no-untyped-def]
    """The DAGSTER_HOME instance as it is (the runner's would re-add partitions)."""
    import dagster as dg

    from cleargro_pipeline import bootstrap

    bootstrap.dagster_home()
    return dg.DagsterInstance.get()


@cli.command(name="verify-certificate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM public key to trust (default: data/certificates/signing_key.pub).")
def verify_certificate(file: Path, public_key: Path | None) -> None:
    """Check a deletion certificate's Ed25519 signature; fails on any edited byte."""
    from cleargro_pipeline.controls import deletion

    cert = deletion.verify_certificate(file, public_key)
    click.echo(f"valid: tenant '{cert.tenant}', completed {cert.completed_at}, "
               f"{len(cert.items)} items removed, signer {cert.public_key_fingerprint}")


# --- one shopper's data ----------------------------------------------------------------

@cli.group(name="shopper")
def shopper_group() -> None:
    """One shopper's data (GDPR; Shopify's customers/redact and customers/data_request)."""


@shopper_group.command(name="erase")
@click.option("--tenant", required=True)
@click.option("--shopper-id", required=True, help="Shopify customer id (digits or gid://shopify/Customer/N).")
def shopper_erase(tenant: str, shopper_id: str) -> None:
    """Remove the shopper from every raw and modelled table, rebuild the marts, rewrite the file."""
    from cleargro_pipeline.privacy import shoppers

    report = shoppers.erase(tenant, shopper_id=shopper_id)  # recorded as a privacy request
    click.echo(f"{report.request_id}: {report.summary()}")


@shopper_group.command(name="export")
@click.option("--tenant", required=True)
@click.option("--shopper-id", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def shopper_export(tenant: str, shopper_id: str, out: Path) -> None:
    """Everything held about the shopper, in an encrypted archive; the key is printed once."""
    from cleargro_pipeline.privacy import request_log, shoppers

    request = request_log.record(request_log.CUSTOMERS_DATA_REQUEST, tenant,
                                      {"customer_id": shopper_id}, source="cli")
    path, key_text = shoppers.export(tenant, pseudonym=request.customer_pseudonym, out=out,
                                     request_id=request.request_id)
    click.echo(f"wrote {path}; open it with `cleargro export-open`. Key (shown once):")
    click.echo(key_text)


@shopper_group.command(name="fetch-export")
@click.option("--tenant", required=True)
@click.option("--request", "request_id", required=True)
def shopper_fetch_export(tenant: str, request_id: str) -> None:
    """The archive answering a Shopify data request, and its key (shown once)."""
    from cleargro_pipeline.privacy import shoppers

    path, key_text = shoppers.retrieve_export(tenant, request_id)
    click.echo(f"archive: {path}; key (shown once):")
    click.echo(key_text)


# --- disconnect and retention ------------------------------------------------------------

@cli.command(name="disconnect")
@click.option("--tenant", required=True)
@click.option("--source", required=True, type=click.Choice(["shop", "ga4", "google_ads"]))
@click.option("--delete-data", is_flag=True,
              help="Also drop the source's raw tables and rebuild the marts without them.")
def disconnect_(tenant: str, source: str, delete_data: bool) -> None:
    """Stop syncing a source: revoke its OAuth token, delete its stored credentials and, with
    --delete-data, its raw data and what the marts built from it."""
    from cleargro_pipeline.controls import disconnect

    report = disconnect.disconnect(tenant, source, delete_data=delete_data)
    click.echo(f"{source} disconnected from '{tenant}'"
               + ("" if report.was_synced else " (it was not being synced)"))
    for name in report.revoked:
        click.echo(f"revoked at the provider: {name}")
    for name in report.already_revoked:
        click.echo(f"already revoked: {name}")
    click.echo(f"credentials deleted: {', '.join(report.deleted_credentials) or 'none stored'}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.data_deleted:
        click.echo(f"data deleted: {', '.join(report.dropped) or 'nothing stored'}"
                   + ("; models rebuilt" if report.rebuilt else ""))


@cli.command(name="retention")
@click.option("--tenant", required=True)
def retention_(tenant: str) -> None:
    """Apply the tenant's retention window now (the daily retention job does it too)."""
    from cleargro_pipeline.controls import retention

    report = retention.apply(tenant)
    if report.cutoff is None:
        click.echo(f"'{tenant}' keeps all history: nothing to cut")
        return
    deleted = {t: n for t, n in report.deleted.items() if n}
    click.echo(f"cut at {report.cutoff.date()}: {sum(deleted.values())} rows deleted"
               + "".join(f"\n  {t}: {n}" for t, n in sorted(deleted.items()))
               + (f"\n{'models rebuilt; ' if report.rebuilt else ''}warehouse rewritten "
                  f"({report.file_bytes} bytes)" if report.file_bytes else "\nnothing older than the window"))


# --- privacy webhooks ------------------------------------------------------------------

@cli.group(name="webhooks")
def webhooks_group() -> None:
    """Shopify's mandatory privacy webhooks."""


@webhooks_group.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Bind address (put a TLS reverse proxy in front).")
@click.option("--port", default=8787, show_default=True, type=int)
def webhooks_serve(host: str, port: int) -> None:
    """Receive customers/data_request, customers/redact and shop/redact (Ctrl-C to stop).
    The app secret: `cleargro secrets set platform shopify_app_secret`; a tenant's shop:
    `cleargro tenants configure T --shop-domain NAME.myshopify.com`."""
    import logging

    from cleargro_pipeline.privacy import webhooks

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    webhooks.serve(host, port)


# --- alerts ----------------------------------------------------------------------------

@cli.group(name="alerts")
def alerts_group() -> None:
    """A tenant's alerts: evaluate and send them, list them, acknowledge one."""


@alerts_group.command(name="run")
@click.option("--tenant", required=True)
def alerts_run(tenant: str) -> None:
    """Evaluate the tenant's alerts and send what is owed (what the Dagster sensors do)."""
    from cleargro_pipeline.alerts import service
    from cleargro_pipeline.runner import dagster_instance

    outcome = service.run(tenants.get(tenant).name, instance=dagster_instance())
    sent = outcome.dispatch
    click.echo(f"tenant '{tenant}': {len(outcome.raised)} raised, {len(outcome.resolved)} resolved, "
               f"{len(outcome.active)} active; deliveries: {len(sent.sent)} sent, "
               f"{len(sent.failed)} failed (retried with backoff), {sent.pending} pending")
    _print_alerts(outcome.active)


@alerts_group.command(name="list")
@click.option("--tenant", required=True)
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved alerts.")
def alerts_list(tenant: str, include_resolved: bool) -> None:
    from cleargro_pipeline.alerts import service

    _print_alerts(service.listing(tenant, include_resolved=include_resolved))


@alerts_group.command(name="ack")
@click.option("--tenant", required=True)
@click.argument("alert_id")
def alerts_ack(tenant: str, alert_id: str) -> None:
    """Acknowledge an alert: it stays until its condition clears, but is not sent again."""
    from cleargro_pipeline.alerts import service

    service.acknowledge(tenant, alert_id)
    click.echo(f"alert {alert_id} acknowledged")


def _print_alerts(alerts: list) -> None:  # type: ignore[type-arg]
    from cleargro_pipeline.alerts.model import format_value

    if not alerts:
        click.echo("no alerts")
        return
    for a in alerts:
        figures = ("" if a.observed is None else f" observed {format_value(a.observed)}"
                   f" vs expected {format_value(a.expected)}")
        click.echo(f"  {a.for_date}  {a.severity:<8} {a.status:<12} {a.alert_type:<32} "
                   f"{a.entity_id:<24}{figures}")
        click.echo(f"      {a.message}  [{a.alert_id}]")


# --- audit -----------------------------------------------------------------------------

@cli.group(name="audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command(name="verify")
def audit_verify() -> None:
    """Recompute the chain; names the first broken entry."""
    result = audit.verify()
    click.echo(f"audit log intact: {result.entries} entries, head {result.last_hash[:16]}")


# --- pipeline --------------------------------------------------------------------------

@cli.command()
@click.option("--tenant", required=True)
def run(tenant: str) -> None:
    """Materialize everything for one tenant through the Dagster instance."""
    from cleargro_pipeline.runner import materialize_tenant

    tenants.get(tenant)
    summary = materialize_tenant(tenant)
    click.echo(f"run {summary.run_id} succeeded for tenant '{tenant}'")
    for step, seconds in summary.step_seconds.items():
        click.echo(f"  {step}: {seconds:.1f} s")


@cli.command(name="dbt", context_settings={"ignore_unknown_options": True})
@click.option("--tenant", required=True)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt_(tenant: str, dbt_args: tuple[str, ...]) -> None:
    """Run dbt against one tenant's warehouse (dev): `cleargro dbt --tenant T -- build -s m`.

    The key reaches dbt through its environment only; target/ and logs/ live in a
    per-invocation working folder that is removed afterwards.
    """
    import os
    import subprocess
    import uuid

    from cleargro_pipeline import warehouse
    from cleargro_pipeline.settings import DBT_PROJECT_DIR

    tenants.get(tenant)
    work = paths().tenant_work(tenant) / "dbt" / f"cli-{uuid.uuid4().hex}"
    dbt = Path(sys.executable).with_name("dbt")
    if dbt_args and "--vars" not in dbt_args:  # the tenant's settings, as a scheduled run gets them
        dbt_args = (*dbt_args, "--vars", json.dumps(tenants.dbt_vars(tenant)))
    try:
        with warehouse.dbt_session(tenant) as env:
            completed = subprocess.run(
                [str(dbt), *dbt_args, "--project-dir", str(DBT_PROJECT_DIR),
                 "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(work / "target")],
                env={**os.environ, **env, "DBT_LOG_PATH": str(work / "logs")}, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(completed.returncode)


@cli.command(name="import")
@click.option("--tenant", required=True)
@click.option("--from", "directory", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_(tenant: str, directory: Path) -> None:
    """Load a directory of Shopify API bodies and GA4 / Google Ads CSV exports."""
    from cleargro_pipeline import ingest

    tenants.get(tenant)
    reports = ingest.load(tenant, ingest.FileDropPlan(directory.resolve()))
    if not reports:
        raise click.ClickException(f"{directory} holds no file this import understands")
    for report in reports:
        for table, rows in report.rows.items():
            click.echo(f"raw_{report.system}.{table}: {rows} rows")
    click.echo(f"imported into tenant '{tenant}'; run `cleargro run --tenant {tenant}` to build "
               "its marts")


@cli.command()
@click.option("--size", type=click.Choice(["small", "medium", "large"]), default="small",
              show_default=True)
def demo(size: str) -> None:
    """Create the demo tenant if missing, generate its data and materialize everything."""
    from cleargro_pipeline import bootstrap
    from cleargro_pipeline.warehouse import queries

    bootstrap.init()  # before importing the job: it reads the dbt manifest init writes
    from cleargro_pipeline.runner import materialize_tenant

    if not tenants.exists(DEMO_TENANT):
        tenants.add(DEMO_TENANT, tenants.demo_sources(size))
    elif tenants.get(DEMO_TENANT).sources.get("shop", {}).get("size") != size:
        raise click.ClickException(
            f"tenant '{DEMO_TENANT}' exists with another demo size; remove data/ to start over")
    from cleargro_pipeline import reports
    from cleargro_pipeline.runner import materialize_report

    started = time.monotonic()
    summary = materialize_tenant(DEMO_TENANT)
    week = reports.latest_complete_week(DEMO_TENANT)
    materialize_report(DEMO_TENANT, week)
    elapsed = time.monotonic() - started
    _print_summary(summary, queries.table_row_counts(DEMO_TENANT), elapsed)
    _print_opportunities(DEMO_TENANT, queries.top_opportunities(DEMO_TENANT, limit=5))
    _print_demo_alerts(DEMO_TENANT)
    click.echo(f"\nLatest weekly report ({week}), stored encrypted in the warehouse. Export it:")
    click.echo(f"  .venv/bin/cleargro report --tenant {DEMO_TENANT} --period {week} "
               f"--out {DEMO_TENANT}-{week}.html")


def _print_summary(summary, counts: dict[str, int], elapsed: float) -> None:  # type: ignore[no-untyped-def]
    echo = click.echo
    echo(f"\nDemo tenant '{summary.tenant}': run {summary.run_id} succeeded in {elapsed:.1f} s")
    echo("\nTime per stage:")
    for step, seconds in summary.step_seconds.items():
        echo(f"  {step:<28} {seconds:8.1f} s")
    echo("\nRows per table:")
    for table, rows in counts.items():
        echo(f"  {table:<48} {rows:>12,}")
    echo(f"\nWarehouse (AES-256-GCM encrypted): {paths().warehouse(summary.tenant)}")
    echo(f"Dagster home (runs, event log):    {paths().dagster_home}")
    echo("\nOpen the Dagster UI:  make dev   (http://127.0.0.1:3000)")
    echo(f"Query as an analyst:  .venv/bin/cleargro sql --tenant {summary.tenant} "
         "\"select * from marts.fct_daily_sales order by date_day desc limit 7\"")


def _print_demo_alerts(tenant: str) -> None:
    from cleargro_pipeline.alerts import service
    from cleargro_pipeline.runner import dagster_instance

    outcome = service.run(tenant, instance=dagster_instance())
    click.echo(f"\nAlerts ({len(outcome.active)} active; send them somewhere with "
               f"`cleargro tenants configure {tenant} --webhook URL`):")
    _print_alerts(outcome.active)


def _print_opportunities(tenant: str, top: list[dict]) -> None:
    echo = click.echo
    if not top:
        echo("\nNo open opportunities.")
        return
    echo(f"\nTop opportunities (as of {top[0]['as_of_date']}):")
    for o in top:
        per = "/month" if o["impact_kind"] == "monthly" else " once"
        echo(f"  {o['priority']:>2}. {o['opportunity_type']:<36} {o['entity_id']:<28} "
             f"{o['impact_amount']:>10,.2f} {o['currency']}{per}")
        echo(f"      {o['explanation']}")
    echo(f"  All of them: .venv/bin/cleargro sql --tenant {tenant} "
         "\"select * from insights.opportunities order by priority\"")


@cli.command()
@click.option("--tenant", required=True)
@click.option("--period", required=True, help="An ISO week (2026-W47) or a month (2026-11).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the plaintext copy (the stored report stays encrypted).")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default="html",
              show_default=True)
def report(tenant: str, period: str, out: Path, fmt: str) -> None:
    """Write a tenant's weekly or monthly report to FILE (rendered first if not stored yet; audited)."""
    tenants.get(tenant)
    from cleargro_pipeline import reports

    written = reports.export_report(tenant, period, out, fmt=fmt)
    click.echo(f"report {period} of tenant '{tenant}' written to {written} (plaintext: keep it safe)")


@cli.command(name="reports")
@click.option("--tenant", required=True)
def reports_(tenant: str) -> None:
    """List the reports stored (encrypted) in a tenant's warehouse."""
    tenants.get(tenant)
    from cleargro_pipeline import reports

    stored = reports.list_reports(tenant)
    for r in stored:
        state = "complete" if r.is_complete else f"partial, data through {r.data_through}"
        click.echo(f"{r.period}\t{r.period_start} to {r.period_end}\t{state}\t"
                   f"{r.size_bytes:,} bytes\tgenerated {r.generated_at:%Y-%m-%d %H:%M} UTC")
    if not stored:
        click.echo(f"no reports stored for tenant '{tenant}' yet: "
                   f"`cleargro report --tenant {tenant} --period 2026-W47 --out FILE` builds one")


@cli.command()
@click.option("--tenant", required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.argument("sql")
def sql(tenant: str, fmt: str, sql: str) -> None:
    """Run one read-only query against a tenant's warehouse (audited)."""
    import polars as pl

    from cleargro_pipeline.warehouse import queries

    frame = queries.analyst_query(tenant, sql)
    if fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(frame.to_dicts(), default=str, indent=2))
    else:
        width = shutil.get_terminal_size((200, 50)).columns
        with pl.Config(tbl_rows=200, tbl_cols=50, fmt_str_lengths=60, tbl_width_chars=width):
            click.echo(frame)


@cli.command(name="verify-at-rest")
@click.option("--canary", "canaries", multiple=True, help="A value that must not be found.")
def verify_at_rest(canaries: tuple[str, ...]) -> None:
    """Scan data/, DAGSTER_HOME, working and temp folders for plaintext customer values."""
    from cleargro_pipeline.security import verify_at_rest as scanner

    roots = scanner.default_roots(paths().data, extra=[paths().dagster_home, paths().work])
    findings = scanner.scan(roots, canaries)
    for finding in findings:
        click.echo(f"{finding.kind}: {finding.path} ({finding.detail})")
    click.echo(f"verify-at-rest: {len(findings)} finding(s) in {', '.join(map(str, roots))}")
    if findings:
        sys.exit(1)
