"""A journal beside the store: a measured case that could not be stored (store locked, disk full)
is written here, one JSON line per case, and replayed into the store before a resume runs.

Space for it is reserved when a sweep starts (`reserve`: a file of NUL bytes), so a disk that
fills up mid-sweep still takes the case that was just measured; lines are written over the
reserve, and readers stop at the first NUL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kpmobile.store.db import Store
from kpmobile.store.errors import StoreError, StoreFull, StoreLocked

RESERVE_BYTES = 32 * 1024


class CaseJournalled(StoreError):
    """The store refused a case; it is kept in the journal and the sweep must stop."""


def journal_path(db: Path) -> Path:
    """Give the journal file of the store at `db`: `<db>.journal` beside it."""
    return db.with_name(db.name + ".journal")


@contextmanager
def _opened(db: Path, flags: int) -> Iterator[int | None]:
    """Give the journal's descriptor (closed on exit), or None when it cannot be opened (best effort)."""
    try:
        fd = os.open(journal_path(db), flags, 0o644)
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def reserve(db: Path, size: int = RESERVE_BYTES) -> None:
    """Make sure the journal holds `size` bytes of free space (best effort: a full disk reserves less)."""
    with _opened(db, os.O_RDWR | os.O_CREAT) as fd, suppress(OSError):
        if fd is not None and os.fstat(fd).st_size < _used(fd) + size:
            os.posix_fallocate(fd, 0, _used(fd) + size)


def release_reserve(db: Path) -> None:
    """Give the journal's unused reserve back to the disk (so a full store can still mark the run)."""
    with _opened(db, os.O_RDWR) as fd:
        if fd is not None:
            os.ftruncate(fd, _used(fd))


def drop_reserve(db: Path) -> None:
    """Remove the journal when it holds no case (a sweep that ended with every case stored)."""
    with _opened(db, os.O_RDONLY) as fd:
        empty = fd is not None and _used(fd) == 0
    if empty:
        journal_path(db).unlink(missing_ok=True)


def _used(fd: int) -> int:
    data = os.pread(fd, os.fstat(fd).st_size, 0)
    end = data.find(b"\0")
    return len(data) if end < 0 else end


def append(db: Path, values: dict[str, Any]) -> Path:
    """Give the journal path after writing one case row's values; OSError when even this fails.

    A row too big for the space left is written without its raw log (the log is also in --out).
    """
    path = journal_path(db)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        at = _used(fd)
        line = (json.dumps(values, sort_keys=True) + "\n").encode()
        try:
            os.pwrite(fd, line, at)
        except OSError:
            slim = {**values, "raw_log": None, "journal_note": "raw log left out: the disk was full"}
            os.pwrite(fd, (json.dumps(slim, sort_keys=True) + "\n").encode(), at)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read(db: Path) -> list[dict[str, Any]]:
    """Give the journalled case rows, oldest first (a torn last line is left out)."""
    try:
        data = journal_path(db).read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in data.split(b"\0", 1)[0].decode("utf-8", errors="replace").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "run_id" in value and "case_key" in value:
            rows.append(value)
    return rows


def store_or_journal(store: Store, values: dict[str, Any]) -> int:
    """Give the row id of a stored case; a locked or full store puts it in the journal and raises
    CaseJournalled (the sweep stops cleanly and --resume replays it)."""
    try:
        return store.insert_case(values)
    except (StoreLocked, StoreFull) as exc:
        try:
            path = append(store.path, values)
        except OSError as err:
            raise StoreFull(f"{exc.message}; the journal could not keep the case either ({err.strerror})",
                            "free some space; the case will run again on --resume") from exc
        raise CaseJournalled(f"{exc.message}; the measured case is kept in {path}",
                             "fix that, then resume: the journal is stored first") from exc


def replay(store: Store, run_id: str | None = None) -> int:
    """Give the number of journalled rows stored; each is stored once, then the journal is removed.

    Rows of other runs stay. A row already stored (same run, case, status and end stamp) is not
    stored again.
    """
    rows = read(store.path)
    if not rows:
        return 0
    keep, stored = [], 0
    for values in rows:
        if run_id is not None and values["run_id"] != run_id:
            keep.append(values)
            continue
        values.pop("journal_note", None)
        if not _already_stored(store, values):
            store.insert_case(values)
            stored += 1
    _rewrite(store.path, keep)
    return stored


def _already_stored(store: Store, values: dict[str, Any]) -> bool:
    return any(c.case_key == values["case_key"] and c.status == values.get("status")
               and c.created == values.get("created") for c in store.attempts(values["run_id"]))


def _rewrite(db: Path, rows: list[dict[str, Any]]) -> None:
    path = journal_path(db)
    if not rows:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
