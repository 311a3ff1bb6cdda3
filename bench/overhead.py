"""Measure kpmobile's share of a warm sweep: sweep wall / the sum of the runner processes' own wall.

Starts a private adb server and one virtual phone, runs the sweep once to warm every cache (models
built and converted, runner and .nb files pushed), then runs it `--trials` more times. Each runner
prints its own process wall time (exec to exit, from /proc/self/stat) as one extra stderr line,
which lands in the stored raw log; the script sums those. It prints the command, the machine, each
trial and the median ratio as its last line. The goal is <= 1.05.

Two walls are shown: the sweep (the store's run start to finish: discovery of the phone's runner
and files, every case, storing) and the whole CLI process (plus Python start-up, imports and
listing the devices), which is the one the ratio uses.

    .venv/bin/python bench/overhead.py [--models pp-tinypose-128x96 picodet-s-192 picodet-s-320]
                                       [--threads 1,4] [--warmup 10] [--repeats 30] [--trials 3]
"""

from __future__ import annotations

import argparse

from _common import bench_args, command_line, lab, load, machine, median, run_sweep, spread


def main() -> None:
    """Print the command, the machine, each trial and the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["pp-tinypose-128x96", "picodet-s-192", "picodet-s-320"])
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    with lab(1, "kpmobile-overhead-") as the_lab:
        argv = bench_args(the_lab, args.models, args.threads, args.warmup, args.repeats, args.rounds)
        print("sweep: kpmobile " + " ".join(argv))
        run_sweep(argv, the_lab.tmp / "warm.db")  # build, convert and push once
        cli, inner = [], []
        for trial in range(args.trials):
            s = run_sweep(argv, the_lab.tmp / f"trial{trial}.db")
            cli.append(s.cli_wall_s / s.runner_s)
            inner.append(s.run_wall_s / s.runner_s)
            print(f"trial {trial + 1}: {len(s.runner_walls_s)} cases, runners {s.runner_s:.2f} s, "
                  f"sweep {s.run_wall_s:.2f} s ({inner[-1]:.3f}), CLI {s.cli_wall_s:.2f} s ({cli[-1]:.3f}), "
                  f"pushes {s.outcome['pushes']}, load {load()}")
    print(f"sweep wall / runners' wall: {spread(inner)}")
    print(f"CLI wall / runners' wall:   {spread(cli)}  (goal <= 1.05)")
    print(f"load after: {load()}")
    print(f"ratio {median(cli):.3f}")


if __name__ == "__main__":
    main()
