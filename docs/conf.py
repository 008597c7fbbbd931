"""Sphinx configuration for FlowForge's documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# The local extensions (diagrams of the example flows, private names kept out
# of the API reference) live beside this file.
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
    "flowforge_api",
    "flowforge_diagram",
    "flowforge_cli_help",
]
# No intersphinx: the docs build without network access, so references to the
# standard library are plain text and listed in nitpick_ignore_regex below.
autodoc_typehints = "description"
# The integrations' libraries are optional extras: mocked, flowforge.dask,
# flowforge.store.postgres and flowforge.ui import (and are documented in
# full) without them.
autodoc_mock_imports = [
    "psycopg",
    "psycopg_pool",
    "distributed",
    "dask",
    "starlette",
    "uvicorn",
    "opentelemetry",
]
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "furo"
html_title = "FlowForge"
exclude_patterns = ["_build"]
# Names that appear in signatures but have no page of their own.
nitpick_ignore_regex = [
    # The standard library: without intersphinx there is nothing to link to.
    ("py:class", r"(collections\.abc|typing|datetime|random|concurrent)\..*"),
    ("py:class", r"(datetime|pathlib\.Path|Path|sqlite3\..*|Executor)"),
    # Private modules behind public signatures: flowforge.types aliases and
    # the registry helpers of serialization.
    ("py:class", r"flowforge\.types\..*"),
    ("py:class", r"(Payload|Handler|MergeStrategy|MergeFunction|Clock|Correlate)"),
    ("py:func", r"flowforge\.serialization\..*"),
    # register_payload_type returns the class it is given (a TypeVar).
    ("py:class", r"flowforge\._payload_types\.T"),
    ("py:class", r"(psycopg_pool\.)?ConnectionPool.*"),
    ("py:class", r"(distributed\.)?(Client|Future)"),
    # The web inspector's app is Starlette's (the ui extra).
    ("py:class", r"(starlette\.applications\.)?Starlette"),
    # flowforge.otel's tracer provider is OpenTelemetry's (the otel extra).
    ("py:class", r"(opentelemetry\.trace\.)?TracerProvider"),
]
