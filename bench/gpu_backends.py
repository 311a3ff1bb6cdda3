#!/usr/bin/env python3
"""Measure exported models on every backend a (GPU) machine offers and print the server table.

Two steps, so the GPU machine needs neither ppdet nor paddle2onnx, only the engines it runs
(paddlepaddle-gpu for paddle-*, onnxruntime-gpu for ort-*) and numpy:

1. here (the dev box, with the kpmobile venv): export the catalogue models into a folder,
   each as model.pdmodel + model.pdiparams + model.onnx + meta.json, with the paddle-cpu
   output on the benchmark input as reference.npy:

       .venv/bin/python bench/gpu_backends.py export kpmobile-out/gpu-models \
           --models pp-tinypose-128x96,litehrnet-18-256x192

2. on the GPU machine, from the repository root (kpmobile importable, nothing installed):

       python3 bench/gpu_backends.py run kpmobile-out/gpu-models --batch 1,10 --out $OUT

   Every backend runs in its own worker process (kpmobile.backends.worker); one that cannot run
   there is listed as skipped with its reason. Outputs at batch 1 are checked against
   reference.npy with kpmobile.backends.tolerance_for. It prints the server table in markdown
   (seed layout, plus the backends the seed has no column for) and the complexity-style FPS
   table, and writes results.json and kpmobile.db under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GPU_BACKENDS = ("paddle-gpu", "paddle-trt-fp32", "paddle-trt-fp16", "ort-cuda", "ort-trt")
CPU_BACKENDS = ("paddle-cpu", "paddle-mkldnn", "ort-cpu")
DEFAULT_BACKENDS = CPU_BACKENDS + GPU_BACKENDS


def export(out: Path, models: list[str], with_onnx: bool) -> list[Path]:
    """Give the model folders written under `out`: pdmodel/pdiparams/onnx, meta.json, reference.npy."""
    from kpmobile.backends import run_backend
    from kpmobile.errors import KpError
    from kpmobile.zoo.build import ensure_model, model_hash
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.complexity import model_info
    from kpmobile.zoo.convert import convert_onnx

    written = []
    for name in models:
        spec = resolve(name)
        src = ensure_model(spec)
        dst = out / spec.name
        dst.mkdir(parents=True, exist_ok=True)
        for fname in ("model.pdmodel", "model.pdiparams"):
            shutil.copy2(src / fname, dst / fname)
        if with_onnx:
            shutil.copy2(convert_onnx(src).path, dst / "model.onnx")
        ref = run_backend(src, "paddle-cpu", spec.input_shape, batch=1, warmup=0, repeats=1)
        shutil.copy2(ref.output_digest, dst / "reference.npy")
        try:
            complexity = {k: v for k, v in model_info(spec).items() if k in ("params", "trainable_params", "flops")}
        except KpError as exc:
            complexity = {"error": exc.one_line()}
        meta = {"name": spec.name, "complexity": complexity,
                "display": spec.display.removesuffix(" (pose)").removesuffix(" (det)"),
                "input_shape": list(spec.input_shape), "model_hash": model_hash(src),
                "reference": {"backend": "paddle-cpu", "version": ref.version, "batch": 1}}
        (dst / "meta.json").write_text(json.dumps(meta, indent=1))
        size = sum(p.stat().st_size for p in dst.iterdir()) / 2**20
        print(f"{spec.name}: {dst} ({size:.1f} MiB)", flush=True)
        written.append(dst)
    return written


def _host() -> tuple[str, str]:
    """Give this machine's label (CPU + GPU) and fingerprint, without kpmobile.sweep (which needs adbutils)."""
    import hashlib
    import socket

    from kpmobile.backends.engines.common import cpu_name, gpu_name

    cpu, gpu = cpu_name(), gpu_name()
    label = f"{cpu} + {gpu}" if gpu else cpu
    return label, "host-" + hashlib.sha256(f"{socket.gethostname()}|{label}".encode()).hexdigest()[:16]


def _reference_result(model_dir: Path) -> Any:
    from kpmobile.backends import BackendResult

    return BackendResult(backend="paddle-cpu", batch=1, threads=1, times_ms=(1.0,), avg_ms=1.0, min_ms=1.0,
                         max_ms=1.0, std_ms=0.0, fps_mean=1000.0, fps_std=0.0, outputs=(),
                         output_digest=str(model_dir / "reference.npy"), version="reference")


def run(folder: Path, backends: list[str], batches: list[int], warmup: int, repeats: int, threads: int,
        out: Path) -> dict[str, Any]:
    """Give the results of every model x backend x batch under `folder`, stored in out/kpmobile.db."""
    from kpmobile.backends import BackendUnavailable, available, compare_outputs, run_backend, tolerance_for
    from kpmobile.errors import KpError
    from kpmobile.records import BenchCase
    from kpmobile.store import Store

    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KPMOBILE_CACHE", str(out / "cache"))
    dirs = sorted(p.parent for p in folder.glob("*/meta.json"))
    if not dirs:
        raise SystemExit(f"no model folders with meta.json under {folder}; run the `export` step first")
    label, fp = _host()
    metas = {d.name: json.loads((d / "meta.json").read_text()) for d in dirs}
    reasons = {b: available(b) for b in backends}
    for b, reason in reasons.items():
        print(f"{b}: {'available' if reason is None else 'skipped: ' + reason}", flush=True)
    store = Store(out / "kpmobile.db")
    plan = {"kind": "host", "cases": [], "backends": backends, "batches": batches, "threads": [threads],
            "reference": "paddle-cpu",
            "models": {m["name"]: {"display": m["display"], "input_shape": m["input_shape"], "task": "pose",
                                   "complexity": m.get("complexity", {})} for m in metas.values()},
            "devices": {fp: {"serial": "host", "label": label}}}
    run_id = store.new_run("bench/gpu_backends.py " + " ".join(sys.argv[1:]), plan)
    results: list[dict[str, Any]] = []
    for d in dirs:
        meta = metas[d.name]
        onnx = d / "model.onnx"
        for batch in batches:
            for backend in backends:
                case = BenchCase(model=meta["name"], device=fp, threads=threads, warmup=warmup, repeats=repeats,
                                 backend=backend, batch=batch,
                                 precision="fp16" if backend.endswith("fp16") else "fp32")
                entry: dict[str, Any] = {"model": meta["name"], "backend": backend, "batch": batch}
                label = f"{meta['name']} {backend} bs={batch}"
                if reasons[backend] is not None:
                    store.add_case(run_id, case, serial="host", status="skipped", error=reasons[backend])
                    results.append({**entry, "status": "skipped", "reason": reasons[backend]})
                    continue
                try:
                    res = run_backend(d, backend, meta["input_shape"], batch=batch, threads=threads, warmup=warmup,
                                      repeats=repeats, onnx_path=onnx if onnx.is_file() else None,
                                      timeout_s=900)
                except BackendUnavailable as exc:
                    store.add_case(run_id, case, serial="host", status="skipped", error=exc.reason)
                    results.append({**entry, "status": "skipped", "reason": exc.reason})
                    print(f"{label}: skipped ({exc.reason})", flush=True)
                    continue
                except KpError as exc:
                    store.add_case(run_id, case, serial="host", status="failed", error=exc.one_line())
                    results.append({**entry, "status": "failed", "reason": exc.one_line()})
                    print(f"{label}: failed ({exc.one_line()})", flush=True)
                    continue
                check: dict[str, Any] = {"ok": None, "detail": "no reference at this batch"}
                if batch == 1 and (d / "reference.npy").is_file():
                    atol, rtol = tolerance_for(backend)
                    oc = compare_outputs(_reference_result(d), res, atol, rtol)
                    check = {"reference": "paddle-cpu", "ok": oc.ok, "max_abs": oc.max_abs, "max_rel": oc.max_rel,
                             "atol": atol, "rtol": rtol, "detail": oc.detail}
                store.add_case(run_id, case, serial="host", status="ok",
                               numbers={"avg_ms": res.avg_ms, "min_ms": res.min_ms, "max_ms": res.max_ms,
                                        "first_ms": res.first_ms, "init_ms": res.init_ms},
                               record=res.to_json(), runner=backend, runner_version=res.version,
                               extra={"fps_mean": res.fps_mean, "fps_std": res.fps_std, "check": check,
                                      "device": res.device, "version": res.version})
                results.append({**entry, "status": "ok", "avg_ms": res.avg_ms, "fps_mean": res.fps_mean,
                                "fps_std": res.fps_std, "first_ms": res.first_ms, "init_ms": res.init_ms,
                                "device": res.device, "version": res.version, "notes": list(res.notes),
                                "check": check})
                print(f"{label}: {res.avg_ms:.2f} ms, FPS {res.fps_mean:.2f} ± {res.fps_std:.2f}, "
                      f"check {check['ok']} ({check['detail']})", flush=True)
    store.finish_run(run_id, "complete")
    summary = {"run_id": run_id, "device": label, "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    _print_tables(store, run_id)
    store.close()
    return summary


def _print_tables(store: Any, run_id: str) -> None:
    from kpmobile.report.complexity import complexity_table
    from kpmobile.report.server import server_tables
    from kpmobile.report.table import to_markdown

    run_row = store.run(run_id)
    cases = store.cases(run_id)
    for table in [*server_tables(run_row.plan, cases), complexity_table(run_row.plan, cases)]:
        print(f"\n### {table.title}\n")
        print(to_markdown(table), end="")


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    """Give the exit status: 0 when every available backend ran and its outputs agree."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write models + ONNX + reference outputs into a folder (dev box)")
    ex.add_argument("out", type=Path)
    ex.add_argument("--models", default="pp-tinypose-128x96,litehrnet-18-256x192")
    ex.add_argument("--no-onnx", action="store_true", help="skip the ONNX files (paddle-* backends only)")
    rn = sub.add_parser("run", help="measure every backend on the exported models (GPU box)")
    rn.add_argument("folder", type=Path)
    rn.add_argument("--backends", default=",".join(DEFAULT_BACKENDS))
    rn.add_argument("--batch", default="1")
    rn.add_argument("--warmup", type=int, default=10)
    rn.add_argument("--repeats", type=int, default=50)
    rn.add_argument("--threads", type=int, default=1)
    rn.add_argument("--out", type=Path, default=None, help="folder for results.json and kpmobile.db")
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.out, _csv(args.models), not args.no_onnx)
        return 0
    out = args.out or Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="kpmobile-gpu-"))
    summary = run(args.folder, _csv(args.backends), [int(b) for b in _csv(args.batch)], args.warmup, args.repeats,
                  args.threads, out)
    bad = [r for r in summary["results"] if r["status"] == "failed"
           or (r["status"] == "ok" and r["check"].get("ok") is False)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
