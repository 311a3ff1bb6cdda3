"""Measure a model on a host backend by starting one worker process and reading its JSON line."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from kpmobile.backends.probe import (
    available,
    describe_exit,
    last_error_line,
    last_json_line,
    worker_env,
)
from kpmobile.backends.registry import BackendUnavailable, backend_info
from kpmobile.backends.result import BackendResult, result_from_worker
from kpmobile.errors import ConfigError, RunnerError
from kpmobile.paths import cache_dir

CRASH_HINTS = {
    "lite": "check the .nb was converted with --valid_targets=x86 (an ARM .nb loads, then segfaults "
    "on x86) and is complete",
    "paddle": "check model.pdmodel/.pdiparams load with the installed paddle",
    "ort": "check the .onnx loads with the installed onnxruntime",
}


def outputs_dir() -> Path:
    """Give the cache folder holding the first-output .npy of each measurement."""
    path = cache_dir() / "backends" / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_command(
    backend: str,
    input_shape: Sequence[int],
    *,
    model_dir: Path | None,
    nb_path: Path | None = None,
    onnx_path: Path | None = None,
    batch: int = 1,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    save_output: Path | None = None,
    python: str | None = None,
) -> list[str]:
    """Give the command line that runs one measurement in a worker process."""
    cmd = [python or sys.executable, "-m", "kpmobile.backends.worker", "run", "--backend", backend]
    if model_dir is not None:
        cmd += ["--model-dir", str(model_dir)]
    if nb_path is not None:
        cmd += ["--nb", str(nb_path)]
    if onnx_path is not None:
        cmd += ["--onnx", str(onnx_path)]
    cmd += [
        "--input-shape", ",".join(str(int(d)) for d in input_shape),
        "--batch", str(batch), "--threads", str(threads),
        "--warmup", str(warmup), "--repeats", str(repeats),
    ]
    if save_output is not None:
        cmd += ["--save-output", str(save_output)]
    return cmd


def _validate(
    backend: str,
    engine: str,
    model_dir: Path,
    input_shape: Sequence[int],
    batch: int,
    threads: int,
    warmup: int,
    repeats: int,
    nb_path: Path | None,
    onnx_path: Path | None,
) -> None:
    if len(input_shape) < 2 or any(int(d) <= 0 for d in input_shape):
        raise ConfigError(f"bad input_shape {list(input_shape)}", "give NCHW at batch 1, e.g. (1, 3, 256, 192)")
    if batch < 1 or threads < 1 or warmup < 0 or repeats < 1:
        raise ConfigError(
            f"bad run settings batch={batch} threads={threads} warmup={warmup} repeats={repeats}",
            "batch, threads and repeats must be >= 1, warmup >= 0",
        )
    if engine == "lite" and (nb_path is None or not nb_path.is_file()):
        raise ConfigError(f"{backend} needs an x86 .nb, got {nb_path}", 'convert it with convert_nb(model_dir, "x86")')
    if engine == "ort" and (onnx_path is None or not onnx_path.is_file()):
        raise ConfigError(f"{backend} needs an .onnx, got {onnx_path}", "convert it with convert_onnx(model_dir)")
    if engine == "paddle" and not model_dir.is_dir():
        raise ConfigError(f"{backend} needs an exported model folder, got {model_dir}")


def _output_file(backend: str, model_dir: Path, input_shape: Sequence[int], batch: int, threads: int,
                 nb_path: Path | None, onnx_path: Path | None) -> Path:
    key = "|".join(
        str(x) for x in (model_dir.resolve(), backend, tuple(input_shape), batch, threads, nb_path, onnx_path)
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return outputs_dir() / f"{model_dir.name}-{backend}-b{batch}-{digest}.npy"


def run_backend(
    model_dir: Path,
    backend: str,
    input_shape: Sequence[int],
    batch: int = 1,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    nb_path: Path | None = None,
    onnx_path: Path | None = None,
    timeout_s: float = 600,
) -> BackendResult:
    """Give the latencies and outputs of `repeats` runs of the model on `backend`, in a worker process.

    The input is numpy RandomState(0).uniform(0, 1) float32 of shape (batch, *input_shape[1:]),
    the same for every backend; it is placed once, and each timed iteration is one inference
    plus copying its outputs to host memory. lite-x86 runs `nb_path`, ort-* run `onnx_path`,
    paddle-* run model_dir's model.pdmodel/.pdiparams.

    Raises BackendUnavailable (skip, with the reason) when the backend cannot run here or the
    model cannot take this batch, ConfigError for bad arguments, and RunnerError when the
    worker fails, crashes or times out.
    """
    info = backend_info(backend)
    model_dir = Path(model_dir)
    nb_path = Path(nb_path) if nb_path is not None else None
    onnx_path = Path(onnx_path) if onnx_path is not None else None
    reason = available(backend)
    if reason is not None:
        raise BackendUnavailable(backend, reason)
    _validate(backend, info.engine, model_dir, input_shape, batch, threads, warmup, repeats, nb_path, onnx_path)
    save = _output_file(backend, model_dir, input_shape, batch, threads, nb_path, onnx_path)
    cmd = worker_command(
        backend, input_shape,
        model_dir=model_dir if info.engine == "paddle" else None,
        nb_path=nb_path if info.engine == "lite" else None,
        onnx_path=onnx_path if info.engine == "ort" else None,
        batch=batch, threads=threads, warmup=warmup, repeats=repeats, save_output=save,
    )
    rerun = f"rerun alone to see its full log: {shlex.join(cmd)}"
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=worker_env(threads), check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise RunnerError(
            f"{backend} worker timed out after {timeout_s:g} s (last stderr: {last_error_line(stderr)})",
            f"raise timeout_s or lower repeats; {rerun}",
        ) from None
    payload = last_json_line(proc.stdout)
    if payload is None:
        raise RunnerError(
            f"{backend} worker died with {describe_exit(proc.returncode)}: {last_error_line(proc.stderr)}",
            f"{CRASH_HINTS[info.engine]}; {rerun}",
        )
    status = payload.get("status")
    if status == "unavailable":
        raise BackendUnavailable(backend, str(payload.get("reason")))
    if status != "ok":
        message = str(payload.get("message") or f"worker status {status!r}")
        hint = str(payload.get("hint") or "")
        raise RunnerError(f"{backend} failed: {message}", "; ".join(h for h in (hint, rerun) if h))
    return result_from_worker(payload)
