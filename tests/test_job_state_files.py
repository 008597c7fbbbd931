"""JobState.save and JobState.load: atomic writes, exact payloads, clear refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from flowforge import (
    ErrorHandler,
    ErrorStrategy,
    Flow,
    FlowForgeError,
    JobState,
    JobStatus,
    Routine,
    SerializationError,
)
from flowforge.testing import FakeClock, Recorder

Document = dict[str, object]


class Gate(Routine):
    """Pass its input on; pause the job on the run given by ``pause_at``."""

    def __init__(self) -> None:
        super().__init__()
        self.controller: Flow | None = None
        self.define_slot("input", self.handle)
        self.define_event("output")

    def handle(self, /, **data: object) -> None:
        run = self.increment_stat("runs")
        if self.controller is not None and self.get_config("pause_at") == run:
            self.controller.pause(reason="checkpoint", checkpoint={"run": run})
        self.emit("output", **data)


def gated_flow() -> Flow:
    """Build ``gate -> sink``; the gate pauses on its first run."""
    flow = Flow("files", clock=FakeClock())
    gate = Gate()
    gate.controller = flow
    gate.set_config(pause_at=1)
    flow.add_routine(gate, "gate")
    flow.add_routine(Recorder(), "sink")
    flow.connect("gate", "output", "sink", "input")
    return flow


def paused_job(entry_params: dict[str, object] | None = None) -> JobState:
    job = gated_flow().execute("gate", entry_params or {"n": 1})
    assert job.status is JobStatus.PAUSED and job.pending and job.slot_buffers
    return job


def completed_job(entry_params: dict[str, object] | None = None) -> JobState:
    flow = gated_flow()
    flow.routines["gate"].set_config(pause_at=None)
    job = flow.execute("gate", entry_params or {"n": 2})
    assert job.status is JobStatus.COMPLETED
    return job


def failed_job() -> JobState:
    flow = gated_flow()
    flow.routines["gate"].set_config(pause_at=None)
    flow.routines["sink"].set_config(fail_times=1)
    flow.routines["sink"].set_error_handler(ErrorHandler(ErrorStrategy.STOP))
    job = flow.execute("gate", {"n": 3})
    assert job.status is JobStatus.FAILED and job.errors
    return job


def typed(value: object) -> object:
    """Return a picture of ``value`` that tells apart what ``==`` does not."""
    kind = type(value).__qualname__
    if isinstance(value, dict):
        return (kind, [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (kind, [typed(item) for item in value])
    if isinstance(value, (set, frozenset)):
        return (kind, sorted(repr(typed(item)) for item in value))
    if isinstance(value, (datetime, time)):
        return (kind, value.isoformat(), repr(value.tzinfo))
    if isinstance(value, (float, Decimal)):
        return (kind, repr(value))
    return (kind, value)


def leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name != keep)


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_job",
    [paused_job, completed_job, failed_job],
    ids=["paused", "completed", "failed"],
)
def test_saved_job_state_loads_equal(
    tmp_path: Path, make_job: Callable[[], JobState]
) -> None:
    job = make_job()
    path = tmp_path / "job.json"

    job.save(path)
    loaded = JobState.load(path)

    assert loaded == job
    assert loaded.serialize() == job.serialize()


def test_load_accepts_a_str_path(tmp_path: Path) -> None:
    job = paused_job()
    job.save(str(tmp_path / "job.json"))

    loaded = JobState.load(str(tmp_path / "job.json"))

    assert loaded == job


PAYLOAD: dict[str, object] = {
    "pair": (1, "two"),
    "nested_tuple": ((1, 2), [3, (4,)]),
    "tags": {"a", "b", (1, 2)},
    "frozen": frozenset({1, 2, 3}),
    "raw": b"\x00\xffbytes",
    "buffer": bytearray(b"abc"),
    "naive": datetime(2026, 1, 2, 3, 4, 5, 678901),
    "utc": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "offset": datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-5))),
    "zoned": datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
    "day": date(2026, 2, 28),
    "clock": time(23, 59, 59, 1, tzinfo=timezone(timedelta(hours=9))),
    "span": timedelta(days=-1, seconds=5, microseconds=7),
    "price": Decimal("1.10"),
    "tiny": Decimal("-1E-30"),
    "id": UUID("12345678-1234-5678-1234-567812345678"),
    "huge": 2**80,
    "negative_zero": -0.0,
    "infinite": float("inf"),
    "flag": True,
    "one": 1,
    "int_keys": {1: "a", (2, 3): "b"},
    "looks_like_a_tag": {"__ff__": "tuple", "v": [1, 2]},
    "rows": [{"id": UUID(int=1), "at": date(2026, 1, 1)}],
}


def test_common_payload_types_survive_save_and_load_exactly(tmp_path: Path) -> None:
    job = paused_job(PAYLOAD)
    path = tmp_path / "job.json"

    job.save(path)
    loaded = JobState.load(path)

    assert loaded == job
    assert typed(loaded.entry_params) == typed(PAYLOAD)
    assert typed(loaded.pending[-1].data) == typed(PAYLOAD)
    assert typed(loaded.slot_buffers[("gate", "input")]) == typed(PAYLOAD)


def test_loaded_job_resumes_with_the_exact_payload(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    paused_job(PAYLOAD).save(path)
    flow = gated_flow()

    job = flow.resume(JobState.load(path))

    assert job.status is JobStatus.COMPLETED
    sink = flow.routines["sink"]
    assert isinstance(sink, Recorder)
    assert typed(sink.received) == typed([PAYLOAD])


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"rows": [object()]}, "entry_params['rows'][0]"),
        ({"config": {"hook": print}}, "entry_params['config']['hook']"),
        ({"tags": {1, 2, Path("p")}}, "entry_params['tags']{...}"),
        ({"when": [date(2026, 1, 1), JobStatus.PAUSED]}, "entry_params['when'][1]"),
    ],
    ids=["object_in_list", "function_in_dict", "path_in_set", "enum_member"],
)
def test_save_refuses_an_unsaveable_payload_naming_where_it_is(
    tmp_path: Path, params: dict[str, object], where: str
) -> None:
    job = completed_job(params)
    path = tmp_path / "job.json"

    with pytest.raises(SerializationError, match=re.escape(where) + ": cannot save"):
        job.save(path)

    assert os.listdir(tmp_path) == []


def test_save_refuses_an_unsaveable_pending_payload_naming_where_it_is(
    tmp_path: Path,
) -> None:
    job = paused_job({"rows": [1, 2]})
    job.pending[-1].data["rows"] = [1, object()]

    with pytest.raises(
        SerializationError, match=r"pending\[\d+\]\.data\['rows'\]\[1\]: cannot save"
    ):
        job.save(tmp_path / "job.json")


# -- atomic writes ---------------------------------------------------------------------


def test_save_replaces_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.json"
    paused_job({"n": 1}).save(path)
    newer = completed_job()

    newer.save(path)

    assert JobState.load(path) == newer
    assert leftovers(tmp_path, "job.json") == []


def test_save_into_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "job.json"
    folder = re.escape(repr(str(path.parent)))

    with pytest.raises(SerializationError, match=f"folder {folder} does not exist"):
        completed_job().save(path)

    assert os.listdir(tmp_path) == []


def test_save_onto_a_folder_refuses_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.json"
    path.mkdir()
    (path / "keep").write_text("a folder where the file should go")

    with pytest.raises(SerializationError, match="job.json.*no regular file"):
        completed_job().save(path)

    assert leftovers(tmp_path, "job.json") == []
    assert os.listdir(path) == ["keep"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="needs POSIX permissions that apply (root writes to read-only folders)",
)
def test_save_into_a_read_only_folder_raises_os_error_and_keeps_the_old_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.json"
    old = paused_job()
    old.save(path)
    before = path.read_bytes()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OSError, match="Permission denied"):
            completed_job().save(path)
    finally:
        tmp_path.chmod(0o700)

    assert path.read_bytes() == before
    assert leftovers(tmp_path, "job.json") == []


# A child process caps the size of the files it may write (as a full disk would),
# so that the write of the new file fails halfway; root cannot lift that cap.
FAILING_WRITE = """
import resource, signal, sys
from flowforge import JobState

job = JobState.load(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
try:
    job.save(sys.argv[2])
except OSError as error:
    print(type(error).__name__, error.errno)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX file size limits")
def test_save_that_fails_while_writing_keeps_the_old_file_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source" / "job.json"
    source.parent.mkdir()
    completed_job().save(source)
    folder = tmp_path / "target"
    folder.mkdir()
    path = folder / "job.json"
    path.write_text("old contents")

    child = subprocess.run(
        [sys.executable, "-c", FAILING_WRITE, str(source), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert child.stdout.split() == ["OSError", "27"]  # EFBIG: file too large
    assert path.read_text() == "old contents"
    assert leftovers(folder, "job.json") == []


# -- files that are not job states -----------------------------------------------------


def saved_document(tmp_path: Path) -> Document:
    """Save a paused job in ``tmp_path`` and return the file's JSON document."""
    path = tmp_path / "job.json"
    paused_job().save(path)
    document = json.loads(path.read_text())
    assert isinstance(document, dict)
    return document


def state_of(document: Document) -> Document:
    state = document["job_state"]
    assert isinstance(state, dict)
    return state


def first(document: Document, field: str) -> list[object]:
    rows = state_of(document)[field]
    assert isinstance(rows, list) and isinstance(rows[0], list)
    return rows[0]


Edit = Callable[[Document], object]
BAD_DOCUMENTS: list[tuple[str, Edit, str]] = [
    ("future_version", lambda d: state_of(d).update(version=99), "version 99"),
    ("missing_version", lambda d: state_of(d).pop("version"), "no 'version' key"),
    ("no_job_state", lambda d: d.pop("job_state"), "must be a dict"),
    ("missing_field", lambda d: state_of(d).pop("flow_id"), "'flow_id' is missing"),
    (
        "wrong_type",
        lambda d: state_of(d).update(delivery_count="3"),
        "'delivery_count' must be int, got str",
    ),
    ("bool_for_int", lambda d: state_of(d).update(next_seq=True), "'next_seq'"),
    ("unknown_status", lambda d: state_of(d).update(status="asleep"), "'asleep'"),
    ("pending_not_list", lambda d: state_of(d).update(pending={}), "'pending'"),
    ("pending_row_short", lambda d: first(d, "pending").pop(), "pending"),
    (
        "pending_seq_str",
        lambda d: first(d, "pending").__setitem__(0, "1"),
        "'seq' must be int",
    ),
    (
        "buffer_key_wrong_type",
        lambda d: first(d, "slot_buffers").__setitem__(0, 7),
        "slot_buffers",
    ),
    (
        "join_key_wrong_type",
        lambda d: state_of(d).update(join_arrivals=[[7, "input", [0]]]),
        "join_arrivals",
    ),
    (
        "join_sources_not_ints",
        lambda d: state_of(d).update(join_arrivals=[["gate", "input", ["x"]]]),
        "join_arrivals",
    ),
    (
        "buffer_not_a_payload",
        lambda d: first(d, "slot_buffers").__setitem__(2, [1]),
        "slot_buffers",
    ),
    (
        "unknown_payload_tag",
        lambda d: state_of(d).update(entry_params={"n": {"__ff__": "pickle", "v": ""}}),
        "entry_params\\['n'\\]: unknown tag 'pickle'",
    ),
    ("history_row_short", lambda d: first(d, "history").pop(), "history"),
    ("tracker_missing", lambda d: state_of(d).pop("tracker"), "execution tracker"),
    (
        "routine_state_not_dict",
        lambda d: state_of(d).update(routine_states=[5]),
        "routine state",
    ),
]
BAD_TIMES: list[tuple[str, str, object, str]] = [
    ("not_a_date", "created_at", "yesterday", "Invalid isoformat string"),
    ("number", "created_at", 1767225600, "'created_at' must be str"),
    ("month_13", "started_at", "2026-13-01T00:00:00+00:00", "month must be in"),
    ("no_time_zone", "created_at", "2026-01-01T00:00:00", "created_at"),
    ("missing", "created_at", None, "created_at"),
]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [(edit, problem) for _, edit, problem in BAD_DOCUMENTS],
    ids=[name for name, _, _ in BAD_DOCUMENTS],
)
def test_load_of_a_damaged_job_state_names_the_file_and_the_problem(
    tmp_path: Path, edit: Edit, problem: str
) -> None:
    document = saved_document(tmp_path)
    edit(document)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(document))

    with pytest.raises(SerializationError, match=re.escape(str(path))) as caught:
        JobState.load(path)

    assert re.search(problem, str(caught.value)), str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [case[1:] for case in BAD_TIMES],
    ids=[case[0] for case in BAD_TIMES],
)
def test_load_of_a_bad_timestamp_names_the_file_and_the_field(
    tmp_path: Path, field: str, value: object, problem: str
) -> None:
    document = saved_document(tmp_path)
    state_of(document)[field] = value
    path = tmp_path / "job.json"
    path.write_text(json.dumps(document))

    with pytest.raises(SerializationError, match=re.escape(str(path))) as caught:
        JobState.load(path)

    assert re.search(problem, str(caught.value)), str(caught.value)


def write_truncated(path: Path) -> None:
    paused_job().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES: list[tuple[str, Callable[[Path], object], str]] = [
    ("missing", lambda path: None, "cannot read job state file"),
    ("empty", lambda path: path.write_bytes(b""), "is empty"),
    ("blank", lambda path: path.write_text(" \n\t"), "is empty"),
    ("truncated", write_truncated, "is not valid JSON \\(truncated"),
    ("not_json", lambda path: path.write_text("job: done"), "is not valid JSON"),
    ("not_utf8", lambda path: path.write_bytes(b'{"kind": "\xff\xfe"}'), "utf-8"),
    ("foreign_dict", lambda path: path.write_text('{"hello": 1}'), "is not a Flow"),
    ("json_list", lambda path: path.write_text("[1, 2]"), "is not a FlowForge"),
    ("json_null", lambda path: path.write_text("null"), "is not a FlowForge"),
    (
        "other_kind",
        lambda path: path.write_text('{"kind": "other", "job_state": {}}'),
        "is not a FlowForge job state file",
    ),
]


@pytest.mark.parametrize(
    ("write", "problem"),
    [(write, problem) for _, write, problem in BAD_FILES],
    ids=[name for name, _, _ in BAD_FILES],
)
def test_load_of_a_file_that_is_not_a_job_state_names_the_file_and_the_problem(
    tmp_path: Path, write: Callable[[Path], object], problem: str
) -> None:
    path = tmp_path / "job.json"
    write(path)

    with pytest.raises(SerializationError, match=re.escape(str(path))) as caught:
        JobState.load(path)

    assert re.search(problem, str(caught.value)), str(caught.value)
    assert isinstance(caught.value, FlowForgeError)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda folder: os.mkfifo(folder / "job.json"), "no regular file"),
        (lambda folder: (folder / "job.json").symlink_to("/dev/null"), "a link"),
        (lambda folder: (folder / "afile").write_text("x"), "is not a folder"),
    ],
    ids=["fifo", "link", "file-as-folder"],
)
def test_save_refuses_a_target_that_is_no_regular_file(
    tmp_path: Path, make: Callable[[Path], object], problem: str
) -> None:
    make(tmp_path)
    target = tmp_path / (
        "afile/job.json" if problem == "is not a folder" else "job.json"
    )

    before = sorted(os.listdir(tmp_path))

    with pytest.raises(SerializationError, match=problem):
        completed_job().save(target)

    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("name", ["", "a\0b.json"], ids=["empty", "nul"])
def test_save_refuses_a_name_that_is_no_file_name(name: str) -> None:
    with pytest.raises(SerializationError, match="not a file name"):
        completed_job().save(name)


def test_save_refuses_a_name_too_long_for_its_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="longer than the"):
        completed_job().save(tmp_path / ("a" * 250 + ".json"))
