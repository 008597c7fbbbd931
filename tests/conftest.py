"""Fixtures shared by the unit tests; each returns a fresh object."""

from __future__ import annotations

import pytest

from flowforge import Flow
from flowforge.testing import FakeClock


@pytest.fixture
def flow() -> Flow:
    """An empty flow with the default error handling (a failure stops the job)."""
    return Flow(flow_id="test_flow")


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told to, so retries never really sleep."""
    return FakeClock()
