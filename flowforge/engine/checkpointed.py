"""The sequential loop's inlined path for durable jobs: each delivery checkpointed.

The loop runs a durable job's direct deliveries inlined too. These wrappers of
its finisher and of ``Runtime.failed`` describe what the delivery changed (a
:class:`~flowforge.store.Change`; nothing of the delivery is recorded yet when
its handler returns) and, once the delivery is recorded, snapshot its
routine's stats and commit it, as ``Runtime.deliver_checkpointed`` does on the
general path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Final

from flowforge.engine.stats import snapshot_one, snapshot_routine
from flowforge.exceptions import SerializationError
from flowforge.record import Delivery
from flowforge.store.base import Change

if TYPE_CHECKING:
    from flowforge.engine.plan import Plan
    from flowforge.engine.runtime import Ready, Runtime
    from flowforge.job_state import JobState
    from flowforge.record import RoutineState
    from flowforge.types import Payload

    Emissions = list[tuple[str, Payload]]
    Finished = Callable[[Delivery, RoutineState, float, float, Emissions], None]
    Failed = Callable[
        [JobState, Plan, Delivery, Ready, Emissions, BaseException, float], bool
    ]

__all__ = ["checkpointed"]

_new: Final = object.__new__
# Change is a frozen dataclass: its __init__ sets each field through
# object.__setattr__, a Python frame and five lookups. The slots' own setters
# set the same fields (tests hold the result equal to Change(...)).
_PENDING_FROM, _ROUTINE_ID, _BUFFER_KEY, _HISTORY_FROM, _ERRORS_FROM = (
    Change.__dict__[field.name].__set__ for field in fields(Change)
)


def checkpointed(
    runtime: Runtime, job: JobState, plan: Plan, finished: Finished
) -> tuple[Finished, Failed]:
    """Return ``finished`` and ``runtime.failed``, each followed by a checkpoint."""
    journal = runtime.journal
    assert journal is not None  # noqa: S101  called for durable jobs only
    commit, failed, pending = journal.committer(), runtime.failed, job.pending
    routines = plan.routines

    def change_of(delivery: Delivery) -> Change:
        rid, slot = delivery.routine_id, delivery.slot
        # As Runtime.change_before: the handler changed none of these.
        key = None if slot is None else (rid, slot)  # a direct one has a slot
        return Change(len(pending), rid, key, job.history_total, job.error_count)

    def finished_durable(
        delivery: Delivery,
        state: RoutineState,
        started: float,
        took: float,
        emissions: Emissions,
    ) -> None:
        # change_of(delivery) and the delivery's fields, written out: taken
        # before finished() reuses the delivery for the next hop.
        rid, slot, seq, data = (
            delivery.routine_id,
            delivery.slot,
            delivery.seq,
            delivery.data,
        )
        connection, attempt = delivery.connection, delivery.attempt
        change = _new(Change)  # Change(len(pending), rid, key, ...), faster
        _PENDING_FROM(change, len(pending))
        _ROUTINE_ID(change, rid)
        _BUFFER_KEY(change, None if slot is None else (rid, slot))
        _HISTORY_FROM(change, job.history_total)
        _ERRORS_FROM(change, job._error_total)
        finished(delivery, state, started, took, emissions)
        routine = routines[rid]
        if routine._stats or state._stats:  # as snapshot_routine checks
            snapshot_one(routine, state)
        try:
            commit(job, change)
        except SerializationError:  # the run stores the job failed on it
            runtime.unsaved = Delivery(seq, rid, slot, data, connection, attempt)
            raise

    def failed_durable(
        job: JobState,
        plan: Plan,
        delivery: Delivery,
        ready: Ready,
        emissions: Emissions,
        error: BaseException,
        started: float,
    ) -> bool:
        change = change_of(delivery)
        if not failed(job, plan, delivery, ready, emissions, error, started):
            return False  # an interrupt: back on the stack, nothing to commit
        snapshot_routine(job, plan, delivery.routine_id)
        try:
            commit(job, change)
        except SerializationError:  # the run stores the job failed on it
            runtime.unsaved = delivery
            raise
        return True

    return finished_durable, failed_durable
