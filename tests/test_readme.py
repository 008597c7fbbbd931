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


def python_blocks() -> list[str]:
    return [code for lang, code in readme_blocks() if lang == "python"]


@pytest.mark.parametrize("code", python_blocks(), ids=lambda c: c.splitlines()[0])
def test_readme_python_block_runs(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr


def test_quick_start_prints_what_the_readme_claims() -> None:
    blocks = readme_blocks()
    index = next(i for i, (lang, code) in enumerate(blocks) if "flow.execute" in code)
    claimed = blocks[index + 1]

    result = subprocess.run(
        [sys.executable, "-c", blocks[index][1]],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert claimed[0] == "text"
    assert result.stdout == claimed[1]
    assert result.stdout == "completed\n{'processed_count': 1}\n"
