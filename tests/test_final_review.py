"""The last adversarial review of the whole change: each test a hole it found."""

from __future__ import annotations

import copy
import pickle
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from click.testing import CliRunner
from _engines import ENGINES, Run
from test_store import BACKENDS, no_change, open_store, plain_job

from flowforge import (
    ArgumentTypeError,
    DefinitionError,
    DeliveryInfo,
    DeliveryResult,
    Flow,
    StoreError,
)
from flowforge.cli._app import cli
from flowforge.store import Store
from flowforge.testing import FakeClock, Recorder, Relay


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend."""
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()


def wrong(value: object) -> Any:  # Any: lets a call pass what its types forbid
    return value


NAN: Final = float("nan")

# Calls whose owner or lease_until may not be None (only save's may), or NaN.
UNLEASED_CALLS: Final[dict[str, Callable[[Store], object]]] = {
    "create-owner-none": lambda s: s.create(
        plain_job("k"), owner=wrong(None), lease_until=1.0
    ),
    "create-lease-none": lambda s: s.create(
        plain_job("k"), owner="o", lease_until=wrong(None)
    ),
    "checkpoint-lease-none": lambda s: s.checkpoint(
        plain_job("j"), no_change(plain_job("j")), owner="o", lease_until=wrong(None)
    ),
    "acquire-owner-none": lambda s: s.acquire(
        "j", owner=wrong(None), lease_until=2e9, now=1e9
    ),
    "acquire-lease-none": lambda s: s.acquire(
        "j", owner="o", lease_until=wrong(None), now=1e9
    ),
    "acquire-now-none": lambda s: s.acquire(
        "j", owner="o", lease_until=2e9, now=wrong(None)
    ),
    "renew-owner-none": lambda s: s.renew("j", owner=wrong(None), lease_until=2e9),
    "renew-lease-none": lambda s: s.renew("j", owner="o", lease_until=wrong(None)),
}


@pytest.mark.parametrize("call", list(UNLEASED_CALLS))
def test_a_lease_call_refuses_none_where_it_needs_an_owner_or_a_time(
    store: Store, call: str
) -> None:
    # Before: acquire(owner=None) "took" a free job for nobody and returned True;
    # renew(owner=None) renewed an unleased job; a None lease_until freed a lease.
    store.save(plain_job("j"))
    before = store.load("j").serialize()

    with pytest.raises(ArgumentTypeError, match="(owner|lease_until|now) must be"):
        UNLEASED_CALLS[call](store)

    assert store.load("j").serialize() == before
    assert store.get("j").owner is None


NAN_CALLS: Final[dict[str, Callable[[Store], object]]] = {
    "acquire-lease": lambda s: s.acquire("j", owner="o", lease_until=NAN, now=1e9),
    "acquire-now": lambda s: s.acquire("j", owner="o", lease_until=2e9, now=NAN),
    "save-lease": lambda s: s.save(plain_job("j"), owner="o", lease_until=NAN),
}


@pytest.mark.parametrize("call", list(NAN_CALLS))
def test_a_nan_lease_time_is_refused_before_any_write(store: Store, call: str) -> None:
    # Before: a NaN lease never compared as expired, so the job was held forever.
    store.save(plain_job("j"))

    with pytest.raises(StoreError, match="(lease_until|now) must be a number"):
        NAN_CALLS[call](store)

    assert store.get("j").owner is None


def test_deleting_a_flow_setting_says_to_set_it_instead() -> None:
    # Before: a raw AttributeError "__delete__", naming nothing.
    flow = Flow("f", max_workers=3)

    with pytest.raises(DefinitionError, match="max_workers cannot be deleted"):
        del flow.max_workers

    assert flow.max_workers == 3


COPIES: Final[dict[str, Callable[[Flow], object]]] = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": pickle.dumps,
}


@pytest.mark.parametrize("how", list(COPIES))
def test_a_flow_refuses_to_be_copied_and_says_how_to_copy_it(how: str) -> None:
    # Before: copy.copy gave a twin sharing the original's routines, jobs and
    # pool (a routine added to the copy appeared in the original); deepcopy
    # and pickle failed with "cannot pickle '_thread.lock' object".
    flow = Flow("f")
    flow.add_routine(Relay(), "a")

    with pytest.raises(DefinitionError, match=r"Flow\.deserialize\(flow\.serialize"):
        COPIES[how](flow)

    twin = Flow.deserialize(flow.serialize())
    twin.add_routine(Relay(), "b")
    assert list(flow.routines) == ["a"]


class Outcomes:
    """An observer keeping each delivery's ``(routine_id, outcome)``."""

    def __init__(self) -> None:
        self.ends: list[tuple[str, str]] = []

    def on_delivery_end(self, info: DeliveryInfo, result: DeliveryResult) -> None:
        self.ends.append((info.routine_id, result.outcome))


@pytest.mark.parametrize("run", ENGINES.values(), ids=list(ENGINES))
def test_observers_see_the_outcome_the_history_records_when_routes_change(
    run: Run,
) -> None:
    # The run routes failures by its own plan; observers read the flow's live
    # routes, so a failure route added during the job made them say "routed"
    # for a failure that failed the job (and the reverse for one removed).
    flow = Flow("edited", clock=FakeClock())
    flow.add_routine(Relay(), "a")
    flow.add_routine(Recorder(), "b")
    flow.add_routine(Recorder(), "fallback")
    flow.connect("a", "output", "b", "input")
    flow.get_routine("b").set_config(fail_times=1)

    def add_route(data: dict[str, object]) -> dict[str, object]:
        flow.connect_failures("b", "fallback", "input")
        return data

    flow.get_routine("a").set_config(transform=add_route)
    outcomes = Outcomes()
    flow.add_observer(outcomes)

    job = run(flow, "a", {"x": 1})

    history = [(r.routine_id, r.outcome) for r in job.get_execution_history()]
    assert history == [("a", "completed"), ("b", "failed")]
    assert outcomes.ends == history


HOSTILE_MODULE: Final = """
class Hostile(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


raise Hostile()
"""


def test_import_names_the_module_even_when_its_error_has_no_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the error's failing __str__ replaced the report, which said only
    # "RuntimeError: no text for you", naming neither --import nor the module.
    (tmp_path / "hostile_import.py").write_text(HOSTILE_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_import", raising=False)

    result = CliRunner().invoke(
        cli, ["--import", "hostile_import", "jobs", f"sqlite:///{tmp_path}/j.db"]
    )

    assert result.exit_code == 1
    assert "cannot import 'hostile_import' (from --import" in result.stderr
    assert "Hostile" in result.stderr


HOSTILE_BUILDER: Final = """
class Hostile(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


def build():
    raise Hostile()
"""


def test_a_flow_builder_whose_error_has_no_text_is_still_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hostile_builder.py").write_text(HOSTILE_BUILDER, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_builder", raising=False)

    result = CliRunner().invoke(cli, ["draw", "hostile_builder:build"])

    assert result.exit_code == 1
    assert "calling 'hostile_builder:build' failed: Hostile" in result.stderr
