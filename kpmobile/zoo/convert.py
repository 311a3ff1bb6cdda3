"""Convert models to Paddle Lite `.nb` and ONNX (cached by content hash), and read `.nb` headers."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from kpmobile.errors import ConfigError, ConversionError, RunnerError
from kpmobile.filememo import remembered
from kpmobile.nbfile import NB_DIRECTORY, NB_MISSING, NbFormatError, read_nb
from kpmobile.paths import cache_dir
from kpmobile.zoo._worker import run_worker
from kpmobile.zoo.build import model_hash

NB_TARGETS = ("arm", "x86")
CONVERT_TIMEOUT_S = 600.0

ABI_TARGETS = {"arm64-v8a": "arm", "armeabi-v7a": "arm", "armeabi": "arm", "aarch64": "arm", "arm64": "arm",
               "x86_64": "x86", "x86": "x86", "amd64": "x86", "i686": "x86", "arm": "arm"}


@dataclass(frozen=True)
class Conversion:
    """A converted model file and the cache key it is stored under."""

    path: Path
    key: str
    cached: bool


@dataclass(frozen=True)
class NbHeader:
    """What a `.nb` says about itself: the opt version and its kernels' targets (and precisions)."""

    version: str
    targets: frozenset[str]
    precisions: frozenset[str] = frozenset()
    meta_version: int = 2
    kernels: int = 0


# .nb ------------------------------------------------------------------------------------------
@cache
def opt_version() -> str:
    """Give the installed paddlelite version (the opt that converts), without importing it."""
    try:
        return f"paddlelite-{metadata.version('paddlelite')}"
    except metadata.PackageNotFoundError:
        return "paddlelite-none"


def nb_key(digest: str, target: str, fp16: bool) -> str:
    """Give the cache key of a conversion: sha256 of model hash, target, precision and opt version."""
    return hashlib.sha256(f"{digest}|{target}|fp16={int(fp16)}|{opt_version()}".encode()).hexdigest()


def nb_dir() -> Path:
    """Give the folder of cached .nb files."""
    path = cache_dir() / "nb"
    path.mkdir(parents=True, exist_ok=True)
    return path


def convert_nb(model_dir: Path, target: str, fp16: bool = False) -> Conversion:
    """Give the Lite `.nb` of a model for a target ("arm" or "x86"), converting it once."""
    if target not in NB_TARGETS:
        raise ConfigError(f"unknown Lite target '{target}'", f"use one of: {', '.join(NB_TARGETS)}")
    if fp16 and target != "arm":
        raise ConfigError("fp16 .nb conversion is for the arm target only", "drop --fp16 for x86")
    model_dir = Path(model_dir)
    key = nb_key(model_hash(model_dir), target, fp16)
    final = nb_dir() / f"{key}.nb"
    if final.is_file() and final.stat().st_size > 0:
        return Conversion(final, key, cached=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=nb_dir()))
    try:
        args = ["nb", "--model-dir", str(model_dir), "--target", target, "--out", str(tmp / "model")]
        run_worker("convert_worker", args + (["--fp16"] if fp16 else []),
                   what=f"converting {model_dir.name} to a {target}{' fp16' if fp16 else ''} .nb",
                   log_name=f"nb-{model_dir.name}-{target}{'-fp16' if fp16 else ''}", timeout=CONVERT_TIMEOUT_S)
        produced = tmp / "model.nb"
        header = nb_header(produced)
        if target not in header.targets:
            raise ConversionError(f"the {target} .nb of {model_dir.name} has no {target} kernels "
                                  f"(it has {', '.join(sorted(header.targets))})", "report this model")
        if fp16 and "fp16" not in header.precisions:
            raise ConversionError("this paddlelite's opt wrote no fp16 kernels (the .nb would run in fp32)",
                                  "convert with an opt built with ARM fp16 support (LITE_WITH_ARM82_FP16), "
                                  "or benchmark fp32")
        os.replace(produced, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Conversion(final, key, cached=False)


def nb_header(path: Path) -> NbHeader:
    """Give the opt version and kernel targets written in a `.nb` (pure Python, no paddlelite;
    the format is read by `kpmobile.nbfile`)."""
    try:
        info = read_nb(str(path))
    except NbFormatError as exc:
        raise RunnerError(*_nb_problem(Path(path), exc)) from None
    return NbHeader(info.opt_version, frozenset(info.targets), frozenset(info.precisions), info.meta_version,
                    info.kernels)


def _nb_problem(path: Path, exc: NbFormatError) -> tuple[str, str]:
    """Give (message, hint) for a file that is not a usable `.nb`."""
    if exc.kind == NB_MISSING:
        return f"{path} does not exist", "convert the model first (kpmobile convert)"
    if exc.kind == NB_DIRECTORY:
        return f"{path} is a directory, not a .nb", "give the .nb file"
    return f"{path} is not a Paddle Lite .nb ({exc.message})", "convert the model again"


def check_nb_target(path: Path, abi: str) -> None:
    """Raise RunnerError unless the `.nb` is readable and its kernels run on this ABI."""
    want = ABI_TARGETS.get(abi.strip().lower())
    if want is None:
        raise RunnerError(f"unknown ABI '{abi}'", f"use one of: {', '.join(sorted(ABI_TARGETS))}")
    compute = _nb_targets(path) - {"host", "any"}
    foreign = compute & ({"arm", "x86"} - {want})
    if foreign or (compute and want not in compute):
        got = ", ".join(sorted(compute))
        raise RunnerError(f"{Path(path).name} holds {got} kernels, which do not run on {abi}",
                          f"convert it with --target {want}")


def _nb_targets(path: Path) -> frozenset[str]:
    """Give the kernel targets of a `.nb`, remembered while the file is unchanged (kpmobile.filememo):
    reading its topology costs ~30 ms, at every sweep's start. RunnerError as nb_header's."""
    try:
        text = remembered(Path(path), "nb-targets", lambda: ",".join(sorted(nb_header(path).targets)))
    except OSError:
        return nb_header(path).targets  # missing or unreadable: nb_header says which, in its words
    return frozenset(t for t in text.split(",") if t)


# ONNX -----------------------------------------------------------------------------------------
@cache
def _paddle2onnx_version() -> str:
    try:
        return f"paddle2onnx-{metadata.version('paddle2onnx')}"
    except metadata.PackageNotFoundError:
        return "paddle2onnx-none"


def onnx_dir() -> Path:
    """Give the folder of cached ONNX files."""
    path = cache_dir() / "onnx"
    path.mkdir(parents=True, exist_ok=True)
    return path


def convert_onnx(model_dir: Path, opset: int = 11) -> Conversion:
    """Give the ONNX export of a model (paddle2onnx), converting it once."""
    model_dir = Path(model_dir)
    digest = model_hash(model_dir)
    key = hashlib.sha256(f"{digest}|onnx|opset={opset}|{_paddle2onnx_version()}".encode()).hexdigest()
    final = onnx_dir() / f"{key}.onnx"
    if final.is_file() and final.stat().st_size > 0:
        return Conversion(final, key, cached=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=onnx_dir())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        run_worker("convert_worker", ["onnx", "--model-dir", str(model_dir), "--opset", str(opset),
                                      "--out", str(tmp)],
                   what=f"converting {model_dir.name} to ONNX (opset {opset})",
                   log_name=f"onnx-{model_dir.name}", timeout=CONVERT_TIMEOUT_S)
        tmp.chmod(0o644)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return Conversion(final, key, cached=False)
