"""Actions on a job from the inspector: resume, retry, cancel, each confirmed first.

An action runs only on a POST carrying the app's token (which only its
confirmation page shows) and only when the app allows actions. A resume
runs the job to its end on a thread of its own, so the page answers at once
and refreshes while the job runs.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import final

from flowforge.exceptions import FlowForgeError
from flowforge.flow import Flow
from flowforge.job_state import JobState
from flowforge.store import Store
from flowforge.ui._html import job_href, text
from flowforge.ui._job_page import ACTIONS

__all__ = ["Actions", "confirm_body"]

logger = logging.getLogger(__name__)


@final
class Actions:
    """Runs the inspector's actions and holds the token their forms carry.

    Thread safety: safe to use from any thread.
    """

    def __init__(self, store: Store) -> None:
        """Make a fresh token for ``store``'s actions."""
        self.store = store
        self.token = secrets.token_urlsafe(32)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def is_valid(self, token: str) -> bool:
        """Return whether a form's token is this app's."""
        return secrets.compare_digest(token.encode(), self.token.encode())

    def start(self, action: str, flow: Flow, job: JobState) -> None:
        """Cancel ``job`` now, or resume it on a thread of its own.

        Raises:
            FlowForgeError: If the job's status forbids a cancel.
        """
        if action == "cancel":
            flow.cancel(job, store=self.store)
            return
        thread = threading.Thread(
            target=self._resume, args=(flow, job.job_id), daemon=True
        )
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _resume(self, flow: Flow, job_id: str) -> None:
        try:
            flow.resume(job_id, store=self.store)
        except FlowForgeError:
            logger.exception("the inspector could not resume job %r", job_id)

    def wait(self, timeout: float) -> bool:
        """Wait for the resumes started so far; return whether all ended in time."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)


def confirm_body(base: str, action: str, job: JobState, token: str) -> str:
    """Return the page that asks to confirm ``action`` on ``job``."""
    effects = {
        "resume": "continues the job from its pending deliveries until it ends",
        "retry": "runs the failed delivery again, then the rest of the job",
        "cancel": "drops the job's pending deliveries and ends it for good",
    }
    return (
        f'<section class="confirm"><h1>{text(ACTIONS[action])}?</h1>'
        f'<p>Job <code class="job-id">{text(job.job_id)}</code> '
        f"({text(job.status.value)}): this {effects[action]}.</p>"
        f'<form method="post" action="{text(base)}/actions">'
        f'<input type="hidden" name="action" value="{text(action)}">'
        f'<input type="hidden" name="job" value="{text(job.job_id)}">'
        f'<input type="hidden" name="token" value="{text(token)}">'
        f'<button type="submit" class="button action-{text(action)}">'
        f"Yes, {text(ACTIONS[action].lower())}</button> "
        f'<a class="button secondary" href="{job_href(base, job.job_id)}">'
        "No, go back</a></form></section>"
    )
