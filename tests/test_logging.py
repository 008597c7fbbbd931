"""The ``flowforge`` logger: levels, messages and extra fields of each record."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    Flow,
    FlowForgeWarning,
    JobState,
    JobStatus,
    Routine,
    StoreError,
)
from flowforge.store import Change, MemoryStore
from flowforge.testing import FakeClock, Recorder, StoreWrapper

EXTRA = ("job_id", "routine_id", "slot")


def chain(length: int = 3, **options: object) -> Flow:
    flow = Flow("logged", clock=FakeClock(), **options)  # type: ignore[arg-type]
    for index in range(length):
        flow.add_routine(Recorder(), f"r{index}")
    for index in range(length - 1):
        flow.connect(f"r{index}", "output", f"r{index + 1}", "input")
    return flow


def extra(record: logging.LogRecord) -> tuple[object, ...]:
    return tuple(record.__dict__[key] for key in EXTRA)


def test_package_logger_has_only_a_null_handler() -> None:
    code = (
        "import logging, flowforge\n"
        "print([type(h).__name__ for h in logging.getLogger('flowforge').handlers])"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout == "['NullHandler']\n"


def test_extra_keys_are_not_log_record_attributes() -> None:
    record = logging.makeLogRecord({})

    assert not set(EXTRA) & set(vars(record))


def test_successful_deliveries_log_nothing_at_info_or_above(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = chain()

    with caplog.at_level(logging.INFO, logger="flowforge"):
        job = flow.execute("r0", {"x": 1}, job_id="quiet")

    assert job.status is JobStatus.COMPLETED
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "job 'quiet' completed")
    ]
    assert extra(caplog.records[0]) == ("quiet", None, None)


def test_job_start_is_logged_at_debug_and_no_delivery_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = chain()

    with caplog.at_level(logging.DEBUG, logger="flowforge"):
        flow.execute("r0", {"x": 1}, job_id="verbose")

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "job 'verbose' of flow 'logged' starts running"),
        (logging.INFO, "job 'verbose' completed"),
    ]


def test_failure_is_logged_at_warning_with_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = chain()
    flow.get_routine("r1").set_config(fail_times=1)

    with caplog.at_level(logging.INFO, logger="flowforge"):
        job = flow.execute("r0", {"x": 1}, job_id="broken")

    assert job.status is JobStatus.FAILED
    failure, end = caplog.records
    assert failure.levelno == logging.WARNING
    assert failure.getMessage() == (
        "routine 'r1' failed on slot 'input' (attempt 0) in job 'broken'"
    )
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError
    assert extra(failure) == ("broken", "r1", "input")
    assert failure.name.startswith("flowforge.")
    assert end.levelno == logging.WARNING
    assert end.getMessage() == (
        "job 'broken' failed: routine 'r1' slot 'input': RuntimeError: "
        "r1 failing as configured"
    )


def test_continued_failure_is_logged_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = chain(error_handler=ErrorHandler(ErrorStrategy.CONTINUE))
    flow.get_routine("r1").set_config(fail_times=1)

    with caplog.at_level(logging.WARNING, logger="flowforge"):
        job = flow.execute("r0", {"x": 1})

    assert job.status is JobStatus.COMPLETED
    (failure,) = caplog.records
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError


def test_retry_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    flow = chain()
    r1 = flow.get_routine("r1")
    r1.set_config(fail_times=1)
    r1.set_error_handler(ErrorHandler(ErrorStrategy.RETRY, max_retries=2))

    with caplog.at_level(logging.INFO, logger="flowforge"):
        job = flow.execute("r0", {"x": 1}, job_id="retried")

    assert job.status is JobStatus.COMPLETED
    retry, end = caplog.records
    assert retry.levelno == logging.INFO
    assert retry.getMessage() == (
        "routine 'r1' failed on slot 'input' (attempt 0) with RuntimeError; retrying"
    )
    assert retry.exc_info is None
    assert extra(retry) == ("retried", "r1", "input")
    assert end.getMessage() == "job 'retried' completed"


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
def test_each_engine_logs_failures(
    caplog: pytest.LogCaptureFixture, strategy: str
) -> None:
    flow = chain(execution_strategy=strategy)
    flow.get_routine("r2").set_config(fail_times=1)

    with caplog.at_level(logging.WARNING, logger="flowforge"):
        flow.execute("r0", {"x": 1})

    assert [extra(r)[1:] for r in caplog.records] == [("r2", "input"), (None, None)]


class FailingCheckpoints(StoreWrapper):
    """A store whose checkpoints fail."""

    def checkpoint(
        self, job_state: object, change: Change, *, owner: str, lease_until: float
    ) -> None:
        raise StoreError("disk full")


def test_store_error_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    flow = chain()
    store = FailingCheckpoints(MemoryStore())

    with caplog.at_level(logging.INFO, logger="flowforge"):
        with pytest.raises(StoreError, match="disk full"):
            flow.execute("r0", {"x": 1}, job_id="stored", store=store)

    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("job 'stored' stopped: its store failed")
    assert record.exc_info is not None and record.exc_info[0] is StoreError
    assert extra(record) == ("stored", None, None)


class InterruptsOnce(Routine):
    """Raises KeyboardInterrupt on its first delivery only."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False
        self.define_slot("input", self.handle)

    def handle(self, x: int) -> None:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt


def interrupted_flow() -> Flow:
    flow = chain(length=1)
    flow.add_routine(InterruptsOnce(), "once")
    flow.connect("r0", "output", "once", "input")
    return flow


def test_interrupted_run_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    flow = interrupted_flow()

    with caplog.at_level(logging.INFO, logger="flowforge"):
        with pytest.raises(KeyboardInterrupt):
            flow.execute("r0", {"x": 1}, job_id="stopped")

    assert [r.getMessage() for r in caplog.records] == [
        "job 'stopped' stopped by KeyboardInterrupt; it can be resumed"
    ]


def test_recovery_takeover_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    flow, store = interrupted_flow(), MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        flow.execute("r0", {"x": 1}, job_id="left", store=store)

    with caplog.at_level(logging.INFO, logger="flowforge"):
        (job,) = flow.recover(store)

    assert job.status is JobStatus.COMPLETED
    takeover, end = caplog.records
    assert takeover.levelno == logging.INFO
    # An interrupt leaves the job as of its last checkpoint, its lease let go.
    assert re.fullmatch(
        r"recovering job 'left', taken over from owner '[^']+': its process is gone",
        takeover.getMessage(),
    )
    assert extra(takeover) == ("left", None, None)
    assert end.getMessage() == "job 'left' completed"


def test_limit_failure_is_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    flow = chain(max_deliveries=2)

    with caplog.at_level(logging.INFO, logger="flowforge"):
        job = flow.execute("r0", {"x": 1}, job_id="limited")

    assert job.status is JobStatus.FAILED
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("job 'limited' failed: routine 'r2'")


class FailingLoads(StoreWrapper):
    """A store whose loads fail."""

    def load(self, job_id: str) -> JobState:
        raise StoreError("disk gone")


def test_store_error_in_recovery_is_logged_at_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow, store = interrupted_flow(), MemoryStore()
    with pytest.raises(KeyboardInterrupt):
        flow.execute("r0", {"x": 1}, job_id="unreadable", store=store)

    with caplog.at_level(logging.INFO, logger="flowforge"):
        with pytest.warns(FlowForgeWarning, match="was not recovered"):
            recovered = flow.recover(FailingLoads(store))

    assert recovered == []
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "job 'unreadable' was not recovered and stays in the store as it is: "
        "disk gone"
    )
    assert record.exc_info is not None and record.exc_info[0] is StoreError
    assert extra(record) == ("unreadable", None, None)
