"""What a flow hands the engine to run its jobs: plan, settings, running jobs.

The engine never sees :class:`~flowforge.Flow`. A flow builds one
:class:`FlowSetup` per change of its settings and passes it to every job it
starts; the setup reads the flow's current plan through a callable, so a
change of the wiring reaches the next job without a new setup.
"""

from __future__ import annotations

import reprlib
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from flowforge.exceptions import ArgumentTypeError, JobStateError

if TYPE_CHECKING:
    from flowforge.engine.observe import Observers
    from flowforge.engine.plan import EntryPlans, Plan
    from flowforge.error_handler import ErrorHandler
    from flowforge.job_state import JobState
    from flowforge.types import Clock

__all__ = [
    "CONCURRENT",
    "FlowSetup",
    "JobRegistry",
    "SEQUENTIAL",
    "STRATEGIES",
    "WorkerPool",
]

SEQUENTIAL: Final = "sequential"
CONCURRENT: Final = "concurrent"
STRATEGIES: Final = (SEQUENTIAL, CONCURRENT)


@final
class JobRegistry:
    """The jobs of one flow that run in this process, by id.

    ``pause`` and ``cancel`` find a running job by its id here.

    Thread safety: every method may be called from any thread.
    """

    __slots__ = ("_jobs", "_lock")

    def __init__(self) -> None:
        """Start with no running jobs."""
        self._jobs: dict[str, JobState] = {}
        self._lock = threading.Lock()

    def add(self, job: JobState, *, exclusive: bool = False) -> None:
        """Note that ``job`` runs.

        Raises:
            JobStateError: With ``exclusive``, if another job with its id
                runs (a durable job's store lease decides that instead).
        """
        with self._lock:
            other = self._jobs.get(job.job_id)
            if exclusive and other is not None and other is not job:
                raise JobStateError(
                    "a job with this id already runs in this flow; give each "
                    "job its own job_id, or let the first one end",
                    job_id=job.job_id,
                    status="running",
                )
            self._jobs[job.job_id] = job

    def discard(self, job: JobState) -> None:
        """Forget ``job``, which stopped running, unless another run replaced it."""
        with self._lock:
            if self._jobs.get(job.job_id) is job:
                del self._jobs[job.job_id]

    def get(self, job_id: str) -> JobState | None:
        """Return the running job with ``job_id``, if there is one."""
        with self._lock:
            return self._jobs.get(job_id)

    def running(self) -> list[str]:
        """Return the ids of the running jobs, sorted."""
        with self._lock:
            return sorted(self._jobs)


@final
class WorkerPool:
    """The threads a flow's concurrent jobs run their handlers on.

    Args:
        executor: The user's executor, used as it is and never shut down;
            ``None`` makes a thread pool of the pool's size on first use.
        size: How many threads the pool made here has.

    A pool that :meth:`resize` replaces, or that this object drops when it
    is garbage collected, lets its threads end once the jobs still running on
    it are done (a thread pool's threads end when nothing refers to it); an
    idle pool never delays interpreter exit.

    Thread safety: every method may be called from any thread.
    """

    __slots__ = ("_executor", "_pool", "_size", "_lock")

    def __init__(self, executor: Executor | None, size: int) -> None:
        """Use ``executor``, or make a pool of ``size`` threads when first needed.

        Raises:
            ArgumentTypeError: If ``executor`` has no ``submit`` method.
        """
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise ArgumentTypeError(
                "executor must be a concurrent.futures.Executor (with submit()) "
                f"or None, got {reprlib.repr(executor)}"
            )
        self._executor = executor
        self._pool: ThreadPoolExecutor | None = None
        self._size = size
        self._lock = threading.Lock()

    def resize(self, size: int) -> None:
        """Make later jobs use a pool of ``size`` threads; running ones keep theirs."""
        with self._lock:
            if self._pool is not None and size != self._size:
                self._pool = None  # its threads end with the jobs that use it
            self._size = size

    def get(self) -> Executor:
        """Return the executor to run a concurrent job's handlers on."""
        if self._executor is not None:
            return self._executor
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._size, thread_name_prefix="flowforge"
                )
            return self._pool

    def close(self) -> None:
        """Release the pool made here; a later :meth:`get` makes a new one.

        Jobs that run on it finish their handlers on their own thread.
        """
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


@final
@dataclass(frozen=True, slots=True, eq=False)
class FlowSetup:
    """Everything the engine needs of one flow, fixed until a setting changes.

    Attributes:
        flow_id: The flow's id, recorded in each job.
        plan: Returns the flow's current plan (rebuilt after each change).
        entry_plans: The flow's cache of plans per entry slot.
        jobs: The flow's jobs running in this process.
        max_deliveries: The delivery limit of each job.
        max_pending: How many deliveries a job may hold waiting.
        history_limit: How many handled deliveries each job's history keeps.
        error_handler: The flow's error handler, for routines without one.
        clock: The time seam.
        strategy: The default execution strategy.
        max_workers: How many handlers of one job may run at once.
        executor: Returns the executor that runs a concurrent job's handlers.
        observers: The flow's observers; ``None`` when it has none.
    """

    flow_id: str
    plan: Callable[[], Plan]
    entry_plans: EntryPlans
    jobs: JobRegistry
    max_deliveries: int
    max_pending: int
    history_limit: int
    error_handler: ErrorHandler | None
    clock: Clock
    strategy: str
    max_workers: int
    executor: Callable[[], Executor]
    observers: Observers | None = None
