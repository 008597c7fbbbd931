"""Regressions found by the adversarial review of issue 19 (failures, observers)."""

from __future__ import annotations

import pytest

from flowforge import ArgumentTypeError, Flow
from flowforge.testing import Recorder


class AsyncEnd:
    async def on_job_end(self, job: object) -> None:
        """Never awaited if accepted."""


def test_add_observer_refuses_an_async_callback() -> None:
    flow = Flow("async_observer")
    flow.add_routine(Recorder(), "r")

    with pytest.raises(ArgumentTypeError, match="AsyncEnd.on_job_end"):
        flow.add_observer(AsyncEnd())

    assert flow.execute("r", {"a": 1}).status == "completed"
