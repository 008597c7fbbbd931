"""Open the store a URL names: ``sqlite:///``, ``json:///`` or ``postgresql://``.

``sqlite:///jobs.db`` is relative to the working folder and
``sqlite:////srv/jobs.db`` absolute (SQLAlchemy's convention); ``json:///``
names a folder the same way. A PostgreSQL URL goes to
:class:`~flowforge.store.postgres.PostgresStore` unchanged, and needs the
``postgres`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from flowforge.cli._problem import USAGE, CommandError
from flowforge.store import JsonDirectoryStore, SqliteStore, Store

__all__ = ["SCHEMES", "open_store"]

SCHEMES: Final = ("sqlite:///", "json:///", "postgresql://")
_POSTGRES: Final = ("postgresql", "postgres")


def open_store(url: str, *, create: bool = False) -> Store:
    """Return the store ``url`` names.

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
        return SqliteStore(path)
    return JsonDirectoryStore(path)


def _postgres(url: str) -> Store:
    try:
        from flowforge.store.postgres import PostgresStore
    except ImportError as error:
        raise CommandError(
            f"a PostgreSQL store needs the postgres extra ({error.name} is "
            "missing): pip install 'flowforge[postgres]'"
        ) from error
    return PostgresStore(url)
