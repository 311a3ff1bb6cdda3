"""Phone identification end to end: getprop dumps and profiles served by virtual phones through real adb."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

pytestmark = pytest.mark.e2e
DATA = Path(__file__).parent / "data"


def _entry(adb_server: Any, serial: str) -> tuple[dict[str, Any], str]:
    res = kpmobile("devices", "--adb-server", adb_server.address, "--json")
    assert res.returncode == 0, res.stderr
    return next(d for d in json.loads(res.stdout) if d["serial"] == serial), res.stderr


def test_mate20_is_a_kirin980_with_its_three_clusters(adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory(profile="kirin980", getprop=DATA / "getprop" / "mate20.txt")
    entry, _ = _entry(adb_server, phone.serial)
    assert entry["soc"] == "kirin980" and entry["profile"] == "kirin980"
    assert entry["brand"] == "HUAWEI" and entry["abi"] == "x86_64"
    assert [(c["cores"], c["core_name"], c["max_khz"]) for c in entry["clusters"]] == [
        ([0, 1, 2, 3], "Cortex-A55", 1805000), ([4, 5], "Cortex-A76", 1920000), ([6, 7], "Cortex-A76", 2600000),
    ]
    assert entry["big_cores"] == [4, 5, 6, 7]


def test_redmi_note7_is_an_sdm660_with_kryo_260(adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory(profile="sdm660", getprop=DATA / "getprop" / "redmi_note7.txt")
    entry, _ = _entry(adb_server, phone.serial)
    assert entry["soc"] == "sdm660" and entry["profile"] == "sdm660"
    assert [(c["core_name"], c["max_khz"]) for c in entry["clusters"]] == [
        ("Kryo 260 Silver", 1843200), ("Kryo 260 Gold", 2208000),
    ]


def test_unknown_soc_gets_the_generic_profile_and_a_warning(adb_server: Any, virtual_phone_factory: Any,
                                                            tmp_path: Path) -> None:
    dump = tmp_path / "exynos.txt"
    dump.write_text("[ro.product.brand]: [samsung]\n[ro.product.model]: [SM-A530F]\n"
                    "[ro.board.platform]: [exynos7885]\n[ro.hardware]: [samsungexynos7885]\n"
                    "[ro.build.version.sdk]: [29]\n[ro.serialno]: [R58M123]\n")
    phone = virtual_phone_factory(getprop=dump)
    entry, stderr = _entry(adb_server, phone.serial)
    assert entry["soc"] == "exynos7885" and entry["profile"] == "generic"
    assert any("exynos7885" in w for w in entry["warnings"])
    assert "exynos7885" in stderr and "generic" in stderr


def test_parse_cli_json_and_truncated_log(tmp_path: Path) -> None:
    res = kpmobile("parse", str(DATA / "logs" / "benchmark_bin_result_3runs.txt"), "--json")
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    assert len(records) == 3
    keys = {"format", "model", "avg_ms", "min_ms", "max_ms", "first_ms", "init_ms", "threads", "power_mode",
            "warmup", "repeats", "backend", "cpu_precision", "run_delay", "init_mb", "peak_mb", "device", "outputs"}
    assert keys <= set(records[0])
    bad = kpmobile("parse", str(DATA / "logs" / "benchmark_bin_truncated.log"))
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1 and "Perf Info" in bad.stderr
