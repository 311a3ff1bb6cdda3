"""Text from phones and stores is shown literally: rich markup is not read, control characters never
reach the terminal, md or csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST
from conftest import run_kpmobile as kpmobile

from kpmobile.records import BenchCase, DeviceInfo
from kpmobile.report.table import Table, to_csv, to_markdown
from kpmobile.store import Store

EVIL = "Kirin [/] [red]980[/red] \x1b[31mesc\x1b[0m\x07 [bold]x"
SHOWN = "Kirin [/] [red]980[/red] [31mesc[0m [bold]x"  # ESC and BEL stripped, brackets kept
MODEL = "pp-tinypose-128x96"


def _hostile_store(path: Path) -> str:
    store = Store(path)
    store.upsert_device(DeviceInfo(serial="A", state="device", brand=EVIL, model=EVIL, soc=EVIL, fingerprint="fpA"))
    plan = {"models": {MODEL: {"display": f"Pose {EVIL}"}}, "threads": [1],
            "devices": {"fpA": {"label": EVIL, "serial": "A", "soc": EVIL}}}
    run = store.new_run("kpmobile bench", plan)
    store.add_case(run, BenchCase(MODEL, "fpA", 1), serial="A", status="ok", numbers={"avg_ms": 12.5})
    store.add_case(run, BenchCase(MODEL, "fpA", 4), serial="A", status="failed", error=f"runner said {EVIL}")
    store.finish_run(run, "partial")
    return run


def _strings(data: Any) -> str:
    """Give every string in a JSON document, joined (the values, not their escaped form)."""
    if isinstance(data, dict):
        return " ".join(_strings(k) + " " + _strings(v) for k, v in data.items())
    if isinstance(data, list):
        return " ".join(map(_strings, data))
    return data if isinstance(data, str) else ""


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text
    assert "Traceback" not in text


def test_renderers_strip_controls_and_keep_brackets() -> None:
    table = Table(EVIL, ("Model", EVIL), ((EVIL, "1 | 2"),), notes=(EVIL,))
    md, csv = to_markdown(table), to_csv(table)
    for text in (md, csv):
        _clean(text)
        assert SHOWN in text
    assert "1 \\| 2" in md  # a cell's bar does not split the markdown row


def test_every_command_shows_a_hostile_store_literally(tmp_path: Path) -> None:
    db = tmp_path / "kp.db"
    run = _hostile_store(db)
    for args in (["runs", "list"], ["runs", "show", run], ["report", "mobile", "--run", run]):
        res = kpmobile(*args, "--db", str(db))
        assert res.returncode == 0, res.stderr
        _clean(res.stdout + res.stderr)
        assert "[/]" in res.stdout and "[red]" in res.stdout, res.stdout
    for fmt in ("md", "csv"):
        res = kpmobile("report", "mobile", "--run", run, "--format", fmt, "--db", str(db))
        assert res.returncode == 0, res.stderr
        _clean(res.stdout)
        assert SHOWN in res.stdout
    for args in (["runs", "list", "--json"], ["runs", "show", run, "--json"],
                 ["report", "mobile", "--run", run, "--format", "json"]):
        res = kpmobile(*args, "--db", str(db))
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout and EVIL in _strings(json.loads(res.stdout)), args
    html = tmp_path / "r.html"
    res = kpmobile("report", "html", "--run", run, "--out", str(html), "--no-flops", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert "Kirin [/] [red]980[/red]" in html.read_text() and "\x1b" not in html.read_text()


def _hostile_getprop(tmp_path: Path) -> Path:
    dump = (Path(__file__).parent / "data" / "getprop" / "mate20.txt").read_text()
    dump = dump.replace("[ro.product.model]: [HMA-AL00]", f"[ro.product.model]: [{EVIL}]")
    dump = dump.replace("[ro.product.brand]: [HUAWEI]", "[ro.product.brand]: [HUA[/]WEI]")
    dump += "[ro.product.name]: [x]\n[ro.board.platform]: [sdm660]\n"  # a value shaped like a property line
    path = tmp_path / "getprop.txt"
    path.write_text(dump)
    return path


@pytest.mark.e2e
@pytest.mark.slow
def test_a_phone_with_hostile_getprop_values(adb_server: Any, virtual_phone_factory: Any, tmp_path: Path) -> None:
    phone = virtual_phone_factory(getprop=_hostile_getprop(tmp_path))
    res = kpmobile("devices", "--adb-server", adb_server.address)
    assert res.returncode == 0, res.stderr
    _clean(res.stdout + res.stderr)
    assert "HUA[/]WEI" in res.stdout
    res = kpmobile("devices", "--adb-server", adb_server.address, "--json")
    assert res.returncode == 0, res.stderr
    entry = next(d for d in json.loads(res.stdout) if d["serial"] == phone.serial)
    assert entry["model"] == EVIL and entry["brand"] == "HUA[/]WEI"
    db = tmp_path / "kp.db"
    res = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(db), "--out",
                   str(tmp_path / "out"), "-m", MODEL, "--threads", "1", *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    _clean(res.stdout + res.stderr)
    run = Store(db, readonly=True).run().id
    for args in (["runs", "list"], ["runs", "show", run], ["report", "mobile", "--run", run],
                 ["report", "mobile", "--run", run, "--format", "md"],
                 ["report", "mobile", "--run", run, "--format", "csv"],
                 ["report", "mobile", "--run", run, "--format", "json"]):
        res = kpmobile(*args, "--db", str(db))
        assert res.returncode == 0, (args, res.stderr)
        _clean(res.stdout + res.stderr)
    res = kpmobile("report", "html", "--run", run, "--out", str(tmp_path / "r.html"), "--no-flops", "--db", str(db))
    assert res.returncode == 0, res.stderr
