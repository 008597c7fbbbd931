"""Sphinx directive that draws a flow built by code, through Graphviz.

``.. flowforge-diagram:: examples/data_processing.py:build_flow`` imports the
file (relative to the repository root, the parent of the docs folder), calls the
named function with no arguments, and renders the :class:`~flowforge.Flow` it
returns from :meth:`~flowforge.Flow.to_dot` with ``sphinx.ext.graphviz``. The
diagram is therefore always the flow the code builds, never a drawing of it.
The options of the ``graphviz`` directive (``caption``, ``alt``, ``align``,
``class``, ``name``) work as they do there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from docutils.nodes import Node
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.ext.graphviz import Graphviz
from sphinx.util.typing import ExtensionMetadata

from flowforge import Flow

MODULE_PREFIX = "flowforge_docs_diagram_"


class FlowForgeDiagram(Graphviz):
    """Render the DOT diagram of the flow that ``path:function`` returns."""

    has_content = False
    required_arguments = 1
    optional_arguments = 0

    def run(self) -> list[Node]:
        """Build the flow, then let the ``graphviz`` directive draw its DOT text."""
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
        self.arguments = []
        self.content = StringList(flow.to_dot().splitlines(), source=str(path))
        self.options.setdefault("alt", f"Diagram of the flow {flow.flow_id!r}")
        return super().run()

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
    """Register the ``flowforge-diagram`` directive (needs ``sphinx.ext.graphviz``)."""
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("flowforge-diagram", FlowForgeDiagram)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
