"""Pure identification of phones from real-shaped getprop and /proc/cpuinfo text."""

from __future__ import annotations

from pathlib import Path

from kpmobile.devices import identify

DATA = Path(__file__).parent / "data"


def test_soc_prefers_soc_model_on_android_12() -> None:
    props = {"ro.soc.model": "SM8450", "ro.board.platform": "taro", "ro.build.version.sdk": "31"}
    assert identify.soc_from_props(props) == "sm8450"


def test_soc_ignores_soc_model_before_android_12_and_skips_qcom_hardware() -> None:
    props = {"ro.soc.model": "junk", "ro.board.platform": "sdm660", "ro.hardware": "qcom",
             "ro.build.version.sdk": "29"}
    assert identify.soc_from_props(props) == "sdm660"
    assert identify.soc_from_props({"ro.hardware": "qcom", "ro.vendor.qti.soc_name": "SDM660"}) == "sdm660"


def test_soc_from_huawei_vendor_model_when_platform_missing() -> None:
    props = {"ro.product.vendor.model": "kirin980", "ro.hardware": "hi3680"}
    assert identify.soc_from_props(props) == "kirin980"


def test_kirin980_cpuinfo_gives_a55_and_a76_clusters() -> None:
    cores = identify.parse_cpuinfo((DATA / "cpuinfo" / "kirin980.txt").read_text())
    assert [cores[i] for i in range(8)] == ["Cortex-A55"] * 4 + ["Cortex-A76"] * 4
    freqs = {0: 1805000, 1: 1805000, 2: 1805000, 3: 1805000, 4: 1920000, 5: 1920000, 6: 2600000, 7: 2600000}
    clusters = identify.clusters_from(cores, freqs)
    assert [(c.cores, c.core_name, c.max_khz) for c in clusters] == [
        ((0, 1, 2, 3), "Cortex-A55", 1805000),
        ((4, 5), "Cortex-A76", 1920000),
        ((6, 7), "Cortex-A76", 2600000),
    ]
    assert identify.big_cores(clusters, None) == (4, 5, 6, 7)


def test_sdm660_cpuinfo_gives_kryo_260() -> None:
    cores = identify.parse_cpuinfo((DATA / "cpuinfo" / "sdm660.txt").read_text())
    assert cores[0] == "Kryo 260 Silver" and cores[7] == "Kryo 260 Gold"


def test_unknown_soc_gets_generic_profile_with_warning() -> None:
    profile, warning = identify.choose_profile("exynos7885")
    assert profile.name == "generic"
    assert warning is not None and "exynos7885" in warning
    profile, warning = identify.choose_profile("sdm660")
    assert profile.name == "sdm660" and warning is None


def test_fingerprint_is_the_same_through_two_servers_and_differs_between_phones() -> None:
    props = {"ro.serialno": "ABC123", "ro.product.brand": "xiaomi", "ro.build.fingerprint": "x/y:10"}
    assert identify.fingerprint(props, "127.0.0.1:40001") == identify.fingerprint(props, "emulator-5554")
    other = dict(props, **{"ro.serialno": "ZZZ"})
    assert identify.fingerprint(other, "s") != identify.fingerprint(props, "s")


def test_parse_getprop_dump() -> None:
    text = "[ro.board.platform]: [sdm660]\n[ro.product.model]: [Redmi Note 7]\n[empty]: []\n"
    assert identify.parse_getprop(text) == {"ro.board.platform": "sdm660", "ro.product.model": "Redmi Note 7",
                                            "empty": ""}
