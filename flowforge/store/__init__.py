"""Stores keep job states: in memory, in a folder of JSON files, or in SQLite."""

from __future__ import annotations

from flowforge.store.base import Change, JobRecord, Store
from flowforge.store.json_directory import JsonDirectoryStore
from flowforge.store.memory import MemoryStore
from flowforge.store.sqlite import SqliteStore

__all__ = [
    "Change",
    "JobRecord",
    "JsonDirectoryStore",
    "MemoryStore",
    "SqliteStore",
    "Store",
]
