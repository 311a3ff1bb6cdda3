"""Reference output statistics of a model: its x86 .nb run once on the host on benchmark_bin's input."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kpmobile.filememo import remembered
from kpmobile.paths import cache_dir
from kpmobile.records import OutputStat

_DTYPE_LINE = re.compile(r"^output tensor (\d+) dtype: (\S+)\s*$", re.M)


def reference_stats(nb_x86: Path, input_shape: Sequence[int], timeout_s: float = 300) -> tuple[OutputStat, ...]:
    """Give each output's shape, mean, std and dtype for the all-ones input, computed on the host (cached).

    Phones print the same statistics for the same input, so comparing them catches a broken ARM .nb
    without pulling tensors off the phone. An empty tuple means no reference could be made.
    """
    shape = ",".join(str(int(d)) for d in input_shape)
    digest = remembered(nb_x86, f"reference-key:{shape}",
                        lambda: hashlib.sha256(nb_x86.read_bytes() + shape.encode() + b"|dtype").hexdigest()[:24])
    cached = cache_dir() / "reference" / f"{digest}.json"
    if cached.is_file():
        return tuple(OutputStat(tuple(o["shape"]), o["mean"], o["std"], o.get("dtype"))
                     for o in json.loads(cached.read_text()))
    from kpmobile.runners import LITE_RUNNER_PATH
    from kpmobile.runners.parsers import parse_log

    argv = [sys.executable, str(LITE_RUNNER_PATH), f"--optimized_model_file={nb_x86}", f"--input_shape={shape}",
            "--warmup=0", "--repeats=1", "--backend=x86", "--print_output_dtype=true"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        outputs = parse_log(res.stdout)[-1].outputs if res.returncode == 0 else ()
    except Exception:  # a reference is a check, never a reason to stop the sweep
        return ()
    dtypes = {int(m.group(1)): m.group(2) for m in _DTYPE_LINE.finditer(res.stdout)}
    outputs = tuple(replace(o, dtype=dtypes.get(i)) for i, o in enumerate(outputs))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps([{"shape": list(o.shape), "mean": o.mean, "std": o.std, "dtype": o.dtype}
                                  for o in outputs]))
    return outputs
