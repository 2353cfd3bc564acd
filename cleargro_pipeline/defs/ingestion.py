"""Raw-table assets in one multi-asset, partitioned by tenant: the asset specs come from the
dlt sources themselves through dagster-dlt's translator (groups per system); the load runs in
`ingest`'s supervised child process, once per run for every system, so a crash cannot leave
dlt's plaintext working files behind."""

from typing import Any, Iterator

import dagster as dg
from dagster_dlt.translator import DltResourceTranslatorData

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.controls import scopes
from cleargro_pipeline.errors import CredentialsRejected
from cleargro_pipeline.orchestration.partitions import tenant_partitions
from cleargro_pipeline.orchestration.translator import RawTableTranslator, raw_asset_key
from cleargro_pipeline.sources.raw import contract_source


def _specs(system: str) -> list[dg.AssetSpec]:
    # A source with no data and an identity pseudonymiser: only its resources' names are read.
    source = contract_source(system, lambda raw: (), lambda values: values, incremental=False)
    translator = RawTableTranslator(system)
    return [translator.get_asset_spec(DltResourceTranslatorData(resource=r, pipeline=None))
            for r in source.resources.values()]


def plan_for(tenant: str, system: str, config: dict[str, Any]) -> ingest.Plan:
    kind = config.get("kind")
    if kind == "shopify" and system == "shop":
        return ingest.ShopifyPlan(tenant=tenant, shop=config["shop_domain"],
                                  endpoint=config.get("endpoint"),
                                  bulk_after_days=int(config.get("bulk_after_days", 7)),
                                  shopper_level=scopes.of(tenants.get(tenant)).shopper_level)
    if kind == "ga4" and system == "ga4":
        return ingest.Ga4Plan(tenant=tenant, property=str(config["property"]),
                              endpoint=config.get("endpoint"),
                              history_days=int(config.get("history_days", 730)),
                              trailing_days=int(config.get("trailing_days", 3)))
    if kind == "google_ads" and system == "google_ads":
        return ingest.GoogleAdsPlan(tenant=tenant, customer=str(config["customer"]),
                                    login_customer=config.get("login_customer"),
                                    endpoint=config.get("endpoint"),
                                    history_days=int(config.get("history_days", 730)),
                                    trailing_days=int(config.get("trailing_days", 30)))
    if kind == "demo":
        return ingest.DemoPlan(size=config.get("size", "small"), seed=int(config.get("seed", 7)),
                               incidents=bool(config.get("incidents", True)),
                               hold_back_days=int(config.get("hold_back_days", 0)), tenant=tenant,
                               history=bool(config.get("history", True)))
    raise ValueError(f"tenant '{tenant}': source {system} has kind {kind!r}, which this version "
                     "cannot sync (supported: demo; shopify, ga4, google_ads for their sources; other data arrives "
                     "with `cleargro import`)")


@dg.multi_asset(name="load_raw", specs=[spec for system in ingest.SYSTEMS for spec in _specs(system)],
                can_subset=True, partitions_def=tenant_partitions)
def load_raw(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    """Every selected system of the tenant in one supervised loader (one process, one lock);
    the systems that loaded are recorded even when another failed, then the step fails
    naming the ones that did not."""
    tenant = context.partition_key
    config = tenants.get(tenant)
    synced, rejected = tenants.synced_sources(config), tenants.rejected_sources(config)
    selected = {key.path[0].removeprefix("raw_") for key in context.selected_asset_keys}
    plans = {system: plan_for(tenant, system, synced[system]) for system in ingest.SYSTEMS
             if system in selected and synced.get(system) and system not in rejected}
    for system in sorted(selected - set(plans)):
        why = (f"refused the stored credentials on {rejected[system]}; reconnect it"
               if system in rejected else "is not synced")
        context.log.info(f"tenant '{tenant}': {system} {why}: skipped")
    if not plans:
        return
    reports, failures = ingest.load_each(tenant, plans, tuple(plans))
    for report in reports:
        _record_history(tenant, report)
        yield from _materializations(context, report)
    for failure in failures:
        if failure.credentials_rejected:  # retrying cannot help: wait for a reconnection
            tenants.mark_credentials_rejected(tenant, failure.system)
    if failures:
        first = failures[0]
        kind = CredentialsRejected if first.credentials_rejected else ingest.IngestError
        raise kind(f"tenant '{tenant}': load of {', '.join(f.system for f in failures)} failed: "
                   f"{first.system}: {first.message}")


def _record_history(tenant: str, report: ingest.LoadReport) -> None:
    """The first day a source's first sync could read (Shopify: 60 days of orders without
    read_all_orders), kept with the source so `cleargro tenants show` says where history starts."""
    first = report.notices.get("orders_history_from")
    config = tenants.get(tenant).sources.get(report.system, {})
    if first and config.get("orders_history_from") != first:
        tenants.configure_source(tenant, report.system, {**config, "orders_history_from": first})


def _materializations(context: dg.AssetExecutionContext,
                      report: ingest.LoadReport) -> Iterator[dg.MaterializeResult]:
    system = report.system
    for table, rows in report.rows.items():
        key = raw_asset_key(system, table)
        if key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata={
                "rows_loaded": dg.MetadataValue.int(rows),
                "load_ids": ", ".join(report.load_ids),
                "system_seconds": dg.MetadataValue.float(report.seconds),
                **{f"{phase}_seconds": dg.MetadataValue.float(seconds)
                   for phase, seconds in report.phase_seconds.items()},
                **report.notices,
            })
    # Tables with no new rows this run are still current: record them as checked.
    ours = {key for key in context.selected_asset_keys if key.path[0] == f"raw_{system}"}
    for key in ours - {raw_asset_key(system, t) for t in report.rows}:
        yield dg.MaterializeResult(asset_key=key, metadata={"rows_loaded": 0, **report.notices})


def raw_asset_keys(system: str) -> list[dg.AssetKey]:
    return [key for key in load_raw.keys if key.path[0] == f"raw_{system}"]
