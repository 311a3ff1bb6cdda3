"""Measure how well phones run in parallel: wall(2 phones) / wall(1 phone) for the same work per phone.

Starts a private adb server and two virtual phones, runs the same 1-thread sweep on one phone,
then on both (one worker per phone), `--trials` times interleaved, and prints the command, the
machine, each trial and the ratio of the median walls as its last line. The goal is <= 1.2.

Each phone keeps to a host CPU of its own (the virtual phone's `--cpus`), as real phones' cores
are their own; the orchestrator and the adb server run on any. Unpinned, one x86 runner's OpenMP
pool keeps 1.7 of 2 CPUs busy, and two phones measured the host (1.3-1.6), not kpmobile. With
fewer CPUs than phones they share, and the ratio measures the host again. `--no-pin` runs them
unpinned.

    .venv/bin/python bench/parallel_devices.py [--models pp-tinypose-128x96] [--repeats 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import free_port, load, machine  # noqa: E402

from kpmobile.devices import android  # noqa: E402
from kpmobile.devices.adbserver import ensure_server, kill_server  # noqa: E402
from kpmobile.devices.virtual_phone.launch import start_virtual_phone  # noqa: E402


def sweep(argv: list[str], db: Path) -> tuple[float, float]:
    """Give (CLI wall seconds, sweep wall seconds from the store's run start to finish) of one bench."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "kpmobile", *argv, "--db", str(db), "--json"], capture_output=True,
                         text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"bench failed: {res.stderr.strip().splitlines()[-1:]}")
    run_id = json.loads(res.stdout)["run_id"]
    with sqlite3.connect(db) as con:
        started, finished = con.execute("SELECT started, finished FROM runs WHERE id=?", (run_id,)).fetchone()
    return wall, finished - started


def main() -> None:
    """Print the command, the machine, both walls and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="pp-tinypose-128x96")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=5, help="pairs of sweeps (one phone, then two)")
    parser.add_argument("--no-pin", action="store_true", help="let both phones use every CPU")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    pins = [[] if args.no_pin else ["--cpus", str(cpus[i % len(cpus)])] for i in range(2)]
    tmp = Path(tempfile.mkdtemp(prefix="kpmobile-parallel-"))
    port = free_port()
    ensure_server("127.0.0.1", port, home=tmp, env={"ADB_LIBUSB": "0"})
    server = f"127.0.0.1:{port}"
    phones = [start_virtual_phone(root=tmp / f"phone{i}", extra_args=pins[i]) for i in range(2)]
    try:
        for p in phones:
            android.connect(server, p.serial)
        base = ["bench", "--adb-server", server, "--no-virtual", "--models", args.models, "--threads", "1",
                "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--rounds", str(args.rounds),
                "--out", str(tmp / "out")]
        one = [*base, "--device", phones[0].serial]
        two = [*base, "--device", phones[0].serial, "--device", phones[1].serial]
        sweep(two, tmp / "warm.db")  # push runner and models to both phones first
        print("command: kpmobile " + " ".join(two))
        print(f"machine: {machine()}")
        print("phones' CPUs: " + ("any (--no-pin)" if args.no_pin else ", ".join(p[1] for p in pins)))
        walls: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for trial in range(args.trials):  # interleaved, so that the host's drift lands on both alike
            walls[1].append(sweep(one, tmp / f"one{trial}.db"))
            walls[2].append(sweep(two, tmp / f"two{trial}.db"))
            print(f"trial {trial + 1}: 1 phone sweep {walls[1][-1][1]:.2f} s, 2 phones {walls[2][-1][1]:.2f} s "
                  f"({walls[2][-1][1] / walls[1][-1][1]:.2f}), load {load()}")
        (cli1, sweep1), (cli2, sweep2) = ((statistics.median(w[0] for w in walls[n]),
                                           statistics.median(w[1] for w in walls[n])) for n in (1, 2))
        print(f"1 phone:  sweep {sweep1:.2f} s (CLI {cli1:.2f} s), median of {args.trials}")
        print(f"2 phones: sweep {sweep2:.2f} s (CLI {cli2:.2f} s), median of {args.trials}")
        print(f"wall(2 phones)/wall(1 phone) = {sweep2 / sweep1:.2f} (CLI walls: {cli2 / cli1:.2f}; goal <= 1.2)")
    finally:
        for p in phones:
            android.disconnect(server, p.serial)
            p.stop()
        kill_server(port)


if __name__ == "__main__":
    main()
