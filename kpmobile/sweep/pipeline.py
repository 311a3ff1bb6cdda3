"""Detector + pose pipeline cases: which runner a phone uses, its files and its command line.

- x86_64 phones (the virtual phone): kpmobile's pipeline_runner with the asset image, persons forced.
- ARM phones with ``--pipeline-runner PATH``: PaddleDetection's Lite ``main`` with a runtime config
  JSON and model folders (``model.nb`` + ``infer_cfg.json``); it detects what it detects, so the
  case records the persons it found.
- ARM phones without it: no case runs; the pipeline table composes det + N x pose from the
  single-model cases and marks the cell "composed".
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from kpmobile.paths import ASSETS_DIR, DEVICE_DIR, cache_dir
from kpmobile.records import BenchCase, ModelSpec
from kpmobile.sweep.plan import split_pipeline

PIPELINE_IMAGE = ASSETS_DIR / "pipeline_scene.ppm"
MODE_RUNNER = "runner"  # kpmobile's pipeline_runner
MODE_MAIN = "paddledet-main"  # PaddleDetection lite main
MODE_COMPOSED = "composed"


@dataclass(frozen=True)
class PipelineFile:
    """A host file to push for pipelines, and where it goes."""

    local: Path
    remote: str
    mode: int = 0o644


def own_pipeline_runner_file() -> tuple[Path, str]:
    """Give kpmobile's pipeline runner as one executable file (this Python as its shebang) and its version."""
    from kpmobile.runners import executable_runner, pipeline_runner

    path = executable_runner(Path(pipeline_runner.__file__), "kpmobile_pipeline_runner", cache_dir() / "runner",
                             sys.executable)
    return path, str(pipeline_runner.RUNNER_VERSION)


def pipeline_mode(abi: str, has_main: bool) -> str:
    """Give how a phone of `abi` gets its pipeline numbers."""
    if abi.startswith("x86"):
        return MODE_RUNNER
    return MODE_MAIN if has_main else MODE_COMPOSED


def runner_files(image: Path = PIPELINE_IMAGE) -> list[PipelineFile]:
    """Give the files kpmobile's pipeline runner needs on an x86 phone."""
    local, _ = own_pipeline_runner_file()
    return [PipelineFile(local, f"{DEVICE_DIR}/bin/{local.name}", 0o755),
            PipelineFile(image, f"{DEVICE_DIR}/assets/{image.name}")]


def runner_argv(case: BenchCase, specs: dict[str, ModelSpec], nb_remote: dict[str, str],
                result_path: str, image: Path = PIPELINE_IMAGE) -> list[str]:
    """Give the pipeline_runner command line of a pipeline case."""
    det, pose = split_pipeline(case.pipeline or case.model)
    local, _ = own_pipeline_runner_file()
    return [
        f"{DEVICE_DIR}/bin/{local.name}",
        f"--det_model={nb_remote[det]}",
        f"--keypoint_model={nb_remote[pose]}",
        f"--image={DEVICE_DIR}/assets/{image.name}",
        f"--det_shape={','.join(str(d) for d in specs[det].input_shape)}",
        f"--keypoint_shape={','.join(str(d) for d in specs[pose].input_shape)}",
        f"--persons={case.persons or 1}",
        f"--threads={case.threads}",
        f"--power_mode={case.power_mode}",
        f"--warmup={case.warmup}",
        f"--repeats={case.repeats}",
        f"--result_path={result_path}",
    ]


def main_files(main: Path, case: BenchCase, nb_local: dict[str, Path], model_dirs: dict[str, Path],
               work: Path, image: Path = PIPELINE_IMAGE) -> tuple[list[PipelineFile], list[str]]:
    """Give the files PaddleDetection's lite `main` needs for a case (binary, model folders with
    model.nb and infer_cfg.json, runtime config, image) and its command line."""
    det, pose = split_pipeline(case.pipeline or case.model)
    base = f"{DEVICE_DIR}/pipeline"
    files = [PipelineFile(main, f"{DEVICE_DIR}/bin/{main.name}", 0o755),
             PipelineFile(image, f"{DEVICE_DIR}/assets/{image.name}")]
    for name in (det, pose):
        files.append(PipelineFile(nb_local[name], f"{base}/{name}/model.nb"))
        files.append(PipelineFile(_infer_cfg_json(model_dirs[name], work), f"{base}/{name}/infer_cfg.json"))
    config = {
        "model_dir_det": f"{base}/{det}/", "batch_size_det": 1, "threshold_det": 0.5,
        "model_dir_keypoint": f"{base}/{pose}/", "batch_size_keypoint": 8, "threshold_keypoint": 0.5,
        "image_file": f"{DEVICE_DIR}/assets/{image.name}", "image_dir": "", "run_benchmark": True,
        "cpu_threads": case.threads, "use_dark_decode": True, "output_dir": f"{base}/output",
    }
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / f"runtime-{det}-{pose}-{case.threads}t.json"
    cfg.write_text(json.dumps(config, indent=2))
    files.append(PipelineFile(cfg, f"{base}/{cfg.name}"))
    return files, [f"{DEVICE_DIR}/bin/{main.name}", f"{base}/{cfg.name}"]


def _infer_cfg_json(model_dir: Path, work: Path) -> Path:
    """Give infer_cfg.yml of a model folder converted to the JSON the lite demo reads."""
    import yaml

    out = work / f"infer_cfg-{model_dir.name}.json"
    source = model_dir / "infer_cfg.yml"
    data = yaml.safe_load(source.read_text()) if source.is_file() else {}
    work.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    return out
