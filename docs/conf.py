"""Sphinx configuration for FlowForge's documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# The local extension that draws example flows lives beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "FlowForge"
author = "The FlowForge developers"
copyright = "2026, The FlowForge developers"  # noqa: A001  Sphinx's own name
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx.ext.graphviz",
    "flowforge_diagram",
    "flowforge_cli_help",
]
# No intersphinx: the docs build without network access, so references to the
# standard library are plain text and listed in nitpick_ignore_regex below.
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
graphviz_output_format = "svg"
html_theme = "furo"
html_title = "FlowForge"
exclude_patterns = ["_build"]
# Names that appear in signatures but have no page of their own.
nitpick_ignore_regex = [
    # The standard library: without intersphinx there is nothing to link to.
    ("py:class", r"(collections\.abc|typing|datetime|random|concurrent)\..*"),
    ("py:class", r"(datetime|pathlib\.Path|Path|sqlite3\..*|Executor)"),
    # Private modules behind public signatures: flowforge.types aliases, the
    # plan Flow.plan() returns, and the registry helpers of serialization.
    ("py:class", r"flowforge\.types\..*"),
    ("py:class", r"(Payload|Handler|MergeStrategy|MergeFunction|Clock)"),
    ("py:class", r"(flowforge\.runtime\.Plan|flowforge\._plan\.Plan|Plan)"),
    ("py:func", r"flowforge\.serialization\..*"),
    ("py:class", r"(psycopg_pool\.)?ConnectionPool.*"),
    ("py:class", r"(distributed\.)?(Client|Future)"),
    # The web inspector's app is Starlette's (the ui extra).
    ("py:class", r"(starlette\.applications\.)?Starlette"),
]
