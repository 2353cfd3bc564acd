"""The one place that names assets and groups, for raw tables (dlt) and models (dbt).

Raw tables:  raw_<system>/<table>        group raw_<system>
Staging:     staging/<model>              group staging_<system>
Marts etc.:  <schema>/<model>             group <schema> (intermediate, marts, insights, snapshots)
Reports:     weekly_report, monthly_report group reports (orchestration/reporting.py)
"""

from __future__ import annotations

from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings
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


class ModelTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            system = dbt_resource_props["source_name"]
            return raw_asset_key(system, dbt_resource_props["name"])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props["schema"]
        if schema == "staging":
            # models/staging/<system>/stg_<system>__<entity>.sql
            return f"staging_{dbt_resource_props['fqn'][2]}"
        return schema
