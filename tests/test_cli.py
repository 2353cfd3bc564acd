"""The `cleargro` console script as a user runs it: exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cleargro_pipeline import warehouse
from cleargro_pipeline.cli import cli
from cleargro_pipeline.privacy import request_log
from cleargro_pipeline.security import audit

CLEARGRO = str(Path(sys.executable).with_name("cleargro"))


def cleargro(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLEARGRO, *args], capture_output=True, text=True, timeout=300)


def test_tenants_add_list_show(data_dir):
    added = cleargro("tenants", "add", "shop-one")
    assert added.returncode == 0, added.stderr
    assert "added tenant 'shop-one'" in added.stdout
    assert cleargro("tenants", "add", "shop-two", "--demo", "small").returncode == 0
    listed = cleargro("tenants", "list").stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["shop-one", "-"],
                                                         ["shop-two", "app,ga4,google_ads,shop"]]
    shown = cleargro("tenants", "show", "shop-two").stdout
    assert '"kind": "demo"' in shown and "warehouse.duckdb" in shown
    import dagster as dg
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME of this test's data/
        assert set(instance.get_dynamic_partitions("tenants")) == {"shop-one", "shop-two"}
    registry = (data_dir / "registry").rglob("*")
    assert sorted(p.name for p in registry if p.is_file()) == ["keys.json", "keys.json",
                                                                "tenant.json", "tenant.json"]


@pytest.mark.parametrize("args, message", [
    (("tenants", "show", "ghost"), "error: unknown tenant 'ghost'"),
    (("tenants", "add", "Bad Name"), "error: invalid tenant name 'Bad Name'"),
    (("sql", "--tenant", "ghost", "select 1"), "error: unknown tenant 'ghost'"),
    (("run", "--tenant", "ghost"), "error: unknown tenant 'ghost'"),
    (("tenants", "configure", "ghost", "--set", "target_roas=3"), "error: unknown tenant 'ghost'"),
    (("report", "--tenant", "ghost", "--period", "2026-W47", "--out", "x.html"),
     "error: unknown tenant 'ghost'"),
])
def test_bad_input_gets_a_clear_error(data_dir, args, message):
    result = cleargro(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_sql_reads_and_is_audited(data_dir):
    from cleargro_pipeline import warehouse
    assert cleargro("tenants", "add", "acme").returncode == 0
    with warehouse.open_warehouse("acme", purpose="ingest") as conn:
        conn.execute("create schema marts")
        conn.execute("create table marts.t as select range as n, 'x' || range as s from range(3)")
    csv = cleargro("sql", "--tenant", "acme", "--format", "csv", "select n, s from marts.t order by n")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines() == ["n,s", "0,x0", "1,x1", "2,x2"]
    json_out = cleargro("sql", "--tenant", "acme", "--format", "json", "select count(*) as c from marts.t")
    assert '"c": 3' in json_out.stdout
    refused = cleargro("sql", "--tenant", "acme", "delete from marts.t")
    assert refused.returncode != 0
    assert "attached in read-only mode" in refused.stderr, refused.stderr
    actions = [(e["action"], e["purpose"]) for e in audit.entries() if e["tenant"] == "acme"]
    assert actions.count(("sql_query", "query")) == 3
    assert actions.count(("key_unwrapped", "query")) == 3


def _tenant_with_a_table(name: str) -> None:
    assert cleargro("tenants", "add", name).returncode == 0
    with warehouse.open_warehouse(name, purpose="ingest") as conn:
        conn.execute("create schema marts")
        conn.execute("create table marts.t as select range as n from range(3)")


@pytest.mark.parametrize("query, problem", [
    ("selec 1", 'Parser Error: syntax error at or near "selec"'),
    ("select * from read_csv('/etc/passwd')",
     'Permission Error: Cannot access file "/etc/passwd"'),
    ("create table marts.u as select 1", "attached in read-only mode"),
])
def test_a_refused_query_is_one_line_on_stderr(data_dir, query, problem):
    _tenant_with_a_table("acme")
    refused = cleargro("sql", "--tenant", "acme", query)
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("error: ") and problem in refused.stderr, refused.stderr
    assert refused.stdout == ""


def test_debug_shows_the_traceback(data_dir):
    _tenant_with_a_table("acme")
    flagged = cleargro("--debug", "sql", "--tenant", "acme", "selec 1")
    from_env = subprocess.run([CLEARGRO, "sql", "--tenant", "acme", "selec 1"], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "CLEARGRO_DEBUG": "1"})
    for result in (flagged, from_env):
        assert result.returncode != 0
        assert "Traceback (most recent call last)" in result.stderr
        assert "syntax error" in result.stderr


def test_help_lists_every_command_without_importing_it():
    """`cleargro --help` takes each command's summary from its module's source: what it lists
    is what Click lists from the loaded commands, and listing loads none of them."""
    ctx = click.Context(cli, info_name="cleargro")
    listed = ctx.make_formatter()
    cli.format_commands(ctx, listed)
    loaded = ctx.make_formatter()
    commands = [cli.get_command(ctx, name) for name in cli.list_commands(ctx)]  # each one loads
    click.Group(commands=commands).format_commands(ctx, loaded)
    assert listed.getvalue() == loaded.getvalue()

    probe = ("import sys; from cleargro_pipeline.cli import cli; "
             "cli.main(['--help'], standalone_mode=False); "
             "print(sorted(m for m in sys.modules if m.startswith('cleargro_pipeline')))")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "verify-certificate" in shown.stdout
    assert shown.stdout.splitlines()[-1] == str(["cleargro_pipeline", "cleargro_pipeline.cli",
                                                  "cleargro_pipeline.cli.lazy_group",
                                                  "cleargro_pipeline.errors"])


@pytest.mark.audit_tampered  # it breaks the chain to see the command fail
def test_audit_verify_command(data_dir):
    assert cleargro("tenants", "add", "acme").returncode == 0
    ok = cleargro("audit", "verify")
    assert ok.returncode == 0 and "audit log intact: 2 entries" in ok.stdout
    log = data_dir / "audit" / "audit.log"
    log.write_text(log.read_text().replace('"tenant_added"', '"tenant_removed"'))
    broken = cleargro("audit", "verify")
    assert broken.returncode == 2 and "line 2 (seq 2)" in broken.stderr


def test_tenant_insight_settings_reach_dbt_and_are_validated(data_dir):
    from cleargro_pipeline import tenants
    from cleargro_pipeline.warehouse.dbt import build_args as dbt_build_args

    assert cleargro("tenants", "add", "acme").returncode == 0
    changed = cleargro("tenants", "configure", "acme", "--set", "target_roas=3.5",
                       "--set", "lead_time_days=21")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == ["lead_time_days = 21 (default 14)",
                                           "target_roas = 3.5 (default 4)"]
    args = dbt_build_args("acme")
    assert json.loads(args[args.index("--vars") + 1]) == {
        "tenant": "acme", "target_roas": 3.5, "lead_time_days": 21}
    assert "unit_test" in args  # excluded from tenant runs: they run in the test suite
    for bad, message in ((("--set", "no_such=1"), "unknown insight setting 'no_such'"),
                         (("--set", "target_roas=high"), "must be a number, not 'high'"),
                         (("--set", "target_roas"), "expected SETTING=VALUE"),
                         (("--set", "lead_time_days=7.5"), "must be a whole number, not '7.5'")):
        refused = cleargro("tenants", "configure", "acme", *bad)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert tenants.get("acme").insights == {"target_roas": 3.5, "lead_time_days": 21}
    assert cleargro("tenants", "configure", "acme", "--unset", "target_roas").returncode == 0
    assert tenants.dbt_vars("acme") == {"tenant": "acme", "lead_time_days": 21}


def test_shopper_erase_is_recorded_before_it_runs(data_dir):
    """`shopper erase` leaves a privacy request on record (what later loads keep out), also
    when the tenant holds nothing yet; a malformed id is refused before anything is written."""
    from cleargro_pipeline.privacy import request_log

    assert cleargro("tenants", "add", "acme").returncode == 0
    bad = cleargro("shopper", "erase", "--tenant", "acme", "--shopper-id", "not-an-id")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert request_log.all_requests() == []

    erased = cleargro("shopper", "erase", "--tenant", "acme", "--shopper-id", "6200000025")
    assert erased.returncode == 0, erased.stderr
    request_id, _, summary = erased.stdout.strip().partition(": ")
    assert summary == "the tenant has no warehouse: no data about the shopper was held"
    request = request_log.get(request_id)
    assert (request.topic, request.source, request.status) == \
        (request_log.CUSTOMERS_REDACT, "cli", "done")
    assert request_log.redacted_pseudonyms("acme") == {request.customer_pseudonym}
    assert "6200000025" not in erased.stdout + request_log.log_file().read_text()


def test_shopper_export_is_recorded_as_a_data_request(data_dir, tmp_path):
    """`shopper export` leaves a data request on record, as `shopper erase` leaves a redact
    request; a malformed id is refused before anything is written."""
    assert cleargro("tenants", "add", "acme").returncode == 0
    bad = cleargro("shopper", "export", "--tenant", "acme", "--shopper-id", "not-an-id",
                   "--out", str(tmp_path / "bad.cgx"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert request_log.all_requests() == []

    made = cleargro("shopper", "export", "--tenant", "acme", "--shopper-id", "6200000025",
                    "--out", str(tmp_path / "shopper.cgx"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "shopper.cgx").is_file() and "Key (shown once)" in made.stdout
    [request] = request_log.all_requests()
    assert (request.topic, request.source, request.status) == \
        (request_log.CUSTOMERS_DATA_REQUEST, "cli", "done")
    assert request.customer_pseudonym is not None
    assert "6200000025" not in made.stdout + request_log.log_file().read_text()
