"""The model zoo against real paddle / paddledet / paddlelite (no mocks).

Builds pp-tinypose-128x96 and picodet-s-192 once into the default cache (about 25 s the
first time), converts them with Lite's opt and runs the x86 .nb in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kpmobile.errors import ConfigError, ConversionError, RunnerError
from kpmobile.records import ModelSpec
from kpmobile.zoo import convert as convert_mod
from kpmobile.zoo._worker import worker_env
from kpmobile.zoo.build import build_record, ensure_model, model_hash
from kpmobile.zoo.catalogue import CATALOGUE, MOBILE_MODELS, _input_shape, list_models, resolve
from kpmobile.zoo.convert import check_nb_target, convert_nb, convert_onnx, nb_header
from kpmobile.zoo.program import read_program_io

LITE_RUN = r"""
import json, sys
import numpy as np
from paddlelite.lite import MobileConfig, create_paddle_predictor
cfg = MobileConfig()
cfg.set_model_from_file(sys.argv[1])
predictor = create_paddle_predictor(cfg)
shape = [int(d) for d in sys.argv[2].split(",")]
image = np.random.RandomState(0).standard_normal(shape).astype("float32")
predictor.get_input(0).from_numpy(image)
predictor.run()
outs = [predictor.get_output(i).numpy() for i in range(int(sys.argv[3]))]
np.savez(sys.argv[4], *outs)
"""


def lite_x86_outputs(nb: Path, shape: tuple[int, ...], n_outputs: int, tmp: Path) -> list[np.ndarray]:
    """Run an x86 .nb with paddlelite in a subprocess (Lite aborts its process on errors)."""
    out = tmp / f"{nb.stem}.npz"
    proc = subprocess.run([sys.executable, "-c", LITE_RUN, str(nb), ",".join(map(str, shape)),
                           str(n_outputs), str(out)], env=worker_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = np.load(out)
    return [data[f"arr_{i}"] for i in range(n_outputs)]


@pytest.fixture(scope="module")
def tinypose() -> Path:
    return ensure_model(resolve("pp-tinypose-128x96"))


@pytest.fixture(scope="module")
def picodet() -> Path:
    return ensure_model(resolve("picodet-s-192"))


# catalogue -----------------------------------------------------------------------------------
def test_catalogue_names_and_specs() -> None:
    assert list(MOBILE_MODELS) == [s.name for s in list_models()[:3]]
    assert len(CATALOGUE) == 15
    for spec in list_models():
        assert spec.name == spec.name.lower()
        assert spec.task in ("pose", "det")
        assert len(spec.input_shape) == 4 and spec.input_shape[0] == 1
        assert spec.display
    assert resolve("PP-TinyPose-128x96").display == "PP-TinyPose-128x96 (pose)"
    assert resolve("PicoDet-s-192x192 (det)").name == "picodet-s-192"  # table labels resolve too
    assert resolve("HRNet_w32-256x192").name == "hrnet-w32-256x192"
    assert resolve("picodet-s-320").input_shape == (1, 3, 320, 320)
    assert resolve("hrnet-w32-256x256-mpii").arch["num_joints"] == 16
    assert resolve("dark-hrnet-w32-256x192").arch["decode"] == "dark"
    assert resolve("dark-hrnet-w32-256x192").display == "DARK_HRNet_w32-256x192"
    assert resolve("pp-tinypose-128x96").published["trainable_params_m"] == 1.32


def test_unknown_model_lists_the_catalogue() -> None:
    with pytest.raises(ConfigError) as info:
        resolve("pp-tinypose-999")
    assert info.value.message == "unknown model 'pp-tinypose-999'"
    assert "pp-tinypose-128x96" in info.value.hint and "exported model directory" in info.value.hint


def test_directory_without_model_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "model.pdiparams").write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        resolve(str(tmp_path))
    assert "model.pdmodel" in info.value.message


def test_input_shape_falls_back_to_infer_cfg() -> None:
    keypoint = {"Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128]}]}
    det = {"Preprocess": [{"type": "Resize", "target_size": [320, 320], "keep_ratio": False}]}
    assert _input_shape((-1, 3, -1, -1), keypoint) == (1, 3, 128, 96)
    assert _input_shape((-1, 3, -1, -1), det) == (1, 3, 320, 320)
    assert _input_shape((-1, 3, 256, 192), {}) == (1, 3, 256, 192)
    assert _input_shape((-1, 3, -1, -1), {}) is None


# building ------------------------------------------------------------------------------------
@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_built_model_is_cached_and_described(tinypose: Path) -> None:
    started = time.monotonic()
    again = ensure_model(resolve("pp-tinypose-128x96"))
    assert again == tinypose and time.monotonic() - started < 0.5
    record = build_record(tinypose)
    assert record["model_hash"] == model_hash(tinypose)
    assert record["trainable_params"] == 1318625
    io = read_program_io(tinypose / "model.pdmodel")
    assert [(v.name, v.shape, v.dtype) for v in io.inputs] == [("image", (1, 3, 128, 96), "float32")]
    assert [v.shape for v in io.outputs] == [(1, 17, 32, 24), (1, 17)]
    assert [v.dtype for v in io.outputs] == ["float32", "int64"]
    assert (tinypose / "infer_cfg.yml").is_file()


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_build_is_deterministic(picodet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPMOBILE_CACHE", str(tmp_path / "cache"))
    rebuilt = ensure_model(resolve("picodet-s-192"))
    assert rebuilt != picodet
    assert model_hash(rebuilt) == model_hash(picodet)


def _sane(values: np.ndarray) -> None:
    assert np.isfinite(values).all()
    peak = float(np.abs(values).max())
    assert 1e-6 < peak < 1e4, peak  # random init without BN recalibration: ~1e-19 or ~1e21


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_tinypose_runs_on_lite_x86_with_sane_heatmaps(tinypose: Path, tmp_path: Path) -> None:
    nb = convert_nb(tinypose, "x86").path
    heatmaps, argmax = lite_x86_outputs(nb, (1, 3, 128, 96), 2, tmp_path)
    assert heatmaps.shape == (1, 17, 32, 24) and argmax.shape == (1, 17)
    _sane(heatmaps)
    assert heatmaps.std() > 1e-5
    assert (argmax == heatmaps.reshape(1, 17, -1).argmax(-1)).all()


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_picodet_runs_on_lite_x86_with_sane_outputs(picodet: Path, tmp_path: Path) -> None:
    nb = convert_nb(picodet, "x86").path
    outs = lite_x86_outputs(nb, (1, 3, 192, 192), 8, tmp_path)
    assert [o.shape for o in outs] == [(1, 576, 1), (1, 144, 1), (1, 36, 1), (1, 9, 1),
                                       (1, 576, 32), (1, 144, 32), (1, 36, 32), (1, 9, 32)]
    for o in outs:
        _sane(o)
    assert all(((o > 0) & (o < 1)).all() for o in outs[:4])  # class scores after sigmoid


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_lite_and_onnxruntime_agree(tinypose: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    lite_heatmaps = lite_x86_outputs(convert_nb(tinypose, "x86").path, (1, 3, 128, 96), 2, tmp_path)[0]
    onnx = convert_onnx(tinypose)
    assert convert_onnx(tinypose).cached
    session = ort.InferenceSession(str(onnx.path), providers=["CPUExecutionProvider"])
    image = np.random.RandomState(0).standard_normal((1, 3, 128, 96)).astype("float32")
    ort_heatmaps = session.run(None, {"image": image})[0]
    np.testing.assert_allclose(ort_heatmaps, lite_heatmaps, rtol=1e-3, atol=1e-5)


# conversion ----------------------------------------------------------------------------------
@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_second_conversion_is_cached_without_work(picodet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = convert_nb(picodet, "arm")

    def no_worker(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a cached conversion started a worker")

    monkeypatch.setattr(convert_mod, "run_worker", no_worker)
    started = time.monotonic()
    second = convert_nb(picodet, "arm")
    assert time.monotonic() - started < 0.1
    assert second.cached and second.path == first.path and second.key == first.key
    assert second.path.parent.name == "nb" and second.path.name == f"{second.key}.nb"
    assert convert_nb(picodet, "x86").key != first.key


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_nb_header_reads_targets(tinypose: Path) -> None:
    arm = nb_header(convert_nb(tinypose, "arm").path)
    x86 = nb_header(convert_nb(tinypose, "x86").path)
    assert arm.version.startswith("v2.13")
    assert "arm" in arm.targets and "x86" not in arm.targets and arm.targets <= {"arm", "host"}
    assert "x86" in x86.targets and "arm" not in x86.targets and x86.targets <= {"x86", "host"}
    assert "fp32" in arm.precisions and arm.kernels > 100


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_check_nb_target(tinypose: Path, tmp_path: Path) -> None:
    arm = convert_nb(tinypose, "arm").path
    x86 = convert_nb(tinypose, "x86").path
    check_nb_target(arm, "arm64-v8a")
    check_nb_target(arm, "armeabi-v7a")
    check_nb_target(x86, "x86_64")
    with pytest.raises(RunnerError, match="do not run on x86_64") as info:
        check_nb_target(arm, "x86_64")
    assert "--target x86" in info.value.hint
    with pytest.raises(RunnerError):
        check_nb_target(x86, "arm64-v8a")
    garbage = tmp_path / "garbage.nb"
    garbage.write_bytes(b"not a model\n" * 100)
    with pytest.raises(RunnerError, match="not a Paddle Lite .nb"):
        check_nb_target(garbage, "arm64-v8a")
    truncated = tmp_path / "truncated.nb"
    truncated.write_bytes(arm.read_bytes()[:4096])
    with pytest.raises(RunnerError, match="not a Paddle Lite .nb"):
        check_nb_target(truncated, "arm64-v8a")
    with pytest.raises(RunnerError, match="does not exist"):
        check_nb_target(tmp_path / "missing.nb", "arm64-v8a")
    with pytest.raises(RunnerError, match="unknown ABI"):
        check_nb_target(arm, "mips")


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_bad_targets_and_fp16(picodet: Path) -> None:
    with pytest.raises(ConfigError):
        convert_nb(picodet, "opencl")
    with pytest.raises(ConfigError, match="arm target only"):
        convert_nb(picodet, "x86", fp16=True)
    # The pip paddlelite's opt writes fp32 kernels when asked for fp16: refused, not mislabelled.
    with pytest.raises(ConversionError, match="no fp16 kernels"):
        convert_nb(picodet, "arm", fp16=True)


def test_conversion_failure_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.pdmodel").write_bytes(b"\x00garbage" * 64)
    (broken / "model.pdiparams").write_bytes(b"\x00" * 64)
    with pytest.raises(ConversionError) as info:
        convert_nb(broken, "x86")
    assert "\n" not in info.value.one_line() and info.value.message.startswith("converting broken")
    assert info.value.hint


# a user's exported model -----------------------------------------------------------------------
@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_user_export_directory_is_accepted(tinypose: Path, tmp_path: Path) -> None:
    user_dir = tmp_path / "my_tinypose"
    shutil.copytree(tinypose, user_dir, ignore=shutil.ignore_patterns("build.json"))
    spec = resolve(str(user_dir))
    assert isinstance(spec, ModelSpec)
    assert (spec.family, spec.display, spec.task) == ("user", "my_tinypose", "pose")
    assert spec.input_shape == (1, 3, 128, 96) and spec.path == str(user_dir.resolve())
    assert ensure_model(spec) == user_dir.resolve()
    assert model_hash(user_dir) == model_hash(tinypose)
    conv = convert_nb(ensure_model(spec), "arm")
    assert conv.cached and conv.key == convert_nb(tinypose, "arm").key


@pytest.mark.slow  # builds (cold cache: 10-120 s)
def test_user_detector_without_infer_cfg(picodet: Path, tmp_path: Path) -> None:
    user_dir = tmp_path / "det"
    user_dir.mkdir()
    for name in ("model.pdmodel", "model.pdiparams"):
        shutil.copy(picodet / name, user_dir / name)
    spec = resolve(str(user_dir / "model.pdmodel"))
    assert spec.family == "user" and spec.task == "det" and spec.input_shape == (1, 3, 192, 192)
    assert json.loads(json.dumps(spec.arch))["inputs"] == ["image"]


def test_one_nb_reader_serves_zoo_and_runner_alike(tmp_path: Path) -> None:
    """zoo's nb_header and the runner's inspect_nb read the same header through kpmobile.nbfile."""
    import struct

    from kpmobile.nbfile import NB_TRUNCATED, NbFormatError, read_nb
    from kpmobile.runners import lite_runner as lr

    topology = b"..conv2d/def/2/1/1\x00..feed/def/1/4/2\x00..fetch/def/1/4/2\x00..weird/def/0/0/0\x00"
    nb = tmp_path / "m.nb"
    nb.write_bytes(struct.pack("<H16sQ", 2, b"v2.13-rc\x00\xdf", len(topology)) + topology + b"params")
    info = read_nb(str(nb))
    assert (info.targets, info.precisions, info.kernels) == (("host", "unk", "x86"), ("any", "fp32", "unk"), 4)
    assert dict(info.ops) == {"host": ("feed", "fetch"), "unk": ("weird",), "x86": ("conv2d",)}
    header = nb_header(nb)
    assert (header.version, header.targets, header.precisions, header.kernels) == (
        "v2.13-rc", frozenset(info.targets), frozenset(info.precisions), 4)
    with pytest.raises(lr.RunnerFailure, match=r"was converted for unk"):
        lr.inspect_nb(str(nb))
    cut = tmp_path / "cut.nb"
    cut.write_bytes(nb.read_bytes()[:40])
    with pytest.raises(NbFormatError) as problem:
        read_nb(str(cut))
    assert problem.value.kind == NB_TRUNCATED
    with pytest.raises(RunnerError, match=r"not a Paddle Lite .nb \(.* is truncated: its topology needs") as info_:
        nb_header(cut)
    assert info_.value.hint == "convert the model again"
    with pytest.raises(RunnerError, match="does not exist"):
        nb_header(tmp_path / "missing.nb")
