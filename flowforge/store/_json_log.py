"""JsonDirectoryStore's change log and lease file, beside each job's file.

A checkpoint appends one line, ``<n> <change document>`` and a newline, to the job's
``.log`` file and fsyncs it, instead of rewriting the job's whole file. The
job's file names the last change folded into it (``"folded"``); every
:data:`~flowforge.store._change_log.FOLD_EVERY` changes, and at a status other
than running, the store rewrites the job's file (atomically) and removes the
log. Loading replays the lines after ``folded`` with the change log's own
rules (:func:`~flowforge.store._change_log.fold` and
:func:`~flowforge.store._change_log.apply`).

A last line that is torn (no newline, not a change, or the wrong number) was
never acknowledged and is ignored; lines numbered ``folded`` or lower are
already in the file (a crash between a fold and the log's removal) and are
skipped. Anything else damaged raises :class:`~flowforge.SerializationError`.

The lease (owner and expiry) lives in a tiny ``.held`` file written
atomically, so that a checkpoint checks it without reading the job's file; a
job without one (written by an older version) keeps its lease in its file.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, NamedTuple

from flowforge._atomic import write_atomically
from flowforge.exceptions import SerializationError, StoreError
from flowforge.job_state import JobStatus
from flowforge.store._change_log import (
    ChangeDocument,
    Logged,
    apply,
    fold,
    logged,
    parse_document,
)
from flowforge.store._rows import assemble_rows, job_rows
from flowforge.store._select import to_status
from flowforge.store._sqlite_log import Due, LogState, due, noted
from flowforge.store.base import JobRecord

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from flowforge.job_state import JobState

__all__ = [
    "HELD_KIND",
    "Appended",
    "LogLines",
    "Writer",
    "append_change",
    "append_line",
    "folded_of",
    "job_record",
    "open_regular",
    "read_held",
    "read_log",
    "replay",
    "stale_last",
    "sync_folder",
    "write_held",
]

HELD_KIND: Final = "flowforge.lease"
OPEN_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK
"""Refuse symbolic links; never wait opening a FIFO (see ``open_regular``)."""


def open_regular(path: Path, flags: int) -> int:
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


def read_bytes(path: Path, what: str) -> bytes | None:
    """Return a regular file's bytes, or ``None`` if there is no such file.

    Raises:
        StoreError: If the file cannot be read or is not a regular file.
    """
    try:
        descriptor = open_regular(path, os.O_RDONLY)
        with os.fdopen(descriptor, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StoreError(f"cannot read {what} {str(path)!r}: {error}") from error


# -- the lease file ------------------------------------------------------------


def read_held(path: Path) -> tuple[str | None, float | None] | None:
    """Return ``(owner, lease_until)`` from a lease file, ``None`` if there is none.

    Raises:
        StoreError: If the file is not a FlowForge lease file.
    """
    data = read_bytes(path, "lease file")
    if data is None:
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise StoreError(f"lease file {str(path)!r} is corrupted: {error}") from error
    if isinstance(document, dict) and document.get("kind") == HELD_KIND:
        owner, until = document.get("owner"), document.get("lease_until")
        if (owner is None or isinstance(owner, str)) and (
            until is None or type(until) in (int, float)
        ):
            return owner, None if until is None else float(until)
    raise StoreError(f"{str(path)!r} is not a FlowForge lease file")


def write_held(path: Path, owner: str | None, lease_until: float | None) -> None:
    """Replace a lease file atomically.

    Raises:
        StoreError: If the file cannot be written.
    """
    if lease_until is None:
        owner = None
    document = {"kind": HELD_KIND, "owner": owner, "lease_until": lease_until}
    try:
        write_atomically(path, json.dumps(document).encode("utf-8"))
    except OSError as error:
        raise StoreError(f"cannot write lease file {str(path)!r}: {error}") from error


# -- the change log ------------------------------------------------------------


class LogLines(NamedTuple):
    """A log file as read: the changes after ``folded``, in order.

    ``last`` numbers the last of them (``folded`` if none) and ``end`` is
    where the lines read end: a torn last line starts there.
    """

    documents: list[Logged]
    last: int
    end: int


def read_log(path: Path, folded: int, where: str) -> LogLines:
    """Read a job's log file (none: no changes).

    Raises:
        SerializationError: If a line other than the last is damaged or out of
            order; the message says ``where``.
        StoreError: If the file cannot be read.
    """
    data = read_bytes(path, "change log") or b""
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last item is a torn line, or b""
    documents: list[Logged] = []
    last = folded
    end = 0
    for i, line in enumerate(complete):
        is_last = i == len(complete) - 1 and not lines[-1]
        try:
            n, document = _parse_line(line, where)
            if n <= folded and documents or n > folded and n != last + 1:
                raise SerializationError(
                    f"stored job data is corrupted: {where}: change {n} "
                    f"follows change {last}"
                )
        except SerializationError:
            if is_last:
                break  # torn: it was never acknowledged
            raise
        if n > folded:
            documents.append(logged(document))
            last = n
        end += len(line) + 1
    return LogLines(documents, last, end)


def _parse_line(line: bytes, where: str) -> tuple[int, ChangeDocument]:
    number, _, text = line.partition(b" ")
    if not number.isdigit() or len(number) > 20:
        raise SerializationError(
            f"stored job data is corrupted: {where}: a line without its number"
        )
    n = int(number)
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SerializationError(
            f"stored job data is corrupted: {where}, change {n}: {error}"
        ) from error
    return n, parse_document(decoded, f"{where}, change {n}")


def stale_last(path: Path) -> int:
    """Return the highest number in a log about to be replaced (0 if none).

    A job's file written over a log names this number as folded, so that a
    crash before the log is removed leaves its lines skipped, never replayed.
    Damaged lines are passed over: the log is being thrown away.
    """
    data = read_bytes(path, "change log") or b""
    numbers = (line.partition(b" ")[0] for line in data.split(b"\n"))
    return max((int(n) for n in numbers if n.isdigit() and len(n) <= 20), default=0)


@dataclass(slots=True)
class Writer:
    """What a store knows of a job's log, which it alone writes while it leases it.

    ``inode`` and ``size`` are the log file's as last written here (``inode``
    ``None``: no log file); a log found otherwise is read back.
    """

    owner: str
    log: LogState
    inode: int | None
    size: int

    def matches(self, status: os.stat_result) -> bool:
        """Say whether the log file is as this writer left it."""
        if self.inode is None:
            return status.st_size == 0
        return status.st_ino == self.inode and status.st_size == self.size


class Appended(NamedTuple):
    """A change to append: its document, its JSON text, and the lease it renews."""

    document: Logged
    text: str
    lease_until: float


def append_change(
    path: Path,
    writer: Writer | None,
    change: Appended,
    where: str,
    folded: Callable[[], int],
) -> tuple[Writer, Due]:
    """Append ``change`` to the log at ``path``; return the writer and what is due.

    ``writer`` is what this store knows of the log (``None``: nothing). A log
    not as the writer left it (another process wrote it, or a write here
    failed) is read back first, with ``folded()`` (the number the job's file
    names), and a torn last line cut off.

    Raises:
        StoreError: If the log cannot be opened or written.
        SerializationError: If the log read back is damaged.
    """
    try:
        descriptor = open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    except OSError as error:
        raise StoreError(f"cannot open change log {str(path)!r}: {error}") from error
    try:
        status = os.fstat(descriptor)
        if writer is None or not writer.matches(status):
            writer = _read_back(path, descriptor, status, where, folded())
        status_text = change.document.document.status
        work = due(writer.log, status_text, change.lease_until, time.time())
        size = append_line(descriptor, work.n, change.text)
        if writer.inode is None:
            sync_folder(path.parent)
    except OSError as error:
        raise StoreError(
            f"cannot append to change log {str(path)!r}: {error}"
        ) from error
    finally:
        os.close(descriptor)
    writer.inode, writer.size = status.st_ino, writer.size + size
    noted(writer.log, work.n, change.document)
    return writer, work


def _read_back(
    path: Path, descriptor: int, status: os.stat_result, where: str, folded: int
) -> Writer:
    """Return a writer for what the log holds, cutting off a torn last line."""
    lines = read_log(path, folded, where)
    if status.st_size > lines.end:
        os.ftruncate(descriptor, lines.end)
    state = LogState(False, None, lines.last, folded, 0.0)
    return Writer("", state, status.st_ino if lines.end else None, lines.end)


def append_line(descriptor: int, n: int, text: str) -> int:
    """Append change ``n`` to an open log and fsync it; return the bytes written.

    Raises:
        OSError: If the write fails or is short (the line is then torn).
    """
    line = f"{n} {text}\n".encode("utf-8")
    written = os.write(descriptor, line)
    if written != len(line):
        raise OSError(f"short write: {written} of {len(line)} bytes")
    os.fsync(descriptor)
    return written


def sync_folder(folder: Path) -> None:
    """Make a file just created in ``folder`` durable (its name, not only its data).

    Raises:
        OSError: If the folder cannot be opened or synced.
    """
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replay(job: JobState, documents: list[Logged], where: str) -> JobState:
    """Return ``job`` (as its file holds it) with the logged changes applied.

    Raises:
        SerializationError: If the changes do not fit the job.
    """
    rows = job_rows(job)
    history = dict(rows.history)
    apply(fold(documents, where), rows, history)
    shape = rows.shape
    shapes = {} if shape is None else {shape.shape_id: shape.text}
    return assemble_rows(rows, history, shapes.get)


def folded_of(document: Mapping[str, object], job_id: str) -> int:
    """Return the number of the last change folded into a job's file (0: none)."""
    folded = document.get("folded", 0)
    if type(folded) is not int or folded < 0:
        raise SerializationError(
            f"stored job data is corrupted: job {job_id!r} has folded {folded!r}"
        )
    return folded


def job_record(job_id: str, document: Mapping[str, object], path: Path) -> JobRecord:
    """Return a job file's record, with the lease and status given in ``document``.

    Raises:
        StoreError: If the metadata are not of the right types.
    """
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
