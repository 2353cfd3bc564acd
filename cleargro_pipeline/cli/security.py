"""Checks anyone can run: `cleargro audit verify` (the hash-chained audit log) and `cleargro
verify-at-rest` (no plaintext customer value or unencrypted DuckDB file on disk)."""

from __future__ import annotations

import sys

import click

from cleargro_pipeline.security import audit
from cleargro_pipeline.security import verify_at_rest as scanner
from cleargro_pipeline.settings import paths


@click.group(name="audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command(name="verify")
def audit_verify() -> None:
    """Recompute the chain; names the first broken entry."""
    result = audit.verify()
    click.echo(f"audit log intact: {result.entries} entries, head {result.last_hash[:16]}")


@click.command(name="verify-at-rest")
@click.option("--canary", "canaries", multiple=True, help="A value that must not be found.")
def verify_at_rest(canaries: tuple[str, ...]) -> None:
    """Scan data/, DAGSTER_HOME, working and temp folders for plaintext customer values."""
    roots = scanner.default_roots(paths().data, extra=[paths().dagster_home, paths().work])
    findings = scanner.scan(roots, canaries)
    for finding in findings:
        click.echo(f"{finding.kind}: {finding.path} ({finding.detail})")
    click.echo(f"verify-at-rest: {len(findings)} finding(s) in {', '.join(map(str, roots))}")
    if findings:
        sys.exit(1)
