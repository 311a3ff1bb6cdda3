"""Paddle Inference sessions: paddle-cpu, paddle-mkldnn, paddle-gpu, paddle-trt-fp32/fp16."""

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

GPU_MEMORY_POOL_MB = 256
TRT_WORKSPACE_BYTES = 1 << 30
TRT_MIN_SUBGRAPH = 3  # PaddleDetection's default for keypoint models


def _import_paddle() -> Any:
    try:
        import paddle
        import paddle.inference  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"paddle is not installed ({exc})") from None
    return paddle


def probe() -> dict[str, Any]:
    """Give what this paddle build can do: version, MKLDNN, CUDA, GPU count, TensorRT."""
    paddle = _import_paddle()
    from paddle.base import core

    cuda = bool(core.is_compiled_with_cuda())
    trt = tuple(paddle.inference.get_trt_compile_version()) if cuda else (0, 0, 0)
    return {
        "version": version_string(paddle),
        "mkldnn": bool(core.is_compiled_with_mkldnn()),
        "cuda": cuda,
        "gpus": int(paddle.device.cuda.device_count()) if cuda else 0,
        "trt_compile": ".".join(str(v) for v in trt),
        "trt_library": find_nvinfer((trt[0],)) if any(trt) else None,
    }


def version_string(paddle: Any) -> str:
    """Give "paddle X.Y.Z (commit)" plus the CUDA/cuDNN/TensorRT versions of a GPU build."""
    text = f"paddle {paddle.__version__} ({paddle.version.commit[:8]})"
    cuda = paddle.version.cuda()
    if cuda and cuda != "False":
        text += f" CUDA {cuda} cuDNN {paddle.version.cudnn()}"
        trt = tuple(paddle.inference.get_trt_compile_version())
        if any(trt):
            text += " TensorRT " + ".".join(str(v) for v in trt)
    return text


def find_model_files(model_dir: Path) -> tuple[Path, Path]:
    """Give (.pdmodel, .pdiparams) of an exported model folder; model.* is preferred."""
    preferred = model_dir / "model.pdmodel"
    models = [preferred] if preferred.is_file() else sorted(model_dir.glob("*.pdmodel"))
    if len(models) != 1:
        raise WorkerFailure(
            f"{model_dir} holds {len(models)} .pdmodel files",
            "pass a folder made by paddle.jit.save (model.pdmodel + model.pdiparams)",
        )
    params = models[0].with_suffix(".pdiparams")
    if not params.is_file():
        raise WorkerFailure(f"{params} is missing", "export with paddle.jit.save, which writes both files")
    return models[0], params


def feed_specs(pdmodel: Path) -> list[InputSpec]:
    """Give the declared feed inputs of a .pdmodel (-1 dims as None), in feed-column order."""
    from paddle.base import core

    desc = core.ProgramDesc(pdmodel.read_bytes())
    block = desc.block(0)
    found: list[tuple[int, InputSpec]] = []
    for i in range(block.op_size()):
        op = block.op(i)
        if op.type() != "feed":
            continue
        name = op.output("Out")[0]
        dims = tuple(None if d < 0 else int(d) for d in block.var(name.encode()).shape())
        found.append((int(op.attr("col")), InputSpec(name, dims)))
    return [spec for _, spec in sorted(found, key=lambda item: item[0])]


class PaddleSession:
    """A Paddle Inference predictor configured for one backend."""

    def __init__(self, backend: str, model_dir: Path, threads: int, batch: int) -> None:
        self._paddle = _import_paddle()
        self._backend = backend
        self._threads = threads
        self._batch = batch
        self._model, self._params = find_model_files(model_dir)
        self._specs = feed_specs(self._model)
        self._check_build()
        self.info = SessionInfo(version_string(self._paddle))
        self._predictor: Any = None
        self._outputs: list[Any] = []

    def _check_build(self) -> None:
        from paddle.base import core

        version = self._paddle.__version__
        if self._backend == "paddle-mkldnn" and not core.is_compiled_with_mkldnn():
            raise Unavailable(f"paddle {version} built without MKLDNN (oneDNN)")
        if self._backend in ("paddle-gpu", "paddle-trt-fp32", "paddle-trt-fp16"):
            if not core.is_compiled_with_cuda():
                raise Unavailable(f"no CUDA GPU: paddle {version} is a CPU build (install paddlepaddle-gpu)")
            if self._paddle.device.cuda.device_count() == 0:
                raise Unavailable("no CUDA GPU visible to paddle (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
        if self._backend.startswith("paddle-trt"):
            trt = tuple(self._paddle.inference.get_trt_compile_version())
            if not any(trt):
                raise Unavailable("Paddle Inference built without TensorRT")
            if find_nvinfer((trt[0],)) is None:
                raise Unavailable(
                    f"TensorRT runtime libnvinfer.so.{trt[0]} not found (paddle was built with TensorRT "
                    f"{'.'.join(map(str, trt))}; add its lib folder to LD_LIBRARY_PATH)"
                )

    def inputs(self) -> list[InputSpec]:
        """Give the declared feed inputs."""
        return self._specs

    def _config(self, feeds: dict[str, np.ndarray]) -> Any:
        inference = self._paddle.inference
        config = inference.Config(str(self._model), str(self._params))
        config.switch_ir_optim(True)
        config.enable_memory_optim()
        config.switch_use_feed_fetch_ops(False)
        config.disable_glog_info()
        backend = self._backend
        if backend in ("paddle-cpu", "paddle-mkldnn"):
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self._threads)
            if backend == "paddle-mkldnn":
                config.enable_mkldnn()
            else:
                config.disable_mkldnn()
            return config
        config.enable_use_gpu(GPU_MEMORY_POOL_MB, 0)
        if self._threads != 1:
            self.info.notes.append(f"threads={self._threads} not used by {backend} (GPU)")
        if backend.startswith("paddle-trt"):
            precision = (
                inference.PrecisionType.Half if backend.endswith("fp16") else inference.PrecisionType.Float32
            )
            config.enable_tensorrt_engine(
                workspace_size=TRT_WORKSPACE_BYTES,
                max_batch_size=self._batch,
                min_subgraph_size=TRT_MIN_SUBGRAPH,
                precision_mode=precision,
                use_static=False,
                use_calib_mode=False,
            )
            if any(d is None for spec in self._specs if spec.shape for d in spec.shape):
                # explicit-batch TensorRT: the fed shape is the only shape the engine must serve
                shapes = {name: list(arr.shape) for name, arr in feeds.items()}
                config.set_trt_dynamic_shape_info(shapes, shapes, shapes)
                self.info.notes.append("TensorRT dynamic shape min=opt=max=the fed shape")
        return config

    def prepare(self, feeds: dict[str, np.ndarray]) -> None:
        """Create the predictor and copy the inputs in (not timed)."""
        self._predictor = self._paddle.inference.create_predictor(self._config(feeds))
        for name, arr in feeds.items():
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(arr.shape))
            handle.copy_from_cpu(np.ascontiguousarray(arr))
        self._outputs = [self._predictor.get_output_handle(n) for n in self._predictor.get_output_names()]

    def run(self) -> list[np.ndarray]:
        """Give the outputs of one predictor run, copied to host (copy_to_cpu waits for the GPU)."""
        self._predictor.run()
        return [out.copy_to_cpu() for out in self._outputs]


def open_session(backend: str, model_dir: Path, threads: int, batch: int) -> PaddleSession:
    """Give a Paddle Inference session for `backend`, or raise Unavailable."""
    return PaddleSession(backend, model_dir, threads, batch)
