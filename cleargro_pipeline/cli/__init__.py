"""The `cleargro` command line: the root group, the console script's `main` and where each
command lives (one module per command group, imported only when its command is used).
`main` is the one place that turns an expected failure into one line on stderr."""

from __future__ import annotations

import sys

import click

from cleargro_pipeline.cli.lazy_group import LazyGroup
from cleargro_pipeline.errors import CleargroError

EXIT_ERROR = 2

COMMANDS = {
    "alerts": "cleargro_pipeline.cli.alerts.alerts_group",
    "audit": "cleargro_pipeline.cli.security.audit_group",
    "backup": "cleargro_pipeline.cli.backups.backup_group",
    "connect": "cleargro_pipeline.cli.connect.connect_group",
    "dbt": "cleargro_pipeline.cli.dbt.dbt_",
    "delete": "cleargro_pipeline.cli.deletion.delete",
    "demo": "cleargro_pipeline.cli.demo.demo",
    "disconnect": "cleargro_pipeline.cli.sources.disconnect_",
    "export": "cleargro_pipeline.cli.exports.export_",
    "export-open": "cleargro_pipeline.cli.exports.export_open",
    "import": "cleargro_pipeline.cli.sources.import_",
    "init": "cleargro_pipeline.cli.setup.init",
    "report": "cleargro_pipeline.cli.reports.report",
    "reports": "cleargro_pipeline.cli.reports.reports_",
    "restore": "cleargro_pipeline.cli.backups.restore",
    "retention": "cleargro_pipeline.cli.sources.retention_",
    "run": "cleargro_pipeline.cli.run.run",
    "secrets": "cleargro_pipeline.cli.secrets.secrets_group",
    "serve": "cleargro_pipeline.cli.serve.serve",
    "shopper": "cleargro_pipeline.cli.shoppers.shopper_group",
    "sql": "cleargro_pipeline.cli.sql.sql",
    "tenants": "cleargro_pipeline.cli.tenants.tenants_group",
    "verify-at-rest": "cleargro_pipeline.cli.security.verify_at_rest",
    "verify-certificate": "cleargro_pipeline.cli.deletion.verify_certificate",
    "webhooks": "cleargro_pipeline.cli.webhooks.webhooks_group",
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS)
@click.option("--debug", is_flag=True, envvar="CLEARGRO_DEBUG",
              help="Show the traceback when a command fails (or set CLEARGRO_DEBUG=1).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Cleargro: per-merchant encrypted warehouses fed by dlt, modelled by dbt, run by Dagster."""
    ctx.ensure_object(dict)["debug"] = debug


def main() -> None:
    options: dict[str, bool] = {}  # the root command records --debug here
    try:
        cli(standalone_mode=False, obj=options)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except Exception as error:
        if options.get("debug") or not _expected(error):
            raise
        click.echo(f"error: {_one_line(error)}", err=True)
        sys.exit(EXIT_ERROR)


def _expected(error: Exception) -> bool:
    """Ours on purpose, or DuckDB refusing a query (a typo, a file read, a write)."""
    # Looked up, not imported: importing DuckDB would slow `cleargro --help`, and a DuckDB
    # error can only have been raised once a command imported it.
    duckdb = sys.modules.get("duckdb")
    return isinstance(error, CleargroError) or (duckdb is not None
                                                and isinstance(error, duckdb.Error))


def _one_line(error: Exception) -> str:
    """The message's first paragraph (DuckDB adds the query and a caret below it)."""
    return " ".join(line.strip() for line in str(error).partition("\n\n")[0].splitlines())
