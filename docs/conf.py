"""Sphinx configuration for FlowForge's documentation."""

from __future__ import annotations

project = "FlowForge"
author = "The FlowForge developers"
copyright = "2026, The FlowForge developers"  # noqa: A001  Sphinx's own name
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "furo"
exclude_patterns = ["_build"]
# Names that appear in signatures but have no page of their own.
nitpick_ignore_regex = [
    ("py:class", r"(collections\.abc|typing|datetime|random|concurrent)\..*"),
    ("py:class", r"(datetime|flowforge\.runtime\.Plan)"),
    ("py:class", r"flowforge\.types\..*"),
    ("py:class", r"(Payload|Handler|MergeStrategy|MergeFunction|Clock)"),
]
