"""dbt models as assets, partitioned by tenant, dbt tests as asset checks.

The data key reaches dbt only through the subprocess environment while this
step holds the tenant's writer lock; dbt's target/ and logs go to a per-run
working folder that is removed afterwards.
"""

import json
import os
import shutil
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.orchestration.partitions import tenant_partitions
from cleargro_pipeline.orchestration.translator import ModelTranslator
from cleargro_pipeline.settings import DBT_PROJECT_DIR, paths

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="tenant")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dbt_build_args(tenant: str) -> list[str]:
    # Unit tests prove the SQL, not the tenant's data: they run in the test suite, not here.
    return ["build", "--vars", json.dumps(tenants.dbt_vars(tenant)),
            "--exclude-resource-type", "unit_test"]


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name="dbt_models",
            dagster_dbt_translator=ModelTranslator(), partitions_def=tenant_partitions)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    tenant = context.partition_key
    target = paths().tenant_work(tenant) / "dbt" / context.run.run_id
    try:
        with warehouse.dbt_session(tenant) as env:
            with _environment(env):
                invocation = dbt.cli(dbt_build_args(tenant), context=context, target_path=target)
            yield from invocation.stream()
    finally:
        shutil.rmtree(target, ignore_errors=True)
