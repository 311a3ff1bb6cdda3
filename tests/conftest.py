"""Fixtures shared by the whole suite: a private adb server, and virtual phones connected to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import adbutils
import pytest

from kpmobile.devices.adbserver import ensure_server, find_adb, kill_server
from kpmobile.devices.virtual_phone.launch import ADB_PROBED_PORTS, VirtualPhoneProcess, start_virtual_phone

GETPROP_DIR = Path(__file__).parent / "data" / "getprop"
ROOT = Path(__file__).resolve().parent.parent
FAST = ["--warmup", "1", "--repeats", "3", "--rounds", "1"]  # bench flags for a quick sweep (a later --rounds wins)


def run_kpmobile(*args: str, env: Mapping[str, str] | None = None, timeout: float = 900,
                 ) -> subprocess.CompletedProcess[str]:
    """Give the finished `python -m kpmobile ARGS`: the real CLI in a subprocess, run from the repository root
    with no stdin and a wide terminal (COLUMNS=250), `env` laid over os.environ."""
    return subprocess.run([sys.executable, "-m", "kpmobile", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "250", **(env or {})}, cwd=ROOT, stdin=subprocess.DEVNULL,
                          check=False)


KpmobileCli = Callable[..., subprocess.CompletedProcess[str]]


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Give the one `error: ...` line a refused CLI run printed; fail the test on exit 0, a traceback or
    any other stderr line (bad input gets one line and a non-zero exit)."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def error_line() -> Callable[[subprocess.CompletedProcess[str]], str]:
    """Give one_error_line (module-level helpers import it from conftest themselves)."""
    return one_error_line


@pytest.fixture
def kpmobile_cli() -> KpmobileCli:
    """Give run_kpmobile (the suite's one way to run the CLI); module-level helpers import run_kpmobile itself."""
    return run_kpmobile


@dataclass(frozen=True)
class AdbServer:
    """A running adb server: `.host`, `.port`, `.address` ("127.0.0.1:PORT") and the HOME it runs with."""

    host: str
    port: int
    home: Path

    @property
    def address(self) -> str:
        """Give HOST:PORT, as kpmobile's --server option takes it."""
        return f"{self.host}:{self.port}"

    def client(self) -> adbutils.AdbClient:
        """Give an adbutils client of this server."""
        return adbutils.AdbClient(host=self.host, port=self.port)

    def adb(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Give the finished `adb -P PORT ARGS...` run of the real adb binary against this server."""
        env = dict(os.environ, HOME=str(self.home))
        env.pop("ANDROID_ADB_SERVER_PORT", None)
        return subprocess.run([find_adb(), "-P", str(self.port), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, env=env)

    def state(self, serial: str) -> str | None:
        """Give the state the server lists for `serial` ("device", "offline", ...), or None if unlisted."""
        for info in self.client().list():
            if info.serial == serial:
                return info.state
        return None

    def wait_state(self, serial: str, wanted: str, timeout: float = 15) -> None:
        """Give nothing once `serial` is listed in state `wanted`; fail the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.state(serial)
            if state == wanted:
                return
            time.sleep(0.05)
        pytest.fail(f"{serial} stayed {state!r}, not {wanted!r}, for {timeout} s")


def free_port() -> int:
    """Give a free loopback port that is neither 5037 nor one the adb server probes (5555-5585)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 5037 and port not in ADB_PROBED_PORTS:
            return port


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
    """Give a real adb server on a private port, with its own HOME; killed after the session."""
    home = tmp_path_factory.mktemp("adb-home")
    port = free_port()
    ensure_server("127.0.0.1", port, home=home, env={"ADB_LIBUSB": "0"})  # no 3 s USB scan
    try:
        yield AdbServer("127.0.0.1", port, home)
    finally:
        kill_server(port)


PhoneFactory = Callable[..., VirtualPhoneProcess]


@pytest.fixture
def virtual_phone_factory(adb_server: AdbServer, tmp_path: Path) -> Iterator[PhoneFactory]:
    """Give make(profile, getprop, auth, server, extra_args): a virtual phone connected to the server.

    The phone is "device" when make() returns ("unauthorized" for auth="deny"); each is
    disconnected and stopped (with every process it started) after the test.
    """
    started: list[tuple[VirtualPhoneProcess, AdbServer]] = []

    def make(profile: str = "virtual", getprop: Path | None = None, auth: str = "none",
             server: AdbServer | None = None, extra_args: Sequence[str] = ()) -> VirtualPhoneProcess:
        server = server or adb_server
        root = tmp_path / f"phone{len(started)}"
        phone = start_virtual_phone(profile=profile, root=root, getprop=getprop, auth=auth,
                                    extra_args=extra_args)
        started.append((phone, server))
        server.client().connect(phone.serial, timeout=15)
        server.wait_state(phone.serial, "unauthorized" if auth == "deny" else "device")
        return phone

    yield make
    for phone, server in reversed(started):
        try:
            server.client().disconnect(phone.serial)
        except (adbutils.AdbError, OSError):
            pass
        phone.stop()
