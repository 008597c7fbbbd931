"""JsonDirectoryStore's change log: checkpoints append, folds rewrite, loads replay.

A job runs a countdown loop through a store wrapper that records the job's
state after every checkpoint and can stop the run (a ``StoreError``) at a
chosen checkpoint, leaving the job's log unfolded. The log file is then
damaged, cut or replaced behind the store's back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import nullcontext
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowforge import (
    Flow,
    FlowForgeWarning,
    JobNotFoundError,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
    StoreError,
)
from flowforge.store import Change, JsonDirectoryStore, Store
from flowforge.store._change_log import FOLD_EVERY
from flowforge.testing import StoreWrapper

JOB_ID: Final = "count-job"
LOOPS: Final = 150
"""Deliveries in an uninterrupted run: more than two folds' worth."""


class Countdown(Routine):
    """Emit ``n - 1`` until ``n`` is 0, counting its calls in a stat."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("input", self.count)
        self.define_event("output")

    def count(self, n: int) -> None:
        self.increment_stat("calls")
        if n > 0:
            self.emit("output", n=n - 1)


class Watched(StoreWrapper):
    """Record the job after each checkpoint; stop at ``stop``; run ``at[k]`` after k."""

    def __init__(
        self,
        store: Store,
        stop: int = 0,
        at: Mapping[int, Callable[[], object]] | None = None,
    ) -> None:
        super().__init__(store)
        self.stop = stop
        self.at = at or {}
        self.states: list[dict[str, object]] = []

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        if len(self.states) + 1 == self.stop:
            raise StoreError("stopping here")
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)
        self.states.append(comparable(job_state.serialize()))
        action = self.at.get(len(self.states))
        if action is not None:
            action()


def count_flow() -> Flow:
    flow = Flow(flow_id="json_log_count")
    flow.add_routine(Countdown(), "count")
    flow.connect("count", "output", "count", "input")
    return flow


def run(store: Watched) -> JobState | None:
    """Run the countdown; ``None`` if the store stopped it."""
    try:
        return count_flow().execute("count", {"n": LOOPS}, job_id=JOB_ID, store=store)
    except StoreError as error:
        assert "stopping here" in str(error)
        return None


def stopped(folder: Path, stop: int) -> Watched:
    """Run the job until checkpoint ``stop`` fails; return the watching store."""
    watched = Watched(JsonDirectoryStore(folder), stop)
    assert run(watched) is None
    return watched


def log_path(folder: Path) -> Path:
    return folder / f"{JOB_ID}.log"


def job_path(folder: Path) -> Path:
    return folder / f"{JOB_ID}.json"


def comparable(data: dict[str, object]) -> dict[str, object]:
    """A serialized job without its time samples, which stores leave out.

    A checkpoint saves each routine's tracker figures without their time
    samples (so that it costs the same late in a job), as every store does.
    """
    tracker = data["tracker"]
    assert isinstance(tracker, dict)
    for figures in tracker["routines"].values():
        figures[6] = []
    return data


def loaded(folder: Path) -> dict[str, object]:
    return comparable(JsonDirectoryStore(folder).load(JOB_ID).serialize())


def test_a_checkpoint_appends_a_line_and_leaves_the_job_file_alone(
    tmp_path: Path,
) -> None:
    seen: list[tuple[int, int]] = []

    def look() -> None:
        lines = log_path(tmp_path).read_bytes().count(b"\n")
        seen.append((job_path(tmp_path).stat().st_ino, lines))

    actions = {k: look for k in range(1, FOLD_EVERY + 3)}
    actions[FOLD_EVERY] = lambda: seen.append((job_path(tmp_path).stat().st_ino, 0))
    watched = Watched(JsonDirectoryStore(tmp_path), FOLD_EVERY + 3, actions)

    run(watched)

    files = [inode for inode, _ in seen]
    assert [lines for _, lines in seen] == [
        *range(1, FOLD_EVERY),
        0,
        1,
        2,
    ]
    assert len(set(files[: FOLD_EVERY - 1])) == 1
    assert files[FOLD_EVERY - 1] != files[0]


def test_a_fold_removes_the_log_and_the_file_holds_every_change(
    tmp_path: Path,
) -> None:
    watched = stopped(tmp_path, FOLD_EVERY + 1)

    on_disk = json.loads(job_path(tmp_path).read_text())

    assert not log_path(tmp_path).exists()
    assert on_disk["folded"] == FOLD_EVERY
    assert loaded(tmp_path) == watched.states[-1]


def test_a_stopped_job_loads_with_its_unfolded_changes(tmp_path: Path) -> None:
    watched = stopped(tmp_path, FOLD_EVERY + 30)

    job = JsonDirectoryStore(tmp_path).load(JOB_ID)

    assert log_path(tmp_path).read_bytes().count(b"\n") == 29
    assert comparable(job.serialize()) == watched.states[-1]
    assert job.delivery_count == FOLD_EVERY + 29


def test_a_stopped_job_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    stopped(tmp_path, FOLD_EVERY + 30)
    store = JsonDirectoryStore(tmp_path)

    job = count_flow().resume(JOB_ID, store=store)

    assert job.status is JobStatus.COMPLETED
    assert job.routine_states["count"].stats == {"calls": LOOPS + 1}
    assert store.load(JOB_ID).serialize() == job.serialize()
    assert not log_path(tmp_path).exists()


def test_get_and_list_jobs_report_the_logged_status_and_lease(tmp_path: Path) -> None:
    stopped(tmp_path, 10)
    store = JsonDirectoryStore(tmp_path)

    record = store.get(JOB_ID)

    assert record.status is JobStatus.RUNNING
    assert store.list_jobs() == [record]
    assert (tmp_path / f"{JOB_ID}.held").exists()


TORN: Final = {
    "no-newline": lambda line: line[: len(line) // 2],
    "not-json": lambda line: line.split(b" ")[0] + b" [1, 2\n",
    "wrong-number": lambda line: b"999" + line[line.index(b" ") :],
    "no-number": lambda line: b"x" + line,
}


@pytest.mark.parametrize("damage", list(TORN), ids=list(TORN))
def test_a_torn_last_line_is_ignored(tmp_path: Path, damage: str) -> None:
    watched = stopped(tmp_path, 20)
    path = log_path(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)

    path.write_bytes(b"".join(lines[:-1]) + TORN[damage](lines[-1]))

    assert loaded(tmp_path) == watched.states[-2]


def test_a_damaged_line_before_the_last_raises_serialization_error(
    tmp_path: Path,
) -> None:
    stopped(tmp_path, 20)
    path = log_path(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].split(b" ")[0] + b" [1, 2\n"
    path.write_bytes(b"".join(lines))
    store = JsonDirectoryStore(tmp_path)

    with pytest.raises(SerializationError, match="change log of job 'count-job'"):
        store.load(JOB_ID)
    with pytest.raises(SerializationError, match="change 6"):
        store.get(JOB_ID)
    with pytest.warns(FlowForgeWarning, match="count-job"):
        assert store.list_jobs() == []


def test_lines_out_of_order_before_the_last_raise_serialization_error(
    tmp_path: Path,
) -> None:
    stopped(tmp_path, 20)
    path = log_path(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]
    path.write_bytes(b"".join(lines))

    with pytest.raises(SerializationError, match="change 5 follows change 3"):
        JsonDirectoryStore(tmp_path).load(JOB_ID)


def test_a_log_already_folded_is_skipped_by_number(tmp_path: Path) -> None:
    """A crash between a fold's rename and the log's removal leaves such a log."""
    kept: list[bytes] = []
    actions = {
        FOLD_EVERY - 1: lambda: kept.append(log_path(tmp_path).read_bytes()),
        FOLD_EVERY: lambda: log_path(tmp_path).write_bytes(kept[0]),
    }
    watched = Watched(JsonDirectoryStore(tmp_path), FOLD_EVERY + 3, actions)

    run(watched)

    lines = log_path(tmp_path).read_bytes().splitlines()
    assert [line.split(b" ")[0] for line in lines[-3:]] == [b"63", b"65", b"66"]
    assert loaded(tmp_path) == watched.states[-1]


def test_a_torn_line_left_by_a_crash_is_cut_off_before_the_next_append(
    tmp_path: Path,
) -> None:
    def tear() -> None:
        with log_path(tmp_path).open("ab") as log:
            log.write(b'31 ["runn')

    watched = Watched(JsonDirectoryStore(tmp_path), 40, {30: tear})

    run(watched)

    lines = log_path(tmp_path).read_bytes().split(b"\n")
    assert [line.split(b" ")[0] for line in lines] == [
        *(str(k).encode() for k in range(1, 40)),
        b"",
    ]
    assert b'31 ["runn31' not in log_path(tmp_path).read_bytes()
    assert loaded(tmp_path) == watched.states[-1]


def running_job(store: Store) -> JobState:
    """A small job run in ``store``, with its status set back to running."""
    job = count_flow().execute("count", {"n": 3}, job_id="small", store=store)
    return JobState.deserialize({**job.serialize(), "status": "running"})


def test_a_new_store_continues_another_store_s_log(tmp_path: Path) -> None:
    first = JsonDirectoryStore(tmp_path)
    job = running_job(first)
    second = JsonDirectoryStore(tmp_path)
    change = Change(len(job.pending), None, None, job.history_total, job.error_count)
    first.save(job, owner="A", lease_until=2e9)
    first.checkpoint(job, change, owner="A", lease_until=2e9)

    second.checkpoint(job, change, owner="A", lease_until=2e9)

    log = (tmp_path / "small.log").read_bytes().splitlines()
    assert [line.split(b" ")[0] for line in log] == [b"1", b"2"]
    assert comparable(second.load("small").serialize()) == comparable(job.serialize())


def test_a_checkpoint_by_an_owner_that_lost_the_lease_is_refused(
    tmp_path: Path,
) -> None:
    store, other = JsonDirectoryStore(tmp_path), JsonDirectoryStore(tmp_path)
    job = running_job(store)
    change = Change(len(job.pending), None, None, job.history_total, job.error_count)
    store.save(job, owner="A", lease_until=2e9)
    store.checkpoint(job, change, owner="A", lease_until=2e9)
    assert other.acquire("small", owner="B", lease_until=2e9, now=0, replacing="A")

    with pytest.raises(StoreError, match="leased to 'B', not 'A'"):
        store.checkpoint(job, change, owner="A", lease_until=2e9)

    assert (tmp_path / "small.log").read_bytes().count(b"\n") == 1


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_a_log_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    stopped(tmp_path, 10)
    path = log_path(tmp_path)
    path.unlink()
    outside = tmp_path / "outside"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        path.symlink_to(outside)
    else:
        path.mkdir()
    store = JsonDirectoryStore(tmp_path)

    with pytest.raises(StoreError, match="change log .*(regular file|symbolic link)"):
        store.load(JOB_ID)
    with pytest.raises(StoreError, match="change log"):
        count_flow().resume(JOB_ID, store=store)
    with (
        pytest.raises(StoreError, match="change log")
        if kind == "folder"
        else nullcontext()
    ):
        store.delete(JOB_ID)

    assert not outside.exists()


def test_delete_and_prune_remove_the_log_and_the_lease_file(tmp_path: Path) -> None:
    stopped(tmp_path, 10)
    store = JsonDirectoryStore(tmp_path)
    done = count_flow().execute("count", {"n": 2}, job_id="done", store=store)
    assert done.status is JobStatus.COMPLETED

    store.delete(JOB_ID)
    pruned = store.prune(keep=0)

    assert pruned == ["done"]
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.name != ".lock") == [
        ".shape"
    ]


def test_a_job_file_from_before_the_log_loads_and_runs_unchanged(
    tmp_path: Path,
) -> None:
    stopped(tmp_path, FOLD_EVERY + 1)
    document = json.loads(job_path(tmp_path).read_text())
    del document["folded"]
    document["owner"], document["lease_until"] = "old-owner", 5.0
    job_path(tmp_path).write_text(json.dumps(document))
    (tmp_path / f"{JOB_ID}.held").unlink()
    store = JsonDirectoryStore(tmp_path)
    before = store.load(JOB_ID)

    record = store.get(JOB_ID)
    job = count_flow().recover(store)

    assert (record.owner, record.lease_until) == ("old-owner", 5.0)
    assert before.delivery_count == FOLD_EVERY
    assert [j.routine_states["count"].stats for j in job] == [{"calls": LOOPS + 1}]


# -- hypothesis: a cut or damaged log loads or raises a FlowForgeError -----------

EXAMPLES: Final = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TEMPLATE_STOP: Final = 12


def template() -> tuple[Path, list[dict[str, object]]]:
    """A folder holding a job stopped at checkpoint 12, made once."""
    if not TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="json-log-template-"))
        TEMPLATES.append((folder, stopped(folder, TEMPLATE_STOP).states))
    return TEMPLATES[0]


TEMPLATES: list[tuple[Path, list[dict[str, object]]]] = []


def copied(folder: str) -> Path:
    source, _ = template()
    target = Path(folder) / "jobs"
    shutil.copytree(source, target)
    return target


@EXAMPLES
@given(cut=st.integers(min_value=0))
def test_a_log_cut_anywhere_loads_the_changes_whose_lines_are_whole(cut: int) -> None:
    _, states = template()
    with tempfile.TemporaryDirectory() as folder:
        path = log_path(copied(folder))
        data = path.read_bytes()
        data = data[: cut % (len(data) + 1)]
        path.write_bytes(data)

        job = JsonDirectoryStore(path.parent).load(JOB_ID)

    whole = data.count(b"\n")
    if whole:
        assert comparable(job.serialize()) == states[whole - 1]
    else:
        assert job.delivery_count == 0


@pytest.mark.parametrize("folded", [-1, "3", 1.5, None], ids=str)
def test_a_job_file_with_a_bad_folded_number_raises_serialization_error(
    tmp_path: Path, folded: object
) -> None:
    stopped(tmp_path, 10)
    document = json.loads(job_path(tmp_path).read_text())
    document["folded"] = folded
    job_path(tmp_path).write_text(json.dumps(document))

    with pytest.raises(SerializationError, match=r"'count-job' has folded"):
        JsonDirectoryStore(tmp_path).load(JOB_ID)


def test_a_log_line_that_is_not_utf8_raises_serialization_error(
    tmp_path: Path,
) -> None:
    stopped(tmp_path, 10)
    path = log_path(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b"3 \xff\xfe\n"
    path.write_bytes(b"".join(lines))

    with pytest.raises(SerializationError, match="change 3: 'utf-8' codec"):
        JsonDirectoryStore(tmp_path).load(JOB_ID)


HELD: Final = {
    "not-json": b"{",
    "not-a-lease": b'{"kind": "other"}',
    "bad-owner": b'{"kind": "flowforge.lease", "owner": 5, "lease_until": 1}',
}


@pytest.mark.parametrize("content", list(HELD), ids=list(HELD))
def test_a_damaged_lease_file_raises_store_error(tmp_path: Path, content: str) -> None:
    stopped(tmp_path, 10)
    (tmp_path / f"{JOB_ID}.held").write_bytes(HELD[content])
    store = JsonDirectoryStore(tmp_path)

    with pytest.raises(StoreError, match="lease file"):
        store.get(JOB_ID)
    with pytest.raises(StoreError, match="lease file"):
        store.acquire(JOB_ID, owner="B", lease_until=2e9, now=0)


def test_a_lease_file_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    stopped(tmp_path, 10)
    held = tmp_path / f"{JOB_ID}.held"
    held.unlink()
    held.mkdir()
    store = JsonDirectoryStore(tmp_path)

    with pytest.raises(StoreError, match="cannot read lease file .*regular file"):
        store.get(JOB_ID)


def test_a_lease_file_left_without_its_job_is_no_job(tmp_path: Path) -> None:
    stopped(tmp_path, 10)
    job_path(tmp_path).unlink()
    store = JsonDirectoryStore(tmp_path)

    renewed = store.renew(JOB_ID, owner="B", lease_until=2e9)

    assert renewed is False
    with pytest.raises(JobNotFoundError, match="count-job"):
        store.acquire(JOB_ID, owner="B", lease_until=2e9, now=0)
