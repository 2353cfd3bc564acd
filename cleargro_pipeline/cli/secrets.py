"""`cleargro secrets`: credentials sealed under the master key, read from the terminal or
stdin, never from the command line."""

from __future__ import annotations

import sys

import click

from cleargro_pipeline.security import secret_store


@click.group(name="secrets")
def secrets_group() -> None:
    """Credentials sealed under the master key (a tenant's, or the platform's: SCOPE 'platform')."""


@secrets_group.command(name="set")
@click.argument("scope")
@click.argument("name")
def secrets_set(scope: str, name: str) -> None:
    """Store a secret read from the terminal (hidden) or stdin: never from the command line,
    which other users and shell history can see. E.g. the SMTP relay's password:
    `cleargro secrets set platform smtp_password < password-file`."""
    if sys.stdin.isatty():
        value = click.prompt(f"{scope}/{name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise click.ClickException("empty secret: nothing stored")
    secret_store.put(scope, name, value)
    click.echo(f"stored {scope}/{name}")


@secrets_group.command(name="list")
@click.argument("scope")
def secrets_list(scope: str) -> None:
    """Names only; values are never shown."""
    for name in secret_store.names(scope):
        click.echo(name)
