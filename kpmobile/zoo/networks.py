"""Build the catalogue's networks from paddledet classes (imported by the worker processes only).

A network is created from one of the YAML configs under `configs/` with ppdet's workspace,
seeded so the same build gives the same weights, its batch-norm statistics are recalibrated
on one random batch (random init alone gives outputs of about 1e-19 or 1e21), and it is
wrapped by `ExportNet`, whose `forward(image)` gives the benchmark outputs without any
post-processing or NMS.
"""

from __future__ import annotations

# ruff: noqa: I001  (the order below matters)
from pathlib import Path
from typing import Any

import numpy as np

# ppdet must be imported before paddle: the other order crashes in zlib (inflateReset2)
# when ppdet's tracking dependencies (lap) load after paddle. Users of this module take
# paddle from here (`networks.paddle`) so that no import sorter can reorder them.
import ppdet.modeling  # noqa: F401
import paddle
from ppdet.core.workspace import create, load_config

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SEED = 2024
CALIBRATION_BATCH = 4


class ExportNet(paddle.nn.Layer):  # type: ignore[misc]
    """`forward(image)` -> the architecture's deploy outputs, as PaddleDetection exports them.

    TopDownHRNet (deploy mode): [heatmaps (N,J,H/4,W/4), argmax index (N,J) int64].
    PicoDet (no post-process, no NMS): per FPN level the class scores (1,L,C) after sigmoid,
    then per level the box distributions (1,L,4*(reg_max+1)).
    """

    def __init__(self, arch: paddle.nn.Layer, family: str) -> None:
        super().__init__()
        self.arch = arch
        self.family = family
        if family == "picodet":
            arch.export_post_process = False
            arch.export_nms = False
        else:
            arch.deploy = True

    def output_names(self) -> list[str]:
        """Give a readable name per output, in output order."""
        if self.family == "picodet":
            strides = list(self.arch.head.fpn_stride)
            return [f"cls_score_s{s}" for s in strides] + [f"bbox_pred_s{s}" for s in strides]
        return ["heatmaps", "argmax"]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        self.arch.inputs = {"image": image}
        if self.family == "picodet":
            (scores, boxes), _ = self.arch._forward()
            return [*scores, *boxes]
        heatmaps, argmax = self.arch._forward()
        return [heatmaps, argmax]

    def calibration_forward(self, image: paddle.Tensor) -> Any:
        """Run the layers holding batch norms in train mode (no loss, no post-process)."""
        inputs = {"image": image}
        if self.family == "picodet":
            return self.arch.head(self.arch.neck(self.arch.backbone(inputs)))
        return self.arch.final_conv(self.arch.backbone(inputs)[0])


def create_arch(arch_cfg: dict[str, Any]) -> paddle.nn.Layer:
    """Give the architecture described by a catalogue entry's `arch`, freshly seeded."""
    cfg = load_config(str(CONFIG_DIR / arch_cfg["config"]))
    paddle.seed(int(arch_cfg.get("seed", SEED)))
    return create(cfg.architecture)


def batch_norms(net: paddle.nn.Layer) -> list[paddle.nn.Layer]:
    """Give every batch-norm layer of a network."""
    kinds = (paddle.nn.layer.norm._BatchNormBase, paddle.nn.BatchNorm)
    return [layer for layer in net.sublayers() if isinstance(layer, kinds)]


def recalibrate(net: ExportNet, input_shape: tuple[int, ...], seed: int = SEED) -> int:
    """Set every batch norm's running mean/var to the statistics of one random batch.

    With momentum 0 a train-mode forward replaces the running statistics by the batch's,
    layer after layer, so each layer sees inputs normalised by the ones before it.
    Gives the number of batch-norm layers recalibrated.
    """
    norms = batch_norms(net)
    momenta = [layer._momentum for layer in norms]
    rng = np.random.RandomState(seed)
    batch = rng.standard_normal((CALIBRATION_BATCH, *input_shape[1:])).astype("float32")
    for layer in norms:
        layer._momentum = 0.0
    net.train()
    with paddle.no_grad():
        net.calibration_forward(paddle.to_tensor(batch))
    for layer, momentum in zip(norms, momenta, strict=True):
        layer._momentum = momentum
    net.eval()
    return len(norms)


def build_network(family: str, arch_cfg: dict[str, Any], input_shape: tuple[int, ...]) -> ExportNet:
    """Give the seeded, recalibrated network in eval mode, ready to export."""
    net = ExportNet(create_arch(arch_cfg), family)
    recalibrate(net, input_shape, int(arch_cfg.get("seed", SEED)))
    return net


def count_params(net: paddle.nn.Layer) -> tuple[int, int]:
    """Give (all parameters including batch-norm statistics, trainable parameters)."""
    total = trainable = 0
    for p in net.parameters():
        n = int(np.prod(p.shape)) if p.shape else 1
        total += n
        if not p.stop_gradient:
            trainable += n
    return total, trainable


def _cache_converted_methods() -> None:
    """Make dy2static convert each layer class's forward once, not once per layer instance.

    paddle 2.6 keys its cache of converted functions on the bound method, a new object on
    every access, so every sublayer's forward is re-transpiled and re-imported from a temp
    file; keying on the underlying function gives the same program in about half the time.
    """
    from paddle.jit.dy2static import program_translator

    cache = program_translator._FUNCTION_CACHE
    if getattr(cache, "_kpmobile_patched", False):
        return
    converted = cache._converted_static_func_caches

    def convert_with_cache(func: Any) -> Any:
        key = getattr(func, "__func__", func)
        static_func = converted.get(key)
        if static_func is None:
            static_func = cache._convert(func)
            converted[key] = static_func
        return static_func

    cache.convert_with_cache = convert_with_cache
    cache._kpmobile_patched = True


def export(net: ExportNet, input_shape: tuple[int, ...], batch: int, out_dir: Path) -> None:
    """Save `model.pdmodel` + `model.pdiparams` in out_dir, input `image` [batch,C,H,W]."""
    from paddle.static import InputSpec

    _cache_converted_methods()
    spec = InputSpec([batch, *input_shape[1:]], "float32", "image")
    static = paddle.jit.to_static(net, input_spec=[spec], full_graph=True)
    paddle.jit.save(static, str(out_dir / "model"))
    strip_callstacks(out_dir / "model.pdmodel")


def strip_callstacks(pdmodel: Path) -> int:
    """Drop the Python call stacks paddle records in every op (`op_callstack`) from a saved program.

    They hold absolute paths and line numbers of the exporting code, so the same network
    exported from another checkout or after an edit elsewhere would hash differently.
    Gives the number of ops changed.
    """
    name = paddle.base.core.op_proto_and_checker_maker.kOpCreationCallstackAttrName()
    desc = paddle.base.core.ProgramDesc(pdmodel.read_bytes())
    changed = 0
    for b in range(desc.num_blocks()):
        block = desc.block(b)
        for i in range(block.op_size()):
            op = block.op(i)
            if op.has_attr(name):
                op.remove_attr(name)
                changed += 1
    pdmodel.write_bytes(desc.serialize_to_string())
    return changed
