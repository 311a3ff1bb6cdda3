"""Host backends on a small real conv network: Paddle Inference, Paddle Lite x86, ONNX Runtime.

The network is built with paddle in a subprocess and converted with the paddle_lite_opt and
paddle2onnx command lines, so this test process never imports paddle, paddlelite or onnxruntime.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kpmobile.backends import (
    BACKENDS,
    BackendResult,
    BackendUnavailable,
    available,
    compare_outputs,
    run_backend,
    summarize_times,
    tolerance_for,
)
from kpmobile.backends.probe import worker_env
from kpmobile.errors import RunnerError

pytestmark = pytest.mark.slow

INPUT_SHAPE = (1, 3, 64, 48)
OUT_CHANNELS = 17
CPU_BACKENDS = ("lite-x86", "paddle-cpu", "paddle-mkldnn", "ort-cpu")
GPU_BACKENDS = ("paddle-gpu", "paddle-trt-fp32", "paddle-trt-fp16", "ort-cuda", "ort-trt")
WARMUP, REPEATS = 3, 20

BUILD_SCRIPT = r"""
import sys
import numpy as np
import paddle
from paddle import nn
from paddle.static import InputSpec

out_dir, seed, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paddle.seed(seed)
layers, channels = [], 3
for width in (16, 32, 32, 17):
    layers += [nn.Conv2D(channels, width, 3, padding=1), nn.BatchNorm2D(width), nn.ReLU()]
    channels = width
net = nn.Sequential(*layers)
rng = np.random.RandomState(100 + seed)
for layer in net.sublayers():
    if isinstance(layer, nn.BatchNorm2D):  # non-trivial statistics, so BN folding is exercised
        n = layer._mean.shape[0]
        layer._mean.set_value(rng.uniform(-0.5, 0.5, n).astype("float32"))
        layer._variance.set_value(rng.uniform(0.5, 2.0, n).astype("float32"))
        layer.weight.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
        layer.bias.set_value(rng.uniform(-0.2, 0.2, n).astype("float32"))
net.eval()
spec = InputSpec([None if batch < 0 else batch, 3, 64, 48], "float32", "image")
paddle.jit.save(paddle.jit.to_static(net, input_spec=[spec]), out_dir + "/model")
"""


@dataclass(frozen=True)
class Model:
    """An exported model folder with its conversions."""

    dir: Path
    nb: Path | None = None
    onnx: Path | None = None


def _tool(name: str) -> str | None:
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else shutil.which(name)


def _check(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}"


def _build(out_dir: Path, seed: int, batch: int, nb_targets: tuple[str, ...] = ()) -> Model:
    """Give the exported model; its .nb / .onnx are None where paddle_lite_opt / paddle2onnx are missing."""
    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddle is not installed: the test network cannot be built")
    out_dir.mkdir(parents=True)
    _check([sys.executable, "-c", BUILD_SCRIPT, str(out_dir), str(seed), str(batch)])
    params = ["--model_file", str(out_dir / "model.pdmodel"), "--param_file", str(out_dir / "model.pdiparams")]
    opt, p2o = _tool("paddle_lite_opt"), _tool("paddle2onnx")
    nb = onnx = None
    if opt is not None:
        for target in nb_targets:
            _check([opt, *params, f"--valid_targets={target}", f"--optimize_out={out_dir / target}"])
        nb = out_dir / f"{nb_targets[0]}.nb" if nb_targets else None
    if p2o is not None:
        onnx = out_dir / "model.onnx"
        _check([p2o, "--model_dir", str(out_dir), "--model_filename", "model.pdmodel",
                "--params_filename", "model.pdiparams", "--save_file", str(onnx), "--opset_version", "11"])
    return Model(out_dir, nb, onnx)


def _require(model: Model, backend: str) -> None:
    """Skip the test when `backend` cannot run here or its conversion is missing."""
    reason = available(backend)
    if reason is not None:
        pytest.skip(reason)
    engine = BACKENDS[backend].engine
    if (engine == "lite" and model.nb is None) or (engine == "ort" and model.onnx is None):
        pytest.skip(f"no conversion for {backend}: paddle_lite_opt or paddle2onnx is missing")


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the saved outputs in a temporary cache, for this module's tests only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPMOBILE_CACHE", str(tmp_path_factory.mktemp("kpcache")))
        yield


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The network under test: batch -1, converted to x86 and ARM .nb and to ONNX."""
    return _build(tmp_path_factory.mktemp("models") / "net", seed=0, batch=-1, nb_targets=("x86", "arm"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The same architecture with other weights: its outputs must fail the check."""
    return _build(tmp_path_factory.mktemp("models") / "other", seed=1, batch=-1)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The network exported with its batch fixed at 1."""
    return _build(tmp_path_factory.mktemp("models") / "fixed", seed=0, batch=1)


def _run(model: Model, backend: str, batch: int = 1, **kwargs: object) -> BackendResult:
    return run_backend(
        model.dir, backend, INPUT_SHAPE, batch=batch, warmup=WARMUP, repeats=REPEATS,
        nb_path=model.nb, onnx_path=model.onnx, **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def cpu_results(net: Model) -> dict[str, BackendResult]:
    """One measurement of the network per usable CPU backend, batch 1, 1 thread."""
    results = {}
    for backend in CPU_BACKENDS:
        try:
            _require(net, backend)
        except pytest.skip.Exception:
            continue
        results[backend] = _run(net, backend)
    return results


def _result(results: dict[str, BackendResult], net: Model, backend: str) -> BackendResult:
    _require(net, backend)
    if "paddle-cpu" not in results:
        pytest.skip("no paddle-cpu reference")
    return results[backend]


def test_registry_names_and_columns() -> None:
    assert list(BACKENDS) == [
        "lite-x86", "paddle-cpu", "paddle-mkldnn", "paddle-gpu", "paddle-trt-fp32", "paddle-trt-fp16",
        "ort-cpu", "ort-cuda", "ort-trt",
    ]
    columns = {name: info.column for name, info in BACKENDS.items() if info.column}
    assert columns == {
        "paddle-mkldnn": "CPU + MKLDNN", "paddle-gpu": "GPU",
        "paddle-trt-fp32": "TensorRT (FP32)", "paddle-trt-fp16": "TensorRT (FP16)",
    }
    assert {name for name, info in BACKENDS.items() if info.needs_gpu} == set(GPU_BACKENDS)
    assert {info.engine for info in BACKENDS.values()} == {"lite", "paddle", "ort"}


def test_summarize_times_is_mmpose_fps() -> None:
    summary = summarize_times([10.0, 20.0])
    assert summary.avg_ms == 15.0 and summary.min_ms == 10.0 and summary.max_ms == 20.0
    assert summary.fps_mean == pytest.approx(75.0)  # mean of 100 and 50 iterations/s
    assert summary.fps_std == pytest.approx(np.std([100.0, 50.0], ddof=1))
    with pytest.raises(ValueError):
        summarize_times([])


def test_importing_backends_loads_no_engine() -> None:
    code = (
        "import sys, kpmobile.backends, kpmobile.backends.worker; "
        "print([m for m in ('paddle', 'paddlelite', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=worker_env(),
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_cpu_backend_available(backend: str) -> None:
    engine = BACKENDS[backend].engine
    if importlib.util.find_spec({"lite": "paddlelite", "paddle": "paddle", "ort": "onnxruntime"}[engine]) is None:
        pytest.skip(f"{engine} is not installed")
    assert available(backend) is None


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_cpu_backend_runs(cpu_results: dict[str, BackendResult], net: Model, backend: str) -> None:
    result = _result(cpu_results, net, backend)
    assert result.backend == backend and result.batch == 1 and result.threads == 1
    assert len(result.times_ms) == REPEATS == result.repeats
    assert all(t > 0 for t in result.times_ms)
    assert 0 < result.min_ms <= result.avg_ms <= result.max_ms
    assert result.std_ms >= 0 and result.fps_mean > 0 and result.fps_std >= 0
    assert result.input_shape == INPUT_SHAPE
    assert [o.shape for o in result.outputs] == [(1, OUT_CHANNELS, 64, 48)]
    assert result.outputs[0].std > 0.1  # BN statistics make the output non-trivial
    assert Path(result.output_digest).is_file()
    assert result.version.startswith({"lite": "paddlelite", "paddle": "paddle", "ort": "onnxruntime"}[
        BACKENDS[backend].engine])
    assert json.loads(json.dumps(result.to_json()))["times_ms"] == list(result.times_ms)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_cpu_outputs_agree_with_paddle_cpu(cpu_results: dict[str, BackendResult], net: Model, backend: str) -> None:
    check = compare_outputs(cpu_results["paddle-cpu"], _result(cpu_results, net, backend), *tolerance_for(backend))
    assert check.ok, check.detail
    assert check.max_abs < 1e-4


@pytest.mark.parametrize("backend", ("paddle-cpu", "ort-cpu"))
def test_check_fails_for_a_different_model(
    cpu_results: dict[str, BackendResult], net: Model, other: Model, backend: str
) -> None:
    _result(cpu_results, net, backend)
    result = _run(other, backend)
    check = compare_outputs(cpu_results["paddle-cpu"], result, *tolerance_for(backend))
    assert not check.ok
    assert check.max_abs > 1e-2 and "values off" in check.detail


def test_check_fails_on_shape_mismatch(cpu_results: dict[str, BackendResult], net: Model) -> None:
    _result(cpu_results, net, "ort-cpu")
    batch10 = _run(net, "ort-cpu", batch=10)
    check = compare_outputs(cpu_results["paddle-cpu"], batch10, *tolerance_for("ort-cpu"))
    assert not check.ok and "shape" in check.detail


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_10(cpu_results: dict[str, BackendResult], net: Model, backend: str) -> None:
    _result(cpu_results, net, backend)
    result = _run(net, backend, batch=10)
    assert result.batch == 10 and result.input_shape == (10, *INPUT_SHAPE[1:])
    assert result.outputs[0].shape == (10, OUT_CHANNELS, 64, 48)
    # RandomState(0) fills the batch in order: image 0 of batch 10 is the batch-1 image.
    first = np.load(result.output_digest)[:1]
    single = np.load(cpu_results["paddle-cpu"].output_digest)
    atol, rtol = tolerance_for(backend)
    np.testing.assert_allclose(first, single, rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend", ("paddle-cpu", "ort-cpu"))
def test_fixed_batch_model_is_unavailable_at_batch_10(fixed: Model, backend: str) -> None:
    _require(fixed, backend)
    assert _run(fixed, backend).outputs[0].shape[0] == 1
    with pytest.raises(BackendUnavailable, match="fixed batch 1") as err:
        _run(fixed, backend, batch=10)
    assert err.value.backend == backend


@pytest.mark.parametrize("backend", ("paddle-mkldnn", "ort-cpu"))
def test_threads_are_recorded(net: Model, backend: str) -> None:
    _require(net, backend)
    result = _run(net, backend, threads=2)
    assert result.threads == 2 and not result.notes


def test_lite_notes_threads_not_applied(cpu_results: dict[str, BackendResult], net: Model) -> None:
    notes = _result(cpu_results, net, "lite-x86").notes
    assert any("threads not applied by lite-x86" in n for n in notes)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gpu_backend(cpu_results: dict[str, BackendResult], net: Model, backend: str) -> None:
    reason = available(backend)
    if reason is not None:
        with pytest.raises(BackendUnavailable) as err:
            _run(net, backend)
        assert err.value.reason == reason
        pytest.skip(reason)
    _require(net, backend)
    result = _run(net, backend)
    assert len(result.times_ms) == REPEATS
    check = compare_outputs(cpu_results["paddle-cpu"], result, *tolerance_for(backend))
    assert check.ok, check.detail


def test_corrupt_nb_is_a_runner_error(net: Model, tmp_path: Path) -> None:
    _require(net, "lite-x86")
    assert net.nb is not None
    corrupt = tmp_path / "corrupt.nb"
    corrupt.write_bytes(net.nb.read_bytes()[:3000])
    with pytest.raises(RunnerError) as err:
        run_backend(net.dir, "lite-x86", INPUT_SHAPE, nb_path=corrupt, repeats=2)
    message = err.value.message
    # The one .nb reader (kpmobile.nbfile) finds the cut before Paddle Lite would abort on it (exit 134).
    assert "corrupt.nb is truncated" in message and "the file has 3000" in message
    assert "\n" not in err.value.one_line()
    assert "--valid_targets=x86" in err.value.hint


def test_arm_nb_is_refused_on_x86(net: Model) -> None:
    _require(net, "lite-x86")
    # An ARM .nb "runs" on x86 in microseconds and returns garbage: it must be refused.
    with pytest.raises(RunnerError, match="another target than x86 \\(arm: "):
        run_backend(net.dir, "lite-x86", INPUT_SHAPE, nb_path=net.dir / "arm.nb", repeats=2)


@pytest.mark.parametrize("backend", ("paddle-cpu", "ort-cpu"))
def test_wrong_input_shape_is_a_runner_error(net: Model, backend: str) -> None:
    _require(net, backend)
    with pytest.raises(RunnerError, match="does not match the model's input 'image'"):
        run_backend(net.dir, backend, (1, 3, 32, 32), onnx_path=net.onnx, repeats=2)


def test_timeout_is_a_runner_error(net: Model) -> None:
    _require(net, "paddle-cpu")  # probes first, so the timeout hits the measurement
    with pytest.raises(RunnerError, match="timed out after 0.2 s"):
        run_backend(net.dir, "paddle-cpu", INPUT_SHAPE, timeout_s=0.2)


def test_worker_runs_without_paddle_or_paddlelite(net: Model, tmp_path: Path) -> None:
    _require(net, "ort-cpu")
    # As on a GPU server without paddlelite: the ort worker must not touch paddle/paddlelite.
    block = "import sys; sys.modules.update(paddle=None, paddlelite=None); "
    run = (
        block + "from kpmobile.backends.worker import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["run", "--backend", "ort-cpu", "--onnx", str(net.onnx), "--input-shape", "1,3,64,48",
            "--warmup", "1", "--repeats", "3", "--save-output", str(tmp_path / "o.npy")]
    proc = subprocess.run([sys.executable, "-c", run, *args], capture_output=True, text=True,
                          env=worker_env(), timeout=120, check=False)
    payload = json.loads(proc.stdout)
    assert proc.returncode == 0 and payload["status"] == "ok", proc.stderr[-2000:]
    assert len(payload["times_ms"]) == 3 and (tmp_path / "o.npy").is_file()
    probe = subprocess.run([sys.executable, "-c", run, "probe", "--engine", "lite"], capture_output=True,
                           text=True, env=worker_env(), timeout=120, check=False)
    assert probe.returncode == 3
    assert json.loads(probe.stdout)["reason"].startswith("paddlelite is not installed")
