"""One measurement in its own process: `python -m kpmobile.backends.worker run|probe ...`.

It prints exactly one JSON line on stdout; anything the engines print goes to stderr. Only the
standard library, numpy and the one engine asked for are imported, so it runs wherever that
engine is installed (Python 3.10+, no paddlelite needed for paddle or onnxruntime backends).

Statuses: "ok" (exit 0), "unavailable" with a `reason` (exit 3), "error" with `message` and
`hint` (exit 1). A crash inside an engine leaves no JSON line and the signal as exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

WORKER_API = 1
EXIT_OK, EXIT_ERROR, EXIT_UNAVAILABLE = 0, 1, 3


def _engine_of(backend: str) -> str:
    from kpmobile.backends.registry import BACKENDS

    if backend not in BACKENDS:
        raise SystemExit(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[backend].engine


def _open_session(args: argparse.Namespace) -> Any:
    engine = _engine_of(args.backend)
    if engine == "lite":
        from kpmobile.backends.engines import lite

        if args.nb is None:
            raise _failure("lite-x86 needs --nb (an x86 .nb)")
        return lite.open_session(Path(args.nb), args.threads)
    if engine == "ort":
        from kpmobile.backends.engines import ort

        if args.onnx is None:
            raise _failure(f"{args.backend} needs --onnx (a paddle2onnx conversion)")
        return ort.open_session(args.backend, Path(args.onnx), args.threads)
    from kpmobile.backends.engines import paddle

    if args.model_dir is None:
        raise _failure(f"{args.backend} needs --model-dir (paddle.jit.save output)")
    return paddle.open_session(args.backend, Path(args.model_dir), args.threads, args.batch)


def _failure(message: str, hint: str = "") -> Exception:
    from kpmobile.backends.engines.common import WorkerFailure

    return WorkerFailure(message, hint)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Give the "ok" payload of one measurement described by the parsed `run` arguments."""
    import numpy as np

    from kpmobile.backends.engines import common
    from kpmobile.backends.registry import BACKENDS
    from kpmobile.backends.result import summarize_times

    input_shape = [int(d) for d in args.input_shape.split(",")]
    start = time.perf_counter_ns()
    session = _open_session(args)
    feeds = common.make_feeds(session.inputs(), input_shape, args.batch)
    session.prepare(feeds)
    init_ms = (time.perf_counter_ns() - start) / 1e6
    timings = common.time_session(session, args.warmup, args.repeats)
    output_path = ""
    if args.save_output and timings.outputs:
        target = Path(args.save_output)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.partial.npy")
        np.save(partial, np.asarray(timings.outputs[0]))
        os.replace(partial, target)
        output_path = str(target)
    summary = summarize_times(timings.times_ms)
    notes = list(session.info.notes)
    if args.warmup == 0 and "trt" in args.backend:
        notes.append("warmup=0: the TensorRT engine build is inside the first timed iteration")
    needs_gpu = BACKENDS[args.backend].needs_gpu
    return {
        "backend": args.backend,
        "batch": args.batch,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "input_shape": list(next(iter(feeds.values())).shape),
        "init_ms": init_ms,
        "first_ms": timings.first_ms,
        "times_ms": timings.times_ms,
        "avg_ms": summary.avg_ms,
        "fps_mean": summary.fps_mean,
        "fps_std": summary.fps_std,
        "outputs": common.output_stats(timings.outputs),
        "output_path": output_path,
        "version": session.info.version,
        "notes": notes,
        "device": (common.gpu_name() if needs_gpu else "") or common.cpu_name(),
    }


def probe(engine: str) -> dict[str, Any]:
    """Give what `engine` ("lite" | "paddle" | "ort") can do in this Python environment."""
    if engine == "lite":
        from kpmobile.backends.engines import lite

        return lite.probe()
    if engine == "ort":
        from kpmobile.backends.engines import ort

        return ort.probe()
    from kpmobile.backends.engines import paddle

    return paddle.probe()


def _exception_line(exc: BaseException) -> str:
    """Give the most telling line of an engine exception (Paddle's are long C++ traces)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    pick = next((line for line in lines if "Error" in line or line.startswith("(")), None)
    text = pick or (lines[-1] if lines else "")
    return f"{type(exc).__name__}: {text}"[:400]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kpmobile.backends.worker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure one model on one backend")
    run.add_argument("--backend", required=True)
    run.add_argument("--model-dir", help="folder with model.pdmodel + model.pdiparams (paddle-*)")
    run.add_argument("--nb", help="x86 .nb (lite-x86)")
    run.add_argument("--onnx", help="paddle2onnx .onnx (ort-*)")
    run.add_argument("--input-shape", required=True, help="NCHW at batch 1, e.g. 1,3,256,192")
    run.add_argument("--batch", type=int, default=1)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--warmup", type=int, default=10)
    run.add_argument("--repeats", type=int, default=50)
    run.add_argument("--save-output", help="write the first output here as .npy")
    prb = sub.add_parser("probe", help="report what an engine can do here")
    prb.add_argument("--engine", required=True, choices=("lite", "paddle", "ort"))
    return parser


def _emit(stream: TextIO, payload: dict[str, Any]) -> None:
    import json

    stream.write(json.dumps({"worker_api": WORKER_API, **payload}) + "\n")
    stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Give the worker's exit status after printing its one JSON line."""
    args = _parser().parse_args(argv)
    # The engines print to stdout from C++; keep fd 1 for the JSON line alone.
    result_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if args.command == "run":
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from kpmobile.backends.engines.common import Unavailable, WorkerFailure

    try:
        payload = measure(args) if args.command == "run" else {"engine": args.engine, **probe(args.engine)}
    except Unavailable as exc:
        _emit(result_stream, {"status": "unavailable", "reason": str(exc)})
        return EXIT_UNAVAILABLE
    except WorkerFailure as exc:
        _emit(result_stream, {"status": "error", "message": str(exc), "hint": exc.hint})
        return EXIT_ERROR
    except Exception as exc:  # an engine error: report it as one line, keep the trace on stderr
        traceback.print_exc()
        _emit(result_stream, {"status": "error", "message": _exception_line(exc), "hint": ""})
        return EXIT_ERROR
    _emit(result_stream, {"status": "ok", **payload})
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
