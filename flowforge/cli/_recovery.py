"""Recover a flow's abandoned jobs one by one, with a progress bar and a summary.

``Flow.recover`` recovers them all in one call; the command resumes each
candidate (a running or pending job of the flow) with ``Flow.resume`` instead,
which takes over a job only when its owner is dead or its lease expired, so
that it can show progress and say what happened to each job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from flowforge.exceptions import FlowForgeError, JobNotFoundError, JobStateError
from flowforge.flow import Flow
from flowforge.job_state import JobStatus
from flowforge.store import JobRecord, Store

__all__ = ["PROGRESS_FROM", "Summary", "recover_with_progress"]

PROGRESS_FROM: Final = 20
"""Fewer candidate jobs than this are recovered without a progress bar."""


@dataclass(slots=True)
class Summary:
    """What ``recover`` did: jobs by final status, skipped, and refused with why."""

    candidates: int = 0
    ended: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Recovered jobs that failed again."""
        return self.ended.get(JobStatus.FAILED.value, 0)

    def text(self) -> str:
        """Return the summary as lines of text."""
        recovered = sum(self.ended.values())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.ended.items()))
        lines = [
            f"recovered {recovered} of {self.candidates} running or pending jobs"
            + (f" ({parts})" if parts else ""),
            f"left alone {self.skipped} (a live process runs them)",
        ]
        if self.refused:
            lines.append(f"not recovered {len(self.refused)}:")
            lines += [f"  {reason}" for reason in self.refused]
        return "\n".join(lines)


def recover_with_progress(flow: Flow, store: Store, out: Console) -> Summary:
    """Resume each abandoned job of ``flow`` in ``store``; return the summary."""
    records = store.list_jobs(flow_id=flow.flow_id, status=JobStatus.RUNNING)
    records += store.list_jobs(flow_id=flow.flow_id, status=JobStatus.PENDING)
    summary = Summary(candidates=len(records))
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(
        "recovering", *columns, console=out, disable=len(records) < PROGRESS_FROM
    ) as progress:
        task = progress.add_task("recover", total=len(records))
        for record in records:
            _recover_one(flow, store, record, summary)
            progress.advance(task)
    return summary


def _recover_one(flow: Flow, store: Store, record: JobRecord, summary: Summary) -> None:
    try:
        job = flow.resume(record.job_id, store=store)
    except JobNotFoundError:  # deleted since listed: nothing to recover
        summary.candidates -= 1
    except JobStateError as error:
        if error.status in (JobStatus.RUNNING.value, JobStatus.PENDING.value):
            summary.skipped += 1  # its owner is alive
        else:  # it ended since listed
            summary.candidates -= 1
    except FlowForgeError as error:  # unreadable, another flow, store failed
        summary.refused.append(f"{record.job_id}: {error}")
    else:
        status = job.status.value
        summary.ended[status] = summary.ended.get(status, 0) + 1
