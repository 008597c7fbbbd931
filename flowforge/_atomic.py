"""Atomic file writes: a temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

TEMPORARY_NAME_EXTRA: Final = len(".") + len(".12345678.tmp")
"""How many bytes longer than the file's name its temporary file's name is."""


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, whole.

    Raises:
        OSError: If the folder is missing or not writable, or the disk is full;
            the original file is then left untouched.
    """
    folder = path.parent
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Flush the rename to disk where the platform allows opening folders."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover  (Windows cannot open folders)
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
