"""`cleargro webhooks serve`: the app service under its former name (`cleargro serve`)."""

from __future__ import annotations

import os

import click

from cleargro_pipeline.cli import serve as serve_command


@click.group(name="webhooks")
def webhooks_group() -> None:
    """Shopify's webhooks (the app service: `cleargro serve`)."""


@webhooks_group.command(name="serve")
@click.option("--host", default=serve_command.service.DEFAULT_HOST, show_default=True,
              help="Bind address (put a TLS reverse proxy in front).")
@click.option("--port", default=serve_command.service.DEFAULT_PORT, show_default=True, type=int)
@click.pass_context
def webhooks_serve(ctx: click.Context, host: str, port: int) -> None:
    """The same service as `cleargro serve` (Ctrl-C to stop); the public URL for installs
    comes from CLEARGRO_PUBLIC_URL."""
    ctx.invoke(serve_command.serve, host=host, port=port, public_url=os.environ.get("CLEARGRO_PUBLIC_URL"))
