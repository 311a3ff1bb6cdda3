"""Worker process: convert a Paddle model to a Paddle Lite `.nb` or to ONNX.

    python -m kpmobile.zoo.convert_worker nb --model-dir DIR --target arm|x86 [--fp16] --out PREFIX --result FILE
    python -m kpmobile.zoo.convert_worker onnx --model-dir DIR --opset N --out FILE.onnx --result FILE

Imports paddlelite (nb) or paddle2onnx (onnx), never both, and never in the caller's process:
Lite's optimizer aborts the process on some models.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kpmobile.zoo._worker import report_result


def to_nb(model_dir: Path, target: str, fp16: bool, out_prefix: Path) -> dict[str, Any]:
    """Run Lite's optimizer (`lite.Opt`) and give the .nb it wrote."""
    from paddlelite.lite import Opt

    started = time.monotonic()
    opt = Opt()
    opt.set_model_file(str(model_dir / "model.pdmodel"))
    opt.set_param_file(str(model_dir / "model.pdiparams"))
    opt.set_valid_places(target)
    opt.set_model_type("naive_buffer")
    if fp16:
        opt.enable_fp16()
    opt.set_optimize_out(str(out_prefix))
    opt.run()
    nb = Path(f"{out_prefix}.nb")
    if not nb.is_file() or nb.stat().st_size == 0:
        raise RuntimeError("the optimizer wrote no .nb (unsupported op or kernel for this target?)")
    return {"path": str(nb), "opt_version": opt.version(), "seconds_convert": round(time.monotonic() - started, 3)}


def to_onnx(model_dir: Path, opset: int, out: Path) -> dict[str, Any]:
    """Run paddle2onnx and give the ONNX file it wrote."""
    import paddle2onnx

    started = time.monotonic()
    paddle2onnx.export(str(model_dir / "model.pdmodel"), str(model_dir / "model.pdiparams"),
                       save_file=str(out), opset_version=opset, auto_upgrade_opset=True,
                       verbose=False, enable_onnx_checker=True)
    if not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError("paddle2onnx wrote no model")
    return {"path": str(out), "paddle2onnx_version": paddle2onnx.__version__,
            "seconds_convert": round(time.monotonic() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kpmobile.zoo.convert_worker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    nb = sub.add_parser("nb")
    nb.add_argument("--model-dir", required=True)
    nb.add_argument("--target", choices=("arm", "x86"), required=True)
    nb.add_argument("--fp16", action="store_true")
    nb.add_argument("--out", required=True)
    nb.add_argument("--result", required=True)
    ox = sub.add_parser("onnx")
    ox.add_argument("--model-dir", required=True)
    ox.add_argument("--opset", type=int, default=11)
    ox.add_argument("--out", required=True)
    ox.add_argument("--result", required=True)
    args = parser.parse_args(argv)

    def work() -> dict[str, Any]:
        if args.cmd == "nb":
            return to_nb(Path(args.model_dir), args.target, args.fp16, Path(args.out))
        return to_onnx(Path(args.model_dir), args.opset, Path(args.out))

    return report_result(args.result, work)


if __name__ == "__main__":
    sys.exit(main())
