"""Build catalogue models once (in a subprocess) and cache them by the hash of what defines them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError, ConversionError
from kpmobile.paths import cache_dir
from kpmobile.records import ModelSpec
from kpmobile.zoo._worker import log_dir, run_worker
from kpmobile.zoo.catalogue import INFER_CFG, MODEL_FILE, PARAMS_FILE

# Bump when networks.py or build_worker.py change what a build writes.
BUILDER_VERSION = "2"
BUILD_RECORD = "build.json"
BUILD_FAMILIES = ("tinypose", "picodet", "litehrnet", "hrnet")
BUILD_TIMEOUT_S = 900.0
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


@cache
def _versions() -> str:
    names = ("paddlepaddle", "paddledet")
    found = []
    for name in names:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ",".join(found)


def build_key(spec: ModelSpec) -> str:
    """Give the short hash of everything a build depends on (config file, arch, input, builder)."""
    if spec.family not in BUILD_FAMILIES:
        raise ConfigError(f"model '{spec.name}' has family '{spec.family}', which kpmobile cannot build",
                          f"use one of the families {', '.join(BUILD_FAMILIES)} or an exported model directory")
    config = CONFIG_DIR / str(spec.arch.get("config", ""))
    if not config.is_file():
        raise ConfigError(f"model '{spec.name}' names the config '{spec.arch.get('config')}', which is missing",
                          f"put it under {CONFIG_DIR}")
    h = hashlib.sha256()
    h.update(config.read_bytes())
    h.update(json.dumps({"family": spec.family, "arch": spec.arch, "input_shape": list(spec.input_shape),
                         "builder": BUILDER_VERSION, "versions": _versions()}, sort_keys=True).encode())
    return h.hexdigest()[:12]


def model_root() -> Path:
    """Give the folder holding the built models."""
    path = cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def built_dir(spec: ModelSpec) -> Path:
    """Give where a catalogue model is (or will be) cached."""
    return model_root() / f"{spec.name}-{build_key(spec)}"


def _complete(model_dir: Path) -> bool:
    return (model_dir / MODEL_FILE).is_file() and (model_dir / PARAMS_FILE).is_file()


def ensure_model(spec: ModelSpec) -> Path:
    """Give a directory holding model.pdmodel + model.pdiparams, building it first if needed."""
    if spec.family == "user":
        if not spec.path:
            raise ConfigError(f"user model '{spec.name}' has no path", "resolve() the exported directory")
        model_dir = Path(spec.path)
        for fname in (MODEL_FILE, PARAMS_FILE):
            if not (model_dir / fname).is_file():
                raise ConfigError(f"{model_dir} has no {fname}",
                                  "give the directory written by PaddleDetection's tools/export_model.py")
        return model_dir
    final = built_dir(spec)
    if _complete(final):
        return final
    _remove_stale_tmp(model_root())
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{spec.name}-", dir=model_root()))
    try:
        result = run_worker("build_worker", ["build", "--spec", spec_json(spec), "--out", str(tmp)],
                            what=f"building {spec.name}", log_name=f"build-{spec.name}",
                            timeout=BUILD_TIMEOUT_S)
        if not _complete(tmp):
            raise ConversionError(f"building {spec.name} wrote no {MODEL_FILE}/{PARAMS_FILE}",
                                  f"see {log_dir() / f'build-{spec.name}.log'}")
        import yaml  # only a build writes YAML: a sweep of built models need not import it

        (tmp / INFER_CFG).write_text(yaml.safe_dump(infer_cfg(spec), sort_keys=False))
        record = {**result, "name": spec.name, "key": final.name, "builder_version": BUILDER_VERSION,
                  "versions": _versions(), "arch": spec.arch, "input_shape": list(spec.input_shape),
                  "files": _file_stats(tmp), "model_hash": hash_files(tmp)}
        (tmp / BUILD_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of a shared cache
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final):  # another process did not win the race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale_tmp(root: Path, age_s: float = 24 * 3600) -> None:
    """Remove build folders left by killed builds (a day old: no live build is that slow)."""
    now = time.time()
    for tmp in root.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > age_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def spec_json(spec: ModelSpec) -> str:
    """Give the parts of a spec a worker needs, as JSON."""
    return json.dumps({"name": spec.name, "family": spec.family, "task": spec.task,
                       "input_shape": list(spec.input_shape), "arch": spec.arch, "path": spec.path})


def build_record(model_dir: Path) -> dict[str, Any]:
    """Give the build record kept beside a built model ({} for a user's model)."""
    try:
        data = json.loads((Path(model_dir) / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# hashing -------------------------------------------------------------------------------------
def _file_stats(model_dir: Path) -> dict[str, list[int]]:
    stats = {}
    for fname in (MODEL_FILE, PARAMS_FILE):
        st = (model_dir / fname).stat()
        stats[fname] = [st.st_size, st.st_mtime_ns]
    return stats


def hash_files(model_dir: Path) -> str:
    """Give the sha256 hex of model.pdmodel's then model.pdiparams' content."""
    h = hashlib.sha256()
    for fname in (MODEL_FILE, PARAMS_FILE):
        with (Path(model_dir) / fname).open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


_HASHES: dict[tuple[str, str], str] = {}


def model_hash(model_dir: Path) -> str:
    """Give the sha256 hex of a model directory's pdmodel + pdiparams content.

    The hash is remembered per file size and mtime, in this process and in the build record
    of a built model, so asking again does not re-read large parameter files.
    """
    model_dir = Path(model_dir)
    try:
        stats = _file_stats(model_dir)
    except OSError as exc:
        raise ConfigError(f"{model_dir} has no {MODEL_FILE} or {PARAMS_FILE}",
                          "build or export the model first") from exc
    memo = (str(model_dir.resolve()), json.dumps(stats, sort_keys=True))
    if memo in _HASHES:
        return _HASHES[memo]
    record = build_record(model_dir)
    digest = record.get("model_hash") if record.get("files") == stats else None
    if not isinstance(digest, str):
        digest = hash_files(model_dir)
    _HASHES[memo] = digest
    return digest


# infer_cfg.yml -------------------------------------------------------------------------------
def infer_cfg(spec: ModelSpec) -> dict[str, Any]:
    """Give the infer_cfg.yml PaddleDetection's export would write beside this model."""
    h, w = spec.input_shape[2], spec.input_shape[3]
    normalize = {"type": "NormalizeImage", "is_scale": True, "mean": _IMAGENET_MEAN, "std": _IMAGENET_STD}
    if spec.task == "pose":
        mpii = spec.arch.get("num_joints") == 16
        return {"mode": "paddle", "draw_threshold": 0.5,
                "metric": "KeyPointTopDownMPIIEval" if mpii else "KeyPointTopDownCOCOEval",
                "use_dynamic_shape": False, "arch": "HRNet", "min_subgraph_size": 3,
                "Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [w, h]}, normalize,
                               {"type": "Permute"}],
                "label_list": ["keypoint"]}
    return {"mode": "paddle", "draw_threshold": 0.5, "metric": "COCO", "use_dynamic_shape": False,
            "arch": "PicoDet", "min_subgraph_size": 3,
            "Preprocess": [{"type": "Resize", "interp": 2, "keep_ratio": False, "target_size": [h, w]},
                           normalize, {"type": "Permute"}, {"type": "PadStride", "stride": 32}],
            "label_list": ["person"],
            "NMS": {"name": "MultiClassNMS", "keep_top_k": 100, "nms_threshold": 0.5, "nms_top_k": 1000,
                    "score_threshold": 0.3},
            "fpn_stride": [8, 16, 32, 64]}
