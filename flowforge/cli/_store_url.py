"""Open the store a URL names: ``sqlite:///``, ``json:///`` or ``postgresql://``.

``sqlite:///jobs.db`` is relative to the working folder and
``sqlite:////srv/jobs.db`` absolute (SQLAlchemy's convention); ``json:///``
names a folder the same way. A PostgreSQL URL goes to
:class:`~flowforge.store.postgres.PostgresStore`, and needs the ``postgres``
extra; its ``schema`` query parameter, if any, names the store's schema
(``postgresql://app@db/jobs?schema=nightly``; default ``flowforge``) and is
taken out of the URL that libpq sees.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import click

from flowforge.cli._problem import USAGE, CommandError
from flowforge.exceptions import StoreError
from flowforge.store import JsonDirectoryStore, SqliteStore, Store

__all__ = ["SCHEMES", "open_store"]

SCHEMES: Final = ("sqlite:///", "json:///", "postgresql://")
_POSTGRES: Final = ("postgresql", "postgres")


def open_store(url: str, *, create: bool = False) -> Store:
    """Return the store ``url`` names, closed when the running command ends.

    Args:
        url: A store URL (see the module docstring).
        create: Create a SQLite file or JSON folder that does not exist;
            otherwise a missing one is a usage error (a mistyped path must
            not silently make an empty store).

    Raises:
        CommandError: If the URL is malformed or names no store (exit code
            2), or the store cannot be opened (exit code 1).
    """
    scheme, _, rest = url.partition("://")
    store = _open(url, scheme, rest, create)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(store.close)
    return store


def _open(url: str, scheme: str, rest: str, create: bool) -> Store:
    if scheme in _POSTGRES and rest:
        return _postgres(url)
    if scheme not in ("sqlite", "json") or not rest.startswith("/"):
        raise CommandError(
            f"bad store URL {url!r}: use sqlite:///path/jobs.db, "
            "json:///path/folder or postgresql://user@host/dbname",
            exit_code=USAGE,
        )
    path = Path(unquote(urlsplit(url).path[1:]))
    if not path.parts:
        raise CommandError(f"bad store URL {url!r}: no path", exit_code=USAGE)
    if not create and not path.exists():
        raise CommandError(
            f"no store at {str(path)!r} (from {url!r}): check the path",
            exit_code=USAGE,
        )
    if scheme == "sqlite":
        if not create:
            _check_sqlite_store(path, url)
        return SqliteStore(path)
    return JsonDirectoryStore(path)


def _check_sqlite_store(path: Path, url: str) -> None:
    """Refuse a SQLite file that holds no FlowForge store: never add tables to it."""
    try:
        with closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as error:
        raise CommandError(
            f"{str(path)!r} (from {url!r}) is not a SQLite database: {error}",
            exit_code=USAGE,
        ) from error
    if not {"jobs", "meta"} <= tables:
        raise CommandError(
            f"{str(path)!r} (from {url!r}) holds no FlowForge store (no jobs table); "
            "check the path",
            exit_code=USAGE,
        )


def _postgres(url: str) -> Store:
    try:
        from flowforge.store.postgres import PostgresStore
    except ImportError as error:
        raise CommandError(
            f"a PostgreSQL store needs the postgres extra ({error.name} is "
            "missing): pip install 'flowforge[postgres]'"
        ) from error
    base, _, text = url.partition("?")
    query = parse_qsl(text, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    try:
        return PostgresStore(
            f"{base}?{rest}" if rest else base,
            schema=schemas[-1] if schemas else "flowforge",
        )
    except StoreError as error:  # a malformed URL or schema name
        raise CommandError(f"bad store URL: {error}", exit_code=USAGE) from error
