"""`cleargro dbt`: dbt against one tenant's warehouse, for development, through the one dbt
runner (`warehouse.dbt`), which passes the key, the tenant's settings and a working folder."""

from __future__ import annotations

import sys

import click

from cleargro_pipeline.warehouse import dbt as tenant_dbt


@click.command(name="dbt", context_settings={"ignore_unknown_options": True})
@click.option("--tenant", required=True)
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt_(tenant: str, dbt_args: tuple[str, ...]) -> None:
    """Run dbt against one tenant's warehouse (dev): `cleargro dbt --tenant T -- build -s m`.

    The key reaches dbt through its environment only; target/ and logs/ live in a
    per-invocation working folder that is removed afterwards.
    """
    sys.exit(tenant_dbt.run(tenant, list(dbt_args), purpose="cli", capture=False).returncode)
