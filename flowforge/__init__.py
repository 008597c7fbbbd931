"""FlowForge: event-driven workflows of routines, wired into flows, run as jobs."""

from __future__ import annotations

from flowforge._context import DeliveryContext, current_delivery
from flowforge._payload_types import register_payload_type
from flowforge._validate import Finding
from flowforge.connection import Connection
from flowforge.error_handler import ErrorHandler, ErrorStrategy
from flowforge.event import Event
from flowforge.exceptions import (
    ArgumentTypeError,
    DefinitionError,
    DuplicateNameError,
    ExecutionError,
    FlowForgeError,
    FlowForgeWarning,
    InvalidFlowError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    RoutineError,
    SerializationError,
    StoreError,
    UnknownPortError,
    UnknownRoutineTypeError,
)
from flowforge.execution_tracker import (
    ExecutionTracker,
    FlowPerformance,
    RoutinePerformance,
)
from flowforge.flow import Flow
from flowforge.function_routine import step
from flowforge.job_state import JobState, JobStatus
from flowforge.observer import DeliveryInfo, DeliveryResult, Observer
from flowforge.record import ErrorRecord, HistoryRecord, RoutineState, RoutineStatus
from flowforge.routine import Routine
from flowforge.slot import Slot

__version__ = "0.1.0"

__all__ = [
    "ArgumentTypeError",
    "Connection",
    "DefinitionError",
    "DeliveryContext",
    "DeliveryInfo",
    "DeliveryResult",
    "DuplicateNameError",
    "ErrorHandler",
    "ErrorRecord",
    "ErrorStrategy",
    "Event",
    "ExecutionError",
    "ExecutionTracker",
    "Finding",
    "Flow",
    "FlowForgeError",
    "FlowForgeWarning",
    "FlowPerformance",
    "HistoryRecord",
    "InvalidFlowError",
    "JobFailedError",
    "JobNotFoundError",
    "JobState",
    "JobStateError",
    "JobStatus",
    "Observer",
    "Routine",
    "RoutineError",
    "RoutinePerformance",
    "RoutineState",
    "RoutineStatus",
    "SerializationError",
    "Slot",
    "StoreError",
    "UnknownPortError",
    "UnknownRoutineTypeError",
    "current_delivery",
    "register_payload_type",
    "step",
]
