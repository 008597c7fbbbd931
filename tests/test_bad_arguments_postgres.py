"""The store table of ``test_bad_arguments_store.py``, against PostgresStore.

It runs on the PostgreSQL server of ``test_store_postgres.py`` (its fixtures),
and is skipped like those tests when no server or driver is there.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flowforge.store import Store
from test_bad_arguments_store import STORE_CASES, assert_refused_leaving_the_job
from test_store_postgres import postgres_dsn, schema, store

__all__ = ["postgres_dsn", "schema", "store"]  # fixtures, used by name


@pytest.mark.parametrize(
    ("call", "message"),
    [(call, message) for _, call, message in STORE_CASES],
    ids=[name for name, _, _ in STORE_CASES],
)
def test_bad_argument_to_a_postgres_store_raises_a_flowforge_error_naming_it(
    store: Store, call: Callable[[Store], object], message: str
) -> None:
    assert_refused_leaving_the_job(store, call, message)
