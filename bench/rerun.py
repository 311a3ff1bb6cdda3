"""Measure a second identical kpmobile sweep: no conversion, no push, and its overhead beside "the benchmark.sh way".

Overhead = wall time minus the runner processes' own wall time (each runner prints it). Paddle
Lite's benchmark.sh way, on the same cases through the same private adb server and virtual phone:
`adb push` the runner and every model on every run, one serial `adb shell RUNNER ...` per case,
then `adb pull` of the result file. kpmobile's way: `kpmobile bench` run twice; the second run is
measured. Prints the command, the machine, each trial, the conversions and pushes of kpmobile's
second sweep (goal: both 0), kpmobile's overhead / benchmark.sh's overhead (a figure for the
record, no longer a goal: on loopback a push costs almost nothing, so the benchmark.sh way loses
little by pushing every time) and, as its last line, the second sweep's CLI wall / its runners'
wall (as bench/overhead.py; goal <= 1.05).

    .venv/bin/python bench/rerun.py [--models ...] [--threads 1,4] [--warmup 10] [--repeats 30] [--trials 3]
"""

from __future__ import annotations

import argparse
import time

from _common import (
    Lab,
    bench_args,
    command_line,
    lab,
    load,
    machine,
    median,
    run_sweep,
    runner_file,
    spread,
    wall_of,
    x86_models,
)

REMOTE = "/data/local/tmp/benchmark_sh"


def benchmark_sh_way(the_lab: Lab, models: dict, threads: list[int], warmup: int,
                     repeats: int) -> tuple[float, float, int]:
    """Give (wall s, runners' wall s, cases) of one benchmark.sh-style run through the adb binary."""
    serial = the_lab.phones[0].serial
    runner = runner_file()
    walls = []
    start = time.perf_counter()
    the_lab.adb("-s", serial, "shell", f"mkdir -p {REMOTE}/models && rm -f {REMOTE}/result.txt")
    the_lab.adb("-s", serial, "push", str(runner), f"{REMOTE}/benchmark_bin")
    the_lab.adb("-s", serial, "shell", f"chmod +x {REMOTE}/benchmark_bin")
    for name, (nb, _) in models.items():
        the_lab.adb("-s", serial, "push", str(nb), f"{REMOTE}/models/{name}.nb")
    for name, (_, shape) in models.items():
        for t in threads:
            done = the_lab.adb("-s", serial, "shell",
                               f"{REMOTE}/benchmark_bin --optimized_model_file={REMOTE}/models/{name}.nb "
                               f"--input_shape={shape} --threads={t} --power_mode=0 --warmup={warmup} "
                               f"--repeats={repeats} --backend=x86 --result_path={REMOTE}/result.txt")
            walls.append(wall_of(done.stdout + done.stderr))
    the_lab.adb("-s", serial, "pull", f"{REMOTE}/result.txt", str(the_lab.tmp / "benchmark_sh_result.txt"))
    return time.perf_counter() - start, sum(walls), len(walls)


def main() -> None:
    """Print the command, the machine, each trial and the overhead ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["pp-tinypose-128x96", "picodet-s-192", "picodet-s-320"])
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    models = x86_models(args.models)
    with lab(1, "kpmobile-rerun-") as the_lab:
        argv = bench_args(the_lab, args.models, args.threads, args.warmup, args.repeats, 1)
        print("kpmobile way: kpmobile " + " ".join(argv) + "  (run twice, the second measured)")
        print("benchmark.sh way: adb push runner + every .nb, one `adb shell benchmark_bin ...` per case, adb pull")
        db = the_lab.tmp / "rerun.db"
        run_sweep(argv, db)  # the first sweep: builds, converts, pushes
        ratios, kp_over, sh_over, walls = [], [], [], []
        counts = []
        for trial in range(args.trials):
            k = run_sweep(argv, db)
            sh_wall, sh_runner, sh_cases = benchmark_sh_way(the_lab, models, threads, args.warmup, args.repeats)
            kp_over.append(k.cli_wall_s - k.runner_s)
            sh_over.append(sh_wall - sh_runner)
            ratios.append(kp_over[-1] / sh_over[-1])
            walls.append(k.cli_wall_s / k.runner_s)
            counts.append((k.outcome["conversions"], k.outcome["pushes"]))
            print(f"trial {trial + 1}: kpmobile {len(k.runner_walls_s)} cases, wall {k.cli_wall_s:.2f} s, runners "
                  f"{k.runner_s:.2f} s, overhead {kp_over[-1]:.2f} s (conversions {counts[-1][0]}, pushes "
                  f"{counts[-1][1]}) | benchmark.sh way {sh_cases} cases, wall {sh_wall:.2f} s, runners "
                  f"{sh_runner:.2f} s, overhead {sh_over[-1]:.2f} s | ratio {ratios[-1]:.3f} | load {load()}")
    print(f"kpmobile overhead: median {median(kp_over):.2f} s; "
          f"benchmark.sh way overhead: median {median(sh_over):.2f} s")
    print(f"second sweep: conversions {max(c for c, _ in counts)}, pushes {max(p for _, p in counts)} "
          "(the most in any trial; goal 0 and 0)")
    print(f"kpmobile overhead / benchmark.sh way overhead: {spread(ratios)}  (for the record; no goal)")
    print(f"second sweep CLI wall / runners' wall: {spread(walls)}  (goal <= 1.05)")
    print(f"load after: {load()}")
    print(f"ratio {median(walls):.3f}")


if __name__ == "__main__":
    main()
