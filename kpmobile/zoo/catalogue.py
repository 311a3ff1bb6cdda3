"""The model catalogue, and resolving a name or an exported model directory to a ModelSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kpmobile.errors import ConfigError
from kpmobile.records import ModelSpec
from kpmobile.zoo.program import ProgramFormatError, read_program_io

MODEL_FILE = "model.pdmodel"
PARAMS_FILE = "model.pdiparams"
INFER_CFG = "infer_cfg.yml"


def _pose(name: str, display: str, family: str, config: str, hw: tuple[int, int], *,
          server: bool, published: dict[str, float], joints: int = 17,
          decode: str = "argmax") -> ModelSpec:
    arch: dict[str, Any] = {
        "config": config,
        "num_joints": joints,
        "decode": decode,  # how the runner turns heatmaps into points; the network is the same
        # Servers are measured at batch 1 and 10: their export keeps the batch dim dynamic.
        "batch": -1 if server else 1,
    }
    return ModelSpec(name=name, display=display, family=family, task="pose",
                     input_shape=(1, 3, *hw), arch=arch, published=published)


def _picodet(size: int, published: dict[str, float]) -> ModelSpec:
    # PicoHead's export without post-process reshapes with batch 1 and sizes tied to the input.
    arch: dict[str, Any] = {"config": "picodet_s_pedestrian.yml", "num_classes": 1, "batch": 1}
    return ModelSpec(name=f"picodet-s-{size}", display=f"PicoDet-s-{size}x{size} (det)",
                     family="picodet", task="det", input_shape=(1, 3, size, size), arch=arch,
                     published=published)


# Published complexity. "params_m" compares with trainable parameters (what PaddleDetection's
# tables and mmcv's counter report; batch-norm statistics excluded); "gflops" is
# multiply-adds in G. Sources: PaddleDetection's tiny_pose README (PP-TinyPose, legacy
# PicoDet-S), MMPose's inference-speed table (HRNet, LiteHRNet-30; the DARK models are the
# same networks), the Lite-HRNet paper (LiteHRNet-18). PicoDet-S's 0.99M is the COCO model;
# the 1-class pedestrian head has 4 x 79 x 97 = 30.7k fewer parameters (0.96M).
_TINYPOSE = {"params_m": 1.32, "trainable_params_m": 1.32}
_HRNET_W32 = {"params_m": 28.54}
_HRNET_W48 = {"params_m": 63.6}

_SPECS: list[ModelSpec] = [
    # mobile
    _pose("pp-tinypose-128x96", "PP-TinyPose-128x96 (pose)", "tinypose", "tinypose.yml", (128, 96),
          server=False, published={**_TINYPOSE, "gflops": 0.08156}, decode="dark"),
    _picodet(192, {"params_m": 0.99}),
    _picodet(320, {"params_m": 0.99}),
    # server
    _pose("pp-tinypose-256x192", "PP-TinyPose-256x192", "tinypose", "tinypose.yml", (256, 192),
          server=True, published={**_TINYPOSE, "gflops": 0.32624}, decode="dark"),
    _pose("litehrnet-18-256x192", "LiteHRNet-18-256x192", "litehrnet", "litehrnet_18.yml", (256, 192),
          server=True, published={"params_m": 1.1, "gflops": 0.2052}),
    _pose("litehrnet-18-384x288", "LiteHRNet-18-384x288", "litehrnet", "litehrnet_18.yml", (384, 288),
          server=True, published={"params_m": 1.1, "gflops": 0.4616}),
    _pose("litehrnet-30-256x192", "LiteHRNet-30-256x192", "litehrnet", "litehrnet_30.yml", (256, 192),
          server=True, published={"params_m": 1.76, "gflops": 0.42}),
    _pose("litehrnet-30-384x288", "LiteHRNet-30-384x288", "litehrnet", "litehrnet_30.yml", (384, 288),
          server=True, published={"params_m": 1.76, "gflops": 0.95}),
    _pose("hrnet-w32-256x192", "HRNet_w32-256x192", "hrnet", "hrnet_w32.yml", (256, 192),
          server=True, published={**_HRNET_W32, "gflops": 7.7}),
    _pose("hrnet-w32-384x288", "HRNet_w32-384x288", "hrnet", "hrnet_w32.yml", (384, 288),
          server=True, published={**_HRNET_W32, "gflops": 17.33}),
    _pose("hrnet-w32-256x256-mpii", "HRNet_w32-256x256_mpii", "hrnet", "hrnet_w32_mpii.yml", (256, 256),
          server=True, published={}, joints=16),
    _pose("dark-hrnet-w32-256x192", "DARK_HRNet_w32-256x192", "hrnet", "hrnet_w32.yml", (256, 192),
          server=True, published={**_HRNET_W32, "gflops": 7.7}, decode="dark"),
    _pose("dark-hrnet-w32-384x288", "DARK_HRNet_w32-384x288", "hrnet", "hrnet_w32.yml", (384, 288),
          server=True, published={**_HRNET_W32, "gflops": 17.33}, decode="dark"),
    _pose("hrnet-w48-256x192", "HRNet_w48-256x192", "hrnet", "hrnet_w48.yml", (256, 192),
          server=True, published={**_HRNET_W48, "gflops": 15.77}),
    _pose("hrnet-w48-384x288", "HRNet_w48-384x288", "hrnet", "hrnet_w48.yml", (384, 288),
          server=True, published={**_HRNET_W48, "gflops": 35.48}),
]

CATALOGUE: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
_BY_DISPLAY: dict[str, ModelSpec] = {spec.display.lower(): spec for spec in _SPECS}
MOBILE_MODELS = ("pp-tinypose-128x96", "picodet-s-192", "picodet-s-320")


def list_models() -> list[ModelSpec]:
    """Give the catalogue's models, mobile ones first."""
    return list(_SPECS)


def resolve(name_or_path: str) -> ModelSpec:
    """Give the spec of a catalogue name or table label (any case) or of an exported model directory."""
    key = name_or_path.strip().lower()
    if key in CATALOGUE:
        return CATALOGUE[key]
    if key in _BY_DISPLAY:
        return _BY_DISPLAY[key]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return user_spec(path)
    if path.is_file() and path.name == MODEL_FILE:
        return user_spec(path.parent)
    names = ", ".join(CATALOGUE)
    raise ConfigError(f"unknown model '{name_or_path}'",
                      f"use one of: {names} or the path of an exported model directory")


def user_spec(model_dir: Path) -> ModelSpec:
    """Give the spec of a PaddleDetection export (model.pdmodel + model.pdiparams [+ infer_cfg.yml])."""
    model_dir = Path(model_dir).expanduser().resolve()
    for fname in (MODEL_FILE, PARAMS_FILE):
        if not (model_dir / fname).is_file():
            raise ConfigError(f"{model_dir} has no {fname}",
                              "give the directory written by PaddleDetection's tools/export_model.py "
                              f"(it holds {MODEL_FILE} and {PARAMS_FILE})")
    infer_cfg = _read_infer_cfg(model_dir / INFER_CFG)
    try:
        io = read_program_io(model_dir / MODEL_FILE)
    except (OSError, ProgramFormatError) as exc:
        raise ConfigError(f"{model_dir / MODEL_FILE} is not a readable Paddle program ({exc})",
                          "re-export the model with paddle 2.x (paddle 3 PIR .json programs are not supported)"
                          ) from exc
    image = next((v for v in io.inputs if v.name == "image"), io.inputs[0])
    shape = _input_shape(image.shape, infer_cfg)
    if shape is None:
        raise ConfigError(f"cannot tell the input size of {model_dir}",
                          f"export with a fixed input size or keep its {INFER_CFG} beside the model")
    arch: dict[str, Any] = {"inputs": [v.name for v in io.inputs], "outputs": [v.name for v in io.outputs]}
    if infer_cfg.get("arch"):
        arch["arch"] = str(infer_cfg["arch"])
    return ModelSpec(name=model_dir.name, display=model_dir.name, family="user",
                     task=_task(infer_cfg), input_shape=shape, arch=arch, path=str(model_dir))


def _read_infer_cfg(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml  # only exported model folders have an infer_cfg.yml: start-up need not import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}",
                          f"fix or remove {INFER_CFG}") from exc
    return data if isinstance(data, dict) else {}


def _preprocess(infer_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    steps = infer_cfg.get("Preprocess") or []
    return [s for s in steps if isinstance(s, dict)]


def _cfg_hw(infer_cfg: dict[str, Any]) -> tuple[int, int] | None:
    for step in _preprocess(infer_cfg):
        kind = step.get("type")
        if kind == "TopDownEvalAffine" and step.get("trainsize"):
            w, h = step["trainsize"][:2]  # PaddleDetection writes [width, height]
            return int(h), int(w)
        if kind == "Resize" and step.get("target_size"):
            h, w = step["target_size"][:2]
            return int(h), int(w)
    return None


def _input_shape(feed: tuple[int, ...], infer_cfg: dict[str, Any]) -> tuple[int, ...] | None:
    if len(feed) == 4 and feed[2] > 0 and feed[3] > 0:
        return (1, feed[1] if feed[1] > 0 else 3, feed[2], feed[3])
    hw = _cfg_hw(infer_cfg)
    if hw is None:
        return None
    channels = feed[1] if len(feed) == 4 and feed[1] > 0 else 3
    return (1, channels, *hw)


def _task(infer_cfg: dict[str, Any]) -> str:
    if str(infer_cfg.get("arch", "")) in ("HRNet", "HigherHRNet", "TopDownHRNet", "VitPose", "TinyPose3D"):
        return "pose"
    if any(step.get("type") == "TopDownEvalAffine" for step in _preprocess(infer_cfg)):
        return "pose"
    return "det"
