"""Server backends: measure exported models on Paddle Lite x86, Paddle Inference and ONNX Runtime.

Each measurement runs in its own worker process (`python -m kpmobile.backends.worker`), so
paddle, paddlelite and onnxruntime never share a process and an engine crash becomes a
RunnerError. This package imports only the standard library and numpy.
"""

from __future__ import annotations

from kpmobile.backends.compare import OutputCheck, compare_outputs, tolerance_for
from kpmobile.backends.probe import availability, available
from kpmobile.backends.registry import BACKENDS, BackendInfo, BackendUnavailable, backend_info
from kpmobile.backends.result import BackendResult, summarize_times
from kpmobile.backends.run import run_backend, worker_command

__all__ = [
    "BACKENDS",
    "BackendInfo",
    "BackendResult",
    "BackendUnavailable",
    "OutputCheck",
    "availability",
    "available",
    "backend_info",
    "compare_outputs",
    "run_backend",
    "summarize_times",
    "tolerance_for",
    "worker_command",
]
