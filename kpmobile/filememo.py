"""Facts about a file (its md5, a digest of its bytes, the kernels a .nb holds), computed once and
remembered across runs for as long as the file is the same on disk.

A sweep reads the same few megabytes of .nb files and runner every time it starts (hashes for the
push check and the reference cache, the .nb header for the target check): ~0.1-0.3 s of every
sweep here. A fact is kept under the file's absolute path with its size, mtime (ns), ctime (ns) and
inode, as git's index keeps a file's hash: any write to the file changes one of them, and the fact
is computed again. The memo is one JSON file in the cache folder, rewritten atomically; two
processes that write it at once may lose each other's new entries, never a wrong one (each entry
carries its own file identity), so a lost entry costs one recomputation.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from kpmobile.paths import cache_dir

_LOCK = threading.Lock()
_MEMO: dict[str, list[object]] | None = None


def _memo_path() -> Path:
    return cache_dir() / "info" / "file-facts.json"


def _identity(path: Path) -> list[object]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load() -> dict[str, list[object]]:
    global _MEMO
    if _MEMO is None:
        try:
            data = json.loads(_memo_path().read_text())
            _MEMO = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5} \
                if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _MEMO = {}
    return _MEMO


def _save(memo: dict[str, list[object]]) -> None:
    path = _memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(memo, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the recomputation


def remembered(path: Path, fact: str, compute: Callable[[], str]) -> str:
    """Give `fact` ("md5", "nb-targets", ...) about the file at `path`: the remembered value while the
    file is unchanged, else `compute()` (remembered when it returns; its exceptions pass through)."""
    key = f"{fact}:{os.path.abspath(path)}"
    identity = _identity(path)
    with _LOCK:
        entry = _load().get(key)
    if entry is not None and entry[:4] == identity and isinstance(entry[4], str):
        return entry[4]
    value = compute()
    if _identity(path) != identity:
        return value  # changed while it was read: not worth remembering
    with _LOCK:
        memo = _load()
        memo[key] = [*identity, value]
        _save(memo)
    return value
