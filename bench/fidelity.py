"""Compare the host runner's reported avg with a direct paddlelite loop in one process, on the same .nb.

The runner (kpmobile/runners/lite_runner.py, as the sweep pushes it) runs on this host with the
same flags a sweep gives it; the direct loop loads the same x86 .nb with paddlelite's MobileConfig,
feeds the same all-ones input, runs the same warm-up and timed repeats, and averages the timed
runs. Trials alternate the two; the script prints the command, the machine, each trial and, as its
last line, the median of runner avg / direct avg (goal 1.00 +- 0.03).

    .venv/bin/python bench/fidelity.py [--model pp-tinypose-128x96] [--warmup 10] [--repeats 30] [--trials 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import command_line, load, machine, median, runner_file, spread, x86_models

from kpmobile.runners.parsers import parse_log


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
    return parse_log(done.stdout)[-1].avg_ms


def main() -> None:
    """Print the command, the machine, each trial and the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pp-tinypose-128x96")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    nb, shape = x86_models([args.model])[args.model]
    runner = runner_file()
    print(f"model: {args.model} ({nb.name}), input {shape} all ones, warmup {args.warmup}, repeats {args.repeats}")
    dims = [int(d) for d in shape.split(",")]
    ratios = []
    for trial in range(args.trials):
        if trial % 2 == 0:
            ran = runner_avg_ms(runner, nb, shape, args.warmup, args.repeats)
            direct = direct_avg_ms(nb, dims, args.warmup, args.repeats)
        else:
            direct = direct_avg_ms(nb, dims, args.warmup, args.repeats)
            ran = runner_avg_ms(runner, nb, shape, args.warmup, args.repeats)
        ratios.append(ran / direct)
        print(f"trial {trial + 1}: runner avg {ran:.3f} ms, direct avg {direct:.3f} ms, ratio {ratios[-1]:.3f}, "
              f"load {load()}")
    print(f"runner avg / direct avg: {spread(ratios)}  (goal 1.00 +- 0.03)")
    print(f"ratio {median(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
