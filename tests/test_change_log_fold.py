"""The fold of a change log: the net effect of consecutive change documents.

Every store folds through ``_change_log.fold``; SqliteStore writes its net
effect with one statement per kind of row changed, and none for the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowforge import Flow, JobStatus, Routine, SerializationError
from flowforge.store import Change, SqliteStore
from flowforge.store._change_log import (
    FOLD_EVERY,
    ChangeDocument,
    fold,
    fold_one,
    logged,
)

FAR = 4_000_000_000.0


def document(
    n: int,
    pending_from: int,
    pending: list[object],
    routine: list[object] | None = None,
    buffer: list[object] | None = None,
) -> ChangeDocument:
    return ChangeDocument(
        "running", n, n, n, 1000, pending_from, pending, routine, buffer, 0, [], []
    )


def test_fold_keeps_the_last_row_of_each_routine_and_buffer_and_the_pending_tail() -> (
    None
):
    documents = [
        document(1, 0, ["p1", "p2"], ["a", {"n": 1}], ["a", "in", [1], None]),
        document(2, 1, ["p3"], ["b", {"n": 1}], ["a", "in", None, None]),
        document(3, 2, ["p4"], ["a", {"n": 2}]),
    ]

    net = fold([logged(d) for d in documents], "log")

    assert (net.pending_from, net.pending) == (0, ["p1", "p3", "p4"])
    assert net.routines == {"a": {"n": 2}, "b": {"n": 1}}
    assert net.buffers == {("a", "in"): (None, None)}
    assert net.last == documents[-1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (document(2, 0, [], [7, {}]), "expected an id, got 7"),
        (document(2, 0, [], None, ["a", None, None, None]), "expected an id, got None"),
        (document(2, 0, [], [["a"], {}]), "(unhashable|expected an id)"),
        (document(2, 5, []), "pending deliveries from 5 follow a gap"),
    ],
    ids=["int-routine-id", "none-slot", "list-routine-id", "pending-gap"],
)
def test_fold_refuses_a_malformed_document_anywhere_in_the_log(
    bad: ChangeDocument, message: str
) -> None:
    documents = [document(1, 0, ["p"], ["a", {}]), bad, document(3, 0, [])]

    with pytest.raises(SerializationError, match=f"corrupted: the log: .*{message}"):
        fold([logged(d) for d in documents], "the log")


class Loop(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, n: int) -> None:
        if n > 0:
            self.emit("output", n=n - 1)


def test_a_fold_sends_no_statement_for_rows_it_does_not_change(tmp_path: Path) -> None:
    flow = Flow(flow_id="loop")
    flow.add_routine(Loop(), "loop")
    flow.connect("loop", "output", "loop", "input")
    store = SqliteStore(tmp_path / "jobs.db")
    seen: list[str] = []
    store._connection().set_trace_callback(seen.append)

    job = flow.execute("loop", {"n": 2 * FOLD_EVERY}, store=store)

    folds = [text for text in seen if text.startswith("UPDATE jobs SET delivery")]
    assert job.delivery_count == 2 * FOLD_EVERY + 1
    assert len(folds) == 2
    assert not [text for text in seen if "INTO errors" in text]  # no error
    assert not [
        text for text in seen if "FROM history WHERE job_id" in text and " n < " in text
    ]
    store.close()


def test_a_net_folded_one_change_at_a_time_equals_the_fold_of_them_all() -> None:
    documents = [
        document(1, 0, ["p1", "p2"], ["a", {"n": 1}], ["a", "in", [1], None]),
        document(2, 1, ["p3"], ["b", {"n": 1}], ["a", "in", None, None]),
        document(3, 0, [], ["a", {"n": 2}]),
        document(4, 0, ["p5"], None, ["b", "in", {"x": 1}, [2]]),
    ]
    net = None

    for d in documents:
        net = fold_one(net, logged(d))

    assert net == fold([logged(d) for d in documents], "log")


@pytest.mark.parametrize("every", [1, 16])
def test_a_change_that_leaves_a_gap_fails_the_fold_as_read_back(
    tmp_path: Path, every: int
) -> None:
    # The store folds each change as it logs it; one that does not follow
    # makes it read the log back at the fold, which refuses it as before.
    store = SqliteStore(tmp_path / "jobs.db", commit_every=every, commit_interval=3600)
    flow = Flow(flow_id="loop")
    flow.add_routine(Loop(), "loop")
    job = flow.execute("loop", {"n": 0})
    job.status = JobStatus.RUNNING
    store.save(job, owner="me", lease_until=FAR)
    store.checkpoint(job, change(0), owner="me", lease_until=FAR)
    store.checkpoint(job, change(5), owner="me", lease_until=FAR)  # a gap

    with pytest.raises(SerializationError, match="from 5 follow a gap"):
        for _ in range(FOLD_EVERY):
            store.checkpoint(job, change(0), owner="me", lease_until=FAR)
    store.close()


def change(pending_from: int) -> Change:
    return Change(
        pending_from=pending_from,
        routine_id=None,
        buffer_key=None,
        history_from=0,
        errors_from=0,
    )
