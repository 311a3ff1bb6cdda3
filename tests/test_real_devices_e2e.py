"""`kpmobile devices --json` for virtual phones serving real getprop dumps and real /proc/cpuinfo
(tests/data/real/, sources in its README), through the real adb server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kpmobile as kpmobile

pytestmark = pytest.mark.e2e
REAL = Path(__file__).parent / "data" / "real"


def _peak(*clusters: tuple[int, float, int]) -> float:
    """Give cores x GHz x FP32 FLOPs/cycle summed, rounded as kpmobile rounds it."""
    return round(sum(n * ghz * flops for n, ghz, flops in clusters), 1)


A55, A77, A510, A710, X2, ORYON = 8, 16, 8, 16, 32, 32  # FP32 FLOPs per cycle (cores.toml fma_bits / 16)
# getprop dump, cpuinfo, virtual-phone args (profile for its cpufreq, or --cpufreq), expected
PHONES: list[dict[str, Any]] = [
    dict(getprop="galaxy_s25plus_sm8750_utf16.txt", cpuinfo="hrw_snapdragon-8-elite.txt", profile="sm8750",
         soc="sm8750", profile_name="sm8750", model="SM-S936B",
         clusters=[([0, 1, 2, 3, 4, 5], "Oryon", 3532800), ([6, 7], "Oryon", 4320000)], big=[6, 7],
         peak=_peak((6, 3.5328, ORYON), (2, 4.32, ORYON))),
    dict(getprop="xiaomi_12x_psyche.txt", cpuinfo="hrw_snapdragon-865.txt", profile="sm8250",
         soc="sm8250", profile_name="sm8250", model="2112123AG",
         clusters=[([0, 1, 2, 3], "Kryo 485 Silver", 1804800), ([4, 5, 6], "Cortex-A77", 2419200),
                   ([7], "Cortex-A77", 2841600)], big=[4, 5, 6, 7],
         peak=_peak((4, 1.8048, A55), (3, 2.4192, A77), (1, 2.8416, A77))),
    dict(getprop="lg_v60_timelm.txt", cpuinfo="hrw_snapdragon-865.txt", profile="sm8250",
         soc="sm8250", profile_name="sm8250", model="LM-V600",
         clusters=[([0, 1, 2, 3], "Kryo 485 Silver", 1804800), ([4, 5, 6], "Cortex-A77", 2419200),
                   ([7], "Cortex-A77", 2841600)], big=[4, 5, 6, 7],
         peak=_peak((4, 1.8048, A55), (3, 2.4192, A77), (1, 2.8416, A77))),
    dict(getprop="xiaomi_pad6_pipa.txt", cpuinfo="hrw_snapdragon-865.txt", profile="sm8250",
         soc="sm8250", profile_name="sm8250", model="23043RP34G",
         clusters=[([0, 1, 2, 3], "Kryo 485 Silver", 1804800), ([4, 5, 6], "Cortex-A77", 2419200),
                   ([7], "Cortex-A77", 2841600)], big=[4, 5, 6, 7],
         peak=_peak((4, 1.8048, A55), (3, 2.4192, A77), (1, 2.8416, A77))),
    dict(getprop="xiaomi_12s_mayfly.txt", cpuinfo="hrw_snapdragon-8+-gen1.txt", profile="sm8475",
         soc="sm8475", profile_name="sm8475", model="2206123SC",
         clusters=[([0, 1, 2, 3], "Cortex-A510", 2016000), ([4, 5, 6], "Cortex-A710", 2745600),
                   ([7], "Cortex-X2", 3187200)], big=[4, 5, 6, 7],
         peak=_peak((4, 2.016, A510), (3, 2.7456, A710), (1, 3.1872, X2))),
    # no profile for these chips: clusters, big cores and peak come from what the phone reports
    dict(getprop="galaxy-s8-global.build.prop", cpuinfo="galaxy-s8-global.txt", cpufreq="0-3:1690000,4-7:2314000",
         soc="exynos8895", profile_name="generic", model="SM-G950F",
         clusters=[([0, 1, 2, 3], "Cortex-A53", 1690000), ([4, 5, 6, 7], "Exynos M2", 2314000)],
         big=[4, 5, 6, 7], peak=_peak((4, 1.69, 8), (4, 2.314, 16))),
    dict(getprop="galaxy-s8-us.build.prop", cpuinfo="galaxy-s8-us.txt", cpufreq="0-3:1900800,4-7:2361600",
         soc="msm8998", profile_name="generic", model="SM-G950U",
         clusters=[([0, 1, 2, 3], "Kryo 260 Silver", 1900800), ([4, 5, 6, 7], "Kryo 260 Gold", 2361600)],
         big=[4, 5, 6, 7], peak=_peak((4, 1.9008, 8), (4, 2.3616, 8))),
    dict(getprop="galaxy-a8-2018.build.prop", cpuinfo="galaxy-a8-2018.txt", cpufreq="0-5:1586000,6-7:2184000",
         soc="exynos7885", profile_name="generic", model="SM-A530F",
         clusters=[([0, 1, 2, 3, 4, 5], "Cortex-A53", 1586000), ([6, 7], "Cortex-A73", 2184000)],
         big=[6, 7], peak=_peak((6, 1.586, 8), (2, 2.184, 8))),
    dict(getprop="pixel.build.prop", cpuinfo="pixel.txt", cpufreq="0-1:1593600,2-3:2150400",
         soc="msm8996", profile_name="generic", model="Pixel",
         clusters=[([0, 1], "Kryo Silver", 1593600), ([2, 3], "Kryo Gold", 2150400)],
         big=[2, 3], peak=_peak((2, 1.5936, 8), (2, 2.1504, 8))),
    # hot-plug: /proc/cpuinfo lists cores 4 and 8 of 10; present says 0-9; only cpu0 and cpu4 have cpufreq
    dict(getprop="meizu-pro-6.build.prop", cpuinfo="meizu-pro-6.txt", profile="mt6797",
         cpufreq="0:2002000,4:2002000,1-3,5-9",
         soc="mt6797", profile_name="mt6797", model="PRO 6",
         clusters=[([1, 2, 3], "Cortex-A53", 1391000), ([0, 4, 5, 6, 7], "Cortex-A53", 2002000),
                   ([8, 9], "Cortex-A72", 2522000)],
         big=[8, 9], peak=_peak((3, 1.391, 8), (5, 2.002, 8), (2, 2.522, 8))),
]


def test_real_dumps_give_part_number_named_cores_clusters_big_cores_and_peak(
        adb_server: Any, virtual_phone_factory: Any) -> None:
    serials = {}
    for phone in PHONES:
        args = ["--cpuinfo", str(REAL / "cpuinfo" / phone["cpuinfo"])]
        if "cpufreq" in phone:
            args += ["--cpufreq", phone["cpufreq"]]
        started = virtual_phone_factory(profile=phone.get("profile", "virtual"),
                                        getprop=REAL / "getprop" / phone["getprop"], extra_args=args)
        serials[started.serial] = phone
    res = kpmobile("devices", "--adb-server", adb_server.address, "--json")
    assert res.returncode == 0, res.stderr
    found = {d["serial"]: d for d in json.loads(res.stdout)}
    assert len(serials) >= 10
    for serial, phone in serials.items():
        entry = found[serial]
        got = (entry["soc"], entry["profile"], entry["model"],
               [(c["cores"], c["core_name"], c["max_khz"]) for c in entry["clusters"]],
               entry["big_cores"], entry["peak_gflops"])
        assert got == (phone["soc"], phone["profile_name"], phone["model"],
                       [tuple(c) for c in phone["clusters"]], phone["big"], phone["peak"]), phone["getprop"]
        assert entry["abi"] == "x86_64"  # the virtual phone runs host binaries


def test_a_fake_property_line_inside_a_value_does_not_change_the_chip(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    lines = (REAL / "getprop" / "xiaomi_12x_psyche.txt").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("[persist.vendor."))
    lines[at + 1:at + 1] = ["[persist.vendor.zz.note]: [first line", "[ro.soc.model]: [MT6789]]"]
    dump = tmp_path / "getprop.txt"
    dump.write_text("\n".join(lines) + "\n")
    phone = virtual_phone_factory(profile="sm8250", getprop=dump,
                                  extra_args=["--cpuinfo", str(REAL / "cpuinfo" / "hrw_snapdragon-865.txt")])
    res = kpmobile("devices", "--adb-server", adb_server.address, "--json")
    assert res.returncode == 0, res.stderr
    entry = next(d for d in json.loads(res.stdout) if d["serial"] == phone.serial)
    assert (entry["soc"], entry["profile"]) == ("sm8250", "sm8250")
