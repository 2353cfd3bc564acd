"""Click's lazy group (Click docs, "Complex Applications", "Lazily Loading Subcommands"): a
command's module is imported only when that command runs or shows its own help. The listing
of `cleargro --help` reads each command's docstring from its module's source instead, so
listing the commands imports none of the pipeline."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from pathlib import Path

import click


class LazyGroup(click.Group):
    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # {command name: "package.module.attribute"}
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(super().list_commands(ctx)) + sorted(self.lazy_subcommands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self._lazy_load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's own listing, fed with stand-ins that carry each lazy command's docstring."""
        listed = [self._listing_entry(ctx, name) for name in self.list_commands(ctx)]
        click.Group(commands=[c for c in listed if c is not None]).format_commands(ctx, formatter)

    def _listing_entry(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy_subcommands[cmd_name].rsplit(".", 1)
        return click.Command(cmd_name, help=_docstrings(module_name).get(attribute))

    def _lazy_load(self, cmd_name: str) -> click.Command:
        import_path = self.lazy_subcommands[cmd_name]
        module_name, attribute = import_path.rsplit(".", 1)
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise ValueError(f"lazy loading of {import_path} returned a non-command object")
        return command


@functools.cache
def _docstrings(module_name: str) -> dict[str, str | None]:
    """The docstring of each top-level function of a module, read without importing it."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module {module_name}")
    tree = ast.parse(Path(spec.origin).read_text())
    return {node.name: ast.get_docstring(node) for node in tree.body
            if isinstance(node, ast.FunctionDef)}
