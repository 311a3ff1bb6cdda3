"""Helpers shared by the bench/ scripts: a private adb server with virtual phones, the machine line,
one `kpmobile bench` run, and the runner's own wall times read back from the store."""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kpmobile.devices import android  # noqa: E402
from kpmobile.devices.adbserver import ensure_server, find_adb, kill_server  # noqa: E402
from kpmobile.devices.virtual_phone.launch import (  # noqa: E402
    ADB_PROBED_PORTS,
    VirtualPhoneProcess,
    start_virtual_phone,
)
from kpmobile.runners.lite_runner import WALL_PREFIX  # noqa: E402

# A user's Python writes bytecode caches (__pycache__) on a module's first import and reads them on
# every later start. With PYTHONDONTWRITEBYTECODE set (some CI shells set it) every `kpmobile` start
# compiles each of its modules again (~0.3 s here), which is not kpmobile's start-up: the measured
# processes (the CLI, the virtual phone and what it runs) start as on a user's machine.
BYTECODE_DROPPED = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None


def free_port() -> int:
    """Give a free loopback port outside the adb server's probed range."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 5037 and port not in ADB_PROBED_PORTS:
            return port


def machine() -> str:
    """Give a one-line description of this machine: CPU model, cores, kernel, load average now."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    note = "; PYTHONDONTWRITEBYTECODE dropped for the measured processes" if BYTECODE_DROPPED else ""
    return (f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
            f"load {load()}{note}")


def load() -> str:
    """Give the 1/5/15-minute load averages as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def command_line() -> str:
    """Give the command that started this script, as a shell would take it."""
    return shlex.join([sys.executable, *sys.argv])


@dataclass
class Lab:
    """A private adb server (its own HOME, ADB_LIBUSB=0) and virtual phones connected to it."""

    tmp: Path
    port: int
    phones: list[VirtualPhoneProcess]

    @property
    def server(self) -> str:
        """Give HOST:PORT of the adb server."""
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Give the environment for the adb binary against this server."""
        env = dict(os.environ, HOME=str(self.tmp / "home"), ADB_LIBUSB="0")
        env.pop("ANDROID_ADB_SERVER_PORT", None)
        return env

    def adb(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Give the finished `adb -P PORT ARGS...` run of the real adb binary."""
        done = subprocess.run([find_adb(), "-P", str(self.port), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, env=self.env(), timeout=600)
        if check and done.returncode != 0:
            raise SystemExit(f"adb {' '.join(args)[:120]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
        return done


@contextmanager
def lab(phones: int = 1, prefix: str = "kpmobile-bench-", link: str = "loopback") -> Iterator[Lab]:
    """Give a Lab with `phones` virtual phones in state "device", each playing the cable `link`
    (loopback, usb2, usb3); everything is stopped afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    (tmp / "home").mkdir()
    port = free_port()
    ensure_server("127.0.0.1", port, home=tmp / "home", env={"ADB_LIBUSB": "0"})
    started: list[VirtualPhoneProcess] = []
    the_lab = Lab(tmp, port, started)
    try:
        for i in range(phones):
            phone = start_virtual_phone(root=tmp / f"phone{i}", extra_args=["--link", link])
            started.append(phone)
            android.connect(the_lab.server, phone.serial)
            _wait_device(the_lab.server, phone.serial)
        yield the_lab
    finally:
        for phone in started:
            android.disconnect(the_lab.server, phone.serial)
            phone.stop()
        kill_server(port)


def _wait_device(server: str, serial: str, timeout: float = 15) -> None:
    client = android.client_for(server)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.serial == serial and e.state == "device" for e in client.list()):
            return
        time.sleep(0.05)
    raise SystemExit(f"virtual phone {serial} did not come up")


@dataclass
class Sweep:
    """One `kpmobile bench` run: its walls, its JSON outcome and the runners' own walls."""

    cli_wall_s: float  # the whole `python -m kpmobile bench` process
    run_wall_s: float  # the store's run start to finish (inside run_bench)
    outcome: dict
    runner_walls_s: list[float]
    cases: list[tuple[str, int, float]]  # (model, threads, avg_ms)
    created: list[float] = field(default_factory=list)  # when each case was stored, in store order
    round_trips: list[int] = field(default_factory=list)  # device round trips of each case that counted them

    @property
    def runner_s(self) -> float:
        """Give the sum of the runner processes' own wall times."""
        return sum(self.runner_walls_s)

    @property
    def per_case_ms(self) -> float:
        """Give kpmobile's time per case inside the sweep: (sweep wall - runners' wall) / cases, in ms."""
        return (self.run_wall_s - self.runner_s) / max(1, len(self.runner_walls_s)) * 1000

    @property
    def steady_case_ms(self) -> float | None:
        """Give the median time between two cases' stores beyond the later runner's wall, in ms."""
        gaps = [(b - a - wall) * 1000 for a, b, wall in zip(self.created, self.created[1:], self.runner_walls_s[1:])]
        return statistics.median(gaps) if gaps else None


def bench_args(lab_: Lab, models: Sequence[str], threads: str, warmup: int, repeats: int, rounds: int) -> list[str]:
    """Give `kpmobile bench` arguments for every phone of the lab."""
    args = ["bench", "--adb-server", lab_.server, "--no-virtual", "--models", ",".join(models), "--threads", threads,
            "--warmup", str(warmup), "--repeats", str(repeats), "--rounds", str(rounds),
            "--out", str(lab_.tmp / "out")]
    for phone in lab_.phones:
        args += ["--device", phone.serial]
    return args


def run_sweep(argv: Sequence[str], db: Path) -> Sweep:
    """Give the Sweep of `python -m kpmobile ARGV --db DB --json` (SystemExit when it fails)."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "kpmobile", *argv, "--db", str(db), "--json"], capture_output=True,
                         text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"bench failed ({res.returncode}): {res.stderr.strip()[-1500:]}")
    outcome = json.loads(res.stdout)
    outcome = outcome.get("outcome", outcome)
    run_id = outcome["run_id"]
    with sqlite3.connect(db) as con:
        started, finished = con.execute("SELECT started, finished FROM runs WHERE id=?", (run_id,)).fetchone()
        rows = con.execute("SELECT model, threads, status, avg_ms, raw_log, created, extra FROM cases WHERE run_id=?"
                           " ORDER BY id", (run_id,)).fetchall()
    walls, cases, created, trips = [], [], [], []
    for model, threads, status, avg_ms, raw, stored, extra in rows:
        if status != "ok":
            raise SystemExit(f"case {model} {threads}T failed: {raw[-500:] if raw else ''}")
        found = [line for line in (raw or "").splitlines() if line.startswith(WALL_PREFIX)]
        if not found:
            raise SystemExit("the runner printed no process wall line: is kpmobile/runners/lite_runner.py current?")
        walls.append(float(found[-1][len(WALL_PREFIX):]) / 1000.0)
        cases.append((model, threads, avg_ms))
        created.append(float(stored))
        counted = json.loads(extra or "{}").get("round_trips")
        if counted is not None:
            trips.append(int(counted))
    return Sweep(wall, finished - started, outcome, walls, cases, created, trips)


def startup_ms(lab_: Lab, runs: int = 5) -> list[float]:
    """Give the walls (ms) of `runs` runs of `python -m kpmobile devices --adb-server ... --json`."""
    return _walls_ms(["devices", "--adb-server", lab_.server, "--json"], runs, lambda out: bool(json.loads(out)))


def help_ms(runs: int = 5) -> list[float]:
    """Give the walls (ms) of `runs` runs of `python -m kpmobile bench --help`."""
    return _walls_ms(["bench", "--help"], runs, lambda out: "--models" in out)


def _walls_ms(args: Sequence[str], runs: int, ok: Callable[[str], bool]) -> list[float]:
    """Give the walls (ms) of `runs` runs of `python -m kpmobile ARGS` (SystemExit unless each exits 0
    with a stdout that `ok` accepts)."""
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "kpmobile", *args], capture_output=True, text=True, cwd=ROOT,
                             env=dict(os.environ, COLUMNS="100"))
        walls.append((time.perf_counter() - start) * 1000)
        if res.returncode != 0 or not ok(res.stdout):
            raise SystemExit(f"kpmobile {' '.join(args[:2])} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    return walls


def median(values: Sequence[float]) -> float:
    """Give the median."""
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """Give 'median (min-max, n=N)' of ratios."""
    return f"{median(values):.3f} (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def x86_models(models: Sequence[str]) -> dict[str, tuple[Path, str]]:
    """Give model name -> (its cached x86 .nb, its input shape as 1,3,H,W), building and converting if needed."""
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.convert import convert_nb

    out = {}
    for name in models:
        spec = resolve(name)
        nb = convert_nb(ensure_model(spec), "x86").path
        out[name] = (nb, ",".join(str(d) for d in (1, *spec.input_shape[1:])))
    return out


def runner_file() -> Path:
    """Give kpmobile's x86 runner as the single executable file the sweep pushes."""
    from kpmobile.sweep.discover import own_runner_file

    return own_runner_file()[0]


def wall_of(text: str) -> float:
    """Give the runner's own process wall in seconds from its output (SystemExit when it printed none)."""
    found = [line for line in text.splitlines() if line.startswith(WALL_PREFIX)]
    if not found:
        raise SystemExit(f"the runner printed no process wall line: {text[-300:]}")
    return float(found[-1][len(WALL_PREFIX):]) / 1000.0
