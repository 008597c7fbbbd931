"""The ``flowforge`` command against PostgreSQL (the PostgreSQL suite's server).

The server comes from ``test_store_postgres``'s fixtures (the DSN in
``$FLOWFORGE_TEST_POSTGRES_DSN``, or a throwaway server); each test has a
schema of its own, named in the store URL's ``schema`` parameter.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import _cli_flows
import pytest
from click.testing import CliRunner

pytest.importorskip("psycopg", reason='needs pip install "flowforge[postgres]"')

from test_store_postgres import postgres_dsn, schema  # noqa: E402,F401  fixtures

from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from flowforge import JobStatus  # noqa: E402
from flowforge.cli._app import cli  # noqa: E402
from flowforge.cli._store_url import open_store  # noqa: E402
from flowforge.store.postgres import PostgresStore  # noqa: E402


@pytest.fixture
def url(postgres_dsn: str, schema: str) -> str:  # noqa: F811  fixtures
    """A store URL of a fresh schema holding a completed and a failed job."""
    fields = conninfo_to_dict(postgres_dsn)
    dbname = fields.pop("dbname", "")
    fields["schema"] = schema
    address = f"postgresql:///{dbname}?{urlencode(fields)}"
    store = PostgresStore(postgres_dsn, schema=schema)
    _cli_flows.run_job(store, "done", [1])
    _cli_flows.run_job(store, "broken", [1, 2], bad=[2])
    store.close()
    return address


def test_jobs_and_show_read_a_postgres_store(url: str) -> None:
    runner = CliRunner()

    listed = runner.invoke(cli, ["jobs", url, "--json"])
    shown = runner.invoke(cli, ["show", url, "broken", "--json"])

    assert sorted(
        json.loads(line)["job_id"] for line in listed.stdout.splitlines()
    ) == [
        "broken",
        "done",
    ]
    assert json.loads(shown.stdout)["errors"][0]["message"] == "cannot check 2"


def test_resume_finishes_a_failed_job_in_postgres(url: str) -> None:
    result = CliRunner().invoke(
        cli, ["resume", url, "broken", "--flow", "_cli_flows:build_lenient_flow"]
    )

    assert (result.exit_code, result.stdout) == (0, "job broken completed\n")
    store = open_store(url)
    assert store.get("broken").status is JobStatus.COMPLETED
    store.close()


def test_a_bad_schema_in_the_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["jobs", "postgresql://h/db?schema=bad-name"])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: bad store URL: schema must be")
