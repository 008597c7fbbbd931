"""The ``flowforge`` click group: global options and one-line errors with exit codes."""

from __future__ import annotations

import logging
from typing import Any

import click

from flowforge.cli._build import draw, run, ui
from flowforge.cli._control import cancel, prune, recover, resume
from flowforge.cli._flow_path import import_modules
from flowforge.cli._inspect import jobs, show
from flowforge.cli._problem import FAILED, CommandError
from flowforge.exceptions import FlowForgeError

__all__ = ["cli"]


class _Group(click.Group):
    """A group that turns errors into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:  # noqa: ANN401  click's own type
        """Run the command; report its error in one line unless ``--debug``."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {_describe(error)}", err=True)
            ctx.exit(error.exit_code if isinstance(error, CommandError) else FAILED)


def _describe(error: Exception) -> str:
    if isinstance(error, FlowForgeError):
        if "unknown payload type" in str(error):  # registered in the user's code
            return f"{error} (here: flowforge --import MODULE COMMAND ...)"
        return str(error)
    return f"{type(error).__name__}: {error} (run with --debug for the traceback)"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--import",
    "modules",
    metavar="MODULE",
    multiple=True,
    help="Import MODULE first (repeatable), such as the one that registers "
    "your payload types.",
)
@click.version_option(package_name="flowforge", prog_name="flowforge")
def cli(debug: bool, modules: tuple[str, ...]) -> None:
    """Operate FlowForge's durable jobs: list, inspect, resume, cancel, prune.

    STORE is a URL: sqlite:///jobs.db (relative), sqlite:////srv/jobs.db
    (absolute), json:///folder, or postgresql://user@host/db (postgres
    extra). FLOW is an import path, package.module:attribute, naming a Flow
    or a function returning one; it is imported only when a command names it.

    Exit codes: 0 ok, 1 the command or its job failed, 2 usage error.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    import_modules(modules)


for _command in (jobs, show, run, resume, cancel, recover, prune, draw, ui):
    cli.add_command(_command)
