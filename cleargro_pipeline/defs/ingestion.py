"""Raw-table assets, one multi-asset per system, partitioned by tenant: the asset specs come
from the dlt source itself through dagster-dlt's translator; the load runs in `ingest.load`'s
supervised child process so a crash cannot leave dlt's plaintext working files behind."""

from typing import Any, Iterator

import dagster as dg
from dagster_dlt.translator import DltResourceTranslatorData

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.orchestration.partitions import tenant_partitions
from cleargro_pipeline.orchestration.translator import RawTableTranslator, raw_asset_key
from cleargro_pipeline.sources.raw import contract_source


def _specs(system: str) -> list[dg.AssetSpec]:
    # A source with no data and an identity pseudonymiser: only its resources' names are read.
    source = contract_source(system, lambda raw: (), lambda values: values, incremental=False)
    translator = RawTableTranslator(system)
    return [translator.get_asset_spec(DltResourceTranslatorData(resource=r, pipeline=None))
            for r in source.resources.values()]


def plan_for(tenant: str, system: str, config: dict[str, Any]) -> ingest.DemoPlan:
    kind = config.get("kind")
    if kind == "demo":
        return ingest.DemoPlan(size=config.get("size", "small"), seed=int(config.get("seed", 7)),
                               incidents=bool(config.get("incidents", True)),
                               hold_back_days=int(config.get("hold_back_days", 0)), tenant=tenant)
    raise ValueError(f"tenant '{tenant}': source {system} has kind {kind!r}, which this version "
                     "cannot sync (supported: demo; other data arrives with `cleargro import`)")


def raw_assets(system: str) -> dg.AssetsDefinition:
    @dg.multi_asset(name=f"load_raw_{system}", specs=_specs(system), can_subset=True,
                    partitions_def=tenant_partitions, op_tags={"cleargro/system": system})
    def load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        tenant = context.partition_key
        config = tenants.synced_sources(tenants.get(tenant)).get(system)
        if not config:
            context.log.info(f"tenant '{tenant}' does not sync {system}: skipped")
            return
        for report in ingest.load(tenant, plan_for(tenant, system, config), (system,)):
            for table, rows in report.rows.items():
                key = raw_asset_key(system, table)
                if key in context.selected_asset_keys:
                    yield dg.MaterializeResult(asset_key=key, metadata={
                        "rows_loaded": dg.MetadataValue.int(rows),
                        "load_ids": ", ".join(report.load_ids),
                        "system_seconds": dg.MetadataValue.float(report.seconds),
                        **{f"{phase}_seconds": dg.MetadataValue.float(seconds)
                           for phase, seconds in report.phase_seconds.items()},
                    })
            # Tables with no new rows this run are still current: record them as checked.
            for key in context.selected_asset_keys - {raw_asset_key(system, t) for t in report.rows}:
                yield dg.MaterializeResult(asset_key=key, metadata={"rows_loaded": 0})

    return load


RAW_ASSETS_BY_SYSTEM = {system: raw_assets(system) for system in ingest.SYSTEMS}
RAW_ASSETS = list(RAW_ASSETS_BY_SYSTEM.values())
