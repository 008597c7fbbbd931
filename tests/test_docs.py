"""The docs are a contract: their code runs, their outputs are true, the API is covered.

Every ``.. code-block:: python`` in ``docs/**/*.rst`` runs. The blocks of one
page build on each other, so a page's blocks run in order as one script, in a
fresh interpreter and an empty working folder. A ``.. code-block:: text`` with
``:caption: Output`` right after a Python block is exactly what that block
prints; a block shown without one must print nothing. Docstring examples
(``>>>``) of the public modules, which the API reference shows, run too.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import flowforge
import flowforge.store
import flowforge.testing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BOUNDARY = "----- flowforge docs: end of block -----"
DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. (?P<name>[\w:-]+)::(?P<argument>.*)$")
OPTION = re.compile(r"^ *:(?P<name>[\w-]+):(?P<value>.*)$")
AUTODOC = re.compile(
    r"^\.\. auto(?:class|exception|function|data)::\s+(?P<name>[\w.]+)\s*$",
    re.MULTILINE,
)
PUBLIC_MODULES = ["flowforge", "flowforge.store", "flowforge.testing"]


@dataclass
class Block:
    """One directive of an .rst page: its name, argument, options and body."""

    name: str
    argument: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class Snippet:
    """A Python block and, if the page shows it, the output it must print."""

    code: str
    line: int
    output: str | None = None


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)


def page_id(path: Path) -> str:
    return path.relative_to(DOCS).as_posix()


def parse_blocks(text: str) -> list[Block]:
    """Return the page's directives, each with its options and dedented body."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = DIRECTIVE.match(lines[index])
        index += 1
        if match is None:
            continue
        indent = len(match["indent"])
        block = Block(match["name"], match["argument"].strip(), index)
        while index < len(lines) and (option := OPTION.match(lines[index])):
            block.options[option["name"]] = option["value"].strip()
            index += 1
        start = index
        body: list[str] = []
        while index < len(lines) and (
            not lines[index].strip()
            or len(lines[index]) - len(lines[index].lstrip()) > indent
        ):
            body.append(lines[index])
            index += 1
        block.body = dedent_body(body)
        blocks.append(block)
        if block.name not in ("code-block", "code"):
            index = start  # other directives may hold code blocks: read on inside
    return blocks


def dedent_body(lines: list[str]) -> str:
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    margin = min(
        (len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0
    )
    return "".join(line[margin:] + "\n" for line in lines)


def is_code(block: Block, language: str) -> bool:
    return block.name in ("code-block", "code") and block.argument == language


def snippets(path: Path) -> list[Snippet]:
    """Return a page's Python blocks, each with the output block that follows it."""
    found: list[Snippet] = []
    previous: Block | None = None
    for block in parse_blocks(path.read_text(encoding="utf-8")):
        if is_code(block, "python"):
            found.append(Snippet(block.body, block.line))
        elif block.options.get("caption") == "Output":
            assert is_code(block, "text"), f"line {block.line}: output must be text"
            assert previous is not None and is_code(previous, "python"), (
                f"{page_id(path)} line {block.line}: an output block must follow "
                "a Python block"
            )
            found[-1].output = block.body
        previous = block
    return found


def run_page(code: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    separator = f"\nprint({BOUNDARY!r}, flush=True)\n"
    script = separator.join(code) + separator
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env=env,
    )


PAGES_WITH_CODE = [p for p in pages() if snippets(p)]


def test_the_docs_have_python_code_to_check() -> None:
    assert len(PAGES_WITH_CODE) >= 5


@pytest.mark.parametrize("path", pages(), ids=page_id)
def test_code_is_only_in_checked_blocks(path: Path) -> None:
    text = path.read_text(encoding="utf-8")

    assert not re.search(r"^\s*>>>", text, re.MULTILINE), "use a code-block, not >>>"
    assert not re.search(r"^\.\. (sourcecode|doctest|testcode)::", text, re.MULTILINE)
    for block in parse_blocks(text):
        if block.name in ("code-block", "code"):
            assert block.argument, f"line {block.line}: name the block's language"


@pytest.mark.parametrize("path", PAGES_WITH_CODE, ids=page_id)
def test_page_python_blocks_run_and_print_what_the_page_shows(
    path: Path, tmp_path: Path
) -> None:
    page = snippets(path)

    result = run_page([s.code for s in page], tmp_path)

    assert result.returncode == 0, result.stderr
    outputs = result.stdout.split(BOUNDARY + "\n")
    assert len(outputs) == len(page) + 1 and outputs[-1] == "", result.stdout
    for snippet, printed in zip(page, outputs, strict=False):
        shown = "" if snippet.output is None else snippet.output
        assert printed == shown, f"block at line {snippet.line}"


def public_names() -> list[str]:
    names = [f"flowforge.{name}" for name in flowforge.__all__]
    names += [f"flowforge.store.{name}" for name in flowforge.store.__all__]
    names += [f"flowforge.testing.{name}" for name in flowforge.testing.__all__]
    return names


def test_api_reference_documents_every_public_name_once() -> None:
    documented = AUTODOC.findall((DOCS / "api.rst").read_text(encoding="utf-8"))

    missing = [name for name in public_names() if name not in documented]
    twice = sorted({name for name in documented if documented.count(name) > 1})
    assert missing == []
    assert twice == []


def test_every_example_is_shown_and_drawn_on_the_examples_page() -> None:
    text = (DOCS / "examples.rst").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in (ROOT / "examples").glob("*.py"))

    assert [s for s in scripts if f"../examples/{s}" not in text] == []


def test_every_example_with_a_build_flow_is_drawn_on_the_examples_page() -> None:
    text = (DOCS / "examples.rst").read_text(encoding="utf-8")
    drawable = [
        script.name
        for script in sorted((ROOT / "examples").glob("*.py"))
        if "build_flow" in defined_functions(script)
    ]

    assert drawable
    assert [
        name
        for name in drawable
        if f".. flowforge-diagram:: examples/{name}:build_flow" not in text
    ] == []


def defined_functions(script: Path) -> list[str]:
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def test_every_diagram_names_a_function_that_returns_a_flow() -> None:
    targets = [
        block.argument
        for path in pages()
        for block in parse_blocks(path.read_text(encoding="utf-8"))
        if block.name == "flowforge-diagram"
    ]

    assert targets
    for target in targets:
        path, _, function = target.rpartition(":")
        assert function in defined_functions(ROOT / path), target


def docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    modules = {importlib.import_module(name) for name in PUBLIC_MODULES}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            defined_in = getattr(value, "__module__", None)
            if defined_in and defined_in.startswith("flowforge"):
                modules.add(importlib.import_module(defined_in))
    return sorted(
        (test for m in modules for test in finder.find(m) if test.examples),
        key=lambda t: t.name,
    )


@pytest.mark.parametrize("test", docstring_tests(), ids=lambda t: t.name)
def test_docstring_examples_print_what_they_show(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)

    runner.run(test)

    assert runner.summarize(verbose=False).failed == 0
