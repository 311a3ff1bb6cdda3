"""Whether each backend can run here: engine builds probed once per process, in a subprocess."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from kpmobile.backends.registry import BACKENDS, backend_info

PROBE_TIMEOUT_S = 180.0
# The import name that must exist before a probe subprocess is worth starting.
ENGINE_MODULES = {"lite": "paddlelite", "paddle": "paddle", "ort": "onnxruntime"}
INSTALL_HINTS = {
    "lite": "pip install paddlelite==2.13rc0 (Python <= 3.10, x86-64)",
    "paddle": "pip install paddlepaddle (CPU) or paddlepaddle-gpu",
    "ort": "pip install onnxruntime (CPU) or onnxruntime-gpu",
}


def worker_env(threads: int | None = None) -> dict[str, str]:
    """Give the environment for a worker: kpmobile importable, OMP threads pinned when given."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("GLOG_minloglevel", "1")  # Paddle's INFO logs drown the line that explains a crash
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


@functools.cache
def probe_engine(engine: str) -> dict[str, Any]:
    """Give the worker's probe of `engine`, or {"reason": ...} when it cannot be used at all."""
    module = ENGINE_MODULES[engine]
    if importlib.util.find_spec(module) is None:
        return {"reason": f"{module} is not installed ({INSTALL_HINTS[engine]})"}
    cmd = [sys.executable, "-m", "kpmobile.backends.worker", "probe", "--engine", engine]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=worker_env(), check=False
        )
    except subprocess.TimeoutExpired:
        return {"reason": f"{module} probe timed out after {PROBE_TIMEOUT_S:.0f} s"}
    payload = last_json_line(proc.stdout)
    if payload is None:
        return {"reason": f"{module} failed to load ({describe_exit(proc.returncode)}: {last_error_line(proc.stderr)})"}
    if payload.get("status") != "ok":
        return {"reason": str(payload.get("reason") or payload.get("message"))}
    return payload


@functools.cache
def cuda_gpus() -> tuple[str, ...]:
    """Give the CUDA GPUs nvidia-smi lists (empty when it is missing or lists none)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.startswith("GPU "))


def available(backend: str) -> str | None:
    """Give None when `backend` can run here, else the reason it must be skipped.

    The first call per engine starts one probe subprocess (a few seconds for paddle); results
    are cached for the life of the process.
    """
    info = backend_info(backend)
    probe = probe_engine(info.engine)
    if "reason" in probe:
        return str(probe["reason"])
    if info.engine == "lite":
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return f"lite-x86 needs an x86-64 host, this is {platform.machine()}"
        return None
    if info.engine == "paddle":
        return _paddle_reason(backend, probe)
    return _ort_reason(backend, probe)


def availability() -> dict[str, str | None]:
    """Give available()'s answer for every backend, by name."""
    return {name: available(name) for name in BACKENDS}


def _paddle_reason(backend: str, probe: dict[str, Any]) -> str | None:
    version = probe.get("version", "paddle")
    if backend == "paddle-mkldnn" and not probe.get("mkldnn"):
        return f"{version} built without MKLDNN (oneDNN)"
    if not backend_info(backend).needs_gpu:
        return None
    if not probe.get("cuda"):
        return f"no CUDA GPU: {version} is a CPU build (install paddlepaddle-gpu)"
    if not probe.get("gpus"):
        return "no CUDA GPU visible to paddle (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
    if backend.startswith("paddle-trt"):
        if probe.get("trt_compile", "0.0.0") == "0.0.0":
            return "Paddle Inference built without TensorRT"
        if not probe.get("trt_library"):
            major = str(probe["trt_compile"]).split(".")[0]
            return (
                f"TensorRT runtime libnvinfer.so.{major} not found (paddle was built with TensorRT "
                f"{probe['trt_compile']}; add its lib folder to LD_LIBRARY_PATH)"
            )
    return None


def _ort_reason(backend: str, probe: dict[str, Any]) -> str | None:
    if backend == "ort-cpu":
        return None
    providers = probe.get("providers", [])
    version = probe.get("version", "onnxruntime")
    wanted = "TensorrtExecutionProvider" if backend == "ort-trt" else "CUDAExecutionProvider"
    if wanted not in providers:
        return f"{version} has no {wanted} (install onnxruntime-gpu)"
    if not cuda_gpus():
        return "no CUDA GPU (nvidia-smi is missing or lists none)"
    if backend == "ort-trt" and not probe.get("trt_library"):
        return "TensorRT runtime libnvinfer not found on the library path (LD_LIBRARY_PATH)"
    return None


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """Give the last line of `stdout` that parses as a JSON object, or None."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


_ERROR_MARKS = ("Error", "error", "Check failed", "FATAL", "[F ", "Segmentation", "terminate", "Abort")


def last_error_line(stderr: str) -> str:
    """Give the stderr line that best explains a crash: the last error-looking one, else the last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no output on stderr"
    pick = next((line for line in reversed(lines) if any(m in line for m in _ERROR_MARKS)), lines[-1])
    return pick[:300]


def describe_exit(returncode: int) -> str:
    """Give a worker's exit status as a shell would show it: "exit 139 (SIGSEGV)"."""
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"exit {128 - returncode} ({name})"
    return f"exit {returncode}"
