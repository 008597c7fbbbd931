"""Store faults through the public API: failed writes, locks, leases, dead owners."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import _store_worker
import pytest

from flowforge import (
    Flow,
    FlowForgeWarning,
    JobState,
    JobStateError,
    JobStatus,
    Routine,
    SerializationError,
    StoreError,
)
from flowforge.engine.jobs import start_job
from flowforge.store import Change, JsonDirectoryStore, MemoryStore, SqliteStore, Store
from flowforge.testing import Recorder, Relay, StoreWrapper

CHAIN: Final = ("a", "b", "c", "d", "e")
ENTRY_PARAMS: Final = {"item": (1, "one")}
WAIT: Final = 30.0
DISK_FULL: Final = "disk full: no space left on device (simulated)"


class FaultyStore(StoreWrapper):
    """A store that delegates to a real one and fails one chosen write.

    ``fail_on`` names the method (``"checkpoint"`` or ``"save"``) and
    ``fail_at`` which call of it (from 1) raises ``StoreError`` instead of
    writing. ``good`` keeps a copy of the job after each save or checkpoint
    that reached the store.
    """

    def __init__(self, inner: Store, *, fail_on: str, fail_at: int) -> None:
        super().__init__(inner)
        self.fail_on = fail_on
        self.fail_at = fail_at
        self.calls = {"checkpoint": 0, "save": 0}
        self.good: list[JobState] = []

    def _maybe_fail(self, method: str) -> None:
        self.calls[method] += 1
        if method == self.fail_on and self.calls[method] == self.fail_at:
            raise StoreError(DISK_FULL)

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        self._maybe_fail("save")
        super().save(job_state, owner=owner, lease_until=lease_until)
        self.good.append(JobState.deserialize(job_state.serialize()))

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        self._maybe_fail("checkpoint")
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)
        self.good.append(JobState.deserialize(job_state.serialize()))


class Locker(Recorder):
    """A recorder that, on its first delivery, write-locks the database at ``path``.

    Like a backup tool or another program holding SQLite's write lock while
    the job runs; the test releases it with :meth:`release`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.path: Path | None = None
        self.connection: sqlite3.Connection | None = None

    def record(self, **data: object) -> None:
        super().record(**data)
        if self.path is not None:
            self.connection = sqlite3.connect(self.path, isolation_level=None)
            self.connection.execute("BEGIN EXCLUSIVE")
            self.path = None  # lock once: a resumed job runs this delivery again

    def release(self) -> None:
        if self.connection is not None:
            self.connection.execute("ROLLBACK")
            self.connection.close()
            self.connection = None


def chain_flow() -> Flow:
    """``a -> b -> c -> d -> e``, each a :class:`Recorder`; ``c`` can lock."""
    flow = Flow("fault_chain")
    for routine_id in CHAIN:
        flow.add_routine(Locker() if routine_id == "c" else Recorder(), routine_id)
    for source, target in zip(CHAIN, CHAIN[1:]):
        flow.connect(source, "output", target, "input")
    return flow


def concurrent_fan_out(flow_id: str, workers: dict[str, Routine]) -> Flow:
    """A concurrent flow whose ``src`` sends to each of ``workers``, in order."""
    flow = Flow(flow_id, execution_strategy="concurrent", max_workers=4)
    flow.add_routine(Recorder(), "src")
    for worker_id, worker in workers.items():
        flow.add_routine(worker, worker_id)
        flow.connect("src", "output", worker_id, "input")
    return flow


def recorder(flow: Flow, routine_id: str) -> Recorder:
    routine: Routine = flow.routines[routine_id]
    assert isinstance(routine, Recorder)
    return routine


def handler_runs(flow: Flow) -> dict[str, int]:
    """How many times each routine's handler body ran in this process."""
    return {routine_id: len(recorder(flow, routine_id).seen) for routine_id in CHAIN}


def outcomes(job: JobState) -> list[tuple[int, str, str, int]]:
    return [
        (r.seq, r.routine_id, r.outcome, r.attempt) for r in job.get_execution_history()
    ]


def first_line(process: subprocess.Popen[str]) -> str:
    """Return the process's first line of output, or "" after ``WAIT`` seconds."""
    lines: list[str] = []
    read = threading.Event()

    def read_line() -> None:
        assert process.stdout is not None
        lines.append(process.stdout.readline())
        read.set()

    threading.Thread(target=read_line, daemon=True).start()
    read.wait(WAIT)
    return lines[0] if lines else ""


def dead_pid() -> int:
    """Return the pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=WAIT)
    return process.pid


def owner_id(pid: int, nonce: str = "x") -> str:
    """Return an owner id in the runtime's ``host:pid:nonce`` form."""
    return f"{socket.gethostname()}:{pid}:{nonce}"


def hand_over_to(store: Store, job_id: str, owner: str) -> None:
    """Move a job's lease to ``owner``, as if its current owner handed it over."""
    current = store.get(job_id).owner
    assert store.acquire(
        job_id,
        owner=owner,
        lease_until=time.time() + 600,
        now=time.time(),
        replacing=current,
    )


@pytest.fixture
def real_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "jobs.db")
    yield store
    store.close()


@pytest.fixture
def uninterrupted() -> JobState:
    """The chain's job run from start to end without a store."""
    return chain_flow().execute("a", ENTRY_PARAMS, job_id="job")


def interrupt(
    real_store: SqliteStore, *, fail_on: str = "checkpoint", fail_at: int = 3
) -> tuple[Flow, FaultyStore]:
    """Run the chain on a store whose ``fail_at``-th write fails; expect StoreError."""
    flow = chain_flow()
    faulty = FaultyStore(real_store, fail_on=fail_on, fail_at=fail_at)
    with pytest.raises(StoreError, match="disk full"):
        flow.execute("a", ENTRY_PARAMS, job_id="job", store=faulty)
    return flow, faulty


# -- a write fails -----------------------------------------------------------------


def test_failed_checkpoint_makes_execute_raise_the_store_error(
    real_store: SqliteStore,
) -> None:
    faulty = FaultyStore(real_store, fail_on="checkpoint", fail_at=3)

    with pytest.raises(StoreError, match="disk full") as caught:
        chain_flow().execute("a", ENTRY_PARAMS, job_id="job", store=faulty)

    assert str(caught.value) == DISK_FULL


@pytest.mark.parametrize("fail_at", [1, 3, 5], ids=["first", "middle", "last"])
def test_failed_checkpoint_leaves_the_last_good_one_in_the_store(
    real_store: SqliteStore, fail_at: int
) -> None:
    _, faulty = interrupt(real_store, fail_at=fail_at)

    stored = real_store.load("job")

    last_good = faulty.good[-1]
    assert len(faulty.good) == fail_at  # the first save, then the checkpoints
    assert stored.status is JobStatus.RUNNING
    assert stored.delivery_count == fail_at - 1
    assert [d.routine_id for d in stored.pending] == [CHAIN[fail_at - 1]]
    stored.tracker = last_good.tracker  # tracker figures: tested on their own
    assert stored == last_good


def test_same_process_can_resume_a_job_whose_checkpoint_failed(
    real_store: SqliteStore, uninterrupted: JobState
) -> None:
    flow, _ = interrupt(real_store)

    resumed = flow.resume("job", store=real_store)

    assert resumed.status is JobStatus.COMPLETED
    assert outcomes(resumed) == outcomes(uninterrupted)


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5], ids=["a", "b", "c", "d", "e"])
def test_job_whose_checkpoint_failed_resumes_to_the_uninterrupted_result(
    real_store: SqliteStore, uninterrupted: JobState, fail_at: int
) -> None:
    flow, _ = interrupt(real_store, fail_at=fail_at)
    hand_over_to(real_store, "job", owner_id(dead_pid()))

    resumed = flow.resume("job", store=real_store)

    in_flight = CHAIN[fail_at - 1]
    assert resumed.status is JobStatus.COMPLETED
    assert outcomes(resumed) == outcomes(uninterrupted)
    assert resumed.delivery_count == uninterrupted.delivery_count
    assert recorder(flow, "e").received == [ENTRY_PARAMS] * (2 if fail_at == 5 else 1)
    assert handler_runs(flow) == {
        routine_id: 2 if routine_id == in_flight else 1 for routine_id in CHAIN
    }
    assert real_store.load("job") == resumed


def test_resumed_job_counts_each_handler_run_once_in_its_tracker(
    real_store: SqliteStore, uninterrupted: JobState
) -> None:
    flow, _ = interrupt(real_store, fail_at=4)
    hand_over_to(real_store, "job", owner_id(dead_pid()))

    resumed = flow.resume("job", store=real_store)

    figures = {
        routine_id: resumed.tracker.get_routine_performance(routine_id).successes
        for routine_id in CHAIN
    }
    assert figures == dict.fromkeys(CHAIN, 1)
    assert (
        resumed.tracker.get_event_counts() == uninterrupted.tracker.get_event_counts()
    )


def test_failed_final_save_leaves_a_job_that_resumes_without_rerunning(
    real_store: SqliteStore, uninterrupted: JobState
) -> None:
    flow, _ = interrupt(real_store, fail_on="save", fail_at=2)
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 1)
    hand_over_to(real_store, "job", owner_id(dead_pid()))

    resumed = flow.resume("job", store=real_store)

    assert resumed.status is JobStatus.COMPLETED
    assert outcomes(resumed) == outcomes(uninterrupted)
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 1)


def test_job_whose_first_save_failed_is_recovered_from_its_dead_owner(
    real_store: SqliteStore, uninterrupted: JobState
) -> None:
    flow, _ = interrupt(real_store, fail_on="save", fail_at=1)
    hand_over_to(real_store, "job", owner_id(dead_pid()))

    recovered = flow.recover(real_store)

    assert [job.status for job in recovered] == [JobStatus.COMPLETED]
    assert outcomes(recovered[0]) == outcomes(uninterrupted)
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 1)


def test_same_process_can_resume_a_job_whose_first_save_failed(
    real_store: SqliteStore, uninterrupted: JobState
) -> None:
    # The run never began, so its owner is not live, although its lease has
    # not expired: this process may take the job over at once.
    flow, _ = interrupt(real_store, fail_on="save", fail_at=1)
    record = real_store.get("job")
    assert record.owner is not None and record.lease_until is not None
    assert record.lease_until > time.time()

    resumed = flow.resume("job", store=real_store)

    assert resumed.status is JobStatus.COMPLETED
    assert outcomes(resumed) == outcomes(uninterrupted)
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 1)


# -- a locked database -------------------------------------------------------------


@pytest.fixture
def locked_run(tmp_path: Path) -> Iterator[tuple[Flow, SqliteStore, Locker]]:
    """A chain whose ``c`` write-locks the store's database while the job runs."""
    path = tmp_path / "jobs.db"
    store = SqliteStore(path, timeout=0.05)
    flow = chain_flow()
    locker = flow.routines["c"]
    assert isinstance(locker, Locker)
    locker.path = path
    yield flow, store, locker
    locker.release()
    store.close()


def test_locked_database_makes_execute_raise_a_store_error_saying_locked(
    locked_run: tuple[Flow, SqliteStore, Locker],
) -> None:
    flow, store, _ = locked_run

    with pytest.raises(StoreError, match="database is locked"):
        flow.execute("a", ENTRY_PARAMS, job_id="job", store=store)

    assert store.load("job").delivery_count == 2


def test_job_stopped_by_a_locked_database_completes_once_it_is_released(
    locked_run: tuple[Flow, SqliteStore, Locker], uninterrupted: JobState
) -> None:
    flow, store, locker = locked_run
    with pytest.raises(StoreError, match="locked"):
        flow.execute("a", ENTRY_PARAMS, job_id="job", store=store)
    locker.release()

    resumed = flow.resume("job", store=store)

    assert resumed.status is JobStatus.COMPLETED
    assert outcomes(resumed) == outcomes(uninterrupted)
    assert handler_runs(flow) == {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1}


def write_locked_new_file(path: Path) -> sqlite3.Connection:
    """Return a connection holding a write lock on a new, not-yet-WAL file."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE someone_elses (a)")
    return holder


def test_opening_a_new_file_another_process_is_writing_waits_for_it(
    tmp_path: Path,
) -> None:
    # SQLite refuses the switch to WAL at once, without its busy handler,
    # while another connection holds the write lock of a new file; this is
    # what two processes opening one new store at the same moment run into.
    path = tmp_path / "jobs.db"
    holder = write_locked_new_file(path)
    releaser = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    releaser.start()
    try:
        store = SqliteStore(path, timeout=10)
    finally:
        releaser.join()
        holder.close()

    assert store.list_jobs() == []
    store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    check.close()


def test_opening_a_file_locked_past_the_timeout_raises_a_store_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    holder = write_locked_new_file(path)
    try:
        with pytest.raises(StoreError, match="cannot open SQLite store .*locked"):
            SqliteStore(path, timeout=0.1)
    finally:
        holder.close()


# -- leases and recovery -----------------------------------------------------------


def leave_running(store: Store, job_id: str, owner: str) -> None:
    """Leave a job of the chain running in ``store``, leased to ``owner``."""
    flow = chain_flow()
    faulty = FaultyStore(store, fail_on="checkpoint", fail_at=2)
    with pytest.raises(StoreError, match="disk full"):
        flow.execute("a", ENTRY_PARAMS, job_id=job_id, store=faulty)
    hand_over_to(store, job_id, owner)


class RenewLog(StoreWrapper):
    """Delegate to ``inner``; note what each lease renewal returned."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.renewals: list[bool] = []

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        renewed = super().renew(job_id, owner=owner, lease_until=lease_until)
        self.renewals.append(renewed)
        return renewed


class Stall(Routine):
    """On its first delivery, let ``takeover`` run while this process stalls."""

    def __init__(self, takeover: Callable[[], None]) -> None:
        super().__init__()
        self.takeover = takeover
        self.runs = 0
        self.define_slot("input", self.stall)
        self.define_event("output")

    def stall(self, **data: object) -> None:
        self.runs += 1
        if self.runs == 1:
            self.takeover()
        self.emit("output", **data)


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_a_stalled_owner_never_takes_back_a_job_released_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # While A stalls past its lease, B takes the job over, pauses it and
    # releases it. A's heartbeat must not lease it again, and A's next
    # checkpoint must fail, leaving B's state as the stored one.
    defaults = start_job.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "lease_seconds", 0.3)
    if backend == "sqlite":
        shared: Store = SqliteStore(tmp_path / "jobs.db")
        b_store: Store = SqliteStore(tmp_path / "jobs.db")
    else:
        shared = b_store = MemoryStore()
    a_store = RenewLog(shared)
    owners: list[str | None] = []

    def b_takes_over_and_releases() -> None:
        now = time.time()
        a_owner = b_store.get("job").owner
        assert b_store.acquire(
            "job", owner="B", lease_until=now + 60, now=now, replacing=a_owner
        )
        paused = b_store.load("job")
        paused.status = JobStatus.PAUSED
        b_store.save(paused, owner="B", lease_until=None)
        tries = len(a_store.renewals)
        deadline = time.monotonic() + WAIT
        while len(a_store.renewals) == tries and time.monotonic() < deadline:
            time.sleep(0.02)  # A's heartbeat, every 0.1 s, tries meanwhile
        owners.append(b_store.get("job").owner)

    flow = Flow("stall")
    flow.add_routine(Recorder(), "a")
    flow.add_routine(Stall(b_takes_over_and_releases), "b")
    flow.add_routine(Recorder(), "c")
    flow.connect("a", "output", "b", "input")
    flow.connect("b", "output", "c", "input")

    with pytest.raises(StoreError, match="refused|lease|owner"):
        flow.execute("a", {"n": 1}, job_id="job", store=a_store)

    assert owners == [None]  # the heartbeat did not take the job back
    assert a_store.renewals[-1] is False
    record = b_store.get("job")
    assert (record.status, record.owner) == (JobStatus.PAUSED, None)
    assert recorder(flow, "c").seen == []  # A ran nothing after losing the job
    resumed = flow.resume("job", store=b_store)
    assert resumed.status is JobStatus.COMPLETED
    assert [d["n"] for d in recorder(flow, "c").received] == [1]


@pytest.mark.parametrize(
    "owner",
    [owner_id(os.getppid(), "parent"), "elsewhere.example:1:x"],
    ids=["live-process-on-this-host", "another-host"],
)
def test_resume_by_id_of_a_job_leased_to_a_live_owner_is_refused(
    real_store: SqliteStore, owner: str
) -> None:
    leave_running(real_store, "job", owner)
    flow = chain_flow()

    with pytest.raises(JobStateError, match="'job' is running: it is leased to"):
        flow.resume("job", store=real_store)

    assert real_store.get("job").owner == owner
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 0)


class Intruder(StoreWrapper):
    """Delegate to ``inner``; at one moment of a run, let another thread resume it.

    ``moment`` is ``"created"`` (the store names the new owner, its run has
    not begun), ``"acquired"`` (a resume has taken the lease, its run has not
    begun) or ``"ending"`` (the run's final save is about to be written).
    ``outcome`` holds what the other thread's ``flow.resume`` raised.
    """

    def __init__(self, inner: Store, flow: Flow, moment: str) -> None:
        super().__init__(inner)
        self.flow, self.moment = flow, moment
        self.outcome: list[BaseException | None] = []

    def intrude(self, moment: str) -> None:
        if moment != self.moment or self.outcome:
            return

        def resume() -> None:
            try:
                self.flow.resume("job", store=self.inner)
            except BaseException as error:  # noqa: B036 - reported to the test
                self.outcome.append(error)
            else:
                self.outcome.append(None)

        thread = threading.Thread(target=resume)
        thread.start()
        thread.join(WAIT)

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        created = super().create(job_state, owner=owner, lease_until=lease_until)
        self.intrude("created")
        return created

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        acquired = super().acquire(
            job_id, owner=owner, lease_until=lease_until, now=now, replacing=replacing
        )
        self.intrude("acquired")
        return acquired

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        if lease_until is None and job_state.status is JobStatus.COMPLETED:
            self.intrude("ending")
        super().save(job_state, owner=owner, lease_until=lease_until)


@pytest.mark.parametrize("moment", ["created", "acquired", "ending"])
def test_a_job_is_never_taken_from_a_live_run_of_this_process(
    real_store: SqliteStore, moment: str
) -> None:
    # Another thread of the same process (a Dask worker's, a web server's)
    # resumes the job by id while this run starts or ends. The run is live,
    # so the resume is refused, and every handler runs once.
    flow = chain_flow()
    intruder = Intruder(real_store, flow, moment)
    if moment == "acquired":
        interrupt(real_store, fail_on="checkpoint", fail_at=2)
        job = flow.resume("job", store=intruder)
    else:
        job = flow.execute("a", ENTRY_PARAMS, job_id="job", store=intruder)

    assert len(intruder.outcome) == 1
    refusal = intruder.outcome[0]
    assert isinstance(refusal, JobStateError)
    assert re.search(r"'job' is (pending|running): it is leased to", str(refusal))
    assert job.status is JobStatus.COMPLETED
    assert real_store.get("job").status is JobStatus.COMPLETED
    runs = {"a": 0, "b": 1, "c": 1, "d": 1, "e": 1} if moment == "acquired" else None
    assert handler_runs(flow) == (runs or dict.fromkeys(CHAIN, 1))


def test_recover_resumes_a_dead_owners_job_and_skips_a_live_owners(
    real_store: SqliteStore,
) -> None:
    live = owner_id(os.getppid(), "still-running")
    leave_running(real_store, "dead-job", owner_id(dead_pid()))
    leave_running(real_store, "live-job", live)
    flow = chain_flow()

    recovered = flow.recover(real_store)

    assert [(job.job_id, job.status) for job in recovered] == [
        ("dead-job", JobStatus.COMPLETED)
    ]
    assert handler_runs(flow) == {"a": 0, "b": 1, "c": 1, "d": 1, "e": 1}
    record = real_store.get("live-job")
    assert (record.status, record.owner) == (JobStatus.RUNNING, live)


def test_recover_finishes_a_job_whose_process_was_killed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    worker = _store_worker.spawn("hold", str(path), "killed-job")
    try:
        assert first_line(worker) == "holding\n"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=WAIT)
    store = SqliteStore(path)
    flow = _store_worker.build_chain()

    recovered = flow.recover(store)

    assert [(job.job_id, job.status) for job in recovered] == [
        ("killed-job", JobStatus.COMPLETED)
    ]
    first, last = flow.routines["first"], flow.routines["last"]
    assert isinstance(first, Recorder) and isinstance(last, Recorder)
    assert (first.received, last.received) == ([], [_store_worker.ENTRY_PARAMS])
    assert store.load("killed-job") == recovered[0]
    store.close()


def test_recover_leaves_a_job_it_cannot_read_and_recovers_the_others(
    real_store: SqliteStore, tmp_path: Path
) -> None:
    leave_running(real_store, "bad-job", owner_id(dead_pid()))
    leave_running(real_store, "good-job", owner_id(dead_pid()))
    db = sqlite3.connect(tmp_path / "jobs.db")
    with db:
        db.execute("UPDATE jobs SET header = 'garbage' WHERE job_id = 'bad-job'")
    db.close()
    flow = chain_flow()

    with pytest.warns(FlowForgeWarning) as caught:
        recovered = flow.recover(real_store)

    assert [(job.job_id, job.status) for job in recovered] == [
        ("good-job", JobStatus.COMPLETED)
    ]
    [warning] = caught
    assert re.match(
        r"job 'bad-job' was not recovered and stays in the store as it is: "
        r"stored job data is corrupted",
        str(warning.message),
    )
    assert real_store.get("bad-job").status is JobStatus.RUNNING


class FailsToEncode(FaultyStore):
    """A :class:`FaultyStore` whose chosen write finds a value it cannot save."""

    def _maybe_fail(self, method: str) -> None:
        try:
            super()._maybe_fail(method)
        except StoreError as error:
            raise SerializationError(str(error)) from None


@pytest.mark.parametrize("faulty", [FaultyStore])
def test_recover_keeps_recovering_when_saving_fails_during_one_jobs_run(
    real_store: SqliteStore, faulty: type[FaultyStore]
) -> None:
    leave_running(real_store, "job-1", owner_id(dead_pid()))
    leave_running(real_store, "job-2", owner_id(dead_pid()))
    flow = chain_flow()
    failing = faulty(real_store, fail_on="checkpoint", fail_at=1)

    with pytest.warns(FlowForgeWarning) as caught:
        recovered = flow.recover(failing)

    [finished] = recovered
    [stopped] = {"job-1", "job-2"} - {finished.job_id}
    assert finished.status is JobStatus.COMPLETED
    assert real_store.get(finished.job_id).status is JobStatus.COMPLETED
    [warning] = caught
    assert str(warning.message) == (
        f"job {stopped!r} stopped: saving it failed ({DISK_FULL}); it stays in "
        "the store as of its last checkpoint, for a later recover"
    )
    assert real_store.get(stopped).status is JobStatus.RUNNING
    # The lease was let go: the next recover finishes the job at once.
    assert [(j.job_id, j.status) for j in flow.recover(real_store)] == [
        (stopped, JobStatus.COMPLETED)
    ]


def test_recover_stores_failed_a_job_whose_checkpoint_cannot_be_saved(
    real_store: SqliteStore,
) -> None:
    # A value that cannot be saved fails again on every try: the job is not
    # left running for the next recover, but failed with the reason.
    leave_running(real_store, "job-1", owner_id(dead_pid()))
    leave_running(real_store, "job-2", owner_id(dead_pid()))
    flow = chain_flow()
    failing = FailsToEncode(real_store, fail_on="checkpoint", fail_at=1)

    with pytest.warns(FlowForgeWarning) as caught:
        [finished] = flow.recover(failing)

    [stopped] = {"job-1", "job-2"} - {finished.job_id}
    [warning] = caught
    assert str(warning.message) == (
        f"job {stopped!r} stopped: saving it failed ({DISK_FULL}); it is stored "
        "failed with the reason, as of its last checkpoint; resume it by id once "
        "the value can be saved"
    )
    stored = real_store.load(stopped)
    assert stored.status is JobStatus.FAILED
    assert [(e.error_type, e.message) for e in stored.errors] == [
        ("SerializationError", DISK_FULL)
    ]
    assert real_store.get(stopped).owner is None
    assert flow.recover(real_store) == []
    assert flow.resume(stopped, store=real_store).status is JobStatus.COMPLETED


# -- a claim that fails before the run begins ---------------------------------------


class FailingLoad(StoreWrapper):
    """A store whose ``fail_at``-th ``load`` raises StoreError (then loads work)."""

    def __init__(self, inner: Store, fail_at: int) -> None:
        super().__init__(inner)
        self.loads = 0
        self.fail_at = fail_at

    def load(self, job_id: str) -> JobState:
        self.loads += 1
        if self.loads == self.fail_at:
            raise StoreError(DISK_FULL)
        return super().load(job_id)


@pytest.mark.parametrize("how", ["resume", "recover"])
def test_a_load_failing_after_the_lease_was_taken_leaves_the_job_resumable_at_once(
    real_store: SqliteStore, uninterrupted: JobState, how: str
) -> None:
    # resume and recover load the job to check its flow, take its lease, then
    # load it again: the second load fails. The claim is given up at once.
    flow, _ = interrupt(real_store)
    failing = FailingLoad(real_store, fail_at=2)
    if how == "resume":
        with pytest.raises(StoreError, match="disk full"):
            flow.resume("job", store=failing)
    else:
        with pytest.warns(FlowForgeWarning, match="disk full"):
            assert flow.recover(failing) == []

    resumed = flow.resume("job", store=real_store)

    assert failing.loads == 2
    assert resumed.status is JobStatus.COMPLETED
    assert outcomes(resumed) == outcomes(uninterrupted)


# -- resuming or cancelling a state that is not the store's -------------------------


class Pauser(Recorder):
    """A recorder that pauses its job on its first delivery (and records it)."""

    def record(self, **data: object) -> None:
        if not self.get_config("paused"):
            self.set_config(paused=True)
            flow = self.get_config("flow")
            assert isinstance(flow, Flow)
            flow.pause(reason="waiting")
        super().record(**data)


def pausing_chain() -> Flow:
    """The chain, its routine ``c`` pausing the job the first time it runs."""
    flow = Flow("fault_chain")
    for routine_id in CHAIN:
        flow.add_routine(Pauser() if routine_id == "c" else Recorder(), routine_id)
    for source, target in zip(CHAIN, CHAIN[1:]):
        flow.connect(source, "output", target, "input")
    flow.routines["c"].set_config(flow=flow)
    return flow


@pytest.fixture
def moved_on(real_store: SqliteStore) -> tuple[Flow, JobState]:
    """The chain paused at ``c``, a copy of that state, and the job run to its end."""
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)
    assert paused.status is JobStatus.PAUSED
    stale = JobState.deserialize(paused.serialize())
    assert flow.resume(paused, store=real_store).status is JobStatus.COMPLETED
    return flow, stale


def test_resuming_a_stale_state_is_refused_and_runs_nothing(
    real_store: SqliteStore, moved_on: tuple[Flow, JobState]
) -> None:
    flow, stale = moved_on

    with pytest.raises(JobStateError, match="the store holds another state") as caught:
        flow.resume(stale, store=real_store)

    assert "(completed, 5 deliveries) than the one given (paused, 3" in str(
        caught.value
    )
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 1)
    stored = real_store.load("job")
    assert (stored.status, stored.delivery_count) == (JobStatus.COMPLETED, 5)
    assert real_store.get("job").owner is None


def test_cancelling_a_stale_paused_state_is_refused_and_keeps_the_stored_job(
    real_store: SqliteStore, moved_on: tuple[Flow, JobState]
) -> None:
    flow, stale = moved_on

    with pytest.raises(JobStateError, match="the store holds another state"):
        flow.cancel(stale, store=real_store)

    assert stale.status is JobStatus.PAUSED
    record = real_store.get("job")
    assert (record.status, record.owner) == (JobStatus.COMPLETED, None)


def test_cancelling_a_paused_job_with_its_store_saves_it_cancelled_and_free(
    real_store: SqliteStore,
) -> None:
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)

    flow.cancel(paused, store=real_store)

    record = real_store.get("job")
    assert (record.status, record.owner, record.lease_until) == (
        JobStatus.CANCELLED,
        None,
        None,
    )
    assert real_store.load("job") == paused
    assert [d.outcome for d in paused.get_execution_history("d")] == ["cancelled"]


def test_cancelling_a_paused_job_another_process_resumed_is_refused(
    real_store: SqliteStore,
) -> None:
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)
    live = owner_id(os.getppid(), "resumed-it")
    assert real_store.acquire(
        "job", owner=live, lease_until=time.time() + 600, now=time.time()
    )

    with pytest.raises(JobStateError, match="it is leased to"):
        flow.cancel(paused, store=real_store)

    assert paused.status is JobStatus.PAUSED
    assert real_store.get("job").owner == live


class RaceFirst(StoreWrapper):
    """Before its first acquire, runs ``action`` in another thread to its end.

    ``results`` holds what ``action`` returned: the move that wins the race.
    """

    def __init__(self, inner: Store, action: Callable[[], object]) -> None:
        super().__init__(inner)
        self.action = action
        self.results: list[object] = []

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        if not self.results:
            racer = threading.Thread(target=lambda: self.results.append(self.action()))
            racer.start()
            racer.join(WAIT)
        return super().acquire(
            job_id, owner=owner, lease_until=lease_until, now=now, replacing=replacing
        )


def test_a_resume_that_loses_the_race_to_a_cancel_runs_nothing(
    real_store: SqliteStore,
) -> None:
    flow = pausing_chain()
    flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)
    racing = RaceFirst(
        real_store,
        lambda: pausing_chain().cancel(real_store.load("job"), store=real_store),
    )

    with pytest.raises(JobStateError, match="'job' is cancelled: only a paused"):
        flow.resume("job", store=racing)

    assert racing.results == [None]  # the cancel ran, and returned
    assert handler_runs(flow) == {"a": 1, "b": 1, "c": 1, "d": 0, "e": 0}
    record = real_store.get("job")
    assert (record.status, record.owner) == (JobStatus.CANCELLED, None)


# -- the concurrent strategy ---------------------------------------------------------

WORKERS: Final = ("w0", "w1", "w2", "w3")


def fan_flow() -> Flow:
    """``src`` to four workers that tag what they pass on, all into ``sink``."""
    flow = Flow("fault_fan", execution_strategy="concurrent", max_workers=2)
    flow.add_routine(Recorder(), "src")
    flow.add_routine(Recorder(), "sink")
    for worker in WORKERS:
        relay = Relay()
        relay.set_config(transform=lambda data, by=worker: {**data, "by": by})
        flow.add_routine(relay, worker)
        flow.connect("src", "output", worker, "input")
        flow.connect(worker, "output", "sink", "input")
    return flow


def completed_runs(job: JobState) -> Counter[str]:
    return Counter(
        r.routine_id for r in job.get_execution_history() if r.outcome == "completed"
    )


@pytest.mark.parametrize("fail_at", range(1, 10))
def test_concurrent_job_whose_checkpoint_failed_resumes_with_nothing_lost(
    real_store: SqliteStore, fail_at: int
) -> None:
    # Each checkpoint must hold every delivery not yet finished: those queued,
    # waiting for a retry or running on the pool, not only the newest ones.
    flow = fan_flow()
    faulty = FaultyStore(real_store, fail_on="checkpoint", fail_at=fail_at)
    with pytest.raises(StoreError, match="disk full"):
        flow.execute("src", {"item": 1}, job_id="job", store=faulty)
    hand_over_to(real_store, "job", owner_id(dead_pid()))

    resumed = flow.resume("job", store=real_store)

    assert resumed.status is JobStatus.COMPLETED
    assert resumed.delivery_count == 9
    assert completed_runs(resumed) == {"src": 1, **dict.fromkeys(WORKERS, 1), "sink": 4}
    sink = recorder(flow, "sink")
    assert {data["by"] for data in sink.received} == set(WORKERS)
    assert real_store.load("job") == resumed


def test_every_concurrent_checkpoint_holds_the_unfinished_deliveries(
    real_store: SqliteStore,
) -> None:
    flow = fan_flow()
    watched = FaultyStore(real_store, fail_on="none", fail_at=0)

    job = flow.execute("src", {"item": 1}, job_id="job", store=watched)

    assert job.status is JobStatus.COMPLETED
    assert len(watched.good) == 1 + 9 + 1  # the first save, checkpoints, the end
    for saved in watched.good:
        done = {r.seq for r in saved.get_execution_history()}
        waiting = [d.seq for d in saved.pending]
        assert sorted(done.union(waiting)) == list(range(saved.next_seq)), saved
        assert len(done) + len(waiting) == saved.next_seq, saved


class Gate(Routine):
    """Passes its input on once ``opened`` is set, and marks ``finished`` after."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()
        self.finished = threading.Event()
        self.define_slot("input", self.pass_on)
        self.define_event("output")

    def pass_on(self, **data: object) -> None:
        self.opened.wait(WAIT)
        time.sleep(0.2)
        self.finished.set()
        self.emit("output", **data)


class FailSecondCheckpoint(FaultyStore):
    """Fails the second checkpoint, setting ``failed`` as it does."""

    def __init__(self, inner: Store, failed: threading.Event) -> None:
        super().__init__(inner, fail_on="checkpoint", fail_at=2)
        self.failed = failed

    def _maybe_fail(self, method: str) -> None:
        try:
            super()._maybe_fail(method)
        except StoreError:
            self.failed.set()
            raise


def test_concurrent_job_whose_checkpoint_failed_raises_once_its_handlers_ended(
    real_store: SqliteStore,
) -> None:
    # "fast" finishes first and its checkpoint fails while "slow" still runs
    # on the pool. execute raises only once "slow" has returned, so that a
    # resume that follows never runs a handler beside the failed run's.
    slow = Gate()
    flow = concurrent_fan_out("fault_gate", {"fast": Recorder(), "slow": slow})
    flow.add_routine(Recorder(), "sink")
    for worker in ("fast", "slow"):
        flow.connect(worker, "output", "sink", "input")
    failing = FailSecondCheckpoint(real_store, slow.opened)

    with pytest.raises(StoreError, match="disk full"):
        flow.execute("src", {"item": 1}, job_id="job", store=failing)
    assert slow.finished.is_set()

    resumed = flow.resume("job", store=real_store)

    assert resumed.status is JobStatus.COMPLETED
    assert completed_runs(resumed) == {"src": 1, "fast": 1, "slow": 1, "sink": 2}


class Joiner(Routine):
    """A join slot over two connections; only one ever sends in these tests."""

    def __init__(self) -> None:
        super().__init__()
        self.define_slot("both", self.on_both, join=True)

    def on_both(self, **data: object) -> None:
        raise AssertionError("the join never completes here")


class StartWatch(Recorder):
    """Counts the runs that started after ``failed`` (its config) was set."""

    def __init__(self) -> None:
        super().__init__()
        self.late_starts = 0

    def record(self, **data: object) -> None:
        failed = self.get_config("failed")
        assert isinstance(failed, threading.Event)
        self.late_starts += failed.is_set()
        super().record(**data)


def test_no_handler_starts_after_a_checkpoint_failed_on_a_buffered_arrival(
    real_store: SqliteStore,
) -> None:
    # Checkpoint 2 is the join's arrival, which runs no handler; the two
    # workers, ready in the same dispatch round, must not start after it.
    # (Wired by hand, not with concurrent_fan_out: the join's connection
    # must come first for its arrival to be checkpoint 2.)
    failed = threading.Event()
    flow = Flow("fault_join", execution_strategy="concurrent", max_workers=4)
    flow.add_routine(Recorder(), "src")
    flow.add_routine(Recorder(), "other")
    flow.add_routine(Joiner(), "join")
    flow.connect("src", "output", "join", "both")
    flow.connect("other", "output", "join", "both")
    workers = [StartWatch(), StartWatch()]
    for index, worker in enumerate(workers):
        worker.set_config(failed=failed)
        flow.add_routine(worker, f"w{index}")
        flow.connect("src", "output", f"w{index}", "input")

    with pytest.raises(StoreError, match="disk full"):
        flow.execute(
            "src",
            {"x": 1},
            job_id="job",
            store=FailSecondCheckpoint(real_store, failed),
        )
    late_starts = [worker.late_starts for worker in workers]
    resumed = flow.resume("job", store=real_store)

    assert late_starts == [0, 0]
    assert [len(worker.seen) for worker in workers] == [1, 1]
    assert resumed.status is JobStatus.COMPLETED


class FailedCheckpointOpens(StoreWrapper):
    """Sets ``gate`` once it has checkpointed the job as failed."""

    def __init__(self, inner: Store, gate: threading.Event) -> None:
        super().__init__(inner)
        self.gate = gate

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        super().checkpoint(job_state, change, owner=owner, lease_until=lease_until)
        if job_state.status is JobStatus.FAILED:
            self.gate.set()


class Waiter(Recorder):
    def record(self, **data: object) -> None:
        gate = self.get_config("gate")
        assert isinstance(gate, threading.Event) and gate.wait(WAIT)
        super().record(**data)


def test_a_concurrent_failed_job_resumed_counts_the_stopping_failure_as_retried(
    real_store: SqliteStore,
) -> None:
    # "slow" finishes after "fast"'s failure stopped the job, so the failure
    # is not the job's last history record.
    gate = threading.Event()
    flow = concurrent_fan_out("fault_stop", {"slow": Waiter(), "fast": Recorder()})
    flow.routines["fast"].set_config(fail_times=1)
    flow.routines["slow"].set_config(gate=gate)
    failed = flow.execute(
        "src", {"x": 1}, job_id="job", store=FailedCheckpointOpens(real_store, gate)
    )
    assert failed.status is JobStatus.FAILED
    assert [r.routine_id for r in failed.get_execution_history()][-1] == "slow"

    resumed = flow.resume(failed, store=real_store)

    fast = resumed.tracker.get_routine_performance("fast")
    assert (resumed.status, fast.failures, fast.retries) == (JobStatus.COMPLETED, 0, 1)
    assert resumed.routine_states["fast"].status.value == "completed"


# -- a write that fails, or lands and then reports a failure -----------------------


class FailSaves(StoreWrapper):
    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        raise StoreError(DISK_FULL)


def test_a_cancel_whose_write_failed_leaves_the_job_as_it_was(
    real_store: SqliteStore,
) -> None:
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)

    with pytest.raises(StoreError, match="disk full"):
        flow.cancel(paused, store=FailSaves(real_store))

    assert (paused.status, len(paused.pending)) == (JobStatus.PAUSED, 1)
    assert real_store.get("job").status is JobStatus.PAUSED
    flow.cancel(paused, store=real_store)
    assert real_store.get("job").status is JobStatus.CANCELLED


def test_a_resume_whose_first_write_failed_can_be_retried_with_the_same_state(
    real_store: SqliteStore,
) -> None:
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)

    with pytest.raises(StoreError, match="disk full"):
        flow.resume(paused, store=FailSaves(real_store))

    assert paused.status is JobStatus.PAUSED
    assert flow.resume(paused, store=real_store).status is JobStatus.COMPLETED
    assert handler_runs(flow) == dict.fromkeys(CHAIN, 1)


class AcquireThenFail(StoreWrapper):
    """Takes the lease, then reports a failure (a connection lost after COMMIT)."""

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        super().acquire(
            job_id, owner=owner, lease_until=lease_until, now=now, replacing=replacing
        )
        raise StoreError("connection lost after commit (simulated)")


@pytest.mark.parametrize("by", ["id", "state"])
def test_a_resume_after_an_acquire_that_landed_and_failed_is_not_refused(
    real_store: SqliteStore, by: str
) -> None:
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)
    target: JobState | str = "job" if by == "id" else paused

    with pytest.raises(StoreError, match="connection lost"):
        flow.resume(target, store=AcquireThenFail(real_store))

    assert flow.resume(target, store=real_store).status is JobStatus.COMPLETED


def test_a_cancel_that_loses_the_race_to_a_resume_of_the_same_state_is_refused(
    real_store: SqliteStore,
) -> None:
    flow = pausing_chain()
    paused = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)
    racing = RaceFirst(real_store, lambda: flow.resume(paused, store=real_store))

    with pytest.raises(JobStateError, match="the store holds another state"):
        flow.cancel(paused, store=racing)

    [resumed] = racing.results
    assert isinstance(resumed, JobState) and resumed.status is JobStatus.COMPLETED
    assert paused.status is JobStatus.COMPLETED
    record = real_store.get("job")
    assert (record.status, record.owner) == (JobStatus.COMPLETED, None)


class KeepsALock(Recorder):
    """Puts a lock, which cannot be copied, in its stats on its first delivery."""

    def record(self, **data: object) -> None:
        if not self.get_config("done"):
            self.set_config(done=True)
            self.set_stat("lock", threading.Lock())
        super().record(**data)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_stats_that_cannot_be_copied_are_not_snapshotted_and_the_job_runs_on(
    real_store: SqliteStore, strategy: str
) -> None:
    flow = Flow("fault_stats", execution_strategy=strategy)
    flow.add_routine(Recorder(), "a")
    flow.add_routine(KeepsALock(), "b")
    flow.connect("a", "output", "b", "input")

    with pytest.warns(FlowForgeWarning, match="routine 'b': its stats cannot be"):
        job = flow.execute("a", {"x": 1}, job_id="job", store=real_store)

    assert job.status is JobStatus.COMPLETED
    assert job.get_routine_state("b").stats == {}  # the last snapshot it could take
    assert real_store.load("job") == job
    record = real_store.get("job")
    assert (record.status, record.owner) == (JobStatus.COMPLETED, None)
    assert [t for t in threading.enumerate() if t.name == "flowforge-lease"] == []


class LockThenInterrupt(Recorder):
    def record(self, **data: object) -> None:
        self.set_stat("lock", threading.Lock())
        raise KeyboardInterrupt


def test_an_interrupt_leaves_execute_as_it_is_even_with_stats_that_cannot_be_copied(
    real_store: SqliteStore,
) -> None:
    flow = Flow("fault_stats")
    flow.add_routine(LockThenInterrupt(), "a")

    with pytest.warns(FlowForgeWarning), pytest.raises(KeyboardInterrupt):
        flow.execute("a", {"x": 1}, job_id="job", store=real_store)

    flow.routines["a"].reset_stats()
    assert real_store.get("job").status is JobStatus.RUNNING


def test_recover_from_a_json_directory_with_a_damaged_file_recovers_the_rest(
    tmp_path: Path,
) -> None:
    store = JsonDirectoryStore(tmp_path)
    leave_running(store, "bad-job", owner_id(dead_pid()))
    leave_running(store, "good-job", owner_id(dead_pid()))
    bad = tmp_path / "bad-job.json"
    bad.write_text(bad.read_text()[:100])
    (tmp_path / "notes.json").write_text('{"not": "a job"}')

    with pytest.warns(FlowForgeWarning) as caught:
        recovered = chain_flow().recover(store)

    assert [(job.job_id, job.status) for job in recovered] == [
        ("good-job", JobStatus.COMPLETED)
    ]
    messages = {str(warning.message) for warning in caught}  # once per listing
    assert len(messages) == 2
    assert any("bad-job.json' is corrupted" in m for m in messages)
    assert any("notes.json' is not a FlowForge job file; it is" in m for m in messages)


class BarrierFail(Routine):
    """Fails, once both of its kind are running, while ``broken`` is set."""

    def __init__(self, barrier: threading.Barrier, broken: threading.Event) -> None:
        super().__init__()
        self.barrier = barrier
        self.broken = broken
        self.define_slot("input", self.handle)

    def handle(self, **data: object) -> None:
        if self.broken.is_set():
            self.barrier.wait(WAIT)
            raise ValueError("broken")


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_every_concurrent_failure_that_stopped_the_job_is_counted_retried_on_resume(
    real_store: SqliteStore, durable: bool
) -> None:
    broken, barrier = threading.Event(), threading.Barrier(2)
    broken.set()
    flow = Flow("fault_two", execution_strategy="concurrent", max_workers=2)
    flow.add_routine(Recorder(), "src")
    for routine_id in ("a", "b"):
        flow.add_routine(BarrierFail(barrier, broken), routine_id)
        flow.connect("src", "output", routine_id, "input")
    store = real_store if durable else None
    failed = flow.execute("src", {"x": 1}, job_id="job", store=store)
    assert (failed.status, len(failed.pending), len(failed.errors)) == (
        JobStatus.FAILED,
        2,
        2,
    )
    broken.clear()

    job = flow.resume("job" if durable else failed, store=store)

    assert job.status is JobStatus.COMPLETED
    for routine_id in ("a", "b"):
        figures = job.tracker.get_routine_performance(routine_id)
        assert (figures.successes, figures.failures, figures.retries) == (1, 0, 1)
        assert job.routine_states[routine_id].status.value == "completed"


def test_a_failed_job_whose_resume_could_not_start_is_left_as_it_was(
    real_store: SqliteStore,
) -> None:
    flow = chain_flow()
    recorder(flow, "c").set_config(fail_times=1)
    failed = flow.execute("a", ENTRY_PARAMS, job_id="job", store=real_store)
    before = failed.serialize()

    with pytest.raises(StoreError, match="disk full"):
        flow.resume(failed, store=FailSaves(real_store))

    assert failed.serialize() == before
    job = flow.resume(failed, store=real_store)
    figures = job.tracker.get_routine_performance("c")
    assert (job.status, figures.failures, figures.retries) == (
        JobStatus.COMPLETED,
        0,
        1,
    )
