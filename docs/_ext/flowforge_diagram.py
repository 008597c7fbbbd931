"""Sphinx directive that draws a flow built by code, as SVG, in pure Python.

``.. flowforge-diagram:: examples/data_processing.py:build_flow`` imports the
file (relative to the repository root, the parent of the docs folder), calls the
named function with no arguments, and embeds the SVG of the :class:`~flowforge.Flow`
it returns, drawn by FlowForge's own renderer (``flowforge._svg``), in the HTML
page. The diagram is therefore always the flow the code builds, never a drawing
of it, and the build needs no system program such as Graphviz's ``dot``. Options:
``caption`` (inline reST below the diagram) and ``name`` (a target to refer to).
Builders other than HTML leave the diagram out and keep the caption.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from docutils import nodes
from docutils.nodes import Node
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata, OptionSpec

from flowforge import Flow
from flowforge._svg import to_svg

MODULE_PREFIX = "flowforge_docs_diagram_"


class FlowForgeDiagram(SphinxDirective):
    """Embed the SVG diagram of the flow that ``path:function`` returns."""

    has_content = False
    required_arguments = 1
    optional_arguments = 0
    option_spec: ClassVar[OptionSpec] = {
        "caption": directives.unchanged_required,
        "name": directives.unchanged,
    }

    def run(self) -> list[Node]:
        """Build the flow and return a figure holding its SVG and caption."""
        target = self.arguments[0]
        path_text, _, function_name = target.rpartition(":")
        if not path_text or not function_name:
            raise self.error(f"expected 'path/to/file.py:function', got {target!r}")
        root = Path(self.env.srcdir).parent
        path = (root / path_text).resolve()
        if not path.is_file():
            raise self.error(f"no such file: {path_text!r} (relative to {root})")
        self.env.note_dependency(str(path))
        flow = self._build(path, function_name, target)
        svg = to_svg(
            flow.flow_id,
            flow.routines,
            flow.connections,
            failures=flow.failure_routes,
        )
        # Wide flows scroll inside the page instead of overflowing it.
        html = f'<div style="overflow-x: auto">\n{svg}</div>\n'
        figure = nodes.figure(classes=["flowforge-diagram"])
        self.set_source_info(figure)
        figure += nodes.raw("", html, format="html")
        messages: list[nodes.system_message] = []
        if "caption" in self.options:
            caption = self.options["caption"]
            parsed, messages = self.state.inline_text(caption, self.lineno)
            figure += nodes.caption(caption, "", *parsed)
        self.add_name(figure)
        return [figure, *messages]

    def _build(self, path: Path, function_name: str, target: str) -> Flow:
        module = _load(path)
        function = getattr(module, function_name, None)
        if not callable(function):
            raise self.error(f"{target!r}: the module has no function {function_name}")
        flow = function()
        if not isinstance(flow, Flow):
            raise self.error(f"{target!r} returned {flow!r}, not a flowforge.Flow")
        return flow


def _load(path: Path) -> ModuleType:
    """Import the file at ``path`` under a private module name."""
    name = MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the ``flowforge-diagram`` directive."""
    app.add_directive("flowforge-diagram", FlowForgeDiagram)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
