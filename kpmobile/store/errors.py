"""The store's failures, each with the advice that fits it (locked, read-only, full, corrupt, foreign)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kpmobile.errors import KpError


class StoreError(KpError):
    """The store cannot be read or written."""


class StoreLocked(StoreError):
    """Another process holds the store's write lock longer than the busy timeout."""


class StoreFull(StoreError):
    """The disk under the store is full."""


class StoreReadOnly(StoreError):
    """The store (or its folder) cannot be written."""


class NotAStore(StoreError):
    """The file is not a kpmobile store; kpmobile never writes to it."""


class StoreCorrupt(StoreError):
    """The store's pages are damaged."""


class StoreTooNew(StoreError):
    """The store was written by a newer kpmobile."""


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """Give the StoreError that names what went wrong with the store at `path`, and the fix."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreLocked(f"store {path} is locked by another process ({exc})",
                           "wait for the other kpmobile to finish, or pass another --db")
    if "full" in text:
        return StoreFull(f"the disk holding store {path} is full ({exc})", "free some space, then run again")
    if "readonly" in text or "read-only" in text:
        return StoreReadOnly(f"store {path} is read-only ({exc})",
                             "read it with `kpmobile runs`/`report`, or pass a writable --db")
    if "not a database" in text:
        return NotAStore(f"{path} is not a kpmobile store ({exc})",
                         "pass another --db path; kpmobile did not write to it")
    if "malformed" in text or "corrupt" in text:
        return StoreCorrupt(f"store {path} is corrupt ({exc})",
                            "restore it from a backup (or `runs export` what still reads), or pass another --db")
    if "unable to open" in text:
        return StoreReadOnly(f"cannot open store {path} ({exc})",
                             "check the folder exists and is writable, or pass another --db")
    return StoreError(f"store {path} failed: {exc}", "pass another --db, or check the disk")
