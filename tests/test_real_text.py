"""Real text people published (tests/data/real/, sources in its README): runner logs, getprop dumps,
build.props and /proc/cpuinfo of real phones, read the way kpmobile reads them."""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

from kpmobile.devices import identify, midr
from kpmobile.devices.soc import identify_soc
from kpmobile.errors import ConfigError
from kpmobile.runners.parsers import parse_file, parse_log
from kpmobile.textfile import decode_text, read_text

REAL = Path(__file__).parent / "data" / "real"
LOGS = REAL / "logs"

# -- logs ----------------------------------------------------------------------------------------
# (abi, threads, model, avg) of every "-- NAME avg = X ms" line, as the text says them
V21_ONE_CLICK = [
    ("armv7", 1, "mnasnet", 159.8427), ("armv7", 1, "mobilenet_v1", 235.0072),
    ("armv7", 1, "mobilenet_v2", 173.0387), ("armv7", 1, "shufflenet_v2", 76.004),
    ("armv7", 1, "squeezenet_v11", 164.2957), ("armv7", 2, "mnasnet", 83.1287),
    ("armv7", 2, "mobilenet_v1", 121.6029), ("armv7", 2, "mobilenet_v2", 86.6175),
    ("armv7", 2, "shufflenet_v2", 41.5761), ("armv7", 2, "squeezenet_v11", 87.8678),
    ("armv7", 4, "mnasnet", 73.388), ("armv7", 4, "mobilenet_v1", 119.0739),
    ("armv7", 4, "mobilenet_v2", 85.305), ("armv7", 4, "shufflenet_v2", 38.0762),
    ("armv7", 4, "squeezenet_v11", 64.2201), ("armv8", 1, "mnasnet", 165.3073),
    ("armv8", 1, "mobilenet_v1", 306.0188), ("armv8", 1, "mobilenet_v2", 195.1884),
    ("armv8", 1, "shufflenet_v2", 99.3692), ("armv8", 1, "squeezenet_v11", 156.6971),
    ("armv8", 2, "mnasnet", 90.229), ("armv8", 2, "mobilenet_v1", 157.0007),
    ("armv8", 2, "mobilenet_v2", 118.1607), ("armv8", 2, "shufflenet_v2", 68.6804),
    ("armv8", 2, "squeezenet_v11", 91.309), ("armv8", 4, "mnasnet", 179.973),
    ("armv8", 4, "mobilenet_v1", 204.0684), ("armv8", 4, "mobilenet_v2", 181.6486),
    ("armv8", 4, "shufflenet_v2", 123.2728), ("armv8", 4, "squeezenet_v11", 412.9046),
]
MEIZU_ONE_CLICK = [
    ("armv7", 1, "mobilenet_v1", 279.3595), ("armv7", 1, "mobilenet_v1_quant_opt", 156.4267),
    ("armv7", 1, "mobilenet_v2", 201.5359), ("armv8", 1, "mobilenet_v1", 244.3995),
    ("armv8", 1, "mobilenet_v1_quant_opt", 154.5256), ("armv8", 1, "mobilenet_v2", 192.2106),
]
# (abi, threads, model, "min", "max", average) as the result.txt lines write them (v2.3-v2.8 wrote
# min and max the wrong way round: the parser swaps them back and says so)
RESULT_2021 = [
    ("armv8", 1, "mnasnet", 19.835, 19.385, 19.65503), ("armv8", 1, "mobilenetv1", 32.006, 31.569, 31.81983),
    ("armv8", 1, "mobilenetv2", 22.379, 22.087, 22.28623), ("armv8", 1, "shufflenetv2", 10.804, 10.629, 10.6889),
    ("armv8", 1, "squeezenet", 17.674, 17.479, 17.57677), ("armv8", 2, "mnasnet", 11.856, 11.72, 11.77127),
    ("armv8", 2, "mobilenetv1", 18.75, 18.643, 18.70593), ("armv8", 2, "mobilenetv2", 14.051, 13.599, 13.7145),
    ("armv8", 2, "shufflenetv2", 6.672, 6.583, 6.634), ("armv8", 2, "squeezenet", 12.071, 11.334, 11.41253),
    ("armv8", 4, "mnasnet", 7.193, 7.026, 7.0848), ("armv8", 4, "mobilenetv1", 10.42, 10.291, 10.34267),
    ("armv8", 4, "mobilenetv2", 8.619, 8.469, 8.54707), ("armv8", 4, "shufflenetv2", 4.552, 4.419, 4.46477),
    ("armv8", 4, "squeezenet", 8.6, 7.852, 7.98407), ("armv7", 1, "mnasnet", 20.983, 20.814, 20.92527),
    ("armv7", 1, "mobilenetv1", 33.19, 32.817, 33.0849), ("armv7", 1, "mobilenetv2", 25.914, 25.617, 25.73097),
    ("armv7", 1, "shufflenetv2", 11.143, 10.976, 11.06757), ("armv7", 1, "squeezenet", 19.318, 19.2, 19.2653),
    ("armv7", 2, "mnasnet", 12.599, 12.466, 12.52207), ("armv7", 2, "mobilenetv1", 19.058, 18.947, 18.97897),
    ("armv7", 2, "mobilenetv2", 15.284, 15.113, 15.19843), ("armv7", 2, "shufflenetv2", 6.97, 6.814, 6.90863),
    ("armv7", 2, "squeezenet", 12.879, 12.129, 12.2253), ("armv7", 4, "mnasnet", 7.314, 7.129, 7.20357),
    ("armv7", 4, "mobilenetv1", 11.44, 10.869, 10.94383), ("armv7", 4, "mobilenetv2", 9.149, 9.038, 9.09907),
    ("armv7", 4, "shufflenetv2", 4.606, 4.494, 4.5336), ("armv7", 4, "squeezenet", 8.27, 8.106, 8.19),
]
PADDLECLAS = {
    "paddleclas_docs_mobilenetv1_sd855.txt": [
        (1, "MobileNetV1", 30.891, 30.736, 30.7975), (2, "MobileNetV1", 18.266, 18.14, 18.21637),
        (4, "MobileNetV1", 10.032, 9.943, 9.97627)],
    "paddleclas_docs_mobilenetv1_lite_sd855.txt": [
        (1, "MobileNetV1_lite", 30.895, 30.785, 30.84173), (2, "MobileNetV1_lite", 18.253, 18.11, 18.18017),
        (4, "MobileNetV1_lite", 10.006, 9.9, 9.96177)],
}
SWAPPED = "min/max swapped back: benchmark_bin v2.3-v2.8 wrote them the wrong way round"


def _parse_json(path: Path) -> list[dict[str, Any]]:
    res = kpmobile("parse", str(path), "--json")
    assert res.returncode == 0, res.stderr
    records: list[dict[str, Any]] = json.loads(res.stdout)
    return records


def test_every_real_log_parses_through_the_cli() -> None:
    logs = sorted(p for p in LOGS.iterdir() if p.is_file())
    assert len(logs) >= 12
    for path in logs:
        records = _parse_json(path)
        assert records and all(r["avg_ms"] is not None and r["avg_ms"] > 0 for r in records), path.name


@pytest.mark.parametrize("name, expected", [
    ("paddlelite_docs_v2.1_one_click.txt", V21_ONE_CLICK),
    ("paddlelite_issue2051_meizu_one_click.txt", MEIZU_ONE_CLICK),
])
def test_one_click_benchmark_sh_tells_armv7_from_armv8(name: str, expected: list[tuple[Any, ...]]) -> None:
    records = _parse_json(LOGS / name)
    repeats = 30 if "v2.1" in name else 100
    assert [(r["abi"], r["threads"], r["model"], r["avg_ms"]) for r in records] == expected
    assert all(r["format"] == "benchmark_sh" and r["warmup"] == 10 and r["repeats"] == repeats for r in records)
    assert all(r["min_ms"] is None and r["max_ms"] is None and r["notes"] == [] for r in records)
    # the same model and threads under both ABIs are two different records
    assert len({(r["abi"], r["threads"], r["model"]) for r in records}) == len(records)


def test_one_click_result_txt_with_swapped_min_max() -> None:
    records = _parse_json(LOGS / "paddlelite_docs_2021_one_click_result.txt")
    got = [(r["abi"], r["threads"], r["model"], r["min_ms"], r["max_ms"], r["avg_ms"]) for r in records]
    assert got == [(abi, t, m, min(a, b), max(a, b), avg) for abi, t, m, a, b, avg in RESULT_2021]
    assert all(r["format"] == "benchmark_bin_legacy" and r["warmup"] == 10 and r["repeats"] == 30
               and r["notes"] == [SWAPPED] for r in records)


@pytest.mark.parametrize("name", sorted(PADDLECLAS))
def test_paddleclas_result_files(name: str) -> None:
    records = _parse_json(LOGS / name)
    got = [(r["threads"], r["model"], r["min_ms"], r["max_ms"], r["avg_ms"], r["abi"]) for r in records]
    assert got == [(t, m, min(a, b), max(a, b), avg, None) for t, m, a, b, avg in PADDLECLAS[name]]
    assert all(r["notes"] == [SWAPPED] and r["repeats"] == 30 for r in records)


MI9 = {"brand": "Xiaomi", "device": "cepheus", "model": "MI 9", "android_version": "10", "api_level": 29}
BIN_DOCS = {
    # file: (device, backend, version, warmup, repeats, init, first, min, max, avg, std)
    "paddlelite_docs_android_mi9.md": (MI9, "arm", "acf6614", 10, 20, 15.305, 43.670, 32.577, 32.895, 32.723,
                                       0.00219647),
    "paddlelite_docs_armlinux.md": (None, "arm", "acf6614", 10, 20, 15.305, 43.670, 32.577, 32.895, 32.723,
                                    0.00219647),
    "paddlelite_docs_linux_x86.md": (None, "x86", "380d8d0", 10, 20, 18.135, 80.052, 31.982, 38.947, 33.918,
                                     0.00219647),
    "paddlelite_docs_macos.md": (None, "x86", "380d8d004", 0, 1, 11.410, 53.964, 53.964, 53.964, 53.964,
                                 0.00219646),
}


# the ABI the pasted commands name (build.lite.android.armv8.clang/, build.lite.linux.x86.gcc/, ...)
BIN_ABI = {"paddlelite_docs_android_mi9.md": "armv8", "paddlelite_docs_armlinux.md": None,
           "paddlelite_docs_linux_x86.md": "x86", "paddlelite_docs_macos.md": "x86"}


@pytest.mark.parametrize("name", sorted(BIN_DOCS))
def test_benchmark_bin_doc_pastes(name: str) -> None:
    device, backend, version, warmup, repeats, init, first, low, high, avg, std = BIN_DOCS[name]
    (record,) = _parse_json(LOGS / name)
    assert record["format"] == "benchmark_bin"
    # "Load paddle model from inference.pdmodel": the name comes from the folder (MobileNetV1/...)
    assert record["model"] == "MobileNetV1"
    assert (record["init_ms"], record["first_ms"], record["min_ms"], record["max_ms"], record["avg_ms"]) == (
        init, first, low, high, avg)
    assert (record["threads"], record["power_mode"], record["warmup"], record["repeats"]) == (1, 0, warmup, repeats)
    assert (record["backend"], record["cpu_precision"], record["runner_version"], record["input_shape"]) == (
        backend, "fp32", version, "1,3,224,224")
    assert record["device"] == device and record["abi"] == BIN_ABI[name]
    assert record["outputs"] == [{"shape": [1, 1000], "mean": 0.001, "std": std}]
    assert (record["init_mb"], record["peak_mb"], record["run_delay"]) == (None, None, None)


def test_precision_evaluation_paste_keeps_accuracy_lines() -> None:
    (record,) = _parse_json(LOGS / "paddlelite_precision_eval_opencl.md")
    assert (record["format"], record["model"]) == ("benchmark_bin", "MobileNetV1")  # from the command line
    assert (record["init_ms"], record["first_ms"], record["min_ms"], record["max_ms"], record["avg_ms"]) == (
        11.925, 119.312, 6.472, 9.091, 7.785)
    assert record["notes"] == ["Top-1 Accurancy: 0.739", "Top-2 Accurancy: 0.121"]
    assert record["threads"] is None and record["device"] is None and record["outputs"] == []
    assert record["abi"] == "armv8"  # adb push build.lite.android.armv8.clang/...


def test_det_keypoint_pipeline_log_of_paddledetection_pr() -> None:
    (record,) = _parse_json(LOGS / "paddledetection_pr4318_det_keypoint.log")
    assert record["format"] == "det_keypoint_demo" and record["threads"] == 4
    assert record["avg_ms"] == 3769.06 and record["model"] is None
    assert record["stages"] == {
        "preprocess": 18.6401, "inference": 3708.1, "postprocess": 0.025521,
        "keypoint_preprocess": 2.38333, "keypoint_inference": 39.8609, "keypoint_postprocess": 0.0331101,
        "total": 3769.06, "det": 3726.76, "keypoint": 42.2773, "crop": 0.015104,
    }
    assert record["notes"] == ["images: 1", "persons: 7"]


def test_detector_only_demo_log_parses_from_its_totals_line() -> None:
    (record,) = _parse_json(LOGS / "paddledetection_issue5181_det_only.log")
    assert (record["format"], record["model"], record["threads"]) == ("det_keypoint_demo", "model_det", 4)
    assert record["avg_ms"] == 130.756 and record["stages"] == {"total_spent": 130.756}
    assert record["notes"] == ["no keypoint model and no stage line: avg_ms is total time spent / predicted images",
                               "images: 1"]


# -- pasted, re-encoded and bad input ------------------------------------------------------------
def _powershell5(text: str) -> bytes:
    """Give text as Windows PowerShell 5 saves `cmd > file`: UTF-16 LE with a BOM and CRLF."""
    return codecs.BOM_UTF16_LE + text.replace("\n", "\r\n").encode("utf-16-le")


def test_utf16_crlf_and_markdown_indented_logs_parse_the_same(tmp_path: Path) -> None:
    source = LOGS / "paddlelite_docs_2021_one_click_result.txt"
    expected = parse_file(source)
    utf16 = tmp_path / "result.txt"
    utf16.write_bytes(_powershell5(source.read_text(encoding="utf-8")))
    assert parse_file(utf16) == expected
    indented = "Here is my result:\n\n" + "".join(f"    {line}\n" for line in source.read_text().splitlines())
    assert parse_log(indented) == expected
    quoted = "".join(f"> {line}\n" for line in source.read_text().splitlines())
    assert parse_log(quoted) == expected
    listed = "1. run the script\n   ```\n" + "".join(f"   {line}\n" for line in source.read_text().splitlines())
    assert parse_log(listed + "   ```\n") == expected


def test_parse_reads_standard_input() -> None:
    text = (LOGS / "paddlelite_issue2051_meizu_one_click.txt").read_bytes()
    res = subprocess.run([sys.executable, "-m", "kpmobile", "parse", "-", "--json"], input=_powershell5(
        text.decode()), capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    assert [(r["file"], r["abi"], r["model"], r["avg_ms"]) for r in records] == [
        ("-", abi, model, avg) for abi, _, model, avg in MEIZU_ONE_CLICK]


@pytest.mark.parametrize("kind", ["binary", "empty", "folder", "utf16-broken"])
def test_bad_input_gets_one_error_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "input"
    if kind == "binary":
        path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(codecs.BOM_UTF16_LE + b"a\x00b")
    res = kpmobile("parse", str(path))
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert {"binary": "binary", "empty": "empty", "folder": "folder", "utf16-broken": "utf-16"}[kind] in lines[0]


def test_stdin_garbage_gets_one_error_line() -> None:
    res = subprocess.run([sys.executable, "-m", "kpmobile", "parse", "-"], input=b"\x00\x01\x02\x03",
                         capture_output=True, timeout=120)
    assert res.returncode != 0 and res.stderr.decode().strip().startswith("error: standard input is a binary file")


def test_decode_text() -> None:
    assert decode_text(codecs.BOM_UTF8 + b"a\r\nb\r", "x") == "a\nb\n"
    assert decode_text("é\n".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""]), "x") == "é\n"
    with pytest.raises(ConfigError, match="is empty"):
        decode_text(codecs.BOM_UTF16_LE + " \r\n".encode("utf-16-le"), "x")


# -- getprop dumps and build.props -----------------------------------------------------------------
GETPROP = REAL / "getprop"
CPUINFO = REAL / "cpuinfo"

SOCS = {
    # dump: (chip, property that named it, model)
    "galaxy_s25plus_sm8750_utf16.txt": ("sm8750", "ro.soc.model", "SM-S936B"),
    "xiaomi_12x_psyche.txt": ("sm8250", "ro.soc.model", "2112123AG"),
    "xiaomi_pad6_pipa.txt": ("sm8250", "ro.soc.model", "23043RP34G"),
    "lg_v60_timelm.txt": ("sm8250", "ro.board.platform", "LM-V600"),  # Android 11: "kona"
    "xiaomi_12s_mayfly.txt": ("sm8475", "ro.soc.model", "2206123SC"),  # "taro" is two chips
    "poco_x5pro_redwood.txt": ("sm7325", "ro.soc.model", "22101320G"),  # "lahaina" is three
    "poco_f6_peridot.txt": ("sm8635", "ro.soc.model", "24069PC21I"),  # "pineapple" is two
    "oneplus_nord_n10_billie.txt": ("sm6350", "ro.boot.platform_name", "BE2028"),  # Android 11, "lito"
    "infinix_x670.txt": ("mt6781", "ro.soc.model", "Infinix X670"),  # MT6781V/CDZAMB-H
    "redmi_note11s_fleur.txt": ("mt6781", "ro.board.platform", "miel"),
    "galaxy-s8-global.build.prop": ("exynos8895", "ro.chipname", "SM-G950F"),  # platform "exynos5"
    "galaxy-a8-2018.build.prop": ("exynos7885", "ro.chipname", "SM-A530F"),
    "galaxy-s8-us.build.prop": ("msm8998", "ro.chipname", "SM-G950U"),
    "pixel.build.prop": ("msm8996", "ro.board.platform", "Pixel"),
    "meizu-pro-6.build.prop": ("mt6797", "ro.board.platform", "PRO 6"),
}


@pytest.mark.parametrize("name", sorted(SOCS))
def test_real_dump_names_its_chip_by_part_number(name: str) -> None:
    props = identify.parse_getprop(read_text(GETPROP / name))
    chip, source, model = SOCS[name]
    found = identify_soc(props)
    assert (found.name, found.source, props["ro.product.model"], found.warning) == (chip, source, model, None)


def test_utf16_dump_is_the_real_powershell_file() -> None:
    data = (GETPROP / "galaxy_s25plus_sm8750_utf16.txt").read_bytes()
    assert data.startswith(codecs.BOM_UTF16_LE) and "\r\n".encode("utf-16-le") in data
    props = identify.parse_getprop(read_text(GETPROP / "galaxy_s25plus_sm8750_utf16.txt"))
    assert props["ro.board.platform"] == "sun" and props["ro.soc.model"] == "SM8750" and len(props) == 1582


def test_shared_codename_alone_is_not_guessed() -> None:
    props = identify.parse_getprop(read_text(GETPROP / "oneplus_nord_n10_billie.txt"))
    assert identify_soc(props).source == "ro.boot.platform_name"
    del props["ro.boot.platform_name"]
    assert identify_soc(props).source == "vendor.boot.platform_name"  # the same chip said twice
    del props["vendor.boot.platform_name"]
    found = identify_soc(props)
    assert found.name == "lito" and found.warning is not None and "sm7250" in found.warning
    assert identify.choose_profile(found.name)[0].name == "generic"


def test_codename_and_part_number_give_one_chip() -> None:
    old = identify.parse_getprop(read_text(GETPROP / "lg_v60_timelm.txt"))  # Android 11: kona
    new = identify.parse_getprop(read_text(GETPROP / "xiaomi_12x_psyche.txt"))  # Android 12: SM8250
    assert old["ro.board.platform"] == new["ro.board.platform"] == "kona" and "ro.soc.model" not in old
    assert identify.soc_from_props(old) == identify.soc_from_props(new) == "sm8250"
    assert identify.choose_profile("kona")[0].name == identify.choose_profile("sm8250")[0].name == "sm8250"


def _with_line(dump: str, after: str, line: str) -> str:
    lines = dump.splitlines()
    at = next(i for i, text in enumerate(lines) if text.startswith(after)) + 1
    return "\n".join(lines[:at] + [line] + lines[at:]) + "\n"


def test_multiline_value_and_fake_property_line_do_not_misidentify() -> None:
    dump = read_text(GETPROP / "xiaomi_12x_psyche.txt")
    # a value spanning lines whose second line is shaped like a property line
    multi = _with_line(dump, "[persist.vendor.",
                       "[persist.vendor.zz.note]: [first line\n[ro.board.platform]: [mt6789]]")
    props = identify.parse_getprop(multi)
    assert props["ro.board.platform"] == "kona" and props["persist.vendor.zz.note"].endswith("[mt6789]")
    assert identify.soc_from_props(props) == "sm8250"
    # a value holding another property line on one line
    inline = _with_line(dump, "[ro.product.name]", "[ro.product.nickname]: [[ro.soc.model]: [MT6789]]")
    props = identify.parse_getprop(inline)
    assert props["ro.soc.model"] == "SM8250" and props["ro.product.nickname"] == "[ro.soc.model]: [MT6789]"
    # a value ending in "]" followed by a fake line: the key out of getprop's sorted order loses
    fake = _with_line(dump, "[persist.vendor.", "[ro.soc.model]: [MT6789]")
    assert identify.parse_getprop(fake)["ro.soc.model"] == "SM8250"
    assert identify.soc_from_props(identify.parse_getprop(fake)) == "sm8250"


# -- /proc/cpuinfo ---------------------------------------------------------------------------------
CORES = {
    "hrw_snapdragon-8-elite.txt": {"Oryon": 8},
    "hrw_snapdragon-8-gen3.txt": {"Cortex-A520": 2, "Cortex-A720": 5, "Cortex-X4": 1},
    "hrw_snapdragon-8-gen2.txt": {"Cortex-A510": 3, "Cortex-A715": 2, "Cortex-A710": 2, "Cortex-X3": 1},
    "hrw_snapdragon-8+-gen1.txt": {"Cortex-A510": 4, "Cortex-A710": 3, "Cortex-X2": 1},
    "hrw_snapdragon-865.txt": {"Kryo 485 Silver": 4, "Cortex-A77": 4},
    "hrw_snapdragon-765.txt": {"Kryo 485 Silver": 6, "Kryo 485 Gold": 2},  # "Processor : 0"
    "hrw_snapdragon-820.txt": {"Kryo Silver": 2, "Kryo Gold": 2},
    "hrw_snapdragon-650.txt": {"Cortex-A53": 6},  # old kernel: processors listed, then one block
    "hrw_xiaomi-redmi-note-7.txt": {"Kryo 260 Silver": 4, "Kryo 260 Gold": 4},
    "hrw_google-tensor-g3.txt": {"Cortex-A510": 4, "Cortex-A715": 4, "Cortex-X3": 1},
    "hrw_exynos-2400.txt": {"Cortex-A520": 4, "Cortex-A720": 5, "Cortex-X4": 1},
    "hrw_Exynos-9810.txt": {"Cortex-A55": 4, "Exynos M3": 4},
    "hrw_mediatek-dimensity-9000.txt": {"Cortex-A510": 4, "Cortex-A710": 3, "Cortex-X2": 1},  # CRLF
    "hrw_huawei-p30.txt": {"Cortex-A55": 4, "Cortex-A76": 4},  # 0x48/0xd40
    "hrw_HiSilicon-Kirin-9000s.txt": {"Cortex-A510": 4, "TaiShan V121": 3, "TaiShan V120": 1},
    "galaxy-s8-global.txt": {"Cortex-A53": 4, "Exynos M2": 4},
    "galaxy-s8-us.txt": {"Kryo 260 Silver": 4, "Kryo 260 Gold": 4},
    "galaxy-a8-2018.txt": {"Cortex-A53": 6, "Cortex-A73": 2},
    "pixel.txt": {"Kryo Silver": 2, "Kryo Gold": 2},
    "meizu-pro-6.txt": {"Cortex-A53": 1, "Cortex-A72": 1},  # 2 of 10 cores online
}


@pytest.mark.parametrize("name", sorted(CORES))
def test_real_cpuinfo_names_every_core(name: str) -> None:
    cores = identify.parse_cpuinfo(read_text(CPUINFO / name))
    assert dict(Counter(cores.values())) == CORES[name]


def test_hot_plugged_cores_come_from_present_and_cpufreq() -> None:
    cpuinfo = read_text(CPUINFO / "meizu-pro-6.txt")  # lists processors 4 and 8 only
    props = identify.parse_getprop(read_text(GETPROP / "meizu-pro-6.build.prop"))
    freqs = ("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 2002000\n"
             "/sys/devices/system/cpu/cpu4/cpufreq/cpuinfo_max_freq 2002000\n")
    cpu = identify.identify_cpu(props, cpuinfo, "0-9\n", freqs)
    assert cpu.soc == "mt6797" and cpu.profile.name == "mt6797"
    assert [(c.cores, c.core_name, c.max_khz) for c in cpu.clusters] == [
        ((1, 2, 3), "Cortex-A53", 1391000), ((0, 4, 5, 6, 7), "Cortex-A53", 2002000),
        ((8, 9), "Cortex-A72", 2522000)]
    assert cpu.big_cores == (8, 9)
    assert cpu.peak_gflops == round(3 * 1.391 * 8 + 5 * 2.002 * 8 + 2 * 2.522 * 8, 1)


def test_unknown_soc_gets_clusters_big_cores_and_peak_from_what_it_reports() -> None:
    props = identify.parse_getprop(read_text(GETPROP / "galaxy-s8-global.build.prop"))
    freqs = "".join(f"/sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq {1690000 if c < 4 else 2314000}\n"
                    for c in range(8))
    cpu = identify.identify_cpu(props, read_text(CPUINFO / "galaxy-s8-global.txt"), "0-7", freqs)
    assert cpu.soc == "exynos8895" and cpu.profile.name == "generic"
    assert [(c.cores, c.core_name, c.max_khz) for c in cpu.clusters] == [
        ((0, 1, 2, 3), "Cortex-A53", 1690000), ((4, 5, 6, 7), "Exynos M2", 2314000)]
    assert cpu.big_cores == (4, 5, 6, 7)
    assert cpu.peak_gflops == round(4 * 1.69 * 8 + 4 * 2.314 * 16, 1)


def test_core_table_and_peak_arithmetic() -> None:
    assert midr.core_name(0x41, 0xD0B) == "Cortex-A76" and midr.core_name(0x48, 0xD40) == "Cortex-A76"
    assert midr.core_name(0x53, 0x001, 0x4) == "Exynos M2" and midr.core_name(0x53, 0x001, 0x1) == "Exynos M1"
    assert midr.core_name(0x41, 0xD85) == "Cortex-X925" and midr.core_name(0x41, 0xD87) == "Cortex-A725"
    assert midr.core_name(0x51, 0x001) == "Oryon" and midr.core_name(0x12, 0x345) == "0x12/0x345"
    profile = identify.choose_profile("kirin980")[0]
    # 4x A55 @1.805 GHz x 8 FLOP/cycle + 2x A76 @1.92 x 16 + 2x A76 @2.6 x 16
    assert profile.peak_gflops == round(4 * 1.805 * 8 + 2 * 1.92 * 16 + 2 * 2.6 * 16, 1)


@pytest.mark.parametrize("name, chip", [
    ("hrw_snapdragon-865.txt", "sm8250"), ("hrw_huawei-p30.txt", "kirin980"), ("meizu-pro-6.txt", "mt6797"),
    ("galaxy-s8-us.txt", "msm8998"), ("pixel.txt", "msm8996"), ("hrw_snapdragon-765.txt", None),  # "LITO"
])
def test_cpuinfo_hardware_line_names_the_chip_when_getprop_does_not(name: str, chip: str | None) -> None:
    cpu = identify.identify_cpu({"ro.hardware": "qcom"}, read_text(CPUINFO / name))
    assert cpu.soc == chip


def test_samsung_hardware_property_names_a_chip_without_a_profile() -> None:
    props = {"ro.board.platform": "exynos5", "ro.hardware": "samsungexynos7885"}
    assert identify_soc(props).name == "exynos7885"
    assert identify_soc({"ro.board.platform": "kona", "ro.hardware": "timelm"}).name == "sm8250"
    assert identify_soc({"ro.hardware": "timelm"}).name is None  # a device codename is not a chip


def test_profiles_cover_thirty_socs_with_computed_peaks() -> None:
    from kpmobile.config import load_profiles
    from kpmobile.devices.soc import default_table
    from kpmobile.paths import PROFILES_DIR

    profiles = [p for p in load_profiles().values()
                if p.name != "generic" and not p.name.startswith("virtual")]  # virtual-*: kpmobile's own phones
    assert len(profiles) >= 30
    for profile in profiles:
        assert profile.clusters and profile.big_cores and profile.thermal_limit_c > 0, profile.name
        assert set(profile.big_cores) <= {c for cl in profile.clusters for c in cl.cores}, profile.name
        assert profile.peak_gflops == midr.peak_gflops(profile.clusters) and profile.peak_gflops, profile.name
        assert profile.soc[0] == profile.name  # filed under its part number
    typed = [path.name for path in PROFILES_DIR.glob("*.toml")
             for line in path.read_text().splitlines() if line.strip().startswith("peak_gflops")]
    assert typed == []  # computed from the clusters, never typed in
    shared = {code for code in default_table().shared}
    assert not shared & {s for p in profiles for s in p.soc}  # a shared codename names no profile


def test_virtual_phone_refuses_bad_dumps_with_one_error(tmp_path: Path) -> None:
    from kpmobile.config import load_profile
    from kpmobile.devices.virtual_phone.sandbox import Sandbox

    binary = tmp_path / "getprop.bin"
    binary.write_bytes(b"\x7fELF\x02\x01" + bytes(64))
    for bad, what in ((tmp_path, "folder"), (binary, "binary")):
        with pytest.raises(ConfigError, match=what):
            Sandbox(tmp_path / "root").prepare(load_profile("sm8250"), getprop=bad)
    res = subprocess.run([sys.executable, "-m", "kpmobile.devices.virtual_phone", "serve", "--port", "0",
                          "--getprop", str(binary)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and res.stderr.strip().startswith("error: getprop dump")
    assert len(res.stderr.strip().splitlines()) == 1


def test_model_name_comes_from_the_folder_when_the_file_says_nothing() -> None:
    from kpmobile.runners.parsers import _model_from_path

    assert _model_from_path("MobileNetV1/inference.pdmodel") == "MobileNetV1"
    assert _model_from_path("/data/local/tmp/models/picodet_s_320/model.pdmodel") == "picodet_s_320"
    assert _model_from_path("MobileNetV1/opt.nb") == "MobileNetV1"
    assert _model_from_path("tinypose_128x96.nb") == "tinypose_128x96"
    assert _model_from_path("inference.pdmodel") is None and _model_from_path("./") is None
    log = (LOGS / "paddledetection_issue5181_det_only.log").read_text().replace(
        "./model_det/", "./output_inference/picodet_s_320_pedestrian/inference.pdmodel")
    assert parse_log(log)[0].model == "picodet_s_320_pedestrian"
