"""Model complexity: parameter counts, FLOPs (multiply-adds), input and output shapes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.paths import cache_dir
from kpmobile.records import ModelSpec
from kpmobile.zoo._worker import run_worker
from kpmobile.zoo.build import build_key, model_hash, spec_json

INFO_VERSION = "1"
INFO_TIMEOUT_S = 600.0
INFO_KEYS = ("params", "trainable_params", "flops", "input_shape", "outputs")


def info_dir() -> Path:
    """Give the folder of cached complexity results."""
    path = cache_dir() / "info"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _info_path(spec: ModelSpec, batch: int) -> Path:
    if spec.family == "user":
        if not spec.path:
            raise ConfigError(f"user model '{spec.name}' has no path", "resolve() the exported directory")
        ident = "user-" + hashlib.sha256(f"{model_hash(Path(spec.path))}|{INFO_VERSION}".encode()).hexdigest()[:12]
        return info_dir() / f"{spec.name}-{ident}-b{batch}.json"
    return info_dir() / f"{spec.name}-{build_key(spec)}-i{INFO_VERSION}-b{batch}.json"


def model_info(spec: ModelSpec, batch: int = 1) -> dict[str, Any]:
    """Give params, trainable_params, flops, input_shape and outputs of a model at a batch size.

    - params: all parameters including batch-norm running statistics (what a .pdiparams holds);
    - trainable_params: without them, the figure PaddleDetection's and MMPose's tables publish
      (compare it with ModelSpec.published["params_m"]);
    - flops: multiply-adds as `paddle.flops` counts them on the dygraph network (Conv2D, Linear,
      BatchNorm and activation layers; interpolation and functional ops count zero);
    - outputs: [{name, shape}] in the exported model's output order.
    Catalogue models are measured from the network their builder creates; a user's exported
    model from its program (convolutions and matmuls only). Computed once in a subprocess
    and cached as JSON under cache_dir()/info/.
    """
    if batch < 1:
        raise ConfigError(f"batch must be at least 1, not {batch}", "use --batch 1 or more")
    path = _info_path(spec, batch)
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and all(k in cached for k in INFO_KEYS):
            return cached
    except (OSError, ValueError):
        pass
    data = run_worker("build_worker", ["info", "--spec", spec_json(spec), "--batch", str(batch)],
                      what=f"measuring {spec.name}", log_name=f"info-{spec.name}", timeout=INFO_TIMEOUT_S)
    info = {k: data[k] for k in INFO_KEYS}
    info["flops_counter"] = data.get("flops_counter", "paddle.flops")
    info["batch"] = batch
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=info_dir())
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return info


def models_flops(names: Sequence[str]) -> dict[str, float | None]:
    """Give each catalogue model's multiply-adds (model_info at batch 1), None where it cannot be measured."""
    from kpmobile.zoo.catalogue import resolve

    out: dict[str, float | None] = {}
    for name in names:
        try:
            value = model_info(resolve(name)).get("flops")
            out[name] = float(value) if value else None
        except Exception:  # noqa: BLE001 - a missing or failing measurement only drops a roofline point
            out[name] = None
    return out
