"""Errors FlowForge raises on purpose, all under one root.

::

    FlowForgeError
      ArgumentTypeError          an argument has the wrong type (also TypeError)
      DefinitionError            flow or routine built wrongly (also ValueError)
        DuplicateNameError       two routines, slots or events share a name
        UnknownPortError         no such routine, slot or event (also LookupError)
        InvalidFlowError         flow validation failed
      ExecutionError             a job failed or cannot continue
        RoutineError             a routine raised; its exception is __cause__
        JobFailedError           raise_for_status() of a failed job
        JobStateError            operation not allowed in the job's current status
      SerializationError         a dict cannot become a flow or job state, or back
        UnknownRoutineTypeError  routine type missing from the registry
      StoreError                 a store backend failed
        JobNotFoundError         no stored job with that id (also LookupError)
    FlowForgeWarning (UserWarning)
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "DefinitionError",
    "DuplicateNameError",
    "ExecutionError",
    "FlowForgeError",
    "FlowForgeWarning",
    "InvalidFlowError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "RoutineError",
    "SerializationError",
    "StoreError",
    "UnknownPortError",
    "UnknownRoutineTypeError",
]


class FlowForgeError(Exception):
    """Root of every error FlowForge raises on purpose.

    Subclasses take their context as keyword-only arguments and keep it as
    attributes; pickling keeps the message and the attributes, so errors cross
    process boundaries intact.
    """

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle the message and attributes, not the constructor arguments."""
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(
    cls: type[FlowForgeError], args: tuple[object, ...], state: dict[str, object]
) -> FlowForgeError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ArgumentTypeError(FlowForgeError, TypeError):
    """An argument has the wrong type; the message names the argument.

    Also a :class:`TypeError`, so code that catches one keeps working.
    """


class DefinitionError(FlowForgeError, ValueError):
    """A flow or routine is built wrongly; found before or while wiring."""


class DuplicateNameError(DefinitionError):
    """Two routines, slots, events or connections share a name."""


class UnknownPortError(DefinitionError, LookupError):
    """A routine, slot or event with that name does not exist."""


class InvalidFlowError(DefinitionError):
    """A flow failed validation."""


class ExecutionError(FlowForgeError):
    """A job failed or cannot continue."""


class RoutineError(ExecutionError):
    """A routine raised while handling a delivery; see ``__cause__``."""

    def __init__(self, *, routine_id: str, slot: str | None, job_id: str) -> None:
        """Build the message from the failing routine, slot and job."""
        super().__init__(
            f"routine {routine_id!r} failed on slot {slot!r} in job {job_id!r}"
        )
        self.routine_id = routine_id
        self.slot = slot
        self.job_id = job_id


class JobFailedError(ExecutionError):
    """A job failed; raised by :meth:`JobState.raise_for_status`.

    In the process that ran the job, ``__cause__`` is the exception that
    failed it, traceback included. A job loaded from a store or from data
    kept only the recorded type, message and traceback text (``traceback``).
    """

    def __init__(
        self,
        *,
        job_id: str,
        routine_id: str | None,
        slot: str | None,
        error_type: str | None,
        error_message: str | None,
        traceback: str | None = None,
    ) -> None:
        """Build the message from the job, the failed delivery and its error."""
        if routine_id is None:
            text = f"job {job_id!r} failed; no error was recorded"
        else:
            port = "as a source" if slot is None else f"on slot {slot!r}"
            text = (
                f"job {job_id!r} failed: routine {routine_id!r} {port} "
                f"raised {error_type}: {error_message}"
            )
        if traceback is not None:
            text += (
                "\nThe original exception is not available (this job state was "
                "loaded from a store or from data); its recorded traceback "
                f"(also in job.error.traceback) follows:\n{traceback}"
            )
        super().__init__(text)
        self.job_id = job_id
        self.routine_id = routine_id
        self.slot = slot
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class JobStateError(ExecutionError):
    """An operation is not allowed in the job's current status."""

    def __init__(self, message: str, *, job_id: str, status: str) -> None:
        """Build the message from what was tried and the job's status."""
        super().__init__(f"job {job_id!r} is {status}: {message}")
        self.job_id = job_id
        self.status = status


class SerializationError(FlowForgeError):
    """A dict cannot become a flow or job state, or the reverse."""


class UnknownRoutineTypeError(SerializationError):
    """A routine type named in data is missing from the registry."""

    def __init__(
        self, *, type_name: str, routine_id: str | None = None, fix: str | None = None
    ) -> None:
        """Build the message from the missing key, the routine's id and the fix."""
        where = "" if routine_id is None else f"routine {routine_id!r}: "
        if fix is None:
            fix = (
                "import the module that defines it before deserializing (FlowForge "
                "never imports modules named in data), or pass registry={name: cls}"
            )
        super().__init__(f"{where}routine type {type_name!r} is not registered; {fix}")
        self.type_name = type_name
        self.routine_id = routine_id


class StoreError(FlowForgeError):
    """A store backend failed."""


class JobNotFoundError(StoreError, LookupError):
    """No stored job has that id."""

    def __init__(self, *, job_id: str) -> None:
        """Build the message from the missing job id."""
        super().__init__(f"no stored job with id {job_id!r}")
        self.job_id = job_id


class FlowForgeWarning(UserWarning):
    """Root of every warning FlowForge issues."""
