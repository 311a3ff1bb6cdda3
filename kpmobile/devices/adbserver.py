"""The adb server process: find the adb binary, start a server on a port, kill it, probe it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from kpmobile.errors import DeviceError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def find_adb() -> str:
    """Give the adb binary: $ADBUTILS_ADB_PATH, then `adb` on PATH, then the one in the adbutils wheel."""
    env_path = os.environ.get("ADBUTILS_ADB_PATH")
    if env_path:
        if os.path.isfile(env_path) and os.access(env_path, os.X_OK):
            return env_path
        raise DeviceError(f"ADBUTILS_ADB_PATH={env_path} is not an executable file",
                          "point it at an adb binary or unset it")
    on_path = shutil.which("adb")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("adbutils")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "binaries" / "adb"
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):
                try:
                    bundled.chmod(bundled.stat().st_mode | 0o111)
                except OSError:
                    pass
            return str(bundled)
    raise DeviceError("no adb binary found",
                      "install Android platform-tools, put adb on PATH or set ADBUTILS_ADB_PATH")


def server_alive(host: str = "127.0.0.1", port: int = 5037, timeout: float = 1.0) -> bool:
    """Give True when an adb server answers `host:version` on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            request = b"host:version"
            sock.sendall(b"%04x" % len(request) + request)
            return sock.recv(4) == b"OKAY"
    except OSError:
        return False


def _writable_home(home: Path | None) -> Path:
    """Give a HOME the adb server can keep ~/.android/adbkey in, creating it when needed."""
    candidates = [home] if home is not None else []
    if os.environ.get("HOME"):
        candidates.append(Path(os.environ["HOME"]))
    candidates.append(Path(tempfile.gettempdir()) / f"kpmobile-adb-home-{os.getuid()}")
    for candidate in candidates:
        try:
            (candidate / ".android").mkdir(parents=True, exist_ok=True)
            if os.access(candidate / ".android", os.W_OK):
                return candidate
        except OSError:
            continue
    raise DeviceError("no writable HOME for the adb server", "set HOME to a writable folder")


def ensure_server(host: str = "127.0.0.1", port: int = 5037, *, home: Path | None = None,
                  env: Mapping[str, str] | None = None, timeout: float = 20.0) -> None:
    """Give nothing once an adb server answers on host:port, starting a local one when none does.

    The adb server dies at start-up without a writable HOME, so one is made sure of first;
    `home` picks it explicitly (tests keep their adb keys apart that way). `env` adds variables
    to the server's environment, e.g. ADB_LIBUSB=0, which skips the 3 s libusb scan where no
    USB phone matters.
    """
    if server_alive(host, port):
        return
    if host not in LOCAL_HOSTS:
        raise DeviceError(f"no adb server answers at {host}:{port}",
                          "start one there with `adb -a nodaemon server` or check the address")
    server_env = dict(os.environ)
    server_env.update(env or {})
    server_env["HOME"] = str(_writable_home(home))
    server_env.pop("ANDROID_ADB_SERVER_PORT", None)  # -P decides the port
    adb = find_adb()
    try:
        done = subprocess.run([adb, "-P", str(port), "start-server"], env=server_env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"`adb -P {port} start-server` failed ({exc})",
                          "check that the adb binary runs on this machine") from exc
    deadline = time.monotonic() + 5
    while not server_alive(host, port):
        if time.monotonic() > deadline:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise DeviceError(f"the adb server did not start on port {port}"
                              f"{': ' + detail[-1] if detail else ''}",
                              "another program may hold the port; see /tmp/adb.*.log")
        time.sleep(0.1)


def kill_server(port: int = 5037) -> None:
    """Give nothing once no adb server answers on 127.0.0.1:port (`adb -P PORT kill-server`)."""
    if not server_alive("127.0.0.1", port):
        return
    try:
        subprocess.run([find_adb(), "-P", str(port), "kill-server"], capture_output=True, timeout=15,
                       stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"`adb -P {port} kill-server` failed ({exc})", "kill the adb process by hand") from exc
    deadline = time.monotonic() + 5
    while server_alive("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise DeviceError(f"the adb server on port {port} did not stop", "kill the adb process by hand")
        time.sleep(0.1)
