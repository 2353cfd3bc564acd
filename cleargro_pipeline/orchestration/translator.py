"""The one place that names assets and groups, for raw tables (dlt) and models (dbt).

Raw tables:  raw_<system>/<table>        group raw_<system>
Staging:     staging/<model>              group staging_<system>
Marts etc.:  <schema>/<model>             group <schema> (intermediate, marts, insights, snapshots)
Reports:     weekly_report, monthly_report group reports (defs/reporting.py)

Both translators set keys and groups on the asset spec of their integration (`get_asset_spec`).
"""

from __future__ import annotations

from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData


OPPORTUNITIES_KEY = dg.AssetKey(["insights", "opportunities"])


def raw_asset_key(system: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([f"raw_{system}", table])


class RawTableTranslator(DagsterDltTranslator):
    def __init__(self, system: str) -> None:
        self.system = system

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        table = data.resource.name
        return super().get_asset_spec(data).replace_attributes(
            key=raw_asset_key(self.system, table),
            deps=[],  # raw tables are where lineage starts
            group_name=f"raw_{self.system}",
            description=f"Raw `{table}` from {self.system}, minimised at extraction "
                        f"(warehouse table raw_{self.system}.{table}).",
            kinds={"dlt", "duckdb"},
            # A tenant that does not sync this system (file drop only) skips it.
            skippable=True,
        )


def model_asset_key(props: Mapping[str, Any]) -> dg.AssetKey:
    """A dbt node's key: its schema and name; a dbt source is the raw table it reads."""
    if props["resource_type"] == "source":
        return raw_asset_key(props["source_name"], props["name"])
    return dg.AssetKey([props["schema"], props["name"]])


def model_group(props: Mapping[str, Any]) -> str:
    schema = props["schema"]
    if schema == "staging":
        # models/staging/<system>/stg_<system>__<entity>.sql
        return f"staging_{props['fqn'][2]}"
    return schema


class ModelTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str,
                       project: DbtProject | None) -> dg.AssetSpec:
        # dagster-dbt names each dependency through this method too, so deps get these keys.
        props = self.get_resource_props(manifest, unique_id)
        return super().get_asset_spec(manifest, unique_id, project).replace_attributes(
            key=model_asset_key(props), group_name=model_group(props))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # dagster-dbt 0.29 still asks by node alone when it records the parents of a dbt test
        # that is not an asset check (the singular tests that read several models).
        return model_asset_key(dbt_resource_props)
