"""dbt models as assets, partitioned by tenant, dbt tests as asset checks.

dbt runs through the one path to dbt (`warehouse.dbt.process`): the tenant's writer lock, the
key in the child's environment only, a per-run target folder removed afterwards. Dagster's
part is what `DbtCliResource.cli` would add (the selection of this run's subset, streaming
events); the resource itself is not used, because it builds dbt's environment from this
process's `os.environ`, where the key must never be.
"""

from pathlib import Path
from typing import Any, Iterator

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster_dbt import DbtCliInvocation, DbtProject, dbt_assets
from dagster_dbt.asset_utils import (DBT_INDIRECT_SELECTION_ENV,
                                     extract_runtime_selection_from_args,
                                     get_updated_cli_invocation_params_for_context)
from dbt.version import __version__ as dbt_version
from packaging.version import Version

from cleargro_pipeline.orchestration.partitions import tenant_partitions
from cleargro_pipeline.orchestration.translator import ModelTranslator
from cleargro_pipeline.warehouse import dbt as tenant_dbt

dbt_project = DbtProject(project_dir=tenant_dbt.PROJECT_DIR, profiles_dir=tenant_dbt.PROFILES_DIR,
                         target=tenant_dbt.TARGET)
# What dagster-dbt's event stream expects of the dbt process (json logs, no buffering). The
# stream is all the asset reads: dbt's JSON artefacts (the whole manifest rewritten, run
# results) would only be written into a folder removed after the run.
STREAMING_ENV = {"DAGSTER_DBT_CLI": "true", "PYTHONUNBUFFERED": "1", "DBT_LOG_FORMAT": "json",
                 "DBT_WRITE_JSON": "false"}


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name="dbt_models",
            dagster_dbt_translator=ModelTranslator(), partitions_def=tenant_partitions)
def dbt_models(context: dg.AssetExecutionContext) -> Iterator[Any]:
    tenant = context.partition_key
    args, selects, excludes = extract_runtime_selection_from_args(tenant_dbt.build_args(tenant))
    run = get_updated_cli_invocation_params_for_context(
        context, {}, ModelTranslator(), runtime_selects=selects, runtime_excludes=excludes)
    # A large subset runs from a copy of the project with a generated selector file.
    project_dir = Path(run.dbt_project.project_dir) if run.dbt_project else tenant_dbt.PROJECT_DIR
    env = {**STREAMING_ENV, **({DBT_INDIRECT_SELECTION_ENV: run.indirect_selection}
                               if run.indirect_selection else {})}
    args = [*args, *run.selection_args]
    with tenant_dbt.process(tenant, args, purpose=context.run.run_id, env=env,
                            project_dir=project_dir,
                            reuse_views=_whole_project(context)) as (child, target):
        context.log.info(f"Running dbt command: `dbt {' '.join(child.args[1:])}`.")  # no secret
        yield from DbtCliInvocation(
            process=child, manifest=run.manifest, dagster_dbt_translator=run.dagster_dbt_translator,
            project_dir=project_dir, target_path=target, raise_on_error=True,
            cli_version=Version(dbt_version), project=run.dbt_project, context=context).stream()
    _stop_if_terminated(context)


def _whole_project(context: dg.AssetExecutionContext) -> bool:
    """Every model and every check selected: dagster-dbt then selects `fqn:*` (no subset), the
    selection under which a build may leave current views as they are."""
    return (context.selected_asset_keys == context.assets_def.keys
            and context.selected_asset_check_keys == context.assets_def.check_keys)


def _stop_if_terminated(context: dg.AssetExecutionContext) -> None:
    """A run terminated while dbt ran ends CANCELED even if the interrupt was lost: dagster-dbt
    (0.29) reads dbt's output in a `try` with a bare `except:`, so a SIGINT handled while it
    parses a line is swallowed there and dbt runs to the end. The run's status is the record
    of the request (the launcher marks it CANCELING before it signals)."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status == dg.DagsterRunStatus.CANCELING:
        raise DagsterExecutionInterruptedError()
