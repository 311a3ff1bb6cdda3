"""Export and import of runs in the versioned kpmobile-run JSON schema (synthetic stores)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from kpmobile.errors import ConfigError
from kpmobile.records import BenchCase, DeviceInfo
from kpmobile.store import Store, exchange
from kpmobile.store.exchange import export_run, import_run, migrate, read_export, write_export

PLAN = {"models": {"pp-tinypose-128x96": {"display": "PP-TinyPose-128x96 (pose)"}}, "threads": [1, 4],
        "devices": {"fpA": {"label": "Kirin 980", "serial": "A"}}}


def _filled(path: Path) -> tuple[Store, str]:
    store = Store(path)
    store.upsert_device(DeviceInfo(serial="A", state="device", brand="HUAWEI", soc="kirin980", fingerprint="fpA"))
    run = store.new_run("kpmobile bench", PLAN)
    for rnd in range(2):
        for t in (1, 4):
            case = BenchCase(model="pp-tinypose-128x96", device="fpA", threads=t, backend="arm", round=rnd)
            store.add_case(run, case, serial="A", status="ok", numbers={"avg_ms": 30.0 + t + rnd},
                           record={"format": "benchmark_bin", "avg_ms": 30.0 + t + rnd},
                           raw_log=f"======= Perf Info =======\navg = {30.0 + t + rnd}\n", model_hash="mh",
                           runner="benchmark_bin", runner_version="v2.13", extra={"note": "x"})
    failed = BenchCase(model="pp-tinypose-128x96", device="fpA", threads=8, backend="arm")
    store.add_case(run, failed, serial="A", status="failed", error="runner exited 139")
    store.finish_run(run, "partial")
    return store, run


def _without_ids(store: Store, run: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in dataclasses.asdict(c).items() if k != "id"} for c in store.cases(run)]


def test_export_then_import_into_another_store_keeps_everything(tmp_path: Path) -> None:
    src, run = _filled(tmp_path / "a.db")
    data = export_run(src, run)
    assert data["schema"] == "kpmobile-run" and data["version"] == 2
    assert data["run"]["id"] == run and len(data["cases"]) == 5 and "fpA" in data["devices"]
    path = write_export(data, tmp_path / "run.json")

    dst = Store(tmp_path / "b.db")
    other = dst.new_run("another", {})  # the target store has history of its own
    result = import_run(dst, read_export(path))
    assert result.run_id == run and result.cases == 5 and result.devices_added == 1 and not result.already_present
    assert dst.run(run).plan == src.run(run).plan and dst.run(run).status == "partial"
    assert _without_ids(dst, run) == _without_ids(src, run)
    assert all(c.raw_log and "Perf Info" in c.raw_log for c in dst.cases(run, status="ok"))
    assert dst.devices()["fpA"]["soc"] == "kirin980"
    assert {r.id for r in dst.runs()} == {run, other}
    assert dst.done_keys(run) == src.done_keys(run)


def test_importing_an_identical_run_twice_is_a_no_op(tmp_path: Path) -> None:
    src, run = _filled(tmp_path / "a.db")
    data = json.loads(json.dumps(export_run(src, run)))
    dst = Store(tmp_path / "b.db")
    import_run(dst, data)
    again = import_run(dst, data)
    assert again.already_present and dst.count_cases() == 5
    assert import_run(src, data).already_present  # into the store it came from


def test_a_different_run_with_the_same_id_is_refused(tmp_path: Path) -> None:
    src, run = _filled(tmp_path / "a.db")
    data = export_run(src, run)
    data["cases"][0]["avg_ms"] = 99.0
    with pytest.raises(ConfigError) as err:
        import_run(src, data)
    assert f"run {run} is already in" in err.value.one_line() and "different content" in err.value.one_line()
    assert src.cases(run)[0].avg_ms != 99.0


def test_an_unknown_future_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    src, run = _filled(tmp_path / "a.db")
    data = export_run(src, run)
    data["version"] = 7
    with pytest.raises(ConfigError) as err:
        migrate(data)
    text = err.value.one_line()
    assert "version 7" in text and "newer than this kpmobile reads (2)" in text and "upgrade kpmobile" in text


def test_a_version_1_file_without_op_profiles_still_imports(tmp_path: Path) -> None:
    src, run = _filled(tmp_path / "a.db")
    old = {k: v for k, v in export_run(src, run).items() if k != "op_profiles"}
    old["version"] = 1
    upgraded = migrate(old)
    assert upgraded["version"] == 2 and upgraded["op_profiles"] == []
    assert import_run(Store(tmp_path / "b.db"), upgraded).run_id == run


@pytest.mark.parametrize("bad, words", [
    ({"schema": "something-else", "version": 1}, "not a kpmobile-run export"),
    ({"schema": "kpmobile-run", "version": "1"}, "no whole-number version"),
    ({"schema": "kpmobile-run", "version": 0}, "version 0 cannot be migrated"),
    ({"schema": "kpmobile-run", "version": 1, "run": {}, "cases": []}, "run.id: Field required"),
    ([1, 2], "not a kpmobile-run export"),
])
def test_malformed_documents_are_refused(bad: Any, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        migrate(bad)
    assert words in err.value.one_line()


def test_a_registered_v0_step_upgrades_an_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, run = _filled(tmp_path / "a.db")
    current = export_run(src, run)
    # A made-up v0 layout: cases were called "results" and the run lacked kpmobile_version.
    old = {k: v for k, v in current.items() if k != "cases"}
    old.update(version=0, results=current["cases"], run={k: v for k, v in current["run"].items()
                                                          if k != "kpmobile_version"})

    def v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
        data["cases"] = data.pop("results")
        data["run"] = {**data["run"], "kpmobile_version": "unknown (v0 file)"}
        data["version"] = 1
        return data

    monkeypatch.setitem(exchange.MIGRATIONS, 0, v0_to_v1)
    upgraded = migrate(old)
    assert upgraded["version"] == 2 and len(upgraded["cases"]) == 5  # v0 -> v1 (made up) -> v2 (op profiles)
    dst = Store(tmp_path / "b.db")
    assert import_run(dst, upgraded).run_id == run
    assert dst.run(run).kpmobile_version == "unknown (v0 file)"


def test_read_export_names_the_fix_for_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_export(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(ConfigError, match="is not UTF-8 JSON"):
        read_export(tmp_path / "broken.json")
