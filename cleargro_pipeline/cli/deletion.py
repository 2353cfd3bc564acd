"""`cleargro delete` and `cleargro verify-certificate`: a tenant's deletion, requested or run
at once, and checking the signed certificate it ends with."""

from __future__ import annotations

from pathlib import Path

import click
import dagster as dg

from cleargro_pipeline import bootstrap
from cleargro_pipeline.controls import deletion


@click.command(name="delete")
@click.option("--tenant", required=True)
@click.option("--reason", default="", help="Why (kept in the certificate; no customer data).")
@click.option("--now", "at_once", is_flag=True,
              help="Run the deletion job at once; its last line is the certificate's path.")
def delete(tenant: str, reason: str, at_once: bool) -> None:
    """Request a tenant's deletion (recorded durably first; the deletion_requests sensor runs
    the job), or with --now run it here and print the signed certificate's path."""
    if not at_once and not reason:
        raise click.UsageError("give --reason TEXT (or --now to delete at once)")
    requested = deletion.request(tenant, reason or "deleted at once from the CLI", "cli")
    click.echo(f"deletion {requested.request_id} of '{tenant}': {requested.status}")
    if at_once:
        click.echo(str(deletion.run(tenant, instance=_plain_instance())))


def _plain_instance() -> dg.DagsterInstance:
    """The DAGSTER_HOME instance as it is (the runner's would re-add partitions)."""
    return bootstrap.dagster_instance()


@click.command(name="verify-certificate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM public key to trust (default: data/certificates/signing_key.pub).")
def verify_certificate(file: Path, public_key: Path | None) -> None:
    """Check a deletion certificate's Ed25519 signature; fails on any edited byte."""
    cert = deletion.verify_certificate(file, public_key)
    click.echo(f"valid: tenant '{cert.tenant}', completed {cert.completed_at}, "
               f"{len(cert.items)} items removed, signer {cert.public_key_fingerprint}")
