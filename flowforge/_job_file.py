"""A job state's file: written atomically, read with a clear error if it is wrong.

:meth:`JobState.save <flowforge.JobState.save>` and
:meth:`JobState.load <flowforge.JobState.load>` use these; the file holds
``{"kind": "flowforge.job_state", "job_state": <the serialized job>}``.
"""

from __future__ import annotations

import reprlib
import json
import os
from pathlib import Path
from typing import Final

from flowforge._atomic import TEMPORARY_NAME_EXTRA, write_atomically
from flowforge.exceptions import ArgumentTypeError, SerializationError

__all__ = ["FILE_KIND", "read_job_file", "write_job_file"]

FILE_KIND: Final = "flowforge.job_state"


def write_job_file(path: object, job_state: dict[str, object]) -> None:
    """Write a serialized job state to ``path`` (see ``JobState.save``)."""
    target = _target(path)
    text = json.dumps({"kind": FILE_KIND, "job_state": job_state}, allow_nan=False)
    write_atomically(target, text.encode("utf-8"))


def read_job_file(path: object) -> tuple[str, object]:
    """Return ``path`` as text and the serialized job state its file holds.

    Raises:
        SerializationError: If the file is missing, empty, truncated, not
            JSON or not a FlowForge job state; the message names the file.
    """
    where = _path_text(path)
    file = Path(where)
    if file.exists() and not file.is_file():  # a pipe would never answer
        raise SerializationError(
            f"cannot read job state file {where!r}: it is no regular file"
        )
    try:
        text = file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SerializationError(
            f"cannot read job state file {where!r}: {error}"
        ) from error
    if not text.strip():
        raise SerializationError(f"job state file {where!r} is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SerializationError(
            f"job state file {where!r} is not valid JSON (truncated or "
            f"corrupted?): {error}"
        ) from error
    if not isinstance(document, dict) or document.get("kind") != FILE_KIND:
        raise SerializationError(f"{where!r} is not a FlowForge job state file")
    return where, document.get("job_state")


def _path_text(path: object) -> str:
    """Return ``path`` as text, if it is a str or a path object."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"path must be a str or a path, got {type(path).__name__} "
            f"{reprlib.repr(path)}"
        )
    text = os.fspath(path)
    if not isinstance(text, str):  # a bytes path
        raise ArgumentTypeError(f"path must be text, not bytes: {text!r:.60}")
    return text


def _target(path: object) -> Path:
    """Return the file ``save`` may replace at ``path``, or say why it may not."""
    text = _path_text(path)
    if not text or "\0" in text:
        raise SerializationError(f"cannot save job state to {text!r}: not a file name")
    target = Path(text)
    folder = target.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise SerializationError(
            f"cannot save job state to {text!r}: the folder {str(folder)!r} {what}; "
            "create it first"
        )
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise SerializationError(
            f"cannot save job state to {text!r}: it exists and is no regular file "
            "(a folder, a link, a device or a pipe), which save would replace"
        )
    limit = os.pathconf(folder, "PC_NAME_MAX") - TEMPORARY_NAME_EXTRA
    if len(target.name.encode("utf-8", "surrogateescape")) > limit:
        raise SerializationError(
            f"cannot save job state to {text!r}: its name is longer than the "
            f"{limit} bytes this folder allows beside a temporary file"
        )
    return target
