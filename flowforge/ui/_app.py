"""The inspector's ASGI app: routes, responses, and the guard around actions."""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from flowforge.exceptions import FlowForgeError, JobNotFoundError
from flowforge.flow import Flow
from flowforge.job_state import JobState, JobStatus
from flowforge.store import Store
from flowforge.ui._actions import Actions, confirm_body
from flowforge.ui._html import page, text
from flowforge.ui._job_page import ACTIONS, actions_for, job_body
from flowforge.ui._jobs_page import jobs_body
from flowforge.ui._listing import SORTS, JobPage, JobQuery, read_page

__all__ = ["build_app"]

_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATIC: Final = {"inspector.css": "text/css", "inspector.js": "text/javascript"}
_LIVE: Final = (JobStatus.RUNNING, JobStatus.PENDING)
_REFUSED: Final = (
    "Actions are disabled: this inspector is read-only. Start it with "
    "flowforge ui STORE --flow module:attr --allow-actions to resume, retry or "
    "cancel jobs."
)


def build_app(
    store: Store, *, flows: Iterable[Flow] = (), allow_actions: bool = False
) -> Starlette:
    """Return the inspector app; see :func:`flowforge.ui.create_app`."""
    inspector = _Inspector(store, flows, allow_actions)
    app = Starlette(
        routes=[
            Route("/", inspector.jobs_page),
            Route("/jobs/{job_id:path}", inspector.job_page),
            Route("/poll", inspector.poll),
            Route("/confirm", inspector.confirm_page),
            Route("/actions", inspector.act, methods=["POST"]),
            Route("/static/{name}", inspector.static),
        ]
    )
    app.state.inspector = inspector
    return app


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _html(body: str, status: int = 200) -> Response:
    return Response(body, status, headers=_HEADERS, media_type="text/html")


def _query(request: Request) -> JobQuery:
    params = request.query_params
    status = params.get("status")
    page = params.get("page", "1")
    sort = params.get("sort", "updated")
    return JobQuery(
        status=status if status in {s.value for s in JobStatus} else None,
        flow_id=params.get("flow") or None,
        search=params.get("q", "").strip(),
        sort=sort if sort in SORTS else "updated",
        descending=params.get("order") != "asc",
        page=int(page) if page.isdigit() and 0 < int(page) < 10**9 else 1,
    )


class _Inspector:
    """The app's endpoints over one store; every page reads the store afresh."""

    def __init__(self, store: Store, flows: Iterable[Flow], allow_actions: bool):
        self.store = store
        self.flows = {flow.flow_id: flow for flow in flows}
        self.allow_actions = allow_actions
        self.actions = Actions(store)
        folder = importlib.resources.files("flowforge.ui") / "static"
        self.assets = {name: (folder / name).read_bytes() for name in _STATIC}

    def _page(
        self,
        request: Request,
        title: str,
        body: str,
        poll: tuple[str, str] = ("", ""),
    ) -> str:
        return page(
            title,
            body,
            base=_base(request),
            store=repr(self.store),
            poll=poll,
            read_only=not self.allow_actions,
        )

    def _message(
        self, request: Request, title: str, message: str, status: int
    ) -> Response:
        body = f'<section class="message-page"><h1>{text(title)}</h1>'
        body += f"<p>{text(message)}</p>"
        body += (
            f'<p><a href="{text(_base(request))}/">Back to the jobs</a></p></section>'
        )
        return _html(self._page(request, title, body), status)

    def jobs_page(self, request: Request) -> Response:
        """Answer the jobs page."""
        query = _query(request)
        listing = read_page(self.store, query)
        details = {r.job_id: self._load(r.job_id) for r in listing.records}
        poll = ("", "")
        if any(listing.counts.get(s.value) for s in _LIVE):
            poll = (f"{_base(request)}/poll?{request.url.query}", _signature(listing))
        body = jobs_body(_base(request), listing, query, details)
        return _html(self._page(request, "Jobs", body, poll))

    def _load(self, job_id: str) -> JobState | None:
        try:
            return self.store.load(job_id)
        except FlowForgeError:  # deleted since listed, or unreadable
            return None

    def job_page(self, request: Request) -> Response:
        """Answer one job's page, or 404."""
        job_id = str(request.path_params["job_id"])
        try:
            job = self.store.load(job_id)
        except JobNotFoundError:
            return self._message(
                request, "No such job", f"No stored job has the id {job_id!r}.", 404
            )
        except FlowForgeError as error:  # a damaged record: say so, never a 500
            return self._message(
                request, "This job cannot be read", f"{job_id!r}: {error}", 422
            )
        poll = ("", "")
        if job.status in _LIVE:
            state = self._job_state(job_id)
            poll = (f"{_base(request)}/poll?job={quote(job_id, safe='')}", state)
        flow = self.flows.get(job.flow_id)
        body = job_body(job, base=_base(request), flow=flow, allowed=self.allow_actions)
        return _html(self._page(request, job_id, body, poll))

    def _job_state(self, job_id: str) -> str:
        try:
            record = self.store.get(job_id)
        except JobNotFoundError:
            return "gone"
        return f"{record.status.value} {record.updated_at.isoformat()}"

    def poll(self, request: Request) -> Response:
        """Answer what a live page compares to decide whether to reload."""
        job_id = request.query_params.get("job")
        if job_id is not None:
            state = self._job_state(job_id)
        else:
            state = _signature(read_page(self.store, _query(request)))
        return PlainTextResponse(state, headers=_HEADERS)

    def confirm_page(self, request: Request) -> Response:
        """Ask to confirm an action; 403 when actions are not allowed."""
        if not self.allow_actions:
            return self._message(request, "Actions are disabled", _REFUSED, 403)
        action = request.query_params.get("action", "")
        job_id = request.query_params.get("job", "")
        checked = self._check(request, action, job_id)
        if isinstance(checked, Response):
            return checked
        body = confirm_body(_base(request), action, checked[1], self.actions.token)
        return _html(self._page(request, f"{ACTIONS[action]}?", body))

    def _check(
        self, request: Request, action: str, job_id: str
    ) -> tuple[Flow, JobState] | Response:
        """Return the flow and job an action needs, or the page that refuses it."""
        if action not in ACTIONS:
            return self._message(
                request, "Unknown action", f"No action {action!r}.", 400
            )
        job = self._load(job_id)
        if job is None:
            return self._message(
                request, "No such job", f"No stored job {job_id!r}.", 404
            )
        flow = self.flows.get(job.flow_id)
        if flow is None:
            message = (
                f"Job {job_id!r} belongs to flow {job.flow_id!r}; start the "
                "inspector with --flow naming it to act on its jobs."
            )
            return self._message(request, "Flow not given", message, 409)
        if action not in actions_for(job):
            message = (
                f"Job {job_id!r} is {job.status.value}: it cannot be {action}d now."
            )
            return self._message(request, "Not possible now", message, 409)
        return flow, job

    async def act(self, request: Request) -> Response:
        """Run a confirmed action, then go to the job's page; 403 if refused."""
        if not self.allow_actions:
            return self._message(request, "Actions are disabled", _REFUSED, 403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = form.get("token", [""])[0]
        if not self.actions.is_valid(token):
            message = (
                "The form's token is missing or stale: open the job and confirm again."
            )
            return self._message(request, "Action refused", message, 403)
        action, job_id = form.get("action", [""])[0], form.get("job", [""])[0]
        checked = await run_in_threadpool(self._check, request, action, job_id)
        if isinstance(checked, Response):
            return checked
        try:
            await run_in_threadpool(self.actions.start, action, *checked)
        except FlowForgeError as error:
            return self._message(request, "Action failed", str(error), 409)
        location = f"{_base(request)}/jobs/{quote(job_id, safe='')}"
        return RedirectResponse(location, status_code=303, headers=_HEADERS)

    def static(self, request: Request) -> Response:
        """Answer one of the shipped assets."""
        name = str(request.path_params["name"])
        if name not in self.assets:
            return PlainTextResponse("not found", 404)
        headers = {**_HEADERS, "Cache-Control": "max-age=3600"}
        return Response(self.assets[name], media_type=_STATIC[name], headers=headers)


def _signature(listing: JobPage) -> str:
    """Return a short digest of a page of jobs: it changes when any shown job does."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr(sorted(listing.counts.items())).encode())
    for record in listing.records:
        digest.update(f"{record.job_id}\0{record.updated_at.isoformat()}".encode())
    return digest.hexdigest()
