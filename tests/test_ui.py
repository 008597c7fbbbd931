"""The web inspector through Starlette's test client: pages, escaping, actions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import _cli_flows
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from flowforge import ErrorHandler, ErrorStrategy, Flow, JobStatus, Routine
from flowforge.store import JsonDirectoryStore, MemoryStore, SqliteStore, Store
from flowforge.ui import create_app
from flowforge.ui._html import seconds
from flowforge.ui._listing import JobQuery, _generic_page, read_page

XSS_ID = "<script>window.pwned=1</script>"
XSS_VALUE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A store with a completed, a failed, a paused and an XSS-laden failed job."""
    store = _cli_flows.fill(tmp_path / "jobs.db")
    _cli_flows.paused_job(store, "paused")
    _cli_flows.run_job(store, XSS_ID, [XSS_VALUE], bad=[XSS_VALUE])
    yield store
    store.close()


def client(store: Store, *, allow_actions: bool = False) -> TestClient:
    flows = [_cli_flows.build_lenient_flow()]
    return TestClient(create_app(store, flows=flows, allow_actions=allow_actions))


def job_ids(html: str) -> list[str]:
    return re.findall(r'class="job-link" href="[^"]*">([^<]*)</a>', html)


def test_jobs_page_lists_every_job_with_counts_per_status(store: SqliteStore) -> None:
    response = client(store).get("/")

    assert response.status_code == 200
    assert len(job_ids(response.text)) == 4
    assert "failed <b>2</b>" in response.text
    assert "paused <b>1</b>" in response.text
    assert 'class="jobs-chart"' in response.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", ["&lt;script&gt;window.pwned=1&lt;/script&gt;", "broken"]),
        ("status=paused", ["paused"]),
        ("flow=numbers&q=BRO", ["broken"]),
        ("flow=other", []),
        ("sort=job&order=asc", ["&lt;script&gt;window.pwned=1&lt;/script&gt;",
                                "broken", "done", "paused"]),
    ],
    ids=["failed", "paused", "search", "other-flow", "sorted"],
)  # fmt: skip
def test_jobs_page_filters_sorts_and_searches(
    store: SqliteStore, query: str, expected: list[str]
) -> None:
    response = client(store).get(f"/?{query}")

    shown = job_ids(response.text)
    assert shown == expected if "sort" in query else sorted(shown) == sorted(expected)


def test_jobs_page_pages_on_the_server(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "many.db")
    _cli_flows.abandon(store, [f"job-{n:03d}" for n in range(120)])

    first = client(store).get("/?sort=job&order=asc")
    third = client(store).get("/?sort=job&order=asc&page=3")

    assert job_ids(first.text)[:2] == ["job-000", "job-001"]
    assert len(job_ids(first.text)) == 50
    assert job_ids(third.text) == [f"job-{n:03d}" for n in range(100, 120)]
    assert "page 3 of 3 · 120 jobs" in third.text


QUERIES = [
    JobQuery(),
    JobQuery(status="failed"),
    JobQuery(flow_id="numbers", search="o", sort="job", descending=False),
    JobQuery(sort="flow", page=2, per_page=2),
    JobQuery(search="%_"),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q)[8:40])
def test_sqlite_pages_equal_the_generic_ones(
    store: SqliteStore, query: JobQuery
) -> None:
    fast = read_page(store, query)
    generic = _generic_page(store, query)

    assert [r.job_id for r in fast.records] == [r.job_id for r in generic.records]
    assert (fast.total, fast.counts, fast.flows) == (
        generic.total,
        generic.counts,
        generic.flows,
    )
    assert sum(fast.histogram) == sum(generic.histogram) == fast.total


@pytest.mark.parametrize("kind", ["memory", "json"])
def test_other_stores_are_listed_the_generic_way(tmp_path: Path, kind: str) -> None:
    store: Store = MemoryStore() if kind == "memory" else JsonDirectoryStore(tmp_path)
    _cli_flows.run_job(store, "broken", [1], bad=[1])

    response = client(store).get("/?status=failed")

    assert job_ids(response.text) == ["broken"]


def test_job_page_shows_timeline_diagram_error_payload_and_figures(
    store: SqliteStore,
) -> None:
    response = client(store).get("/jobs/broken")

    html = response.text
    assert response.status_code == 200
    assert html.count('class="tl-bar') == 4
    assert 'class="tl-bar outcome-failed"' in html
    assert 'class="ff-routine ff-status-failed" data-routine-id="check"' in html
    assert 'class="ff-routine ff-status-completed" data-routine-id="total"' in html
    assert "ValueError" in html and "cannot check &lt;b&gt;bad&lt;/b&gt;" in html
    assert "Traceback (most recent call last)" in html
    assert "&quot;value&quot;: &quot;&lt;b&gt;bad&lt;/b&gt;&quot;" in html
    assert "<th>p95</th>" in html


def test_job_page_without_its_flow_explains_how_to_draw_it(store: SqliteStore) -> None:
    app = create_app(store)

    html = TestClient(app).get("/jobs/broken").text

    assert "Name the flow to see its diagram" in html


def test_user_data_is_escaped_everywhere(store: SqliteStore) -> None:
    jobs = client(store).get("/").text
    job = client(store).get(f"/jobs/{XSS_ID}").text

    for html in (jobs, job):
        assert "<script>window" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in job
    assert "cannot check &lt;img src=x onerror=alert(1)&gt;" in job


def test_pages_forbid_inline_scripts(store: SqliteStore) -> None:
    response = client(store).get("/")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_missing_job_is_404(store: SqliteStore) -> None:
    response = client(store).get("/jobs/nope")

    assert response.status_code == 404
    assert "No stored job has the id &#x27;nope&#x27;." in response.text


def test_assets_ship_in_the_package(store: SqliteStore) -> None:
    http = client(store)

    assert (
        http.get("/static/inspector.css").headers["content-type"].startswith("text/css")
    )
    assert "data-poll" in http.get("/static/inspector.js").text
    assert http.get("/static/other.js").status_code == 404


def test_read_only_app_refuses_every_action_with_403(store: SqliteStore) -> None:
    http = client(store)

    confirm = http.get("/confirm?action=retry&job=broken")
    act = http.post("/actions", data={"action": "retry", "job": "broken"})
    job = http.get("/jobs/broken").text

    assert confirm.status_code == act.status_code == 403
    assert "Actions are disabled: this inspector is read-only." in act.text
    assert "--allow-actions" in job and 'href="/confirm' not in job
    assert store.get("broken").status is JobStatus.FAILED


def test_actions_are_never_taken_on_get(store: SqliteStore) -> None:
    http = client(store, allow_actions=True)

    assert http.get("/actions?action=retry&job=broken").status_code == 405
    assert http.get("/confirm?action=retry&job=broken").status_code == 200
    assert store.get("broken").status is JobStatus.FAILED


def test_an_action_without_the_confirmation_token_is_refused(
    store: SqliteStore,
) -> None:
    http = client(store, allow_actions=True)

    response = http.post(
        "/actions", data={"action": "retry", "job": "broken", "token": "guess"}
    )

    assert response.status_code == 403
    assert "token is missing or stale" in response.text
    assert store.get("broken").status is JobStatus.FAILED


def confirm_and_post(http: TestClient, action: str, job_id: str) -> int:
    page = http.get(f"/confirm?action={action}&job={job_id}").text
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token is not None
    response = http.post(
        "/actions",
        data={"action": action, "job": job_id, "token": token[1]},
        follow_redirects=False,
    )
    return response.status_code


def test_retry_after_confirmation_resumes_the_failed_job(store: SqliteStore) -> None:
    app = create_app(store, flows=[_cli_flows.build_lenient_flow()], allow_actions=True)
    http = TestClient(app)

    status = confirm_and_post(http, "retry", "broken")

    assert status == 303
    assert app.state.inspector.actions.wait(timeout=30)
    assert store.get("broken").status is JobStatus.COMPLETED


def test_cancel_after_confirmation_cancels_the_paused_job(store: SqliteStore) -> None:
    http = client(store, allow_actions=True)

    assert confirm_and_post(http, "cancel", "paused") == 303
    assert store.get("paused").status is JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("action", "job_id", "code"),
    [("explode", "broken", 400), ("retry", "nope", 404), ("cancel", "done", 409)],
    ids=["unknown-action", "missing-job", "wrong-status"],
)
def test_impossible_actions_are_refused_with_a_reason(
    store: SqliteStore, action: str, job_id: str, code: int
) -> None:
    response = client(store, allow_actions=True).get(
        f"/confirm?action={action}&job={job_id}"
    )

    assert response.status_code == code


def test_actions_need_the_jobs_flow(store: SqliteStore) -> None:
    http = TestClient(create_app(store, allow_actions=True))

    response = http.get("/confirm?action=retry&job=broken")

    assert response.status_code == 409
    assert "start the inspector with --flow naming it" in response.text


def test_the_app_mounts_under_a_path(store: SqliteStore) -> None:
    outer = Starlette(routes=[Mount("/ops/inspector", app=create_app(store))])

    html = TestClient(outer).get("/ops/inspector/").text

    assert 'href="/ops/inspector/static/inspector.css"' in html
    assert 'href="/ops/inspector/jobs/broken"' in html
    job = TestClient(outer).get("/ops/inspector/jobs/broken")
    assert job.status_code == 200


def test_pages_of_running_jobs_poll_for_changes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    _cli_flows.abandon(store, ["running"])
    http = client(store)

    job = http.get("/jobs/running").text
    state = re.search(r'data-poll-state="([^"]+)"', job)
    polled = http.get("/poll?job=running").text

    assert state is not None and state[1] == polled
    assert 'data-poll="/poll?job=running"' in job
    assert "data-poll=" in http.get("/").text


def test_job_page_offers_the_actions_its_status_allows(store: SqliteStore) -> None:
    failed = client(store, allow_actions=True).get("/jobs/broken").text
    paused = client(store, allow_actions=True).get("/jobs/paused").text

    assert 'href="/confirm?action=retry&amp;job=broken"' in failed
    assert "action=resume&amp;job=paused" in paused
    assert "action=cancel&amp;job=paused" in paused


def test_job_page_says_actions_need_the_flow(store: SqliteStore) -> None:
    html = TestClient(create_app(store, allow_actions=True)).get("/jobs/broken").text

    assert "start the inspector with <code>--flow</code> naming flow" in html


def test_polling_a_deleted_job_answers_gone(store: SqliteStore) -> None:
    http = client(store)

    assert http.get("/poll?job=nope").text == "gone"
    assert len(http.get("/poll?status=failed").text) == 16


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2.5, "2.50 s"), (0.0123, "12.3 ms"), (0.0000042, "4 µs"), (None, "-")],
    ids=["seconds", "milliseconds", "microseconds", "unknown"],
)
def test_durations_read_naturally(value: float | None, shown: str) -> None:
    assert seconds(value) == shown


def test_diagram_marks_routines_with_pending_work_as_waiting(
    store: SqliteStore,
) -> None:
    html = client(store).get("/jobs/paused").text

    assert 'class="ff-routine ff-status-waiting" data-routine-id="check"' in html


def test_a_job_page_of_a_damaged_record_says_so_instead_of_failing(
    tmp_path: Path,
) -> None:
    store = JsonDirectoryStore(tmp_path / "jobs")
    _cli_flows.run_job(store, "damaged", [1])
    path = next((tmp_path / "jobs").glob("*.json"))
    path.write_text(path.read_text()[:40])

    response = client(store).get("/jobs/damaged")

    assert response.status_code == 422
    assert "This job cannot be read" in response.text


def test_a_page_number_past_any_int_shows_the_first_page(store: SqliteStore) -> None:
    response = client(store).get("/?page=99999999999999999999")

    assert response.status_code == 200


class _Halves(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("records", self.split)
        self.define_event("left")
        self.define_event("right")

    def split(self, records: list[int]) -> None:
        for record_id in records:
            self.emit("left", record_id=record_id, half="<l>")
            if record_id != 2:  # record 2's right half never comes
                self.emit("right", record_id=record_id, half="r")


class _Join(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot(
            "parts", self.merge, "append", join=True, correlate="record_id"
        )

    def merge(self, **parts: object) -> None:
        pass


def test_job_page_lists_a_correlated_joins_waiting_groups(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    flow = Flow("pairs")
    flow.add_routine(_Halves(), "split")
    flow.add_routine(_Join(), "join")
    flow.connect("split", "left", "join", "parts")
    flow.connect("split", "right", "join", "parts")
    flow.execute("split", {"records": [1, 2, 3]}, job_id="pairs-1", store=store)

    html = client(store).get("/jobs/pairs-1").text

    assert "Waiting groups (1)" in html
    [row] = re.findall(r'<table class="groups">.*?</table>', html, re.S)
    assert "join.parts" in row and "#0" in row and "#1" not in row
    assert "&lt;l&gt;" in row and "<l>" not in row  # payloads are escaped
    flow.execute("split", {"records": [1, 3]}, job_id="pairs-2", store=store)
    complete = client(store).get("/jobs/pairs-2")
    assert complete.status_code == 200 and "Waiting groups" not in complete.text
    store.close()


class _Rejects(Routine):
    def __init__(self) -> None:
        super().__init__()
        self.define_slot("items", self.take)

    def take(self, count: int) -> None:
        raise ValueError(f"rejected {count}")


def _many_errors(store: Store, job_id: str) -> None:
    """A job with 200 failures, of which it keeps the first 100 and the last 5."""
    flow = Flow("rejects", history_limit=5)
    flow.add_routine(_Rejects(), "rejects")
    flow.get_routine("rejects").set_error_handler(ErrorHandler(ErrorStrategy.CONTINUE))
    flow.add_routine(_Halves(), "split")
    flow.connect("split", "left", "rejects", "items", {"record_id": "count"})
    flow.execute("split", {"records": [2] * 200}, job_id=job_id, store=store)


def test_pages_count_every_error_and_say_how_many_are_kept(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.db")
    _many_errors(store, "many")

    page = client(store).get("/jobs/many").text
    listing = client(store).get("/").text

    assert "Errors (200)" in page
    assert "The job keeps 105 of its 200 errors" in page
    assert page.count('<article class="error">') == 105
    [row] = re.findall(r"<tr>(?:(?!</tr>).)*>many</a>.*?</tr>", listing, re.S)
    assert '<span class="errors">200</span>' in row
    store.close()
