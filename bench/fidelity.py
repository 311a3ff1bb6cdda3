"""Compare the host runner's reported avg with a direct paddlelite loop in one process, on the same .nb.

The runner (kpmobile/runners/lite_runner.py, as the sweep pushes it) runs on this host with the
same flags a sweep gives it; the direct loop loads the same x86 .nb with paddlelite's MobileConfig,
feeds the same all-ones input, runs the same warm-up and timed repeats, and averages the timed
runs. The two timers run in pairs, runner then direct, again and again (at least 15 pairs), so a
change of the machine's load lands in both halves of a pair rather than between two blocks of
trials. The script prints the command, the machine, each pair with the load, and the median of the
paired ratios runner avg / direct avg with a bootstrap 95 % interval (goal 1.00 +- 0.03). Its last
line is that ratio; where the interval is wider than +- 0.05 around it, the machine is too noisy to
judge and the last line says so instead of a ratio.

    .venv/bin/python bench/fidelity.py [--model pp-tinypose-128x96] [--warmup 10] [--repeats 30] [--pairs 40]
                                       [--nice N]

`--nice N` (root for N < 0) runs both timers at nice N, in a session of their own whose autogroup gets
the same nice, so that other work on a shared host disturbs them less; the script prints it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import command_line, load, machine, median, runner_file, spread, x86_models

from kpmobile.runners.parsers import parse_log
from kpmobile.stats import bootstrap_median_ci

MIN_PAIRS = 15
# Separate runner processes of one .nb differ by 10-15 % here even at load 1.3, so 15 pairs give an interval
# about +-0.07 wide; 40 pairs gave 0.967-1.047 at load 1.6-2.05 (fresh clone).
DEFAULT_PAIRS = 40
JUDGE_HALF_WIDTH = 0.05  # an interval reaching further than this from the ratio cannot resolve 3 %


def direct_avg_ms(nb: Path, shape: list[int], warmup: int, repeats: int) -> float:
    """Give the mean ms of `repeats` timed predictor.run() calls after `warmup` untimed ones."""
    import numpy as np
    from paddlelite import lite

    config = lite.MobileConfig()
    config.set_model_from_file(str(nb))
    predictor = lite.create_paddle_predictor(config)
    predictor.get_input(0).from_numpy(np.ones(shape, dtype=np.float32))
    times = []
    for _ in range(warmup + repeats):
        start = time.perf_counter()
        predictor.run()
        times.append((time.perf_counter() - start) * 1000.0)
    timed = times[warmup:]
    return sum(timed) / len(timed)


def runner_avg_ms(runner: Path, nb: Path, shape: str, warmup: int, repeats: int) -> float:
    """Give the avg the runner reports for the same model, input, warm-up and repeats."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(runner), f"--optimized_model_file={nb}", f"--input_shape={shape}", "--threads=1",
                               "--power_mode=0", f"--warmup={warmup}", f"--repeats={repeats}", "--backend=x86",
                               f"--result_path={tmp}/result.txt"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"runner exited {done.returncode}: {done.stderr.strip()[-300:]}")
    avg = parse_log(done.stdout)[-1].avg_ms
    if avg is None:
        raise SystemExit(f"the runner printed no avg: {done.stdout.strip()[-300:]}")
    return avg


def main() -> None:
    """Print the command, the machine, each pair, the paired median ratio with its interval, and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pp-tinypose-128x96")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args()
    if args.pairs < MIN_PAIRS:
        raise SystemExit(f"error: --pairs {args.pairs} is too few; give at least {MIN_PAIRS}")
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    if args.nice:
        print(f"nice: {set_nice(args.nice)}")
    nb, shape = x86_models([args.model])[args.model]
    runner = runner_file()
    print(f"model: {args.model} ({nb.name}), input {shape} all ones, warmup {args.warmup}, repeats {args.repeats}")
    dims = [int(d) for d in shape.split(",")]
    ratios, loads = [], [os.getloadavg()[0]]
    for pair in range(args.pairs):
        ran = runner_avg_ms(runner, nb, shape, args.warmup, args.repeats)
        direct = direct_avg_ms(nb, dims, args.warmup, args.repeats)
        ratios.append(ran / direct)
        loads.append(os.getloadavg()[0])
        print(f"pair {pair + 1}: runner avg {ran:.3f} ms, direct avg {direct:.3f} ms, ratio {ratios[-1]:.3f}, "
              f"load {load()}")
    print(verdict(ratios, loads))


def set_nice(nice: int) -> str:
    """Give what was set: this process (and the runner it starts) at `nice`, in a session whose autogroup has it."""
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    done = []
    try:
        with open("/proc/self/autogroup", "w", encoding="ascii") as fh:
            fh.write(str(nice))
        done.append("autogroup")
    except OSError as exc:
        done.append(f"no autogroup ({exc.strerror})")
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        done.append("process")
    except OSError as exc:
        raise SystemExit(f"error: cannot set nice {nice} ({exc.strerror}); run as root or drop --nice") from None
    return f"{nice} ({', '.join(done)})"


def verdict(ratios: list[float], loads: list[float]) -> str:
    """Give the summary lines, the last one the ratio or why there is none."""
    ratio = median(ratios)
    lo, hi = bootstrap_median_ci(ratios)
    load_text = f"load {min(loads):.2f}-{max(loads):.2f} (1-minute average, during the pairs)"
    head = (f"runner avg / direct avg, paired: median {ratio:.3f}, 95% bootstrap interval {lo:.3f}-{hi:.3f}; "
            f"pairs {spread(ratios)}; {load_text}  (goal 1.00 +- 0.03)\n")
    if ratio - lo > JUDGE_HALF_WIDTH or hi - ratio > JUDGE_HALF_WIDTH:
        return head + (f"ratio not judged: the interval {lo:.3f}-{hi:.3f} reaches beyond +-{JUDGE_HALF_WIDTH} of "
                       f"{ratio:.3f}, too wide to judge at {load_text}; rerun when quieter or with more --pairs")
    return head + f"ratio {ratio:.3f}"


if __name__ == "__main__":
    main()
