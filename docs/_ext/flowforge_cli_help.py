"""Sphinx directive that shows the ``flowforge`` command's help, from the command.

``.. flowforge-cli-help::`` renders the help text of ``flowforge`` and of each
of its commands, as ``flowforge COMMAND --help`` prints it (at 88 columns), so
the page is always the command's own text, never a copy of it.
"""

from __future__ import annotations

import click
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

from flowforge.cli._app import cli

WIDTH = 88


def help_text(name: str | None) -> str:
    """Return the help of ``flowforge`` (``name=None``) or of one of its commands."""
    root = click.Context(cli, info_name="flowforge", terminal_width=WIDTH)
    if name is None:
        return cli.get_help(root)
    command = cli.commands[name]
    context = click.Context(command, info_name=name, parent=root, terminal_width=WIDTH)
    return command.get_help(context)


class FlowForgeCliHelp(SphinxDirective):
    """Render every command's ``--help`` as a titled literal block."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Return a rubric and a literal block per command, the group first."""
        result: list[nodes.Node] = []
        for name in [None, *sorted(cli.commands)]:
            title = "flowforge --help" if name is None else f"flowforge {name} --help"
            text = help_text(name)
            result.append(nodes.rubric(title, title))
            block = nodes.literal_block(text, text)
            block["language"] = "text"
            result.append(block)
        return result


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the ``flowforge-cli-help`` directive."""
    app.add_directive("flowforge-cli-help", FlowForgeCliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
