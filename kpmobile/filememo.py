"""Facts about a file (its md5, a digest of its bytes, the kernels a .nb holds), computed once and
remembered across runs for as long as the file is the same on disk.

A sweep reads the same few megabytes of .nb files and runner every time it starts (hashes for the
push check and the reference cache, the .nb header for the target check): ~0.1-0.3 s of every
sweep here. A fact is kept under the file's absolute path with its size, mtime (ns), ctime (ns) and
inode, as git's index keeps a file's hash: any write to the file changes one of them, and the fact
is computed again. The memo is one JSON file in the cache folder, rewritten atomically; two
processes that write it at once may lose each other's new entries, never a wrong one (each entry
carries its own file identity), so a lost entry costs one recomputation. The device profiles
(50 TOML files: tomli's import and parse cost ~0.1 s of every command that identifies a phone) are
remembered as one entry, under all their files' identities.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kpmobile.paths import cache_dir

_LOCK = threading.Lock()
_MEMO: dict[str, list[object]] | None = None


def _memo_path() -> Path:
    return cache_dir() / "info" / "file-facts.json"


def _identity(path: Path) -> list[object]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def identity_of(paths: Sequence[Path]) -> list[object]:
    """Give what changes when any file of `paths` is written (size, mtime, ctime, inode of each), as
    `remembered_as` wants it for a value computed from several files."""
    return [_identity(p) for p in paths]


def _load() -> dict[str, list[object]]:
    global _MEMO
    if _MEMO is None:
        try:
            data = json.loads(_memo_path().read_text())
            _MEMO = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 2} \
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
    return remembered_as(f"{fact}:{os.path.abspath(path)}", lambda: _identity(path), compute)


def remembered_as(key: str, identity: Callable[[], object], compute: Callable[[], str]) -> str:
    """Give the value remembered under `key` while `identity()` (JSON types: what the value was
    computed from, e.g. files' sizes and mtimes) is the same, else `compute()`, then remembered."""
    before = identity()
    known = recall(key, before)
    if known is not None:
        return known
    value = compute()
    if _plain(identity()) == _plain(before):  # else changed while it was read: not worth remembering
        remember([(key, before, value)])
    return value


def recall(key: str, identity: object) -> str | None:
    """Give the value remembered under `key` with this `identity` (JSON types), or None."""
    with _LOCK:
        entry = _load().get(key)
    if entry is not None and entry[0] == _plain(identity) and isinstance(entry[1], str):
        return entry[1]
    return None


def remember(entries: Iterable[tuple[str, object, str]]) -> None:
    """Remember each (key, identity, value): `value` under `key` for as long as what it was computed
    from has this `identity`. The memo file is rewritten once for all of them."""
    with _LOCK:
        memo = _load()
        for key, identity, value in entries:
            memo[key] = [_plain(identity), value]
        _save(memo)


def _plain(identity: object) -> object:
    """Give `identity` as JSON reads it back (tuples become lists), so that it compares with a loaded one."""
    return json.loads(json.dumps(identity))


def toml_data(path: Path) -> Any:
    """Give a TOML file's parsed content, remembered as JSON while the file is unchanged: tomli's
    import and parse then stay off a command's start. tomli.TOMLDecodeError (a ValueError) and
    OSError as tomli.loads and read_text give them."""
    import_text = Path(path).read_text  # OSError for a missing file, before anything is remembered

    def parse() -> Any:
        import tomli

        return tomli.loads(import_text(encoding="utf-8"))

    try:
        return json.loads(remembered(Path(path), "toml", lambda: json.dumps(parse())))
    except TypeError:  # a value JSON cannot hold (a TOML date): parsed each time
        return parse()
