"""Worker process: build and export a catalogue network, or measure a network's complexity.

    python -m kpmobile.zoo.build_worker build --spec JSON --out DIR --result FILE
    python -m kpmobile.zoo.build_worker info --spec JSON --batch N --result FILE

Imports paddle and ppdet, so it runs only as a subprocess of build.py / complexity.py.
The result is written as JSON to FILE ({"error": ...} on failure).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from kpmobile.zoo._worker import report_result

CHECK_SEED = 7


def _spec(text: str) -> dict[str, Any]:
    spec = json.loads(text)
    spec["input_shape"] = tuple(int(d) for d in spec["input_shape"])
    return spec


def _stats(name: str, value: Any) -> dict[str, Any]:
    import numpy as np

    arr = np.asarray(value)
    entry: dict[str, Any] = {"name": name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if arr.dtype.kind == "f":
        entry.update(mean=float(arr.mean()), std=float(arr.std()), absmax=float(np.abs(arr).max()),
                     finite=bool(np.isfinite(arr).all()))
    return entry


def _check_scale(outputs: list[dict[str, Any]]) -> None:
    """Refuse degenerate outputs: random init without recalibration gives ~1e-19 or ~1e21."""
    for out in outputs:
        if "finite" not in out:
            continue
        if not out["finite"]:
            raise RuntimeError(f"output {out['name']} has non-finite values")
        if out["absmax"] > 1e6 or out["std"] < 1e-9:
            raise RuntimeError(f"output {out['name']} has a degenerate scale "
                               f"(std {out['std']:.3g}, max |x| {out['absmax']:.3g})")


def build(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Build, recalibrate, export and check one network; give what was measured."""
    started = time.monotonic()
    import numpy as np

    from kpmobile.zoo import networks  # imports ppdet, then paddle

    paddle = networks.paddle
    imported = time.monotonic()
    arch = spec["arch"]
    shape = spec["input_shape"]
    net = networks.build_network(spec["family"], arch, shape)
    norms = len(networks.batch_norms(net))
    total, trainable = networks.count_params(net.arch)
    batch = int(arch.get("batch", 1))
    image = np.random.RandomState(CHECK_SEED).standard_normal((1, *shape[1:])).astype("float32")
    with paddle.no_grad():
        expected = [o.numpy() for o in net(paddle.to_tensor(image))]
    built = time.monotonic()
    networks.export(net, shape, batch, out)
    exported = time.monotonic()

    loaded = paddle.jit.load(str(out / "model"))
    got = loaded(paddle.to_tensor(image))
    got = [o.numpy() for o in (got if isinstance(got, (list, tuple)) else [got])]
    if len(got) != len(expected):
        raise RuntimeError(f"the export gives {len(got)} outputs, the network {len(expected)}")
    for name, e, g in zip(net.output_names(), expected, got, strict=True):
        if e.shape != g.shape or not np.allclose(e, g, rtol=1e-3, atol=1e-5):
            raise RuntimeError(f"the exported program disagrees with the network on output {name}")
    outputs = [_stats(name, value) for name, value in zip(net.output_names(), got, strict=True)]
    _check_scale(outputs)
    return {"outputs": outputs, "batch_norms": norms, "params": total, "trainable_params": trainable,
            "export_batch": batch, "seconds_import": round(imported - started, 3),
            "seconds_build": round(built - imported, 3), "seconds_export": round(exported - built, 3),
            "seconds_check": round(time.monotonic() - exported, 3)}


def info(spec: dict[str, Any], batch: int) -> dict[str, Any]:
    """Give params, FLOPs and output shapes of a catalogue network, or of a user's program."""
    if spec["family"] == "user":
        return _static_info(spec, batch)
    from kpmobile.zoo import networks  # imports ppdet, then paddle

    paddle = networks.paddle
    if spec["family"] == "picodet" and batch != 1:
        raise ValueError("PicoDet's export without post-process is defined for batch 1 only")
    net = networks.ExportNet(networks.create_arch(spec["arch"]), spec["family"])
    net.eval()
    total, trainable = networks.count_params(net.arch)
    shape = [batch, *spec["input_shape"][1:]]

    class Capture(paddle.nn.Layer):  # type: ignore[misc,name-defined]
        """Keeps the outputs of the forward paddle.flops runs, so shapes need no second run."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.outs: list[Any] = []

        def forward(self, image: Any) -> Any:
            self.outs = self.net(image)
            return self.outs

    capture = Capture()
    with contextlib.redirect_stdout(io.StringIO()), paddle.no_grad():  # paddle.flops prints a table
        flops = int(paddle.flops(capture, shape, print_detail=False))
    outs = capture.outs
    return {"params": total, "trainable_params": trainable, "flops": flops, "input_shape": shape,
            "outputs": [{"name": n, "shape": list(o.shape)} for n, o in zip(net.output_names(), outs,
                                                                               strict=True)],
            "flops_counter": "paddle.flops"}


def _static_info(spec: dict[str, Any], batch: int) -> dict[str, Any]:
    """Complexity of an exported program: parameters from its persistable variables, FLOPs from
    paddle's static counter (conv, matmul/mul, pool, elementwise, activations)."""
    import numpy as np
    import paddle

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    prefix = str(Path(spec["path"]) / "model")
    program, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
    block = program.global_block()
    stats_names = set()
    for op in block.ops:
        if op.type in ("batch_norm", "sync_batch_norm"):
            stats_names.update(op.input("Mean") + op.input("Variance"))
    total = trainable = 0
    for var in program.list_vars():
        if var.persistable and var.name not in ("feed", "fetch"):
            n = int(np.prod([d for d in var.shape])) if var.shape else 1
            total += n
            if var.name not in stats_names:
                trainable += n
    shape = [batch, *spec["input_shape"][1:]]
    flops = _static_flops(block, {feeds[0]: shape})
    outputs = [{"name": v.name, "shape": [batch if d == -1 and i == 0 else d for i, d in enumerate(v.shape)]}
               for v in fetches]
    return {"params": total, "trainable_params": trainable, "flops": flops, "input_shape": shape,
            "outputs": outputs, "flops_counter": "static conv/matmul multiply-adds"}


def _static_flops(block: Any, feed_shapes: dict[str, list[int]]) -> int:
    """Count multiply-adds of conv2d / depthwise conv / matmul ops like paddle.flops does for layers."""
    import numpy as np

    batch = next(iter(feed_shapes.values()))[0]

    def shape_of(name: str) -> list[int]:
        dims = list(block.var(name).shape)
        return [batch if d == -1 and i == 0 else max(d, 1) for i, d in enumerate(dims)]

    total = 0
    for op in block.ops:
        if op.type in ("conv2d", "depthwise_conv2d", "conv2d_transpose"):
            out = shape_of(op.output("Output")[0])
            w = shape_of(op.input("Filter")[0])  # [out_c, in_c/groups, kh, kw]
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif op.type in ("matmul", "matmul_v2", "mul"):
            x = shape_of(op.input("X")[0])
            out = shape_of(op.output("Out")[0])
            total += int(np.prod(out)) * x[-1]
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kpmobile.zoo.build_worker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--spec", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--result", required=True)
    i = sub.add_parser("info")
    i.add_argument("--spec", required=True)
    i.add_argument("--batch", type=int, default=1)
    i.add_argument("--result", required=True)
    args = parser.parse_args(argv)

    def work() -> dict[str, Any]:
        spec = _spec(args.spec)
        return build(spec, Path(args.out)) if args.cmd == "build" else info(spec, args.batch)

    return report_result(args.result, work)


if __name__ == "__main__":
    sys.exit(main())
