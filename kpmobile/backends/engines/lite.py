"""Paddle Lite x86 sessions (lite-x86): an x86 .nb run through paddlelite's MobileConfig."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import numpy as np

from kpmobile.backends.engines.common import InputSpec, SessionInfo, Unavailable, WorkerFailure
from kpmobile.nbfile import NbFormatError, read_nb


def _import_lite() -> Any:
    if int(np.__version__.split(".")[0]) >= 2:
        # paddlelite 2.13's Tensor.from_numpy silently writes zeros with numpy 2
        raise Unavailable(f"paddlelite needs numpy<2 (numpy {np.__version__} makes it read zeros)")
    try:
        from paddlelite import lite
    except ImportError as exc:
        raise Unavailable(f"paddlelite is not installed ({exc})") from None
    return lite


def _version() -> str:
    try:
        return f"paddlelite {importlib.metadata.version('paddlelite')}"
    except importlib.metadata.PackageNotFoundError:
        return "paddlelite"


def probe() -> dict[str, Any]:
    """Give the paddlelite version (importing it checks the wheel loads)."""
    _import_lite()
    return {"version": _version()}


def nb_version(nb_path: Path) -> str:
    """Give the opt version written in a .nb header (e.g. "v2.13-rc"), or "" when it is not a .nb."""
    try:
        return read_nb(str(nb_path)).opt_version
    except (NbFormatError, OSError):
        return ""


X86_TARGETS = frozenset({"host", "x86", "any"})


def nb_kernel_targets(nb_path: Path) -> dict[str, set[str]]:
    """Give, per target name, the ops whose kernels a .nb holds for it (from its kernel tags)."""
    return {target: set(ops) for target, ops in read_nb(str(nb_path)).ops}


def check_x86_nb(nb_path: Path) -> None:
    """Raise WorkerFailure when the file is not a .nb or holds kernels for another target than x86/host.

    An ARM .nb loads on x86 and then either segfaults or returns garbage in microseconds
    without running any kernel, so it is refused before it is run.
    """
    try:
        found = nb_kernel_targets(nb_path)
    except NbFormatError as exc:
        raise WorkerFailure(exc.message, "convert the model with --valid_targets=x86") from None
    foreign = {target: ops for target, ops in found.items() if target not in X86_TARGETS}
    if foreign:
        listed = "; ".join(f"{target}: {', '.join(sorted(ops))}" for target, ops in sorted(foreign.items()))
        raise WorkerFailure(
            f"{nb_path.name} holds kernels for another target than x86 ({listed})",
            "convert with --valid_targets=x86 for lite-x86",
        )


class LiteSession:
    """A paddlelite LightPredictor on an x86 .nb."""

    def __init__(self, nb_path: Path, threads: int) -> None:
        lite = _import_lite()
        if not nb_path.is_file() or nb_path.stat().st_size == 0:
            raise WorkerFailure(f"{nb_path} is missing or empty", "convert the model with --valid_targets=x86")
        check_x86_nb(nb_path)
        config = lite.MobileConfig()
        config.set_model_from_file(str(nb_path))
        self._predictor = lite.create_paddle_predictor(config)
        self._n_outputs = len(self._predictor.get_output_names())
        omp = os.environ.get("OMP_NUM_THREADS", "unset")
        notes = [f"threads not applied by lite-x86 (MobileConfig has no set_threads; OMP_NUM_THREADS={omp})"]
        opt = nb_version(nb_path)
        self.info = SessionInfo(_version() + (f" (.nb by opt {opt})" if opt else ""), notes)

    def inputs(self) -> list[InputSpec]:
        """Give the input names; a .nb tells no shape before it is fed."""
        return [InputSpec(name, None) for name in self._predictor.get_input_names()]

    def prepare(self, feeds: dict[str, np.ndarray]) -> None:
        """Copy the inputs in and check they read back unchanged (not timed)."""
        for i, name in enumerate(self._predictor.get_input_names()):
            tensor = self._predictor.get_input(i)
            tensor.from_numpy(np.ascontiguousarray(feeds[name]))
            if not np.array_equal(tensor.numpy(), feeds[name]):
                raise WorkerFailure(f"paddlelite read input {name!r} back changed", "use numpy<2 with paddlelite")

    def run(self) -> list[np.ndarray]:
        """Give the outputs of one run, copied out of Lite's tensors."""
        self._predictor.run()
        return [self._predictor.get_output(i).numpy() for i in range(self._n_outputs)]


def open_session(nb_path: Path, threads: int) -> LiteSession:
    """Give a Lite x86 session on `nb_path`, or raise Unavailable."""
    return LiteSession(nb_path, threads)
