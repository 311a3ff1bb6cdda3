"""The `sync:` service: STAT/STA2/LST2, LIST/LIS2, SEND, RECV and QUIT on the sandbox."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from kpmobile.devices.virtual_phone import protocol as p

if TYPE_CHECKING:
    from kpmobile.devices.virtual_phone.server import Stream, VirtualPhone

_PATH_MAX = 1024
_DATA_MAX = 16 * 1024 * 1024  # a sanity bound; adb sends at most 64 KiB per DATA
_OKAY = p.SYNC_REQUEST.pack(b"OKAY", 0)
_MAPPED_HINT = "the virtual phone maps only /data/local/tmp, /sdcard, /proc/cpuinfo and some of /sys"


def run_sync(stream: Stream, phone: VirtualPhone) -> None:
    """Give nothing: answer sync requests on `stream` until QUIT, an error or the host closing it."""
    while True:
        head = stream.read_exact(p.SYNC_REQUEST.size)
        if head is None:
            return
        request, length = p.SYNC_REQUEST.unpack(head)
        if request == b"QUIT":
            return
        if request not in (b"STAT", b"STA2", b"LST2", b"LIST", b"LIS2", b"SEND", b"RECV"):
            stream.write(p.sync_fail(f"unknown sync request {request!r}"))
            return
        if length > _PATH_MAX:
            stream.write(p.sync_fail(f"path too long ({length} bytes)"))
            return
        raw = stream.read_exact(length)
        if raw is None:
            return
        path = raw.decode("utf-8", "surrogateescape")
        if request == b"SEND":
            keep_going = _send(stream, phone, path)
        elif request == b"RECV":
            keep_going = _recv(stream, phone, path)
        elif request in (b"LIST", b"LIS2"):
            keep_going = stream.write(_listing(phone, path, v2=request == b"LIS2"))
        elif request == b"STAT":
            keep_going = stream.write(_stat_v1(phone, path))
        else:
            keep_going = stream.write(_stat_v2(phone, path, request))
        if not keep_going:
            return


def _stat_v1(phone: VirtualPhone, path: str) -> bytes:
    """Give the STAT reply: mode, size and mtime, all zero when the path is missing or not mapped."""
    host = phone.sandbox.host_path(path)
    try:
        st = os.lstat(host) if host is not None else None
    except OSError:
        st = None
    if st is None:
        return p.STAT_V1.pack(b"STAT", 0, 0, 0)
    return p.STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime) & 0xFFFFFFFF)


def _v2_fields(st: os.stat_result) -> tuple[int, ...]:
    return (0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
            int(st.st_atime), int(st.st_mtime), int(st.st_ctime))


def _stat_v2(phone: VirtualPhone, path: str, request: bytes) -> bytes:
    """Give the 72-byte STA2 (stat) or LST2 (lstat) reply; `error` holds the errno on failure."""
    host = phone.sandbox.host_path(path)
    try:
        if host is None:
            raise FileNotFoundError(errno.ENOENT, "not mapped")
        st = os.stat(host) if request == b"STA2" else os.lstat(host)
    except OSError as exc:
        return p.STAT_V2.pack(request, exc.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return p.STAT_V2.pack(request, *_v2_fields(st))


def _listing(phone: VirtualPhone, path: str, v2: bool) -> bytes:
    """Give the DENT (or DNT2) entries of a folder, '.' and '..' included, then DONE."""
    host = phone.sandbox.host_path(path)
    parts: list[bytes] = []
    try:
        names = [".", ".."] + sorted(os.listdir(host)) if host is not None else []
    except OSError:
        names = []  # a phone answers an unreadable folder with an empty listing
    for name in names:
        try:
            st = os.lstat(os.path.join(host or "", name))
        except OSError:
            continue
        encoded = name.encode("utf-8", "surrogateescape")
        if v2:
            parts.append(p.DENT_V2.pack(b"DNT2", *_v2_fields(st), len(encoded)) + encoded)
        else:
            parts.append(p.DENT_V1.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF,
                                        int(st.st_mtime) & 0xFFFFFFFF, len(encoded)) + encoded)
    if v2:
        parts.append(p.DENT_V2.pack(b"DONE", *([0] * 11), 0))
    else:
        parts.append(p.DENT_V1.pack(b"DONE", 0, 0, 0, 0))
    return b"".join(parts)


def _discard(data: memoryview) -> None:
    """Give nothing: throw away data the host sent after a FAIL."""


def _writer(handle: BinaryIO, errors: list[OSError]) -> Callable[[memoryview], None]:
    """Give a sink writing to `handle` that records the first error instead of raising mid-chunk."""

    def sink(data: memoryview) -> None:
        if errors:
            return
        try:
            handle.write(data)
        except OSError as exc:
            errors.append(exc)

    return sink


def _open_target(phone: VirtualPhone, path: str, mode: int) -> tuple[Path | None, str | None]:
    """Give (file to write, None), or (None, why the phone refuses the push)."""
    host = phone.sandbox.host_path(path)
    if host is None:
        return None, f"refused: {path} is outside the phone's storage ({_MAPPED_HINT})"
    if stat.S_ISLNK(mode):
        return None, f"{path}: the virtual phone does not create symlinks"
    if host.is_dir():
        return None, f"couldn't create file {path}: Is a directory"
    try:
        host.parent.mkdir(parents=True, exist_ok=True)  # fixed_push_mkdir
    except OSError as exc:
        return None, f"secure_mkdirs failed for {path}: {exc.strerror}"
    if phone.sandbox.host_path(path) is None:  # a folder on the way turned out to be a symlink
        return None, f"refused: {path} leads outside the phone's storage"
    return host, None


class _Upload:
    """The file one SEND writes: filled chunk by chunk, removed on any failure (no partial file is left)."""

    def __init__(self, stream: Stream, phone: VirtualPhone, path: str, mode: int) -> None:
        self.stream, self.phone, self.path, self.mode = stream, phone, path, mode
        self.host, error = _open_target(phone, path, mode)
        self.handle: BinaryIO | None = None
        if self.host is not None:
            try:
                self.handle = open(self.host, "wb", buffering=1024 * 1024)  # closed by finish() or discard()
            except OSError as exc:
                error = f"couldn't create file {path}: {exc.strerror}"
        self.budget = None
        if self.handle is not None and phone.quota is not None:
            self.budget = phone.quota - phone.sandbox.used_bytes(skip=self.host)
        self.written = 0
        if error is not None:
            self.fail(error)

    def discard(self) -> None:
        """Give nothing: close and remove the file if it is still open."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None
            if self.host is not None:
                self.host.unlink(missing_ok=True)

    def fail(self, message: str) -> None:
        """Give nothing: drop the file and send FAIL."""
        self.discard()
        self.stream.write(p.sync_fail(message))

    def take(self, length: int) -> bool:
        """Give False when the stream ended while reading one DATA chunk of `length` bytes into the file."""
        if self.handle is not None and self.budget is not None and self.written + length > self.budget:
            self.fail(f"write failed: No space left on device (virtual phone quota {self.phone.quota} bytes)")
        if self.handle is None:  # after a FAIL, drain what the host already sent
            return self.stream.read_into(length, _discard)
        errors: list[OSError] = []
        if not self.stream.read_into(length, _writer(self.handle, errors)):
            return False
        if errors:
            self.fail(f"write failed: {errors[0].strerror}")
        else:
            self.written += length
        return True

    def finish(self, mtime: int) -> bool:
        """Give True after closing the file with its mode and mtime and replying OKAY."""
        if self.handle is None or self.host is None:
            return False  # the FAIL went out already; a phone closes the sync stream after one
        try:
            finished, self.handle = self.handle, None
            finished.close()  # flushes the last MiB, which may still fail
            os.chmod(self.host, self.mode & 0o7777)
            os.utime(self.host, (mtime, mtime))
        except OSError as exc:
            self.host.unlink(missing_ok=True)
            self.stream.write(p.sync_fail(f"write failed: {exc.strerror}"))
            return False
        return self.stream.write(_OKAY)


def _send(stream: Stream, phone: VirtualPhone, spec: str) -> bool:
    """Give True after receiving one file (SEND path,mode; DATA...; DONE mtime) and replying OKAY."""
    path, _, mode_text = spec.rpartition(",")
    if not path or not mode_text.isdigit():
        path, mode_text = spec, str(stat.S_IFREG | 0o644)
    upload = _Upload(stream, phone, path, int(mode_text))
    try:
        while True:
            head = stream.read_exact(p.SYNC_REQUEST.size)
            if head is None:
                return False
            request, length = p.SYNC_REQUEST.unpack(head)
            if request == b"DONE":
                return upload.finish(length)
            if request != b"DATA" or length > _DATA_MAX:
                if upload.handle is not None:
                    upload.fail(f"invalid data message {request!r}")
                return False
            if not upload.take(length):
                return False
    finally:
        upload.discard()  # the stream ended mid-file: leave no partial file behind


def _recv(stream: Stream, phone: VirtualPhone, path: str) -> bool:
    """Give True after sending a file as DATA chunks and DONE; a missing or refused file gets FAIL."""
    host = phone.sandbox.host_path(path)
    if host is None:
        stream.write(p.sync_fail(f"refused: {path} is outside the phone's storage ({_MAPPED_HINT})"))
        return False
    try:
        handle = open(host, "rb")
    except OSError as exc:
        stream.write(p.sync_fail(f"open failed: {exc.strerror}"))
        return False
    limit = stream.conn.max_payload
    chunk_size = min(p.SYNC_DATA_MAX, max(limit - 8, 1024))
    pending = b""  # the last WRTE is held back so that DONE can ride along (one OKAY round trip less)
    with handle:
        while True:
            # Several DATA chunks per WRTE: each WRTE waits for an OKAY, so fewer is faster.
            parts: list[bytes] = []
            size = 0
            while not parts or size + chunk_size + 8 <= limit:
                chunk = handle.read(chunk_size)
                if not chunk:
                    break
                parts.append(p.SYNC_REQUEST.pack(b"DATA", len(chunk)))
                parts.append(chunk)
                size += len(chunk) + 8
            if not parts:
                break
            if pending and not stream.write(pending):
                return False
            pending = b"".join(parts)
    done = p.SYNC_REQUEST.pack(b"DONE", 0)
    if pending and len(pending) + len(done) > limit:
        if not stream.write(pending):
            return False
        pending = b""
    return stream.write(pending + done)
