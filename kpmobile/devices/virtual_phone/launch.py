"""Start a virtual phone as a subprocess and wait until it listens."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from kpmobile.errors import DeviceError
from kpmobile.owner import Owner, alive, this_process

ADB_PROBED_PORTS = range(5555, 5586)  # the adb server registers whatever answers there as an emulator
_READY = re.compile(r"virtual phone listening on 127\.0\.0\.1:(\d+)")
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])


class VirtualPhoneProcess:
    """A running virtual phone: `.port`, `.serial`, `.root`; `stop()` ends it (also on leaving a `with`)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, root: Path, log_path: Path,
                 owns_root: bool, root_lock: int | None = None) -> None:
        self.process = process
        self.port = port
        self.root = root
        self.log_path = log_path
        self._owns_root = owns_root
        self._root_lock = root_lock
        self._claim: Path | None = None

    @property
    def serial(self) -> str:
        """Give the adb serial of the phone once connected: 127.0.0.1:PORT."""
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Give True while the server process runs."""
        return self.process.poll() is None

    def log_text(self) -> str:
        """Give what the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Give nothing: end the server (SIGTERM, then SIGKILL) and remove what the launcher created."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.log_path.unlink(missing_ok=True)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self._root_lock is not None:
            os.close(self._root_lock)  # drops the flock: another launcher may use the folder now
            self._root_lock = None
        if self._claim is not None:
            self._claim.unlink(missing_ok=True)
            self._claim = None

    def claim_for_sweep(self) -> None:
        """Mark the phone as this process's own: other sweeps leave it alone (it stops when this one ends)."""
        path = _claims_dir() / f"{self.port}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        me = this_process()
        path.write_text(json.dumps({"host": me.host, "pid": me.pid, "start": me.start}))
        self._claim = path

    def __enter__(self) -> VirtualPhoneProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VirtualPhoneProcess(serial={self.serial!r}, root={str(self.root)!r}, alive={self.alive()})"


def start_virtual_phone(port: int | None = None, profile: str = "virtual", root: Path | None = None,
                        getprop: Path | None = None, auth: str = "none", cpuinfo: Path | None = None,
                        extra_args: Sequence[str] = (), timeout: float = 120.0) -> VirtualPhoneProcess:
    """Give a started virtual phone, listening; a free port outside 5555-5585 when `port` is None.

    A phone that exits is reported at once; `timeout` only bounds one that hangs. It is long because
    a loaded host (load 15-25 on 2 cores, a fresh checkout compiling its bytecode) took over 20 s to
    get the ARM phone listening, where a quiet one takes under a second.
    """
    for _attempt in range(5):
        phone = _launch(port, profile, root, getprop, auth, cpuinfo, extra_args, timeout)
        if port is None and phone.port in ADB_PROBED_PORTS:
            phone.stop()  # the kernel handed out a port the adb server probes; ask again
            continue
        return phone
    raise DeviceError("could not get a virtual phone port outside 5555-5585",
                      "give a port explicitly")


def _claims_dir() -> Path:
    base = os.environ.get("KPMOBILE_LOCK_DIR") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(), f"kpmobile-{os.getuid()}")
    return Path(base) / "virtual-phones"


def started_by_another_sweep(serial: str) -> bool:
    """Tell whether `serial` is a virtual phone another live sweep started for itself (and will stop)."""
    host, _, port = serial.rpartition(":")
    if host != "127.0.0.1" or not port.isdigit():
        return False
    try:
        data = json.loads((_claims_dir() / f"{port}.json").read_text())
        owner = Owner(str(data["host"]), int(data["pid"]), data.get("start"))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return owner.pid != os.getpid() and alive(owner) is True


def claim_root(root: Path, tries: int = 50) -> tuple[Path, int]:
    """Give a folder for a phone's storage that no other live launcher uses (`root`, else `root-2`, ...)
    and the descriptor whose flock holds it; two processes never share a phone's folder."""
    for i in range(1, tries + 1):
        candidate = root if i == 1 else root.with_name(f"{root.name}-{i}")
        candidate.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(candidate.with_name(candidate.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        candidate.mkdir(parents=True, exist_ok=True)
        return candidate, fd
    raise DeviceError(f"{tries} virtual phones already use folders beside {root}", "stop some of them")


def _launch(port: int | None, profile: str, root: Path | None, getprop: Path | None, auth: str,
            cpuinfo: Path | None, extra_args: Sequence[str], timeout: float) -> VirtualPhoneProcess:
    owns_root = root is None
    lock: int | None = None
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="kpmobile-vphone-"))
    else:
        root, lock = claim_root(Path(root))
    fd, name = tempfile.mkstemp(prefix="kpmobile-vphone-", suffix=".log")
    log_path = Path(name)
    argv = [sys.executable, "-m", "kpmobile.devices.virtual_phone", "serve", "--port", str(port or 0),
            "--profile", profile, "--root", str(root), "--auth", auth]
    if getprop is not None:
        argv += ["--getprop", str(getprop)]
    if cpuinfo is not None:
        argv += ["--cpuinfo", str(cpuinfo)]
    argv += list(extra_args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if x)
    env["PYTHONUNBUFFERED"] = "1"
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
    phone = VirtualPhoneProcess(process, port or 0, root, log_path, owns_root, lock)
    deadline = time.monotonic() + timeout
    while True:
        match = _READY.search(phone.log_text())
        if match:
            phone.port = int(match.group(1))
            return phone
        if process.poll() is not None:
            text = phone.log_text().strip().splitlines()
            phone.stop()
            raise DeviceError(f"the virtual phone exited with code {process.returncode}: "
                              f"{text[-1] if text else 'no output'}",
                              "check the profile name, the port and the files given")
        if time.monotonic() > deadline:
            phone.stop()
            raise DeviceError(f"the virtual phone did not listen within {timeout:.0f} s",
                              "the machine may be overloaded; try again or raise the timeout")
        time.sleep(0.02)
