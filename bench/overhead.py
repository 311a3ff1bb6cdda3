"""Measure kpmobile's own cost in a warm sweep: CLI wall / the sum of the runner processes' own wall,
per-case overhead in ms, start-up in ms and device round trips per case, on loopback and on a
virtual USB 2 cable.

For each link (`--links`, default loopback and usb2: the virtual phone plays the cable's bandwidth
and round trip) it starts a private adb server and one virtual phone, times `kpmobile devices
--json` `--startup-runs` times (start-up: Python, imports, listing and identifying the phone), runs
the sweep once to warm every cache (models built and converted, runner and .nb files pushed), then
`--trials` more times. Each runner prints its own process wall time (fork to that line, never
longer than the process: /proc/self/stat's start tick sharpened by the CPU it had used, see
lite_runner.start_estimate) as one extra stderr line, which lands in the stored raw log; the
script sums those. Per case it reports (sweep wall - runners' wall) / cases, and the median gap between two
cases' stores beyond the runner's wall (steady state). Round trips per case are those the phone
executor counted and stored with each case.

Goals: CLI wall / runners' wall <= 1.05 on loopback; per-case overhead <= 25 ms on loopback and
<= 40 ms on usb2; 1 device round trip per case; `kpmobile devices --json` and `kpmobile bench
--help` <= 500 ms each (median).
The last line is the loopback CLI ratio.

    .venv/bin/python bench/overhead.py [--models pp-tinypose-128x96 picodet-s-192 picodet-s-320]
        [--threads 1,4] [--rounds 2] [--warmup 10] [--repeats 30] [--trials 3] [--links loopback,usb2]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from _common import bench_args, command_line, help_ms, lab, load, machine, median, run_sweep, spread, startup_ms

GOAL_CASE_MS = {"loopback": 25.0, "usb2": 40.0}


@dataclass
class LinkFigures:
    """What the trials on one link gave."""

    link: str
    startup_ms: list[float] = field(default_factory=list)
    cli: list[float] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)
    case_ms: list[float] = field(default_factory=list)
    steady_ms: list[float] = field(default_factory=list)
    trips: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Give the summary lines of this link."""
        goal = GOAL_CASE_MS.get(self.link)
        trips = f"{median(self.trips):g} (max {max(self.trips)})" if self.trips else "not counted"
        steady = f"{median(self.steady_ms):.1f} ms" if self.steady_ms else "n/a"
        return [
            f"[{self.link}] start-up `kpmobile devices --json`: median {median(self.startup_ms):.0f} ms "
            f"({', '.join(f'{v:.0f}' for v in self.startup_ms)}; goal <= 500)",
            f"[{self.link}] sweep wall / runners' wall: {spread(self.inner)}",
            f"[{self.link}] CLI wall / runners' wall:   {spread(self.cli)}"
            + ("  (goal <= 1.05)" if self.link == "loopback" else ""),
            f"[{self.link}] per-case overhead: median {median(self.case_ms):.1f} ms (steady state {steady})"
            + (f"  (goal <= {goal:g})" if goal is not None else ""),
            f"[{self.link}] device round trips per case: {trips}  (goal 1)",
        ]


def measure(link: str, args: argparse.Namespace) -> LinkFigures:
    """Give the figures of `args.trials` warm sweeps on a virtual phone playing `link`."""
    figures = LinkFigures(link)
    with lab(1, f"kpmobile-overhead-{link}-", link=link) as the_lab:
        figures.startup_ms = startup_ms(the_lab, args.startup_runs)
        argv = bench_args(the_lab, args.models, args.threads, args.warmup, args.repeats, args.rounds)
        print(f"[{link}] sweep: kpmobile " + " ".join(argv))
        run_sweep(argv, the_lab.tmp / "warm.db")  # build, convert and push once
        for trial in range(args.trials):
            s = run_sweep(argv, the_lab.tmp / f"trial{trial}.db")
            figures.cli.append(s.cli_wall_s / s.runner_s)
            figures.inner.append(s.run_wall_s / s.runner_s)
            figures.case_ms.append(s.per_case_ms)
            if s.steady_case_ms is not None:
                figures.steady_ms.append(s.steady_case_ms)
            figures.trips += s.round_trips
            print(f"[{link}] trial {trial + 1}: {len(s.runner_walls_s)} cases, runners {s.runner_s:.2f} s, "
                  f"sweep {s.run_wall_s:.2f} s ({figures.inner[-1]:.3f}), CLI {s.cli_wall_s:.2f} s "
                  f"({figures.cli[-1]:.3f}), per case {s.per_case_ms:.1f} ms, CLI outside the sweep "
                  f"{(s.cli_wall_s - s.run_wall_s) * 1000:.0f} ms, pushes {s.outcome['pushes']}, load {load()}")
    return figures


def main() -> None:
    """Print the command, the machine, each trial, the figures per link and the loopback ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["pp-tinypose-128x96", "picodet-s-192", "picodet-s-320"])
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--links", default="loopback,usb2")
    args = parser.parse_args()
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    results = [measure(link, args) for link in args.links.split(",")]
    helps = help_ms(args.startup_runs)
    for figures in results:
        for line in figures.lines():
            print(line)
    print(f"start-up `kpmobile bench --help`: median {median(helps):.0f} ms "
          f"({', '.join(f'{v:.0f}' for v in helps)}; goal <= 500)")
    print(f"load after: {load()}")
    main_link = next((f for f in results if f.link == "loopback"), results[0])
    print(f"ratio {median(main_link.cli):.3f}")


if __name__ == "__main__":
    main()
