"""Regressions found by the review of issue 23's performance work (review 6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from flowforge import Flow, FlowForgeError
from flowforge.store import MemoryStore, SqliteStore

HUGE: Final = 10**5000  # more digits than Python turns into text


@pytest.mark.parametrize(
    "call",
    [
        lambda path: SqliteStore(path, timeout=HUGE),
        lambda path: SqliteStore(path, commit_every=HUGE),
        lambda path: SqliteStore(path, commit_every=4, commit_interval=HUGE),
        lambda path: SqliteStore(path).renew("job", owner="a", lease_until=HUGE),
        lambda path: MemoryStore().acquire(
            "job", owner="a", lease_until=1.0, now=-HUGE
        ),
        lambda path: MemoryStore().renew(
            "job", owner=HUGE, lease_until=1.0  # type: ignore[arg-type]
        ),
        lambda path: MemoryStore().load(HUGE),  # type: ignore[arg-type]
        lambda path: MemoryStore().prune(keep=-HUGE),
        lambda path: MemoryStore().acquire(
            "job",
            owner="a",
            lease_until=1.0,
            now=0.0,
            replacing=HUGE,  # type: ignore[arg-type]
        ),
        lambda path: Flow(flow_id="f", max_pending=-HUGE),
    ],
    ids=[
        "timeout",
        "every",
        "interval",
        "lease",
        "now",
        "owner",
        "job-id",
        "keep",
        "replacing",
        "max-pending",
    ],
)
def test_an_int_too_long_to_print_is_refused_as_a_flowforge_error(
    tmp_path: Path, call: Callable[[Path], object]
) -> None:
    with pytest.raises(FlowForgeError, match="too long to print"):
        call(tmp_path / "jobs.db")
