"""The web inspector in a real browser: Playwright drives Debian's headless chromium.

The app runs under uvicorn on a free local port. Skipped only when
``/usr/bin/chromium`` is missing (CI installs it: see ``.ci/run``). With
``FLOWFORGE_UPDATE_SCREENSHOTS=1`` the screenshots of both pages are saved
to ``docs/_static/`` for the "Inspecting jobs" page.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import _cli_flows
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from flowforge.store import SqliteStore
from flowforge.ui import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_STATIC = Path(__file__).resolve().parent.parent / "docs" / "_static"
XSS_ID = "nightly-<script>window.pwned=1</script>"
XSS_VALUE = "<img src=x onerror=window.pwned=2>"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


def fill(store: SqliteStore) -> None:
    """Jobs as an operator would find them: mostly done, some failed, one paused."""
    for n in range(24):
        bad = [3] if n % 6 == 5 else []
        _cli_flows.run_job(store, f"import-2026-12-{n + 1:02d}", [1, 2, 3], bad=bad)
    _cli_flows.paused_job(store, "reindex-7")
    flow = _cli_flows.build_retrying_flow()
    entry = {"values": [10, 20, 30, 40, "<b>bad</b>"], "bad": ["<b>bad</b>"]}
    flow.execute("numbers", entry, job_id="nightly-import", store=store)
    _cli_flows.run_job(store, XSS_ID, [XSS_VALUE], bad=[XSS_VALUE])
    spread_over_days(store)


def spread_over_days(store: SqliteStore) -> None:
    """Date the imports a day apart, over the last 24 days, for the chart."""
    now = time.time()
    with sqlite3.connect(store.path) as db:
        for n in range(24):
            db.execute(
                "UPDATE jobs SET updated_at = ? WHERE job_id = ?",
                (now - (24 - n) * 86400 + n * 997, f"import-2026-12-{n + 1:02d}"),
            )


@contextmanager
def serving(store: SqliteStore) -> Iterator[str]:
    """Serve a read-only inspector of ``store`` on a free port; yield its URL."""
    app = create_app(store, flows=[_cli_flows.build_flow()])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        running.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an inspector of a filled store."""
    store = SqliteStore(tmp_path_factory.mktemp("ui") / "jobs.db")
    fill(store)
    with serving(store) as url:
        yield url
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("FLOWFORGE_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS_STATIC / name), full_page=True)


def test_jobs_page_lists_the_jobs_and_draws_the_chart(
    page: Page, server: str, tmp_path: Path
) -> None:
    page.goto(server + "/")

    assert page.locator("table.jobs tbody tr").count() == 27
    assert page.locator("svg.jobs-chart rect.chart-bar").count() == 24
    assert page.locator(".chip.status-failed b").inner_text() == "6"
    screenshot(page, "inspector-jobs.png", tmp_path)


def test_status_filter_shows_only_those_jobs(page: Page, server: str) -> None:
    page.goto(server + "/")

    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    page.wait_for_url("**/?*status=failed*")

    statuses = page.locator("table.jobs .badge").all_inner_texts()
    assert statuses == ["failed"] * 6


def test_search_finds_a_job_by_part_of_its_id(page: Page, server: str) -> None:
    page.goto(server + "/")

    page.fill("input[name=q]", "reindex")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**q=reindex*")

    assert page.locator("a.job-link").all_inner_texts() == ["reindex-7"]


def test_failed_job_page_renders_timeline_diagram_and_error(
    page: Page, server: str, tmp_path: Path
) -> None:
    page.goto(server + "/jobs/nightly-import")

    assert page.locator("h1 .badge").inner_text() == "failed"
    bars = page.locator("svg.timeline rect.tl-bar")
    assert bars.count() >= 8
    assert page.locator("svg.timeline rect.outcome-failed").count() == 1
    assert page.locator("svg.timeline rect.outcome-retried").count() == 2
    assert page.locator("svg.timeline .tl-label").all_text_contents() == [
        "numbers", "check", "total"
    ]  # fmt: skip
    failed = page.locator("svg.ff-diagram g.ff-status-failed")
    assert failed.get_attribute("data-routine-id") == "check"
    assert failed.is_visible()
    assert page.locator("svg.ff-diagram g.ff-status-completed").count() == 2
    assert "cannot check <b>bad</b>" in page.locator(".error .message").inner_text()
    screenshot(page, "inspector-job.png", tmp_path)


def test_xss_in_a_job_id_and_error_shows_as_text(page: Page, server: str) -> None:
    page.goto(server + "/")
    page.click(f"a.job-link:text-is('{XSS_ID}')")
    page.wait_for_selector("h1 .job-id")

    assert page.locator("h1 .job-id").inner_text() == XSS_ID
    assert XSS_VALUE in page.locator(".error .message").inner_text()
    assert page.evaluate("window.pwned") is None


def test_actions_are_refused_without_allow_actions(page: Page, server: str) -> None:
    page.goto(server + "/jobs/nightly-import")

    note = page.locator(".note").inner_text()
    status = page.evaluate(
        """() => fetch("/actions", {method: "POST", body: new URLSearchParams(
            {action: "retry", job: "nightly-import", token: "x"})})
            .then(r => r.status)"""
    )

    assert "--allow-actions" in note
    assert page.locator(".actions").count() == 0
    assert status == 403
    page.goto(server + "/confirm?action=retry&job=nightly-import")
    assert page.locator("h1").inner_text() == "Actions are disabled"


def test_a_running_jobs_page_reloads_when_the_job_ends(
    page: Page, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "live.db")
    _cli_flows.abandon(store, ["live-job"])
    with serving(store) as url:
        page.goto(url + "/jobs/live-job")
        assert page.locator("h1 .badge").inner_text() == "running"
        assert "live" in (page.locator("body").get_attribute("class") or "")

        _cli_flows.build_flow().resume("live-job", store=store)

        page.wait_for_selector("h1 .badge:text-is('completed')", timeout=20_000)
    store.close()


def test_sections_the_reader_opened_stay_open_across_a_live_reload(
    page: Page, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "live.db")
    _cli_flows.abandon(store, ["live-job"])
    with serving(store) as url:
        page.goto(url + "/jobs/live-job")
        params = page.locator("details[data-key='params']")
        history = page.locator("details[data-key='history']")
        assert not params.evaluate("section => section.open")
        params.locator("summary").click()
        assert params.evaluate("section => section.open")

        _cli_flows.build_flow().resume("live-job", store=store)
        page.wait_for_selector("h1 .badge:text-is('completed')", timeout=20_000)

        assert params.evaluate("section => section.open")  # kept by the reload
        assert not history.evaluate("section => section.open")  # as it was
    store.close()
