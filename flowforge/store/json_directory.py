"""JsonDirectoryStore: one JSON file per job in a folder, and a log of its changes.

Readable and easy to back up or inspect by hand. A checkpoint appends one line
to the job's change log (``<job>.log``) and fsyncs it; every ``FOLD_EVERY``
changes, and when the job's status changes, the job's file is rewritten
atomically (temporary file, fsync, rename) with the log folded in, and the
log removed. The lease lives in a tiny file of its own (``<job>.held``), so a
checkpoint never reads the job's file (see :mod:`flowforge.store._json_log`).
Writes take an advisory lock on the folder (``fcntl.flock``), so several
processes may share it on one machine. The store opens only regular files in
its folder: never through a symbolic link, and never a FIFO or a device, which
could block it or lead it outside the folder.

A job's file names its flow's shape by id; the shape itself is the file
``<shape id>.shape`` beside it, shared by every job of that flow
definition and kept when jobs are deleted (see
:mod:`flowforge.store._shapes`). Job files written before shapes were kept
apart hold their shape, and load as they are.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
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
from flowforge.store._change_log import Logged, log_change
from flowforge.store._checks import (
    check_flow_id,
    check_job_id,
    check_lease,
    check_job_state,
    check_path,
    check_prune,
)
from flowforge.store._json_log import (
    Appended,
    LogLines,
    Writer,
    append_change,
    folded_of,
    job_record,
    open_regular,
    read_held,
    read_log,
    replay,
    stale_last,
    write_held,
)
from flowforge.store._select import prune_one_by_one, select_listed
from flowforge.store._shapes import ShapeIds, StoredShape, join_shape, split_shape
from flowforge.store._sqlite_log import Due, LogState
from flowforge.store.base import Change, JobRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JsonDirectoryStore"]

FILE_KIND: Final = "flowforge.stored_job"
SUFFIX: Final = ".json"
SHAPE_SUFFIX: Final = ".shape"
LOG_SUFFIX: Final = ".log"
HELD_SUFFIX: Final = ".held"
"""The lease file's suffix: no longer than ``.json``, so that its temporary
file's name fits wherever the job file's does."""
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
        self._writers: dict[str, Writer] = {}
        self._shape_ids = ShapeIds()

    def create(self, job_state: JobState, *, owner: str, lease_until: float) -> bool:
        """Save a new job leased to ``owner``; return False if the id exists."""
        check_lease(owner, lease_until)
        check_job_state(job_state)
        with self._locked():
            if os.path.lexists(self._path(job_state.job_id)):
                return False
            self._replace(job_state, owner, lease_until)
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
            self._replace(job_state, owner, lease_until)

    def checkpoint(
        self, job_state: JobState, change: Change, *, owner: str, lease_until: float
    ) -> None:
        """Append what one delivery changed to the job's log, while ``owner`` leases it.

        Every ``FOLD_EVERY`` changes, and when the job's status is no longer
        running, the job's file is rewritten with the log folded in; the
        lease is renewed once a third of it has passed.
        """
        check_lease(owner, lease_until, change=change)
        check_job_state(job_state)
        document, text = log_change(job_state, change)
        job_id = job_state.job_id
        with self._locked():
            self._check_owner(job_id, owner)
            writer, work = self._append(job_id, owner, document, text, lease_until)
            log = writer.log
            if work.fold or work.status:
                self._write(job_state, owner, lease_until, folded=log.last)
                self._drop_log(job_id)
                writer.log = LogState(False, None, log.last, log.last, log.renewed_at)
                writer.inode, writer.size = None, 0
            if work.renew or work.fold:
                write_held(self._sibling(job_id, HELD_SUFFIX), owner, lease_until)
                writer.log.renewed_at = time.time()

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
            holder, until = self._lease(job_id)
            expired = until is not None and until < now
            if (
                holder is None
                or until is None
                or holder in (owner, replacing)
                or expired
            ):
                write_held(self._sibling(job_id, HELD_SUFFIX), owner, lease_until)
                return True
            return False

    def renew(self, job_id: str, *, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease: see :meth:`flowforge.store.Store.renew`."""
        check_lease(owner, lease_until)
        with self._locked():
            try:
                holder, _ = self._lease(job_id)
            except JobNotFoundError:
                return False
            if holder != owner:
                return False
            write_held(self._sibling(job_id, HELD_SUFFIX), owner, lease_until)
            return True

    def load(self, job_id: str) -> JobState:
        """Return the saved job state, with the changes logged since its last fold."""
        document = self._read(job_id)
        try:
            data = document.get("job_state")
            if isinstance(data, dict):
                join_shape(data, self._shape_text, "the job")
            job = JobState.deserialize(data)
            lines = self._lines(job_id, document)
            if lines.documents:
                job = replay(job, lines.documents, f"change log of job {job_id!r}")
            return job
        except SerializationError as error:
            raise SerializationError(
                f"job file {str(self._path(job_id))!r}: {error}"
            ) from error

    def get(self, job_id: str) -> JobRecord:
        """Return what the store knows about a job without loading it."""
        document = self._read(job_id)
        held = read_held(self._sibling(job_id, HELD_SUFFIX))
        if held is not None:
            document["owner"], document["lease_until"] = held
        lines = self._lines(job_id, document)
        if lines.documents:
            document["status"] = lines.documents[-1].document.status
            log = self._sibling(job_id, LOG_SUFFIX)
            try:
                document["updated_at"] = log.stat().st_mtime
            except FileNotFoundError:  # folded since it was read
                pass
        return job_record(job_id, document, self._path(job_id))

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
            except (StoreError, SerializationError) as error:
                warnings.warn(
                    f"{error}; it is not listed", FlowForgeWarning, stacklevel=2
                )
        return select_listed(records, flow_id=flow_id, status=status)

    def delete(self, job_id: str) -> None:
        """Remove a job's file, its change log and its lease file."""
        with self._locked():
            try:
                self._path(job_id).unlink()
            except FileNotFoundError:
                raise JobNotFoundError(job_id=job_id) from None
            self._writers.pop(job_id, None)
            _remove(self._sibling(job_id, LOG_SUFFIX), "change log")
            _remove(self._sibling(job_id, HELD_SUFFIX), "lease file")

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

    def _sibling(self, job_id: str, suffix: str) -> Path:
        """Return the path of the job's change log or lease file."""
        return self._path(job_id).with_suffix(suffix)

    def _job_ids(self) -> Iterator[str]:
        for path in sorted(self.folder.glob("*" + SUFFIX)):
            yield urllib.parse.unquote(path.name[: -len(SUFFIX)])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            path = self._lock_path
            try:
                descriptor = open_regular(path, os.O_RDWR | os.O_CREAT)
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

    def _replace(
        self, job: JobState, owner: str | None, lease_until: float | None
    ) -> None:
        """Write the whole job, over any change log and lease (with the folder locked).

        The file names the last number in the log it replaces as folded, so
        that a crash before the log is removed leaves its lines skipped.
        """
        job_id = job.job_id
        log = self._sibling(job_id, LOG_SUFFIX)
        folded = stale_last(log)
        self._write(job, owner, lease_until, folded=folded)
        _remove(log, "change log")
        write_held(self._sibling(job_id, HELD_SUFFIX), owner, lease_until)
        self._writers.pop(job_id, None)
        if owner is not None and lease_until is not None:
            state = LogState(False, None, folded, folded, time.time())
            self._writers[job_id] = Writer(owner, state, None, 0)

    def _append(
        self, job_id: str, owner: str, document: Logged, text: str, until: float
    ) -> tuple[Writer, Due]:
        """Append a change to the job's log (with the folder locked)."""
        cached = self._writers.pop(job_id, None)  # back once the line is written
        writer, work = append_change(
            self._sibling(job_id, LOG_SUFFIX),
            cached if cached is not None and cached.owner == owner else None,
            Appended(document, text, until),
            f"change log of job {job_id!r}",
            lambda: folded_of(self._read(job_id), job_id),
        )
        writer.owner = owner
        self._writers[job_id] = writer
        return writer, work

    def _lines(self, job_id: str, document: Mapping[str, object]) -> LogLines:
        """Return the job's logged changes not folded into its file."""
        where = f"change log of job {job_id!r}"
        folded = folded_of(document, job_id)
        return read_log(self._sibling(job_id, LOG_SUFFIX), folded, where)

    def _drop_log(self, job_id: str) -> None:
        """Remove the job's change log, once its file holds every change."""
        _remove(self._sibling(job_id, LOG_SUFFIX), "change log")

    def _lease(self, job_id: str) -> tuple[str | None, float | None]:
        """Return the job's owner and lease, without reading its file if it can."""
        held = read_held(self._sibling(job_id, HELD_SUFFIX))
        if held is not None:
            if not os.path.lexists(self._path(job_id)):
                raise JobNotFoundError(job_id=job_id)
            return held
        record = job_record(job_id, self._read(job_id), self._path(job_id))
        return record.owner, record.lease_until

    def _write(
        self,
        job: JobState,
        owner: str | None,
        lease_until: float | None,
        *,
        folded: int,
    ) -> None:
        data = job.serialize()
        self._keep_shape(split_shape(data, self._shape_ids))
        document = {
            "kind": FILE_KIND,
            "job_id": job.job_id,
            "flow_id": job.flow_id,
            "status": job.status.value,
            "owner": None if lease_until is None else owner,
            "lease_until": lease_until,
            "updated_at": datetime.now(UTC).timestamp(),
            "folded": folded,
            "job_state": data,
        }
        self._dump(job.job_id, document)

    def _keep_shape(self, shape: StoredShape) -> None:
        """Write a flow shape's file over any, if due (with the folder locked)."""
        if shape.text is None:
            return
        path = self.folder / (shape.shape_id + SHAPE_SUFFIX)
        try:
            write_atomically(path, shape.text.encode("utf-8"))
        except OSError as error:
            raise StoreError(
                f"cannot write flow shape file {str(path)!r}: {error}"
            ) from error
        self._shape_ids.add(shape)

    def _shape_text(self, shape_id: str) -> str | None:
        """Return a flow shape file's text, or ``None`` if there is none."""
        path = self.folder / (shape_id + SHAPE_SUFFIX)
        try:
            descriptor = open_regular(path, os.O_RDONLY)
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
            descriptor = open_regular(path, os.O_RDONLY)
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
        holder, _ = self._lease(job_id)
        if holder != owner and not (unleased_ok and holder is None):
            raise StoreError(
                f"job {job_id!r} is leased to {holder!r}, not {owner!r}: another "
                "process took it over, so this one must stop running it"
            )


def _remove(path: Path, what: str) -> None:
    """Remove a job's file if it exists.

    Raises:
        StoreError: If it cannot be removed (a folder in its place, say).
    """
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise StoreError(f"cannot remove {what} {str(path)!r}: {error}") from error
