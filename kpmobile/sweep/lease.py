"""A lease per phone, and a lock of the host: one sweep at a time measures a phone (whatever host or
process starts it), and one host sweep at a time measures this host's CPUs.

A phone sweep takes two locks, in this order, and releases them in reverse:
- a host lock: `fcntl.flock` on `<lock dir>/leases/<phone>.lock` (the kernel drops it when the
  process dies, kill -9 included), holding the owner as JSON so a waiter can name it;
- a phone lease: `/data/local/tmp/kpmobile/lease` on the phone, created atomically with the
  shell's noclobber, holding host, pid, run id and an expiry. Another host's sweep sees it. A lease
  whose process is gone (same host) or whose expiry has passed (any host) is taken over, and said so.
  Every change of an existing lease (renew, take over, release) is a compare-and-swap on its md5 under
  a mutex directory on the phone, so of two sweeps taking over one stale lease exactly one holds it.

A host sweep (`--device host`) takes the flock `<lock dir>/host.lock` only: its backends run here.
`<lock dir>` is per user and host (`$KPMOBILE_LOCK_DIR`, else `$XDG_RUNTIME_DIR` or the temp folder).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kpmobile.errors import DeviceError
from kpmobile.owner import Owner, alive, this_process
from kpmobile.paths import DEVICE_DIR

LEASE_PATH = f"{DEVICE_DIR}/lease"
LEASE_TTL_S = 900.0  # a sweep renews its lease after every case; a lease older than this is stale
_TAKEN = "kpmobile-lease-taken"
HOST_LOCK = "host.lock"  # in the parent of lock_dir(), apart from the phones' locks


class LeaseBusy(DeviceError):
    """The phone is leased by another live sweep (and --no-wait was given, or the wait ran out)."""


class PhoneShell(Protocol):
    """What a lease needs of a phone: android.Phone.shell."""

    def shell(self, argv: str, timeout: float | None = 120) -> Any: ...


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the owner process, its run and when the lease expires (host clock)."""

    owner: Owner
    run_id: str
    expires: float

    def to_text(self) -> str:
        """Give the lease's file content: one JSON line."""
        return json.dumps({"host": self.owner.host, "pid": self.owner.pid, "start": self.owner.start,
                           "run_id": self.run_id, "expires": round(self.expires, 3)}, sort_keys=True)

    def describe(self) -> str:
        """Give "run R (pid P on HOST)", as printed to the user."""
        return f"run {self.run_id} ({self.owner.describe()})"

    def stale(self, now: float) -> str | None:
        """Give why the lease may be taken over (process gone, expired), or None while it holds."""
        if alive(self.owner) is False:
            return "process gone"
        if now > self.expires:
            return "expired"
        return None


def parse_holder(text: str) -> Holder | None:
    """Give the holder a lease file names, or None when it is not one kpmobile wrote."""
    try:
        data = json.loads(text.strip().splitlines()[0])
        owner = Owner(str(data["host"]), int(data["pid"]), None if data.get("start") is None else int(data["start"]))
        return Holder(owner, str(data["run_id"]), float(data["expires"]))
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def lock_name(phone_id: str) -> str:
    """Give a file name for a phone's host lock (serials hold ':' and '.')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", phone_id)[:120] + ".lock"


class HostLock:
    """An exclusive flock on one file; the file holds its owner as JSON for waiters to name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, holder: Holder) -> bool:
        """Give True once the lock is held (the holder written into it), False while another holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder.to_text() + "\n").encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> Holder | None:
        """Give who holds the lock, as it wrote itself into the file."""
        try:
            return parse_holder(self.path.read_text(errors="replace"))
        except OSError:
            return None

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race a waiter)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


_SUM = "kpmobile-lease-sum"
_CHANGED = "kpmobile-lease-changed"
_MUTEX_BUSY = "kpmobile-lease-mutex-busy"
MUTEX_PATH = f"{LEASE_PATH}.lock"
MUTEX_STALE_S = 30  # a mutex this old was left by a shell that died inside the few commands it guards


def content_sum(text: str) -> str:
    """Give the md5 the phone's `md5sum` prints for a lease file kpmobile wrote with `text`."""
    return hashlib.md5((text + "\n").encode()).hexdigest()


def _write(content: str, path: str) -> str:
    return f"printf '%s\\n' {shlex.quote(content)} > {path}"


def _create_script(content: str) -> str:
    """Create the lease only where there is none (noclobber: atomic); else print its sum and content."""
    path = shlex.quote(LEASE_PATH)
    folder = shlex.quote(DEVICE_DIR)
    return (f"{{ [ -d {folder} ] || mkdir -p {folder}; }} && if (set -C; {_write(content, path)}) 2>/dev/null; "
            f"then echo {_TAKEN}; else set -- $(md5sum < {path} 2>/dev/null); echo {_SUM} \"$1\"; "
            f"cat {path} 2>/dev/null; fi")


def _swap_script(expected_sum: str, new: str | None) -> str:
    """Replace (new=None: remove) the lease only while its content has `expected_sum`: a compare-and-swap,
    made atomic by a mutex directory (mkdir is atomic) that every change of an existing lease takes."""
    path, mutex = shlex.quote(LEASE_PATH), shlex.quote(MUTEX_PATH)
    tmp = f"{path}.$$"
    action = f"rm -f {path}" if new is None else f"{_write(new, tmp)} && mv -f {tmp} {path}"
    stale = (f"age=$(( $(date +%s) - $(stat -c %Y {mutex} 2>/dev/null || date +%s) )); "
             f"[ \"$age\" -gt {MUTEX_STALE_S} ] && rmdir {mutex} 2>/dev/null")
    return (f"if mkdir {mutex} 2>/dev/null; then set -- $(md5sum < {path} 2>/dev/null); "
            f"if [ \"$1\" = {shlex.quote(expected_sum)} ] && {action}; then echo {_TAKEN}; else echo {_CHANGED}; fi; "
            f"rmdir {mutex}; else {stale}; echo {_MUTEX_BUSY}; fi")


def _seen(out: str) -> tuple[str, Holder | None]:
    """Give (the md5 of the lease file, its holder) from what the create script printed."""
    head, _, rest = out.partition("\n")
    found = head.split()
    return (found[1] if len(found) > 1 and found[0] == _SUM else ""), parse_holder(rest)


class PhoneLease:
    """The lease file on one phone: created atomically, and changed (renewed, taken over, removed) only by
    compare-and-swap, so two sweeps never both hold it."""

    def __init__(self, phone: PhoneShell, holder: Holder) -> None:
        self.phone = phone
        self.holder = holder

    def try_acquire(self, now: float) -> tuple[bool, Holder | None, str | None]:
        """Give (taken, other holder, why a stale lease was taken over)."""
        for _ in range(3):  # the lease changed under us (released, renewed, taken): look again
            out = str(self.phone.shell(_create_script(self.holder.to_text()), timeout=30).stdout)
            if out.partition("\n")[0].strip() == _TAKEN:
                return True, None, None
            seen_sum, other = _seen(out)
            if not seen_sum:
                continue  # removed between the create and the read
            ours = other is not None and other.owner == self.holder.owner  # a resumed sweep of this process
            reason = "unreadable" if other is None else other.stale(now)
            if reason is None and not ours:
                return False, other, None
            answer = self.take_over(seen_sum)
            if answer == _TAKEN:
                took = f"{other.describe() if other else 'a lease kpmobile cannot read'}: {reason}"
                return True, None, None if ours else took
            if answer == _MUTEX_BUSY:
                return False, other, None
        return False, None, None

    def take_over(self, stale_sum: str) -> str:
        """Give _TAKEN when the lease still had `stale_sum` and is now ours, else why not."""
        return self._swap(stale_sum, self.holder.to_text())

    def renew(self, now: float, ttl: float = LEASE_TTL_S) -> None:
        """Push the lease's expiry `ttl` seconds past now (only while the file is still ours)."""
        renewed = Holder(self.holder.owner, self.holder.run_id, now + ttl)
        if self._swap(content_sum(self.holder.to_text()), renewed.to_text()) == _TAKEN:
            self.holder = renewed

    def release(self) -> None:
        """Remove the lease file when it is still ours."""
        self._swap(content_sum(self.holder.to_text()), None)

    def _swap(self, expected_sum: str, new: str | None, tries: int = 5) -> str:
        """Give _TAKEN once the lease with `expected_sum` is replaced by `new` (None: removed), _CHANGED when
        it no longer has that content, or _MUTEX_BUSY when another change held the phone's mutex throughout."""
        for attempt in range(tries):
            out = str(self.phone.shell(_swap_script(expected_sum, new), timeout=30).stdout).strip()
            if out != _MUTEX_BUSY:
                return _TAKEN if out == _TAKEN else _CHANGED
            time.sleep(0.05 * (attempt + 1))  # the mutex guards a few commands: milliseconds
        return _MUTEX_BUSY


Notify = Callable[[str], None]


@dataclass
class Lease:
    """A held lease of one phone (host lock + phone lease); `release()` gives it back."""

    phone_id: str
    host_lock: HostLock
    phone_lease: PhoneLease

    def renew(self) -> None:
        """Push the phone lease's expiry forward (after each case)."""
        self.phone_lease.renew(time.time())

    def release(self) -> None:
        """Give the phone back: remove the phone lease, then drop the host lock."""
        try:
            self.phone_lease.release()
        except DeviceError:
            pass  # a phone gone offline keeps a lease that expires or names a dead process
        finally:
            self.host_lock.release()


def acquire(phone: PhoneShell, phone_id: str, run_id: str, lock_dir: Path, *, wait: bool, notify: Notify,
            timeout_s: float = 24 * 3600, poll_s: float = 1.0, ttl_s: float = LEASE_TTL_S) -> Lease:
    """Give a held lease of the phone; while another sweep holds it, wait (saying who, via `notify`)
    or, with wait=False, raise LeaseBusy naming the holder."""
    holder = Holder(this_process(), run_id, time.time() + ttl_s)
    host_lock = HostLock(lock_dir / lock_name(phone_id))
    phone_lease = PhoneLease(phone, holder)
    _wait_turn(f"phone {phone_id}", lambda: _try_both(host_lock, phone_lease, notify, phone_id),
               wait=wait, notify=notify, timeout_s=timeout_s, poll_s=poll_s)
    return Lease(phone_id, host_lock, phone_lease)


def acquire_host(run_id: str, lock_dir: Path, *, wait: bool, notify: Notify, timeout_s: float = 24 * 3600,
                 poll_s: float = 1.0) -> HostLock:
    """Give the held lock of this host's CPUs for a host sweep; while another host sweep holds it, wait
    (saying who) or, with wait=False, raise LeaseBusy naming the holder."""
    host = socket.gethostname()
    lock = HostLock(lock_dir / HOST_LOCK)
    holder = Holder(this_process(), run_id, time.time() + LEASE_TTL_S)  # the flock, not the expiry, holds it

    def try_once() -> Holder | str | None:
        if lock.try_acquire(holder):
            return None
        return lock.holder() or f"host {host} is measured by another kpmobile host sweep"

    _wait_turn(f"host {host}", try_once, wait=wait, notify=notify, timeout_s=timeout_s, poll_s=poll_s)
    return lock


def _wait_turn(what: str, try_once: Callable[[], Holder | str | None], *, wait: bool, notify: Notify,
               timeout_s: float, poll_s: float) -> None:
    """Give nothing once `try_once` took the lock (it gives None); meanwhile say who holds it (once per
    holder) or, with wait=False or past the timeout, raise LeaseBusy naming the holder."""
    deadline = time.monotonic() + timeout_s
    said = ""
    while True:
        other = try_once()
        if other is None:
            return
        text = f"{what} is leased by {other.describe()}" if isinstance(other, Holder) else other
        if not wait or time.monotonic() > deadline:
            raise LeaseBusy(text, "wait for that sweep to finish, or run again without --no-wait to queue")
        if text != said:
            notify(f"waiting: {text}")
            said = text
        time.sleep(poll_s)


def _try_both(host_lock: HostLock, phone_lease: PhoneLease, notify: Notify, phone_id: str) -> Holder | str | None:
    """Give None once both locks are held, else who (or what) holds the phone."""
    if not host_lock.try_acquire(phone_lease.holder):
        return host_lock.holder() or f"phone {phone_id} is leased by another kpmobile on this host"
    try:
        taken, other, why = phone_lease.try_acquire(time.time())
    except BaseException:
        host_lock.release()
        raise
    if not taken:
        host_lock.release()
        return other or f"phone {phone_id} is leased by another kpmobile"
    if why is not None and other is None:
        notify(f"took over the stale lease of phone {phone_id} from {why}")
    return None


def lock_dir() -> Path:
    """Give the folder of host locks: one per user and host, whatever store a sweep writes to."""
    import tempfile

    base = os.environ.get("KPMOBILE_LOCK_DIR") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(), f"kpmobile-{os.getuid()}")
    return Path(base) / "leases"


class Leased(Protocol):
    """A phone a sweep leases: a Target of sweep.discover."""

    @property
    def fp(self) -> str: ...

    @property
    def phone(self) -> Any: ...


def phone_leases(targets: Sequence[Leased], *, wait: bool, notify: Notify,
                 renew_s: float = 60.0) -> Callable[[str, Any], AbstractContextManager[None]]:
    """Give the engine's lease hook: hold every phone of the run (in fingerprint order, so two sweeps
    wanting the same phones never deadlock), renewing the leases until the cases are done."""

    @contextmanager
    def hold(run_id: str, plan: Any) -> Iterator[None]:
        wanted = set(getattr(plan, "devices", {}) or {}) or {t.fp for t in targets}
        with ExitStack() as stack:
            held = []
            for t in sorted((t for t in targets if t.fp in wanted), key=lambda t: t.fp):
                lease = acquire(t.phone, t.fp, run_id, lock_dir(), wait=wait, notify=notify)
                stack.callback(lease.release)
                held.append(lease)
            done = threading.Event()
            renewer = threading.Thread(target=_renew, args=(held, done, renew_s), daemon=True,
                                       name="kpmobile-lease-renew")
            renewer.start()
            stack.callback(renewer.join, 5)
            stack.callback(done.set)
            yield

    return hold


def host_lease(*, wait: bool, notify: Notify) -> Callable[[str, Any], AbstractContextManager[None]]:
    """Give the engine's lease hook for host sweeps: hold this host's lock while the run prepares and
    measures, so two host sweeps (any store) never measure on top of each other."""

    @contextmanager
    def hold(run_id: str, plan: Any) -> Iterator[None]:
        lock = acquire_host(run_id, lock_dir().parent, wait=wait, notify=notify)
        try:
            yield
        finally:
            lock.release()

    return hold


def _renew(leases: Sequence[Lease], done: threading.Event, every_s: float) -> None:
    while not done.wait(every_s):
        for lease in leases:
            try:
                lease.renew()
            except DeviceError:
                pass  # a phone gone offline: its case fails on its own
