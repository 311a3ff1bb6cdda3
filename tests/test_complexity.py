"""Measured complexity of the catalogue's networks against the published figures (real paddle)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from kpmobile.zoo.build import ensure_model
from kpmobile.zoo.catalogue import resolve
from kpmobile.zoo.complexity import model_info


def _within(measured: float, published: float, tolerance: float) -> bool:
    return abs(measured - published) <= tolerance * published


@pytest.mark.slow  # builds the model (cold cache: ~20 s)
def test_tinypose_128x96_matches_published() -> None:
    spec = resolve("pp-tinypose-128x96")
    info = model_info(spec)
    assert _within(info["trainable_params"], spec.published["trainable_params_m"] * 1e6, 0.03)
    assert _within(info["flops"], spec.published["gflops"] * 1e9, 0.05)
    assert info["params"] > info["trainable_params"]  # + batch-norm running statistics (1.36M)
    assert info["input_shape"] == [1, 3, 128, 96]
    assert info["outputs"] == [{"name": "heatmaps", "shape": [1, 17, 32, 24]},
                               {"name": "argmax", "shape": [1, 17]}]
    started = time.monotonic()
    assert model_info(spec) == info  # cached JSON, no subprocess
    assert time.monotonic() - started < 0.5


@pytest.mark.slow  # builds the model (cold cache: ~20 s)
def test_picodet_s_matches_published() -> None:
    spec = resolve("picodet-s-320")
    info = model_info(spec)
    # The published 0.99M is PicoDet-S on COCO: its 4 shared cls/reg 1x1 convs (96 inputs + bias)
    # have 79 more class channels than this 1-class pedestrian model.
    coco_head_extra = 4 * 79 * (96 + 1)
    assert _within(info["trainable_params"] + coco_head_extra, spec.published["params_m"] * 1e6, 0.01)
    assert [o["shape"] for o in info["outputs"][:4]] == [[1, 1600, 1], [1, 400, 1], [1, 100, 1], [1, 25, 1]]


@pytest.mark.slow
def test_hrnet_w32_256x192_matches_published() -> None:
    spec = resolve("hrnet-w32-256x192")
    info = model_info(spec)
    assert _within(info["trainable_params"], 28.54e6, 0.02)
    assert _within(info["flops"], 7.7e9, 0.05)
    assert info["outputs"][0] == {"name": "heatmaps", "shape": [1, 17, 64, 48]}


@pytest.mark.slow
def test_hrnet_w32_at_batch_2() -> None:
    info = model_info(resolve("hrnet-w32-256x192"), batch=2)
    assert info["input_shape"] == [2, 3, 256, 192]
    assert info["outputs"][0]["shape"] == [2, 17, 64, 48]
    assert _within(info["flops"], 2 * 7.7e9, 0.05)


@pytest.mark.slow
def test_litehrnet_30_256x192_matches_published() -> None:
    spec = resolve("litehrnet-30-256x192")
    info = model_info(spec)
    assert _within(info["trainable_params"], 1.76e6, 0.05)
    # mmcv also counts elementwise ops, pooling and upsampling: paddle.flops gives about 0.33 G
    # for the published 0.42 G (the Lite-HRNet paper gives 0.32 G).
    assert 0.25e9 < info["flops"] < 0.45e9


@pytest.mark.slow  # builds the model (cold cache: ~20 s)
def test_user_model_counted_from_its_program(tmp_path: Path) -> None:
    built = ensure_model(resolve("picodet-s-192"))
    user_dir = tmp_path / "exported"
    user_dir.mkdir()
    for name in ("model.pdmodel", "model.pdiparams"):
        shutil.copy(built / name, user_dir / name)
    info = model_info(resolve(str(user_dir)))
    catalogue = model_info(resolve("picodet-s-192"))
    assert _within(info["params"], catalogue["params"], 0.001)
    assert _within(info["trainable_params"], catalogue["trainable_params"], 0.001)
    assert _within(info["flops"], catalogue["flops"], 0.05)  # convolutions only, no BN/activations
    assert [o["shape"] for o in info["outputs"]] == [o["shape"] for o in catalogue["outputs"]]
