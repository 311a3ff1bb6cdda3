"""ONNX Runtime sessions: ort-cpu, ort-cuda, ort-trt, on a paddle2onnx conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kpmobile.backends.engines.common import (
    InputSpec,
    SessionInfo,
    Unavailable,
    WorkerFailure,
    find_nvinfer,
)

# fp32 means fp32: on Ampere and later cuDNN's TF32 convolutions otherwise drift 2-3 % from the CPU
# reference (measured on an H100: HRNet-W32 max_rel 2.8e-2 with TF32).
_CUDA_FP32 = ("CUDAExecutionProvider", {"use_tf32": "0"})
PROVIDERS: dict[str, list[Any]] = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": [_CUDA_FP32, "CPUExecutionProvider"],
    "ort-trt": [
        ("TensorrtExecutionProvider", {"trt_fp16_enable": False, "trt_engine_cache_enable": False}),
        _CUDA_FP32,
        "CPUExecutionProvider",
    ],
}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise Unavailable(f"onnxruntime is not installed ({exc})") from None
    return onnxruntime


def probe() -> dict[str, Any]:
    """Give the onnxruntime version, its execution providers and whether TensorRT loads."""
    ort = _import_ort()
    providers = list(ort.get_available_providers())
    return {
        "version": f"onnxruntime {ort.__version__}",
        "providers": providers,
        "trt_library": find_nvinfer() if "TensorrtExecutionProvider" in providers else None,
    }


def _provider_name(entry: Any) -> str:
    return entry[0] if isinstance(entry, tuple) else str(entry)


def _dim(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value >= 0 else None


class OrtSession:
    """An onnxruntime InferenceSession with inputs bound once and outputs fetched to host."""

    def __init__(self, backend: str, onnx_path: Path, threads: int) -> None:
        ort = _import_ort()
        wanted = PROVIDERS[backend]
        head = _provider_name(wanted[0])
        available = ort.get_available_providers()
        if head not in available:
            raise Unavailable(
                f"onnxruntime {ort.__version__} has no {head} (install onnxruntime-gpu)"
            )
        if head != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN from nvidia-* wheels, when onnxruntime-gpu[cuda,cudnn]
        if not onnx_path.is_file():
            raise WorkerFailure(f"{onnx_path} is missing", "convert the model with paddle2onnx first")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), options, providers=wanted)
        used = self._session.get_providers()
        if used[0] != head:
            raise Unavailable(
                f"onnxruntime could not start {head} (fell back to {used[0]}; "
                "missing CUDA/cuDNN/TensorRT libraries, see the worker's stderr)"
            )
        self._ort = ort
        self._device = "cpu" if head == "CPUExecutionProvider" else "cuda"
        self._binding: Any = None
        self._values: list[tuple[np.ndarray, Any]] = []
        notes = []
        if self._device == "cuda" and threads != 1:
            notes.append(f"threads={threads} not used by {backend} (GPU)")
        if backend == "ort-trt":
            notes.append("TensorRT EP fp32; nodes it rejects run on CUDA")
        self.info = SessionInfo(f"onnxruntime {ort.__version__} ({', '.join(used)})", notes)

    def inputs(self) -> list[InputSpec]:
        """Give the declared inputs (symbolic dims as None)."""
        return [
            InputSpec(i.name, tuple(_dim(d) for d in i.shape)) for i in self._session.get_inputs()
        ]

    def prepare(self, feeds: dict[str, np.ndarray]) -> None:
        """Bind the inputs on the provider's device once and the outputs to host memory (not timed)."""
        binding = self._session.io_binding()
        self._values = []  # a CPU OrtValue borrows the numpy buffer: keep both alive
        for name, arr in feeds.items():
            array = np.ascontiguousarray(arr)
            value = self._ort.OrtValue.ortvalue_from_numpy(array, self._device, 0)
            binding.bind_ortvalue_input(name, value)
            self._values.append((array, value))
        for out in self._session.get_outputs():
            binding.bind_output(out.name, "cpu")
        self._binding = binding

    def run(self) -> list[np.ndarray]:
        """Give the outputs of one run, in host memory (the copy waits for the GPU)."""
        self._session.run_with_iobinding(self._binding)
        return list(self._binding.copy_outputs_to_cpu())


def open_session(backend: str, onnx_path: Path, threads: int) -> OrtSession:
    """Give an onnxruntime session for `backend`, or raise Unavailable."""
    return OrtSession(backend, onnx_path, threads)
