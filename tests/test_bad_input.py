"""Each bad input gets one `error:` line, a non-zero exit, and no run (no file) is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import one_error_line
from conftest import run_kpmobile as kpmobile

from kpmobile.records import BenchCase, DeviceInfo
from kpmobile.store import Store
from kpmobile.store.exchange import export_run

RUN = "20261201-000000-abcdef"
SWEEP_FILES = {
    "threads-string": '[sweep]\nthreads = "14"\n',
    "no_virtual-string": '[sweep]\nno_virtual = "false"\n',
    "models-empty": "[sweep]\nmodels = []\n",
    "rounds-zero": "[sweep]\nrounds = 0\n",
    "repeats-zero": "[sweep]\nrepeats = 0\n",
    "cooldown-inf": "[sweep]\ncooldown_s = inf\n",
    "timeout-nan": "[sweep]\ncase_timeout_s = nan\n",
    "unknown-key": "[sweep]\nthread = [1]\n",
    "not-toml": "[sweep\n",
    "warmup-float": "[sweep]\nwarmup = 1.5\n",
    "threads-zero": "[sweep]\nthreads = [0]\n",
    "precision": '[sweep]\nprecision = "int8"\n',
}
FLAGS = {
    "models-empty": ["-m", ""],
    "threads-empty": ["--threads", ""],
    "threads-word": ["--threads", "1,x"],
    "timeout-negative": ["--case-timeout", "-1"],
    "timeout-nan": ["--case-timeout", "nan"],
    "warmup-huge": ["--warmup", "99999999999999999999"],
    "warmup-word": ["--warmup", "ten"],
    "cooldown-inf": ["--cooldown", "inf"],
    "repeats-zero": ["--repeats", "0"],
    "rounds-zero": ["--rounds", "0"],
    "power-mode": ["--power-mode", "7"],
    "unknown-flag": ["--thread", "4"],
    "resume-threads": ["--resume", RUN, "--threads", "8"],
    "resume-models": ["--resume", RUN, "-m", "picodet-s-192"],
    "resume-bad-id": ["--resume", "../../x;reboot"],
    "resume-subst": ["--resume", "$(reboot)"],
}


def _no_run(home: Path) -> None:
    db = home / "kpmobile.db"
    assert not db.exists() or Store(db, readonly=True).runs() == []


@pytest.mark.parametrize("name", sorted(SWEEP_FILES))
def test_a_bad_sweep_file_is_one_line_and_no_run(name: str, tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP_FILES[name])
    line = one_error_line(kpmobile("bench", "--config", str(path), "--no-virtual",
                                    env={"KPMOBILE_HOME": str(tmp_path)}))
    assert "sweep file" in line
    _no_run(tmp_path)


def test_a_non_utf8_sweep_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_bytes(b'[sweep]\nmodels = ["\xff\xfe"]\n')
    line = one_error_line(kpmobile("bench", "--config", str(path), env={"KPMOBILE_HOME": str(tmp_path)}))
    assert "not UTF-8" in line
    _no_run(tmp_path)


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_a_bad_flag_is_one_line_and_no_run(name: str, tmp_path: Path) -> None:
    line = one_error_line(kpmobile("bench", *FLAGS[name], "--no-virtual", env={"KPMOBILE_HOME": str(tmp_path)}))
    assert line.count("error:") == 1
    _no_run(tmp_path)


# A tampered export: each entry changes one thing in a good export.
def _good(tmp_path: Path) -> dict[str, Any]:
    store = Store(tmp_path / "src.db")
    store.upsert_device(DeviceInfo(serial="A", state="device", fingerprint="fpA"))
    run = store.new_run("kpmobile bench", {"devices": {"fpA": {"label": "A"}}, "threads": [1],
                                           "models": {"pp-tinypose-128x96": {}},
                                           "cases": [BenchCase("pp-tinypose-128x96", "fpA", 1).__dict__]})
    store.add_case(run, BenchCase("pp-tinypose-128x96", "fpA", 1), serial="A", status="ok",
                   numbers={"avg_ms": 12.0})
    store.finish_run(run, "complete")
    return json.loads(json.dumps(export_run(store, run)))


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    node: Any = doc
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value


TAMPERED = {
    "run-id-semicolon": ("run.id", "20261201-000000-abcdef;reboot"),
    "run-id-subst": ("run.id", "$(reboot)"),
    "run-id-dotdot": ("run.id", "../../../../tmp/x"),
    "plan-list": ("run.plan", [1, 2]),
    "plan-models-list": ("run.plan.models", ["a"]),
    "plan-case-model-path": ("run.plan.cases.0.model", "../../etc"),
    "case-avg-string": ("cases.0.avg_ms", "12.0"),
    "case-avg-nan": ("cases.0.avg_ms", "NaN"),  # a JSON NaN token, written below
    "case-avg-inf": ("cases.0.avg_ms", "Infinity"),
    "case-threads-string": ("cases.0.threads", "4"),
    "case-model-shell": ("cases.0.model", "m;rm -rf /"),
    "case-device-dotdot": ("cases.0.device_fp", "../x"),
    "case-key-mismatch": ("cases.0.case_key", "other"),
    "started-string": ("run.started", "yesterday"),
}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_a_tampered_export_is_refused_and_nothing_is_written(name: str, tmp_path: Path) -> None:
    doc = _good(tmp_path)
    path, value = TAMPERED[name]
    token = value in ("NaN", "Infinity")
    _set(doc, path, "@TOKEN@" if token else value)
    text = json.dumps(doc)
    if token:
        text = text.replace('"@TOKEN@"', str(value))
    src = tmp_path / "run.json"
    src.write_text(text)
    target = tmp_path / "target"
    target.mkdir()
    line = one_error_line(kpmobile("runs", "import", str(src), "--db", str(target / "kp.db")))
    assert "export" in line or "UTF-8 JSON" in line
    assert list(target.iterdir()) == []  # no store file, nothing else either
