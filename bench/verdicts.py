"""What `runs compare` says about two identical sweeps, and about a sweep slowed 10 %, on one virtual phone.

Issue 15's acceptance on this host, as figures rather than a test: it starts a private adb server and one
x86 virtual phone, runs the same sweep twice (default 6 models x 1, 4 threads, 3 rounds of 10 iterations),
then once more with the phone's `--slowdown` switch at `--slowdown` %, and compares the first run with
the second and with the slowed one through `kpmobile runs compare --json`. For each comparison it prints
the verdict counts, the cells' median round CV, the share of the iterations' variance that lies between
rounds (round ICC) and the design effect it gives, and beside them the verdicts a test that took every
iteration as an independent sample would have given. Goals: identical sweeps never "slower" or
"faster", at least 95 % "same"; the slowed sweep "slower" in at least 90 % of cells. Where rounds
disagree (a median round CV above 2 %) the second goal cannot be met at 3 rounds, and the verdicts should
be "insufficient" instead of guesses.

    .venv/bin/python bench/verdicts.py [--models ...] [--threads 1,4] [--rounds 3] [--warmup 3]
        [--repeats 10] [--slowdown 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from _common import ROOT, bench_args, command_line, lab, load, machine, run_sweep

from kpmobile import stats
from kpmobile.devices.virtual_phone import pacing

SIX = ("pp-tinypose-128x96", "picodet-s-192", "picodet-s-320", "pp-tinypose-256x192", "litehrnet-18-256x192",
       "litehrnet-30-256x192")


def kpmobile_json(*args: str) -> Any:
    """Give the JSON of `python -m kpmobile ARGS --json` (exit codes 0-2 are answers)."""
    res = subprocess.run([sys.executable, "-m", "kpmobile", *args, "--json"], capture_output=True, text=True, cwd=ROOT)
    if res.returncode not in (0, 1, 2):
        raise SystemExit(f"kpmobile {' '.join(args[:2])} failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return json.loads(res.stdout)


def round_cv(db: str, run: str) -> float:
    """Give the median over a run's cells of the CV of their round values."""
    shown = kpmobile_json("runs", "show", run, "--db", db)
    table = next(t for t in shown["tables"] if t["title"] == "Rounds per cell")
    return float(statistics.median(c["cv"] for c in table["cells"]))


def naive_verdicts(db: str, run_a: str, run_b: str) -> Counter[str]:
    """Give the verdicts of a test that took every iteration of a cell as an independent sample."""
    from kpmobile.report.compare import cell_samples
    from kpmobile.store import Store

    store = Store(Path(db))
    a, b = cell_samples(store.cases(run_a)), cell_samples(store.cases(run_b))
    return Counter(stats.compare(a[k].iterations, b[k].iterations).verdict for k in a
                   if k in b and a[k].iterations and b[k].iterations)


def describe(name: str, result: dict[str, Any], naive: Counter[str]) -> str:
    """Give one line: verdicts, round ICC and design effect, and the naive verdicts of the same samples."""
    cells = result["cells"]
    counts = Counter(c["verdict"] for c in cells)
    iccs = [c["round_icc"] for c in cells if c.get("round_icc") is not None]
    deffs = [c["design_effect"] for c in cells]
    ratios = [c["ratio"] for c in cells if c.get("ratio")]
    return (f"{name}: {dict(counts)} of {len(cells)}; ratio median {statistics.median(ratios):.3f};"
            f" round ICC median {statistics.median(iccs) if iccs else float('nan'):.2f},"
            f" design effect median {statistics.median(deffs):.1f}"
            + (f"; every iteration as independent: {dict(naive)}" if naive else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(SIX))
    ap.add_argument("--threads", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--slowdown", type=float, default=10.0)
    args = ap.parse_args()
    print(machine())
    print(command_line())
    with lab(prefix="kpmobile-verdicts-") as the_lab:
        db = str(the_lab.tmp / "kp.db")
        argv = bench_args(the_lab, args.models, args.threads, args.warmup, args.repeats, args.rounds)
        print(f"load before: {load()}")
        first = run_sweep(argv, the_lab.tmp / "kp.db").outcome["run_id"]
        second = run_sweep(argv, the_lab.tmp / "kp.db").outcome["run_id"]
        pacing.set_slowdown(the_lab.phones[0].root, args.slowdown)
        slowed = run_sweep(argv, the_lab.tmp / "kp.db").outcome["run_id"]
        pacing.set_slowdown(the_lab.phones[0].root, 0)
        print(f"load after: {load()}")
        for run in (first, second, slowed):
            print(f"run {run}: median round CV {round_cv(db, run):.1%}")
        same = kpmobile_json("runs", "compare", first, second, "--db", db)
        slow = kpmobile_json("runs", "compare", first, slowed, "--db", db)
        print(describe("identical", same, naive_verdicts(db, first, second)))
        print(describe(f"slowed {args.slowdown:g} %", slow, naive_verdicts(db, first, slowed)))
    n = len(same["cells"])
    wrong = sum(c["verdict"] in ("slower", "faster") for c in same["cells"])
    print(f"identical sweeps: {wrong} of {n} cells slower or faster (goal 0),"
          f" {sum(c['verdict'] == 'same' for c in same['cells']) / n:.0%} same (goal >= 95 %)")
    print(f"slowed sweep: {sum(c['verdict'] == 'slower' for c in slow['cells']) / n:.0%} slower (goal >= 90 %)")


if __name__ == "__main__":
    main()
