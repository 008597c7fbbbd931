"""The README is a contract: every Python block runs and prints what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def readme_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )


def python_blocks() -> list[tuple[str, str | None]]:
    """Each Python block, with the text block right after it (its output)."""
    blocks = readme_blocks()
    found = []
    for index, (lang, code) in enumerate(blocks):
        if lang == "python":
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            claimed = following[1] if following and following[0] == "text" else None
            found.append((code, claimed))
    return found


@pytest.mark.parametrize(
    ("code", "claimed"), python_blocks(), ids=lambda v: str(v).splitlines()[0]
)
def test_readme_python_block_prints_what_it_claims(
    code: str, claimed: str | None
) -> None:
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert claimed is not None, "every Python block says what it prints"
    assert result.stdout == claimed


def test_quick_start_prints_completed_and_the_count() -> None:
    code = next(code for code, _ in python_blocks() if "quickstart" in code)

    result = run_python(code)

    assert result.stdout == "completed\n{'processed_count': 1}\n"


def test_readme_diagram_is_what_the_quick_start_flow_draws() -> None:
    code = next(code for code, _ in python_blocks() if "quickstart" in code)
    diagram = next(text for lang, text in readme_blocks() if lang == "mermaid")

    result = run_python(code + "\nprint(flow.to_mermaid(), end='')\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n").endswith(diagram.rstrip("\n"))
