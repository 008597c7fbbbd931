"""The package's layers: every module is placed in one, and no import cycle exists.

``lint-imports`` (run by ``make lint``) checks the import-linter contracts in
pyproject.toml; these tests check what it cannot: that a new module is named
in a contract, and that there is no cycle at any depth, counting imports made
only for type checking.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowforge"


def module_names() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def contracted_names() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    named: set[str] = set()
    for contract in config["tool"]["importlinter"]["contracts"]:
        prefixes = [f"{c}." for c in contract.get("containers", [])] or [""]
        for layer in contract["layers"]:
            for name in layer.split("|"):
                named |= {prefix + name.strip() for prefix in prefixes}
    return named


def imports_of(module: str, names: set[str]) -> set[str]:
    parts = module.split(".")
    path = PACKAGE.parent.joinpath(*parts)
    source = (path / "__init__.py") if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in names}
    return found - {module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_every_module_is_named_in_a_layers_contract() -> None:
    named = contracted_names()
    # A package's own __init__ is named through its container or itself.
    packages = {"flowforge", "flowforge.engine", "flowforge.store"}

    missing = sorted(module_names() - named - packages)

    assert missing == []


def test_the_package_has_no_import_cycle_at_any_depth() -> None:
    names = module_names()
    # The top-level package re-exports the public names: it imports every
    # layer, and nothing inside the package may import it.
    graph = {name: imports_of(name, names) - {"flowforge"} for name in names}
    graph["flowforge"] = imports_of("flowforge", names)

    assert find_cycle(graph) is None


def test_no_module_inside_the_package_imports_the_package_root() -> None:
    names = module_names()

    importers = sorted(n for n in names if "flowforge" in imports_of(n, names))

    assert importers == []


def test_find_cycle_reports_a_cycle_made_only_by_type_hints() -> None:
    # The helper the cycle test relies on must see a two-module cycle.
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}

    assert find_cycle(graph) == ["a", "b", "a"]
