"""JsonDirectoryStore: one JSON file per job in a folder, written atomically.

Readable and easy to back up or inspect by hand. Every write replaces the
job's whole file (temporary file, fsync, rename), so a checkpoint costs as much
as the job's live state; prefer :class:`~flowforge.store.SqliteStore` for long
jobs. Writes take an advisory lock on the folder (``fcntl.flock``), so several
processes may share it on one machine. The store opens only regular files in
its folder: never through a symbolic link, and never a FIFO or a device, which
could block it or lead it outside the folder.

A job's file names its flow's shape by id; the shape itself is the file
``<shape id>.shape`` beside it, written once for every job of that flow
definition and kept when jobs are deleted (see
:mod:`flowforge.store._shapes`). Job files written before shapes were kept
apart hold their shape, and load as they are.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

from flowforge._atomic import TEMPORARY_NAME_EXTRA, write_atomically
from flowforge.exceptions import (
    FlowForgeWarning,
    JobNotFoundError,
    SerializationError,
    StoreError,
)
from flowforge.job_state import JobState, JobStatus
from flowforge.store._checks import (
    check_flow_id,
    check_job_id,
    check_lease,
    check_job_state,
    check_path,
    check_prune,
)
from flowforge.store._select import prune_one_by_one, select_listed, to_status
from flowforge.store._shapes import StoredShape, join_shape, split_shape
from flowforge.store.base import Change, JobRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JsonDirectoryStore"]

FILE_KIND: Final = "flowforge.stored_job"
SUFFIX: Final = ".json"
SHAPE_SUFFIX: Final = ".shape"
OPEN_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK
"""Refuse symbolic links; never wait opening a FIFO (see ``_open_regular``)."""
MAX_NAME_BYTES: Final = 255
"""The longest file name most file systems accept."""


@final
class JsonDirectoryStore:
    """Keep each job state in ``<folder>/<job id>.json``.

    Args:
        folder: Created if missing. Job ids become file names, with any
            character other than letters, digits, ``-``, ``_`` and ``.``
            percent-encoded. An id whose encoded name, with ``.json``, is
            longer than 241 bytes raises :class:`~flowforge.StoreError`
            (file names hold 255 bytes, and the temporary file's is longer).

    Thread safety: safe to share between threads and between processes on
    one machine (POSIX file locks).
    """

    def __init__(self, folder: str | Path) -> None:
        """Use (and create if needed) ``folder``."""
        self.folder = check_path(folder, "folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create store folder {str(self.folder)!r}: {error}"
            ) from error
        self._lock_path = self.folder / ".lock"
        self._thread_lock = threading.Lock()

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Save a new job leased to ``owner``; return False if the id exists."""
        check_lease(owner, lease_until)
        check_job_state(job_state)
        with self._locked():
            if os.path.lexists(self._path(job_state.job_id)):
                return False
            self._write(job_state, owner, lease_until)
            return True

    def save(
        self,
        job_state: JobState,
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Save the whole job state; with ``owner``, only while it holds the lease."""
        check_lease(owner, lease_until, unleased_ok=True)
        check_job_state(job_state)
        with self._locked():
            if owner is not None and self._path(job_state.job_id).exists():
                self._check_owner(job_state.job_id, owner, unleased_ok=True)
            self._write(job_state, owner, lease_until)

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Rewrite the job's file, renewing ``owner``'s lease."""
        check_lease(owner, lease_until, change=change)
        check_job_state(job_state)
        with self._locked():
            self._check_owner(job_state.job_id, owner)
            self._write(job_state, owner, lease_until)

    def acquire(
        self,
        job_id: str,
        *,
        owner: str,
        lease_until: float,
        now: float,
        replacing: str | None = None,
    ) -> bool:
        """Lease a job to ``owner``: see :meth:`flowforge.store.Store.acquire`."""
        check_lease(owner, lease_until, now, replacing=replacing)
        with self._locked():
            document = self._read(job_id)
            holder, until = document.get("owner"), document.get("lease_until")
            expired = isinstance(until, (int, float)) and until < now
            if (
                holder is None
                or until is None
                or holder in (owner, replacing)
                or expired
            ):
                document["owner"], document["lease_until"] = owner, lease_until
                self._dump(job_id, document)
                return True
            return False

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease: see :meth:`flowforge.store.Store.renew`."""
        check_lease(owner, lease_until)
        with self._locked():
            try:
                document = self._read(job_id)
            except JobNotFoundError:
                return False
            if document.get("owner") != owner:
                return False
            document["lease_until"] = lease_until
            self._dump(job_id, document)
            return True

    def load(self, job_id: str) -> JobState:
        """Return the saved job state."""
        document = self._read(job_id)
        try:
            data = document.get("job_state")
            if isinstance(data, dict):
                join_shape(data, self._shape_text, "the job")
            return JobState.deserialize(data)
        except SerializationError as error:
            raise SerializationError(
                f"job file {str(self._path(job_id))!r}: {error}"
            ) from error

    def get(self, job_id: str) -> JobRecord:
        """Return what the store knows about a job without loading it."""
        return _record(job_id, self._read(job_id), self._path(job_id))

    def list_jobs(
        self, *, flow_id: str | None = None, status: JobStatus | str | None = None
    ) -> list[JobRecord]:
        """Return the saved jobs, oldest update first, optionally filtered.

        A file that cannot be read as a job (damaged, not FlowForge's, or not
        a regular file: a symbolic link, a FIFO) is left out with a
        :class:`~flowforge.FlowForgeWarning` naming it, so that one bad file
        does not hide every other job.
        """
        check_flow_id(flow_id)
        records = []
        for job_id in self._job_ids():
            try:
                records.append(self.get(job_id))
            except JobNotFoundError:  # deleted since the folder was listed
                continue
            except StoreError as error:
                warnings.warn(
                    f"{error}; it is not listed", FlowForgeWarning, stacklevel=2
                )
        return select_listed(records, flow_id=flow_id, status=status)

    def delete(self, job_id: str) -> None:
        """Remove a job's file."""
        with self._locked():
            try:
                self._path(job_id).unlink()
            except FileNotFoundError:
                raise JobNotFoundError(job_id=job_id) from None

    def prune(
        self, *, older_than: timedelta | None = None, keep: int | None = None
    ) -> list[str]:
        """Delete finished jobs by age and count; return the deleted ids."""
        check_prune(older_than, keep)
        return prune_one_by_one(self, older_than=older_than, keep=keep)

    def close(self) -> None:
        """Do nothing: the store keeps no file open between calls."""

    def __repr__(self) -> str:
        """Return the folder."""
        return f"JsonDirectoryStore({str(self.folder)!r})"

    # -- files -----------------------------------------------------------------

    def _path(self, job_id: str) -> Path:
        try:
            name = urllib.parse.quote(check_job_id(job_id), safe="") + SUFFIX
        except UnicodeEncodeError as error:
            raise StoreError(
                f"job id {job_id!r} cannot be a file name: {error}"
            ) from error
        # The file is written through a temporary file with a longer name.
        limit = MAX_NAME_BYTES - TEMPORARY_NAME_EXTRA
        if len(name) > limit:
            raise StoreError(
                f"job id {job_id[:40]!r}... is too long for a file name "
                f"({len(name)} bytes encoded, at most {limit}); use shorter "
                "ids, or SqliteStore"
            )
        return self.folder / name

    def _job_ids(self) -> Iterator[str]:
        for path in sorted(self.folder.glob("*" + SUFFIX)):
            yield urllib.parse.unquote(path.name[: -len(SUFFIX)])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            path = self._lock_path
            try:
                descriptor = _open_regular(path, os.O_RDWR | os.O_CREAT)
            except OSError as error:
                raise StoreError(
                    f"cannot lock store folder {str(self.folder)!r} with "
                    f"{str(path)!r}: {error}"
                ) from error
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                os.close(descriptor)

    def _write(
        self, job: JobState, owner: str | None, lease_until: float | None
    ) -> None:
        data = job.serialize()
        self._keep_shape(split_shape(data))
        document = {
            "kind": FILE_KIND,
            "job_id": job.job_id,
            "flow_id": job.flow_id,
            "status": job.status.value,
            "owner": None if lease_until is None else owner,
            "lease_until": lease_until,
            "updated_at": datetime.now(UTC).timestamp(),
            "job_state": data,
        }
        self._dump(job.job_id, document)

    def _keep_shape(self, shape: StoredShape) -> None:
        """Write a flow shape's file unless it exists (with the folder locked)."""
        path = self.folder / (shape.shape_id + SHAPE_SUFFIX)
        if os.path.lexists(path):
            return
        try:
            write_atomically(path, shape.text().encode("utf-8"))
        except OSError as error:
            raise StoreError(
                f"cannot write flow shape file {str(path)!r}: {error}"
            ) from error

    def _shape_text(self, shape_id: str) -> str | None:
        """Return a flow shape file's text, or ``None`` if there is none."""
        path = self.folder / (shape_id + SHAPE_SUFFIX)
        try:
            descriptor = _open_regular(path, os.O_RDONLY)
            with os.fdopen(descriptor, "rb") as handle:
                return handle.read().decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(
                f"cannot read flow shape file {str(path)!r}: {error}"
            ) from error

    def _dump(self, job_id: str, document: Mapping[str, object]) -> None:
        document = {**document, "updated_at": datetime.now(UTC).timestamp()}
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        try:
            write_atomically(self._path(job_id), text.encode("utf-8"))
        except OSError as error:
            raise StoreError(
                f"cannot write job file {str(self._path(job_id))!r}: {error}"
            ) from error

    def _read(self, job_id: str) -> dict[str, object]:
        path = self._path(job_id)
        try:
            descriptor = _open_regular(path, os.O_RDONLY)
            with os.fdopen(descriptor, "rb") as handle:
                text = handle.read().decode("utf-8")
        except FileNotFoundError:
            raise JobNotFoundError(job_id=job_id) from None
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(f"cannot read job file {str(path)!r}: {error}") from error
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:  # too deep to parse
            raise StoreError(f"job file {str(path)!r} is corrupted: {error}") from error
        if not isinstance(document, dict) or document.get("kind") != FILE_KIND:
            raise StoreError(f"{str(path)!r} is not a FlowForge job file")
        return document

    def _check_owner(
        self, job_id: str, owner: str, *, unleased_ok: bool = False
    ) -> None:
        holder = self._read(job_id).get("owner")
        if holder != owner and not (unleased_ok and holder is None):
            raise StoreError(
                f"job {job_id!r} is leased to {holder!r}, not {owner!r}: another "
                "process took it over, so this one must stop running it"
            )


def _open_regular(path: Path, flags: int) -> int:
    """Open ``path`` if it is a regular file, not a link, FIFO, device or folder.

    ``O_NOFOLLOW`` refuses a symbolic link (a dangling one would otherwise
    make ``O_CREAT`` create its target, outside the folder) and
    ``O_NONBLOCK`` keeps the open of a FIFO from waiting for a writer; the
    ``fstat`` then refuses whatever is not a regular file.

    Raises:
        OSError: If the file cannot be opened or is not a regular file.
    """
    try:
        descriptor = os.open(path, flags | OPEN_FLAGS, 0o644)
    except OSError as error:
        if os.path.islink(path):
            raise OSError("it is a symbolic link; remove it") from error
        raise
    try:
        mode = os.fstat(descriptor).st_mode
    except BaseException:
        os.close(descriptor)
        raise
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise OSError(f"it is not a regular file (mode {stat.filemode(mode)})")
    return descriptor


def _record(job_id: str, document: Mapping[str, object], path: Path) -> JobRecord:
    owner, until = document.get("owner"), document.get("lease_until")
    flow_id, status = document.get("flow_id"), document.get("status")
    updated = document.get("updated_at")
    if not (
        isinstance(flow_id, str)
        and isinstance(status, str)
        and isinstance(updated, (int, float))
        and (until is None or isinstance(until, (int, float)))
        and (owner is None or isinstance(owner, str))
    ):
        raise StoreError(f"job file {str(path)!r} has bad metadata")
    try:
        updated_at = datetime.fromtimestamp(float(updated), UTC)
    except (OverflowError, ValueError, OSError) as error:
        raise StoreError(
            f"job file {str(path)!r} has bad metadata: updated_at {updated!r}"
        ) from error
    return JobRecord(
        job_id=job_id,
        flow_id=flow_id,
        status=to_status(status) or JobStatus.PENDING,
        owner=owner,
        lease_until=None if until is None else float(until),
        updated_at=updated_at,
    )
