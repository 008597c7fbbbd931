"""The docs build anywhere, and their API reference shows the public API, all of it.

The build runs once, in a subprocess, as on a fresh machine: warnings are
errors, no Graphviz on ``PATH``, and the integrations' libraries (psycopg,
psycopg_pool, Dask) hidden, so ``autodoc_mock_imports`` must stand in for them.
The tests then read what Sphinx published: the inventory ``objects.inv`` and
the HTML pages.
"""

from __future__ import annotations

import ast
import inspect
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sphinx.util.inventory import InventoryFile

import flowforge
import flowforge.store
import flowforge.testing

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = ["psycopg", "psycopg_pool", "distributed", "dask"]
# Runs sphinx with the extras unimportable, as if they were not installed; a
# finder, not None in sys.modules, so that autodoc's mocks still come first.
BUILD = f"""
import sys


class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, Hide())
from sphinx.cmd.build import build_main
sys.exit(build_main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    command = [sys.executable, "-c", BUILD, "-W", "-n", "--keep-going", "-q"]
    command += ["-b", "html", "-d", str(out / "doctrees"), "docs", str(out / "html")]
    # PATH holds only this Python's folder: no `dot`, nor any other program.
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(ROOT)}

    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return out / "html"


@pytest.fixture(scope="module")
def inventory(html: Path) -> set[str]:
    with open(html / "objects.inv", "rb") as stream:
        loaded = InventoryFile.load(stream, "", posixpath.join)
    return {
        name
        for kind, objects in loaded.items()
        if kind.startswith("py:")
        for name in objects
    }


def is_private(name: str) -> bool:
    parts = name.split(".")
    return parts[:2] == ["flowforge", "engine"] or any(
        part.startswith("_") and part != "__call__" for part in parts
    )


def public_members(cls: type, prefix: str) -> set[str]:
    """Return the methods and properties a class defines itself, by public name.

    Inherited ones are documented on the class that defines them.
    """
    return {
        f"{prefix}.{name}"
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and (
            isinstance(value, classmethod | staticmethod | property)
            or inspect.isfunction(value)
        )
    }


def source_members(path: Path, class_name: str, prefix: str) -> set[str]:
    """Return the public methods of a class, read from source (its extra may miss)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (node,) = [
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name
    ]
    return {
        f"{prefix}.{item.name}"
        for item in node.body
        if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")
    }


def documented_classes() -> dict[str, type]:
    modules = {"flowforge": flowforge, "flowforge.store": flowforge.store}
    modules["flowforge.testing"] = flowforge.testing
    return {
        f"{module_name}.{name}": value
        for module_name, module in modules.items()
        for name in module.__all__
        if isinstance(value := getattr(module, name), type)
        and not issubclass(value, BaseException)
    }


def test_docs_build_without_graphviz_or_the_extras(html: Path) -> None:
    assert (html / "api.html").is_file()


def test_api_inventory_holds_no_private_name(inventory: set[str]) -> None:
    assert sorted(name for name in inventory if is_private(name)) == []


def test_api_inventory_lists_every_public_class_and_member(
    inventory: set[str],
) -> None:
    expected = set()
    for name, cls in documented_classes().items():
        expected |= {name} | public_members(cls, name)

    assert sorted(expected - inventory) == []


def test_api_inventory_documents_postgres_store_and_dask_runner_fully(
    inventory: set[str],
) -> None:
    postgres = "flowforge.store.postgres.PostgresStore"
    dask = "flowforge.dask.DaskRunner"
    expected = {postgres, dask}
    expected |= source_members(
        ROOT / "flowforge/store/postgres.py", "PostgresStore", postgres
    )
    expected |= source_members(ROOT / "flowforge/dask.py", "DaskRunner", dask)

    assert f"{postgres}.create_schema" in expected and f"{dask}.submit" in expected
    assert sorted(expected - inventory) == []


def test_api_page_shows_no_private_parameter(html: Path) -> None:
    page = (html / "api.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", page)

    assert (
        re.findall(r'class="sig-param"><span class="n"><span class="pre">_\w*', page)
        == []
    )
    assert re.findall(r"\b_(?:wall_offset|stats_restored|stop_request)\b", text) == []


def test_examples_page_embeds_the_flow_diagrams_as_svg(html: Path) -> None:
    page = (html / "examples.html").read_text(encoding="utf-8")

    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="ff-diagram"') >= 8
    assert 'data-routine-id="aggregate"' in page
    assert "<img" not in page
