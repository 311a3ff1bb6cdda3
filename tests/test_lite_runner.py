"""kpmobile's lite_runner: run as a subprocess on real .nb files, its output read back by the parser."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from kpmobile.records import LogDevice
from kpmobile.runners import LITE_RUNNER_PATH, RUNNER_VERSION, executable_runner, parse_file, parse_log
from kpmobile.runners import lite_runner as lr
from kpmobile.runners import pipeline_runner as pr
from kpmobile.runners.splice import standalone_source

NOT_APPLIED = (
    "threads applied: no (x86 MobileConfig has no set_threads)",
    "power_mode applied: no (x86 MobileConfig has no set_power_mode)",
)

# Builds the test models in a subprocess (paddle stays out of the pytest process): a few
# conv+bn+relu layers with one input, and a two-input variant, each converted for x86 and arm.
BUILD_SCRIPT = r'''
import json, sys
import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec
import paddlelite.lite as lite

out = sys.argv[1]
paddle.seed(7)


class Tiny(nn.Layer):
    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for width in (8, 8, 16):
            layers += [nn.Conv2D(channels, width, 3, padding=1), nn.BatchNorm2D(width), nn.ReLU()]
            channels = width
        self.body = nn.Sequential(*layers)

    def forward(self, image):
        return self.body(image)


class TwoInputs(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)

    def forward(self, image, bias):
        return nn.functional.relu(self.conv(image) + bias)


reference = {}
for name, net, specs, feeds in (
    ("tiny", Tiny(), [InputSpec([1, 3, 32, 24], "float32", "image")], [np.ones((1, 3, 32, 24), "float32")]),
    ("two_inputs", TwoInputs(),
     [InputSpec([1, 3, 32, 24], "float32", "image"), InputSpec([1, 8, 1, 1], "float32", "bias")],
     [np.ones((1, 3, 32, 24), "float32"), np.ones((1, 8, 1, 1), "float32")]),
):
    net.eval()
    values = net(*[paddle.to_tensor(f) for f in feeds]).numpy().astype("float64")
    reference[name] = {"shape": list(values.shape), "mean": float(values.mean()), "std": float(values.std())}
    paddle.jit.save(net, f"{out}/{name}/model", input_spec=specs)
    for target in ("x86", "arm"):
        opt = lite.Opt()
        opt.set_model_file(f"{out}/{name}/model.pdmodel")
        opt.set_param_file(f"{out}/{name}/model.pdiparams")
        opt.set_valid_places(target)
        opt.set_optimize_out(f"{out}/{name}_{target}")
        opt.run()
with open(f"{out}/reference.json", "w") as fh:
    json.dump(reference, fh)
'''

needs_paddle = pytest.mark.skipif(
    find_spec("paddle") is None or find_spec("paddlelite") is None, reason="paddle / paddlelite not installed"
)


@pytest.fixture(scope="session")
def models() -> Path:
    """Give a folder with tiny_{x86,arm}.nb, two_inputs_{x86,arm}.nb and reference.json (cached in /tmp)."""
    key = hashlib.sha256(BUILD_SCRIPT.encode() + sys.executable.encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"kpmobile-test-lite-runner-{key}"
    if (cache / "reference.json").is_file():
        return cache
    work = Path(tempfile.mkdtemp(prefix="kpmobile-nb-build-"))
    script = work / "build.py"  # paddle.jit reads forward()'s source: the script must be a file
    script.write_text(BUILD_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(work)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    try:
        work.rename(cache)
    except OSError:  # built meanwhile by another session
        shutil.rmtree(work, ignore_errors=True)
    return cache


def run_runner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LITE_RUNNER_PATH), *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


def base_args(nb: Path, *extra: str) -> list[str]:
    return [f"--optimized_model_file={nb}", "--input_shape=1,3,32,24", "--backend=x86", *extra]


@pytest.fixture
def plain_host_env() -> Iterator[dict[str, str]]:
    """Give an environment whose PATH has no getprop (a plain host)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not (Path(p) / "getprop").exists())
    yield env




def model_test(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that builds and runs real .nb models."""
    return pytest.mark.slow(needs_paddle(test))


@model_test
def test_x86_run_parsed_from_stdout_and_result_file(models: Path, tmp_path: Path,
                                                    plain_host_env: dict[str, str]) -> None:
    result = tmp_path / "result.txt"
    done = run_runner(*base_args(models / "tiny_x86.nb", "--threads=4", "--power_mode=2", "--warmup=3",
                                 "--repeats=15", f"--result_path={result}"), env=plain_host_env)
    assert done.returncode == 0, done.stderr
    (record,) = parse_log(done.stdout)
    assert record.format == "benchmark_bin"
    assert record.model == "tiny_x86"
    assert (record.threads, record.power_mode, record.warmup, record.repeats) == (4, 2, 3, 15)
    assert (record.backend, record.cpu_precision, record.run_delay) == ("x86", "fp32", None)
    assert record.avg_ms is not None and record.min_ms is not None and record.max_ms is not None
    assert 0 < record.min_ms <= record.avg_ms <= record.max_ms
    assert record.first_ms is not None and record.first_ms > 0
    assert record.init_ms is not None and record.init_ms > 0
    assert record.device is None  # no getprop on a plain host
    assert (record.init_mb, record.peak_mb) == (None, None)
    reference = json.loads((models / "reference.json").read_text())["tiny"]
    (output,) = record.outputs
    assert list(output.shape) == reference["shape"] == [1, 16, 32, 24]
    assert output.mean == pytest.approx(reference["mean"], rel=1e-4)  # inputs are all 1.f
    assert output.std == pytest.approx(reference["std"], rel=1e-4)
    assert record.notes == (f"benchmark_bin version: kpmobile-lite-runner {RUNNER_VERSION} (paddlelite "
                            f"{lr.paddlelite_version()})", "input_shape: 1,3,32,24", *NOT_APPLIED)
    (from_file,) = parse_file(result)
    # The result file alone ends with the per-iteration line (issue 15); stdout stays benchmark_bin's.
    assert record.samples_ms == () and len(from_file.samples_ms) == 15
    assert dataclasses.replace(from_file, samples_ms=()) == record
    assert min(from_file.samples_ms) == record.min_ms and max(from_file.samples_ms) == record.max_ms
    assert statistics.fmean(from_file.samples_ms) == pytest.approx(record.avg_ms, abs=1e-3)
    text = result.read_text()
    assert text.endswith("\n") and text.splitlines()[-1].startswith("per-iteration(ms): ")
    assert done.stdout == text[:text.index("per-iteration(ms): ")] + "\n"  # the same text, plus cout's endl
    assert "Runtime Info" in done.stdout and "Device Info" not in done.stdout


@model_test
def test_two_invocations_append_two_records(models: Path, tmp_path: Path) -> None:
    result = tmp_path / "result.txt"
    first = run_runner(*base_args(models / "tiny_x86.nb", "--threads=1", f"--result_path={result}"))
    second = run_runner("--optimized_model_file", str(models / "tiny_x86.nb"), "--input_shape", "1,3,32,24",
                        "--backend", "x86", "--threads", "2", "--run_delay", "1.5", "--result_path", str(result))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    records = parse_file(result)
    assert [(r.threads, r.run_delay, r.repeats, r.warmup) for r in records] == [(1, None, 1, 0), (2, 1.5, 1, 0)]
    assert all(r.avg_ms == r.min_ms == r.max_ms == r.first_ms for r in records)  # warmup 0, repeats 1


@model_test
def test_memory_profile(models: Path) -> None:
    done = run_runner(*base_args(models / "tiny_x86.nb", "--enable_memory_profile", "--repeats=5"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "start monitoring memory!"
    assert lines[1].startswith("cpu usage ratio: ") and lines[1].endswith("%")
    assert lines[2] == "stop monitoring memory!"
    (record,) = parse_log(done.stdout)
    assert record.init_mb is not None and record.peak_mb is not None
    assert 0 < record.init_mb <= record.peak_mb


@model_test
def test_device_info_from_getprop(models: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    getprop = bin_dir / "getprop"
    getprop.write_text("#!/bin/sh\ncase \"$1\" in\n  ro.product.vendor.brand) echo kpmobile;;\n"
                       "  ro.product.vendor.device) echo vphone_x86_64;;\n"
                       "  ro.product.vendor.model) echo 'Virtual Phone';;\n"
                       "  ro.build.version.release) echo 13;;\n  ro.build.version.sdk) echo 33;;\nesac\n")
    getprop.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = run_runner(*base_args(models / "tiny_x86.nb"), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("\n======= Device Info =======\nBrand: kpmobile\nDevice: vphone_x86_64\n")
    (record,) = parse_log(done.stdout)
    assert record.device == LogDevice("kpmobile", "vphone_x86_64", "Virtual Phone", "13", 33)


@model_test
def test_two_inputs_and_input_data_path(models: Path, tmp_path: Path) -> None:
    nb = models / "two_inputs_x86.nb"
    shapes = "--input_shape=1,3,32,24:1,8,1,1"
    ones = run_runner(f"--optimized_model_file={nb}", shapes, "--backend=x86")
    assert ones.returncode == 0, ones.stderr
    (record,) = parse_log(ones.stdout)
    reference = json.loads((models / "reference.json").read_text())["two_inputs"]
    assert record.outputs[0].mean == pytest.approx(reference["mean"], rel=1e-4)

    image, bias = tmp_path / "image.txt", tmp_path / "bias.txt"
    image.write_text(" ".join(["1"] * (3 * 32 * 24)))
    bias.write_text("\n".join(["-100"] * 8))  # relu(conv + -100) is 0 everywhere
    done = run_runner(f"--optimized_model_file={nb}", shapes, "--backend=x86",
                      f"--input_data_path={image}:{bias}")
    assert done.returncode == 0, done.stderr
    (record,) = parse_log(done.stdout)
    assert f"input_data_path: {image}:{bias}" in record.notes
    assert (record.outputs[0].mean, record.outputs[0].std) == (0.0, 0.0)

    short = tmp_path / "short.txt"
    short.write_text("1 2 3")
    done = run_runner(f"--optimized_model_file={nb}", shapes, "--backend=x86", f"--input_data_path={short}:{bias}")
    assert done.returncode == lr.EXIT_USAGE
    assert done.stderr == f"lite_runner: input data {short} holds 3 values, the input needs 2304\n"


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@model_test
def test_arm_nb_exits_3_with_one_line(models: Path) -> None:
    nb = models / "tiny_arm.nb"
    done = run_runner(*base_args(nb))
    assert done.returncode == lr.EXIT_MODEL == 3
    assert one_line(done) == (f"lite_runner: {nb} was converted for arm (kernel targets: arm, host); this runner "
                              "runs x86 .nb models only: convert with --valid_targets=x86")
    assert done.stdout == ""


@model_test
def test_garbage_missing_and_truncated_models_exit_3(models: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.nb"
    garbage.write_bytes(bytes(range(256)) * 40)
    done = run_runner(*base_args(garbage))
    assert done.returncode == 3
    assert one_line(done).startswith(f"lite_runner: not a Paddle Lite .nb model: {garbage} has no opt header")

    missing = tmp_path / "missing.nb"
    done = run_runner(*base_args(missing))
    assert (done.returncode, one_line(done)) == (3, f"lite_runner: model file not found: {missing}")

    data = (models / "tiny_x86.nb").read_bytes()
    topo_size = struct.unpack_from("<Q", data, 18)[0]
    cut_params = tmp_path / "cut_params.nb"  # header and topology intact: paddlelite itself aborts
    cut_params.write_bytes(data[: 26 + topo_size + 100])
    done = run_runner(*base_args(cut_params))
    assert done.returncode == 3
    assert one_line(done).startswith(f"lite_runner: paddlelite crashed (SIGABRT) while loading {cut_params}: ")
    assert done.stdout == ""

    cut_topo = tmp_path / "cut_topo.nb"
    cut_topo.write_bytes(data[:400])
    done = run_runner(*base_args(cut_topo))
    assert (done.returncode, one_line(done)) == (
        3, f"lite_runner: {cut_topo} is truncated: its topology needs {26 + topo_size} bytes, the file has 400")


@pytest.mark.parametrize(("args", "message"), [
    (["--input_shape=1,3,32,24", "--backend=x86"],
     "--optimized_model_file is required (an x86 .nb from paddle_lite_opt)"),
    (["--optimized_model_file=m.nb", "--backend=x86"], "Must set --input_shape option!"),
    (["--optimized_model_file=m.nb", "--input_shape=1,3,32,24"], "Must set --backend option!"),
    (["--optimized_model_file=m.nb", "--input_shape=1,3,32,24", "--backend=arm"],
     "--backend=arm: this runner runs the x86 backend only (--backend=x86)"),
    (["--optimized_model_file=m.nb", "--input_shape=1,3,x", "--backend=x86"],
     "--input_shape=1,3,x: expected e.g. 1,3,128,96 (inputs separated by ':')"),
    (["--optimized_model_file=m.nb", "--input_shape=1,3,32,24", "--backend=x86", "--gpu_precision=fp16"],
     "unknown command line flag 'gpu_precision'"),
    (["--model_file=m.pdmodel", "--param_file=m.pdiparams"],
     "--model_file is not supported: benchmark_bin converts Paddle models; this runner takes "
     "--optimized_model_file=<x86 .nb>"),
    (["--optimized_model_file=m.nb", "--input_shape=1,3,32,24", "--backend=x86", "--repeats=0"],
     "--warmup=0 --repeats=0: expected warmup >= 0, repeats >= 1"),
])
def test_bad_flags_exit_2(args: list[str], message: str) -> None:
    done = run_runner(*args)
    assert (done.returncode, one_line(done)) == (lr.EXIT_USAGE, f"lite_runner: {message}")


@model_test
def test_input_count_mismatch_exits_2(models: Path) -> None:
    done = run_runner(f"--optimized_model_file={models / 'tiny_x86.nb'}", "--input_shape=1,3,32,24:1,8,1,1",
                      "--backend=x86")
    assert (done.returncode, one_line(done)) == (
        2, "lite_runner: --input_shape=1,3,32,24:1,8,1,1 gives 2 input(s), the model has 1 (image)")


@model_test
def test_unwritable_result_path_exits_1_after_printing(models: Path, tmp_path: Path) -> None:
    result = tmp_path / "no" / "such" / "dir" / "result.txt"
    done = run_runner(*base_args(models / "tiny_x86.nb", f"--result_path={result}"))
    assert done.returncode == lr.EXIT_FAILED
    assert one_line(done).startswith(f"lite_runner: Fail to open result file: {result} (")
    assert len(parse_log(done.stdout)) == 1


@model_test
def test_pushed_form_runs_under_sh(models: Path, tmp_path: Path) -> None:
    """The orchestrator prepends `#!<python>` and runs the file with /bin/sh, away from kpmobile."""
    script = executable_runner(LITE_RUNNER_PATH, "lite_runner", tmp_path, sys.executable)
    assert script.read_text().startswith(f"#!{sys.executable}\n") and script.stat().st_mode & stat.S_IXUSR
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    command = f"cd {tmp_path} && {script} --optimized_model_file={models / 'tiny_x86.nb'} " \
              "--input_shape=1,3,32,24 --backend=x86 --repeats=3"
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert parse_log(done.stdout)[0].repeats == 3


@model_test
def test_the_printed_process_wall_is_never_longer_than_the_process(models: Path, tmp_path: Path) -> None:
    """The kernel's start tick alone made the wall up to 10 ms too long (beyond the outside clock's)."""
    script = executable_runner(LITE_RUNNER_PATH, "lite_runner", tmp_path, sys.executable)
    argv = [str(script), *base_args(models / "tiny_x86.nb", "--repeats=1", "--warmup=0")]
    slack = []
    for _ in range(8):
        before = time.clock_gettime(time.CLOCK_BOOTTIME)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        outside_ms = (time.clock_gettime(time.CLOCK_BOOTTIME) - before) * 1000
        assert done.returncode == 0, done.stderr
        walls = [line for line in done.stderr.splitlines() if line.startswith(lr.WALL_PREFIX)]
        slack.append(outside_ms - float(walls[-1][len(lr.WALL_PREFIX):]))
    assert min(slack) >= -0.2, slack  # printed with one decimal


# --- the script itself, without models ------------------------------------------------------


def _imported_top_names(text: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("source", [LITE_RUNNER_PATH, Path(pr.__file__)], ids=["lite_runner", "pipeline_runner"])
def test_runner_imports_only_stdlib_numpy_paddlelite(source: Path, tmp_path: Path) -> None:
    """The pushed file (shared modules spliced in) imports stdlib, numpy and paddlelite only."""
    pushed = executable_runner(source, "runner", tmp_path, sys.executable).read_text()
    names = _imported_top_names(pushed)
    assert names - set(sys.stdlib_module_names) == {"numpy", "paddlelite"}
    assert "__future__" in names and "kpmobile" not in names
    assert pushed.count("from __future__ import annotations") == 1
    assert "# --- spliced from kpmobile/runners/runner_common.py ---" in pushed
    assert ("# --- spliced from kpmobile/nbfile.py ---" in pushed) == (source == LITE_RUNNER_PATH)
    assert "kpmobile" in _imported_top_names(source.read_text())  # the checkout's form shares, the pushed one not


def test_pushed_runner_stands_alone_without_kpmobile(tmp_path: Path) -> None:
    """Run the pushed file where `import kpmobile` fails: --version, and a bad .nb ends in one line."""
    script = executable_runner(LITE_RUNNER_PATH, "lite_runner", tmp_path, sys.executable)
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "kpmobile.py").write_text("raise ImportError('kpmobile must not be imported by a pushed runner')\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(blocker)}
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout) == (0, f"kpmobile-lite-runner {RUNNER_VERSION}\n"), done.stderr
    missing = tmp_path / "missing.nb"
    done = subprocess.run([str(script), f"--optimized_model_file={missing}", "--input_shape=1,3,8,8", "--backend=x86"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (3, f"lite_runner: model file not found: {missing}\n")


def test_splice_refuses_what_would_not_stand_alone(tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.py"
    renamed.write_text("from kpmobile.nbfile import read_nb as rn\n")
    with pytest.raises(ValueError, match="renames an import"):
        standalone_source(renamed)
    other = tmp_path / "other.py"
    other.write_text("from kpmobile.records import RunRecord\n")
    with pytest.raises(ValueError, match="may import only kpmobile.nbfile, kpmobile.runners.runner_common"):
        standalone_source(other)
    nested = tmp_path / "nested.py"
    nested.write_text("def f():\n    from kpmobile.nbfile import read_nb\n    return read_nb\n")
    with pytest.raises(ValueError, match="at the top level"):
        standalone_source(nested)


def test_format_report_matches_benchmark_bin_layout() -> None:
    report = lr.Report(
        model_file="/data/local/tmp/kpmobile/m.nb", input_data_path="", input_shape="1,3,128,96",
        outputs=[lr.OutputInfo([1, 17, 32, 24], 13056, 0.012345678, 1.5e-7),
                 lr.OutputInfo([1, 2], 2, 3.0, 0.0)],
        version="kpmobile-lite-runner 0.1 (paddlelite 2.13rc0)", threads=2, power_mode=1, warmup=10,
        repeats=50, run_delay=1000.0, result_path="/r.txt", backend="x86", cpu_precision="fp32",
        init_ms=5.5, first_ms=12.25, min_ms=10.0, max_ms=123456.789, avg_ms=11.0004,
        device=[("Brand", "b"), ("Device", "d"), ("Model", "m"), ("Android Version", "13"),
                ("Android API Level", "33")],
        memory_mb=(60.5, 61.25), not_applied=list(NOT_APPLIED),
    )
    assert lr.format_report(report) == (
        "\n======= Device Info =======\nBrand: b\nDevice: d\nModel: m\nAndroid Version: 13\n"
        "Android API Level: 33\n"
        "\n======= Model Info =======\noptimized_model_file: /data/local/tmp/kpmobile/m.nb\n"
        "input_data_path: All 1.f\ninput_shape: 1,3,128,96\noutput tensor num: 2\n"
        "--- output tensor 0 ---\noutput shape(NCHW): 1 17 32 24 \noutput tensor 0 elem num: 13056\n"
        "output tensor 0 mean value: 0.0123457\noutput tensor 0 standard deviation: 1.5e-07\n"
        "\n--- output tensor 1 ---\noutput shape(NCHW): 1 2 \noutput tensor 1 elem num: 2\n"
        "output tensor 1 mean value: 3\noutput tensor 1 standard deviation: 0\n"
        "\n======= Runtime Info =======\nbenchmark_bin version: kpmobile-lite-runner 0.1 (paddlelite 2.13rc0)\n"
        f"threads: 2\n{NOT_APPLIED[0]}\npower_mode: 1\n{NOT_APPLIED[1]}\nwarmup: 10\nrepeats: 50\n"
        "run_delay(sec): 1e+03\nresult_path: /r.txt\n"
        "\n======= Backend Info =======\nbackend: x86\ncpu precision: fp32\n"
        "\n======= Perf Info =======\nTime(unit: ms):\n"
        "init  = 5.500       \nfirst = 12.250      \nmin   = 10.000      \nmax   = 123456.789  \n"
        "avg   = 11.000      \n"
        "\nMemory Usage(unit: MB):\ninit  = 60.500      \npeak  = 61.250      \n"
    )
    (record,) = parse_log(lr.format_report(report))
    assert (record.run_delay, record.max_ms, record.peak_mb) == (1000.0, 123456.789, 61.25)


def test_parse_flags_forms() -> None:
    flags = lr.parse_flags(["-optimized_model_file=m.nb", "--input_shape", "1,3,8,8", "--backend=x86",
                            "--enable_memory_profile", "--threads", "3", "--run_delay=0.25"])
    assert (flags.threads, flags.enable_memory_profile, flags.run_delay, flags.shapes) == (3, True, 0.25,
                                                                                         [[1, 3, 8, 8]])
    flags = lr.parse_flags(["--optimized_model_file=m.nb", "--input_shape=1,3,8,8:1,2", "--backend=x86",
                            "--enable_memory_profile=false"])
    assert (flags.enable_memory_profile, flags.shapes) == (False, [[1, 3, 8, 8], [1, 2]])
    flags = lr.parse_flags(["--optimized_model_file=m.nb", "--input_shape=1,3,8,8", "--backend=x86",
                            "--noenable_memory_profile"])
    assert flags.enable_memory_profile is False
    with pytest.raises(lr.RunnerFailure, match="flag '--threads' is missing its argument"):
        lr.parse_flags(["--optimized_model_file=m.nb", "--threads"])
    with pytest.raises(lr.RunnerFailure, match=r"--threads=four: expected int"):
        lr.parse_flags(["--threads=four"])


def test_inspect_nb_on_synthetic_headers(tmp_path: Path) -> None:
    def nb(meta: int, version: bytes, topology: bytes, tail: bytes = b"") -> Path:
        path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.nb"
        path.write_bytes(struct.pack("<H16sQ", meta, version, len(topology)) + topology + tail)
        return path

    topology = b"..conv2d/def/2/1/1\x00..feed/def/1/4/2\x00.."
    x86 = nb(2, b"v2.13-rc\x00\xdf\x29", topology, b"params")  # bytes after the NUL: as opt leaves them
    assert lr.inspect_nb(str(x86)) == lr.NbInfo(2, "v2.13-rc", len(topology), ("host", "x86"))
    opencl = nb(2, b"v2.13-rc", b"conv2d/image2d/5/5/4\x00fetch/def/1/4/2\x00")
    with pytest.raises(lr.RunnerFailure, match=r"was converted for opencl \(kernel targets: host, opencl\)"):
        lr.inspect_nb(str(opencl))
    with pytest.raises(lr.RunnerFailure, match=r"naive-buffer format of opt before v2.7 \(meta_version 0\)"):
        lr.inspect_nb(str(nb(0, b"v2.6.0", b"x")))
    with pytest.raises(lr.RunnerFailure, match="has no kernel tags in its topology"):
        lr.inspect_nb(str(nb(2, b"v2.13-rc", b"just some bytes")))
    with pytest.raises(lr.RunnerFailure, match="has no opt header"):
        lr.inspect_nb(str(nb(2, b"\x00" * 16, b"conv2d/def/2/1/1\x00")))
    with pytest.raises(lr.RunnerFailure, match=r"is a directory"):
        lr.inspect_nb(str(tmp_path))


def test_start_estimate_lies_in_the_start_tick_and_never_after_the_cpu_used() -> None:
    tick = 0.01
    # Quiet: 25 ms after the tick began the process had used 21 ms of CPU, so it began 4 ms in.
    assert lr.start_estimate(100.0, tick, 100.025, 0.021) == pytest.approx(100.004)
    # Loaded (it waited for a CPU): the CPU bound lies past the tick, which ends the estimate.
    assert lr.start_estimate(100.0, tick, 100.080, 0.021) == pytest.approx(100.010)
    # More CPU than wall (a second thread): the tick's own start.
    assert lr.start_estimate(100.0, tick, 100.025, 0.040) == pytest.approx(100.0)


def test_fatal_line_picks_paddles_check() -> None:
    text = ("[W 11/22 1:2:3.4 a.cc:1 f] warning\n[F 11/22 15:47:35.135 ...io.cc:54 Read] Check failed: "
            "(fread(dst, 1, size, file_) == size): 0!==1008 Failed to read 1008 bytes.\n")
    assert lr._fatal_line(text) == "Check failed: (fread(dst, 1, size, file_) == size): 0!==1008 Failed to " \
                                   "read 1008 bytes."
    assert lr._fatal_line("") == "no message"


@model_test
def test_pipeline_slowdown_stretches_every_stage_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The virtual phone's test-only slowdown stretches the pipeline's stages, and its total only through them."""
    from kpmobile.runners import runner_common
    from kpmobile.zoo.build import ensure_model
    from kpmobile.zoo.catalogue import resolve
    from kpmobile.zoo.convert import convert_nb

    det, kpt = (convert_nb(ensure_model(resolve(name)), "x86").path for name in ("picodet-s-192", "pp-tinypose-128x96"))
    image = Path(pr.__file__).resolve().parent.parent / "assets" / "pipeline_scene.ppm"
    flags = pr.Flags(det_model=str(det), keypoint_model=str(kpt), image=str(image), warmup=0, repeats=2)
    pr.run_pipeline(flags)  # load and warm once

    def stages(slowdown: float) -> tuple[float, float, float]:
        monkeypatch.setattr(runner_common, "SLOWDOWN", slowdown)
        times = pr.run_pipeline(flags)[0]
        return times.det_inf, times.kpt_inf, times.total

    # Off and on in turn, in one process, the median of 6 each: a shared host moves a process's speed by
    # 10-20 % from one moment to the next.
    runs = [stages(s) for _ in range(6) for s in (0.0, 1.0)]
    ratios = [statistics.median(r[i] for r in runs[1::2]) / statistics.median(r[i] for r in runs[0::2])
              for i in range(3)]
    print("det inference, keypoint inference, total: x", [round(r, 2) for r in ratios])
    # Each stage ran about twice as long (unstretched stages would read about 1; at load 1-3 they read 1.97-2.58).
    assert ratios[0] > 1.4 and ratios[1] > 1.4
    # The total is the stretched stages' (about their ratio), not stretched once more (about twice it).
    assert 1.4 < ratios[2] < 1.4 * max(ratios[:2])
