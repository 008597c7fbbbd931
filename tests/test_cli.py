"""The ``flowforge`` command's read-only side: jobs, show, draw, run, and its errors."""

from __future__ import annotations

import importlib
import json
import re
import runpy
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import _cli_flows
import pytest
from click.testing import CliRunner, Result

from flowforge import ErrorHandler, ErrorStrategy, FlowForgeError, _payload_types
from flowforge.cli import main
from flowforge.cli._app import _describe, cli
from flowforge.store import JsonDirectoryStore, SqliteStore, Store

ROOT = Path(__file__).resolve().parent.parent
FLOW = "_cli_flows:build_flow"

Invoke = Callable[..., Result]


@pytest.fixture
def invoke() -> Invoke:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args))

    return run


@pytest.fixture(params=["sqlite", "json"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of each file backend, holding a completed and a failed job."""
    if request.param == "sqlite":
        store: Store = SqliteStore(tmp_path / "jobs.db")
        url = f"sqlite:///{tmp_path}/jobs.db"
    else:
        store = JsonDirectoryStore(tmp_path / "jobs")
        url = f"json:///{tmp_path}/jobs"
    _cli_flows.run_job(store, "done", [1, 2])
    _cli_flows.run_job(store, "broken", [1, "<b>bad</b>"], bad=["<b>bad</b>"])
    store.close()
    return url


def test_jobs_lists_each_job_with_status_and_counts(
    invoke: Invoke, store_url: str
) -> None:
    result = invoke("jobs", store_url)

    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "JOB", "FLOW", "STATUS", "UPDATED", "DELIVERIES", "ERRORS"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows["done"][2] == "completed" and rows["done"][4:] == ["5", "0"]
    assert rows["broken"][2] == "failed" and rows["broken"][4:] == ["3", "1"]
    assert lines[-1] == "2 of 2 jobs shown"


def test_jobs_json_prints_one_object_per_job(invoke: Invoke, store_url: str) -> None:
    result = invoke("jobs", store_url, "--json", "--status", "failed")

    assert result.exit_code == 0
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(i["job_id"], i["status"], i["errors"]) for i in items] == [
        ("broken", "failed", 1)
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--flow", "numbers"], 2),
        (["--flow", "other"], 0),
        (["--since", "1h"], 2),
        (["--since", "2999-01-01T00:00:00"], 0),
        (["--limit", "1"], 1),
    ],
    ids=["flow", "other-flow", "since-age", "since-time", "limit"],
)
def test_jobs_filters(
    invoke: Invoke, store_url: str, options: list[str], expected: int
) -> None:
    result = invoke("jobs", store_url, "--json", *options)

    assert result.exit_code == 0, result.stdout
    assert len(result.stdout.splitlines()) == expected


def test_show_prints_the_error_its_payload_and_traceback(
    invoke: Invoke, store_url: str
) -> None:
    result = invoke("show", store_url, "broken")

    assert result.exit_code == 0, result.stdout
    text = result.stdout
    assert text.startswith("job broken failed\n")
    assert "ValueError: cannot check <b>bad</b>" in text
    assert 'payload: {"value": "<b>bad</b>", "bad": true}' in text
    assert "Traceback (most recent call last):" in text
    assert "(failed; runs again on resume)" in text
    assert "history (last 4 of 4)" in text


def test_show_json_holds_the_whole_report(invoke: Invoke, store_url: str) -> None:
    result = invoke("show", store_url, "broken", "--json")

    report = json.loads(result.stdout)
    assert report["status"] == "failed"
    assert report["errors"][0]["payload"] == {"value": "<b>bad</b>", "bad": True}
    assert report["pending"][0]["failed"] is True
    routines = {r["routine_id"]: r for r in report["routines"]}
    assert routines["check"]["status"] == "failed"
    assert {"p50", "p95", "runs"} <= set(routines["numbers"])


def test_show_of_a_missing_job_fails_in_one_line(
    invoke: Invoke, store_url: str
) -> None:
    result = invoke("show", store_url, "nope")

    assert result.exit_code == 1
    assert result.stderr == "error: no stored job with id 'nope'\n"


@pytest.mark.parametrize(
    "url",
    [
        "jobs.db",
        "mysql://host/db",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///missing/jobs.db",
    ],
    ids=["no-scheme", "unknown-scheme", "two-slashes", "no-path", "missing-file"],
)
def test_bad_store_urls_are_usage_errors(invoke: Invoke, url: str) -> None:
    result = invoke("jobs", url)

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1


def test_bad_status_is_a_usage_error(invoke: Invoke, store_url: str) -> None:
    result = invoke("jobs", store_url, "--status", "lost")

    assert result.exit_code == 2
    assert "'lost' is not one of" in result.stderr


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_draw_prints_the_flows_own_diagram(invoke: Invoke, fmt: str) -> None:
    flow = _cli_flows.build_flow()

    result = invoke("draw", FLOW, "--format", fmt)

    assert result.exit_code == 0
    assert (
        result.stdout
        == (flow.to_mermaid() if fmt == "mermaid" else flow.to_dot()) + "\n"
    )


def test_draw_svg_prints_an_svg_document(invoke: Invoke) -> None:
    result = invoke("draw", FLOW, "--format", "svg")

    assert result.exit_code == 0
    assert result.stdout.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert 'data-routine-id="check"' in result.stdout
    assert result.stdout.endswith("</svg>\n")


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("no_colon", 2, "bad flow path 'no_colon'"),
        ("no_such_module_xyz:flow", 1, "cannot import 'no_such_module_xyz'"),
        ("_cli_flows:missing", 1, "'_cli_flows' has no attribute 'missing'"),
        ("_cli_flows:not_a_flow", 1, "is a int, not a Flow"),
        ("_cli_flows:broken", 1, "RuntimeError: the builder is broken"),
        ("_cli_flows:FLOW_ID", 1, "is a str, not a Flow"),
    ],
    ids=["malformed", "no-module", "no-attribute", "not-callable", "raises", "str"],
)
def test_flow_paths_that_fail_say_why_in_one_line(
    invoke: Invoke, target: str, code: int, message: str
) -> None:
    result = invoke("draw", target)

    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_run_executes_a_durable_job_and_reports_it(
    invoke: Invoke, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/new.db"

    result = invoke(
        "run", FLOW, "numbers", "--param", "values=[1, 2]", "--store", url,
        "--job-id", "first",
    )  # fmt: skip

    assert (result.exit_code, result.stdout) == (0, "job first completed\n")
    assert SqliteStore(tmp_path / "new.db").get("first").status == "completed"


def test_run_of_a_failing_job_exits_1_and_names_the_error(invoke: Invoke) -> None:
    result = invoke(
        "run", FLOW, "numbers", "--param", "values=[1]", "--param", "bad=[1]",
        "--job-id", "j",
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stdout == "job j failed: check: ValueError: cannot check 1\n"


def test_run_reads_param_values_as_json_else_text() -> None:
    from flowforge.cli._build import parse_params

    assert parse_params(("a=1", "b=text", 'c="1"', "d=")) == {
        "a": 1, "b": "text", "c": "1", "d": ""
    }  # fmt: skip


def test_run_refuses_a_param_without_equals(invoke: Invoke) -> None:
    result = invoke("run", FLOW, "numbers", "--param", "values")

    assert result.exit_code == 2
    assert result.stderr == "error: bad --param 'values': use key=value\n"


def test_debug_raises_the_error_with_its_cause_for_the_traceback(
    invoke: Invoke,
) -> None:
    quiet = invoke("draw", "_cli_flows:broken")
    loud = invoke("--debug", "draw", "_cli_flows:broken")

    assert quiet.exit_code == 1 and quiet.exception is not None
    assert isinstance(loud.exception, FlowForgeError)
    assert isinstance(loud.exception.__cause__, RuntimeError)


def test_errors_from_outside_flowforge_are_named_with_a_debug_hint() -> None:
    assert _describe(OSError("disk on fire")) == (
        "OSError: disk on fire (run with --debug for the traceback)"
    )


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_importing_flowforge_imports_no_cli_or_ui_library() -> None:
    code = (
        "import sys, flowforge, flowforge.store, flowforge.cli, flowforge.ui\n"
        "print(sorted(m for m in ('click', 'rich', 'starlette', 'uvicorn')"
        " if m in sys.modules))"
    )

    assert run_python(code).stdout == "[]\n"


def test_help_works_without_the_ui_libraries() -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = sys.modules['uvicorn'] = None\n"
        "from flowforge.cli import main\n"
        "main(['--help'])"
    )

    done = run_python(code)

    assert done.returncode == 0
    assert "Commands:" in done.stdout


def test_ui_without_the_ui_extra_says_what_to_install(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "jobs.db").close()
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "from flowforge.cli import main\n"
        f"main(['ui', 'sqlite:///{tmp_path}/jobs.db'])"
    )

    done = run_python(code)

    assert done.returncode == 1
    assert done.stderr == (
        "error: flowforge ui needs the ui extra (starlette is missing): "
        "pip install 'flowforge[ui]'\n"
    )


def test_the_console_script_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flowforge.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.stdout == "flowforge, version 0.1.0\n"


def test_the_docs_show_every_commands_own_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "_ext"))
    flowforge_cli_help = importlib.import_module("flowforge_cli_help")

    page = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")

    assert ".. flowforge-cli-help::" in page
    assert flowforge_cli_help.help_text("prune").startswith(
        "Usage: flowforge prune [OPTIONS] STORE"
    )
    assert set(cli.commands) == {
        "jobs", "show", "run", "resume", "cancel", "recover", "prune", "draw", "ui"
    }  # fmt: skip


def test_ui_serves_the_inspector_until_stopped(store_url: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flowforge.cli", "ui", store_url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT / "tests",
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/) \(read-only\)", line)
        assert url is not None, line
        with urllib.request.urlopen(url[1] + "jobs/broken", timeout=30) as page:
            html = page.read().decode()
        rebound = urllib.request.Request(url[1], headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(rebound, timeout=30)
    finally:
        process.terminate()
        process.communicate(timeout=30)

    assert "cannot check &lt;b&gt;bad&lt;/b&gt;" in html


def test_ui_on_a_busy_port_fails_in_one_line(invoke: Invoke, store_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])

        result = invoke("ui", store_url, "--port", port)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_main_runs_the_command_and_exits_with_its_code() -> None:
    with pytest.raises(SystemExit, match="0"):
        main(["--version"])


def test_main_without_the_cli_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)
    monkeypatch.delitem(sys.modules, "flowforge.cli._app")

    with pytest.raises(SystemExit, match=r"needs the cli extra \(click is missing\)"):
        main(["--help"])


def test_python_dash_m_runs_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["flowforge", "--version"])

    with pytest.raises(SystemExit, match="0"):
        runpy.run_module("flowforge.cli", run_name="__main__")


def test_a_read_command_refuses_a_sqlite_file_that_holds_no_store_and_leaves_it(
    invoke: Invoke, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")

    result = invoke("jobs", f"sqlite:///{other}")

    assert result.exit_code == 2
    assert "holds no FlowForge store" in result.output
    with sqlite3.connect(other) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["t"]


def test_jobs_never_prints_a_control_character_of_a_job_id(
    invoke: Invoke, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    _cli_flows.run_job(store, "esc\x1b[2J\x07", [1])
    store.close()

    result = invoke("jobs", f"sqlite:///{tmp_path}/jobs.db")

    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "esc\ufffd[2J\ufffd" in result.output


def test_prune_refuses_an_age_past_the_calendar_with_a_usage_error(
    invoke: Invoke, store_url: str
) -> None:
    result = invoke("prune", store_url, "--older-than", "99999999999d")

    assert result.exit_code == 2
    assert "bad age '99999999999d'" in result.output


PARCEL_MODULE = """
import dataclasses

from flowforge import Flow, Routine, register_payload_type


@register_payload_type(name="cli-test:Parcel")
@dataclasses.dataclass
class Parcel:
    weight: int


class Keep(Routine):
    def __init__(self):
        super().__init__()
        self.define_slot("input", self.keep)

    def keep(self, parcel):
        raise ValueError("cannot ship")


def build():
    flow = Flow("parcels")
    flow.add_routine(Keep(), "keep")
    return flow
"""


def test_import_registers_payload_types_before_a_command_reads_a_job(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_parcels.py").write_text(PARCEL_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    parcels = importlib.import_module("cli_parcels")
    store = SqliteStore(tmp_path / "jobs.db")
    parcel = parcels.Parcel(3)
    parcels.build().execute("keep", {"parcel": parcel}, job_id="p1", store=store)
    store.close()
    # A new process knows no payload types until the module that registers runs.
    monkeypatch.delitem(sys.modules, "cli_parcels")
    monkeypatch.delitem(_payload_types.BY_NAME, "cli-test:Parcel")
    monkeypatch.delitem(_payload_types.BY_TYPE, parcels.Parcel)
    url = f"sqlite:///{tmp_path}/jobs.db"

    unknown = invoke("show", url, "p1")
    shown = invoke("--import", "cli_parcels", "show", url, "p1")
    missing = invoke("--import", "no_such_module", "show", url, "p1")

    assert unknown.exit_code == 1 and "cli-test:Parcel" in unknown.stderr
    assert "(here: flowforge --import MODULE COMMAND ...)" in unknown.stderr
    assert shown.exit_code == 0
    assert "ValueError: cannot ship" in shown.stdout
    assert "weight" in shown.stdout and "3" in shown.stdout
    assert missing.exit_code == 1
    assert "cannot import 'no_such_module' (from --import" in missing.stderr


def test_show_counts_every_error_and_how_many_are_kept(
    invoke: Invoke, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    flow = _cli_flows.build_flow()
    flow.history_limit = 1  # keeps the first 100 errors and the last one
    flow.error_handler = ErrorHandler(ErrorStrategy.CONTINUE)
    values = list(range(110))
    flow.execute("numbers", {"values": values, "bad": values}, job_id="b", store=store)
    store.close()

    result = invoke("show", f"sqlite:///{tmp_path}/jobs.db", "b")

    assert "errors (110, 101 kept)" in result.stdout
