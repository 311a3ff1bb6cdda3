"""Heat end to end: a hot-profile virtual phone heats with the runner's real CPU use, throttles above its
trip point and really slows the runner; the cool-down waits it out. Through the real adb server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import AdbServer, PhoneFactory
from conftest import run_kpmobile as kpmobile

from kpmobile.stats import mann_whitney_p

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = ("--models", "pp-tinypose-128x96", "--threads", "1", "--warmup", "1")
# The phone's runner gets a host CPU of its own (as a real phone's has): at load 4-10 on 2 cores its
# latency would otherwise follow the host's load, which drifts over a sweep and hides (or fakes) a trend.
NICE = ["--nice", "-20"]


def sweep_args(server: AdbServer, phone: Any, tmp: Path, case_s: float) -> tuple[str, ...]:
    """Give the 20-round sweep's flags, with --repeats sized so that a case keeps the phone busy about
    `case_s` seconds at this host's present speed.

    The phone heats with the runner's busy time, so a fixed --repeats would heat it twice as much on a
    host loaded twice as much: a short calibration run (which heats the phone by well under a degree)
    measures the latency first, and the sweep's heat then depends on time, not on the host's load.
    """
    table, _, rows = _sweep(server, phone, tmp / "calibrate", (*MODEL, "--repeats", "5", "--rounds", "1"))
    avg_ms = float(rows[0][1])
    repeats = max(5, min(2000, round(case_s * 1000 / avg_ms)))
    return (*MODEL, "--repeats", str(repeats), "--rounds", "20")


def _sweep(server: AdbServer, phone: Any, tmp: Path, sweep: tuple[str, ...],
           *extra: str) -> tuple[dict[str, Any], str, list[tuple[Any, ...]]]:
    db = tmp / "kp.db"
    res = kpmobile("bench", "--adb-server", server.address, "--no-virtual", "--device", phone.serial, "--db", str(db),
                   "--out", str(tmp / "out"), *sweep, *extra, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        run = conn.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()[0]
        rows = conn.execute("SELECT round, avg_ms, extra FROM cases WHERE run_id=? ORDER BY round",
                            (run,)).fetchall()
    report = kpmobile("report", "mobile", "--db", str(db), "--run", run, "--format", "json")
    return json.loads(report.stdout), res.stdout, [(r, a, json.loads(e)) for r, a, e in rows]


def trace_ticks(path: Path) -> list[dict[str, float]]:
    """Give every tick of a virtual phone's physics trace (and its previous part) by column name."""
    ticks: list[dict[str, float]] = []
    for part in (path.with_name(path.name + ".1"), path):
        if not part.exists():
            continue
        header, *lines = part.read_text().splitlines()
        names = header.split("\t")
        ticks += [dict(zip(names, map(float, line.split("\t")))) for line in lines
                  if len(line.split("\t")) == len(names)]
    return ticks


def heat_curve(rows: list[tuple[Any, ...]]) -> list[tuple[int, float, float | None, float | None, list[str]]]:
    """Give (round, avg ms, hottest °C before, after, flags) per case."""
    return [(r, a, (e.get("before") or {}).get("hottest_c"), (e.get("after") or {}).get("hottest_c"),
             e.get("flags", [])) for r, a, e in rows]


def test_hot_phone_without_cool_down_throttles_and_slows(adb_server: AdbServer, virtual_phone_factory: PhoneFactory,
                                                         tmp_path: Path) -> None:
    phone = virtual_phone_factory("virtual-hot", extra_args=NICE)
    # About 80 s busy in all: past the 55 C trip (30 C ambient, 79 C steady at one busy core, tau 40 s)
    # by the middle of the sweep, even if the host's speed halves after the calibration.
    sweep = sweep_args(adb_server, phone, tmp_path, case_s=4.0)
    table, out, rows = _sweep(adb_server, phone, tmp_path, sweep, "--thermal-wait", "0")
    curve = heat_curve(rows)
    print("heat curve (round, ms, C before, C after, flags):", *curve, sep="\n")
    assert len(rows) == 20
    first_c, last_c = curve[0][2], curve[-1][2]
    assert first_c is not None and last_c is not None and last_c > first_c + 10  # it heated
    assert any("throttled" in c[4] for c in curve)
    first = next(i for i, c in enumerate(curve) if "throttled" in c[4])
    assert all("hot-start" in c[4] for c in curve[first + 1:])
    before = sorted(c[1] for c in curve[:first + 1])
    after = sorted(c[1] for c in curve[first + 1:])
    # The rounds after the trip ran paced to 1 / throttle_ratio of their time (the --slowdown switch).
    # Their latencies are compared too, but the host's load drifts over a sweep (it fell from 11 to 4
    # during one run here and hid the doubling), so the switch itself is what must hold.
    slowdown = adb_server.client().device(phone.serial).shell("getprop kpmobile.virtual.slowdown_pct").strip()
    assert slowdown == "100"
    print("median ms before / after the trip:", before[len(before) // 2], after[len(after) // 2],
          "Mann-Whitney p:", mann_whitney_p(before, after))
    cell = table["cells"][0]
    assert "throttled" in cell["flags"] and "hot-start" in cell["flags"]
    # Twice as slow after the trip: the rounds' latencies trend up, and that stars the cell.
    assert "trend-up" in cell["flags"] and "trend-up" in cell["star_reasons"], [c[1] for c in curve]


def test_hot_phone_with_cool_down_waits_and_is_not_flagged(adb_server: AdbServer,
                                                           virtual_phone_factory: PhoneFactory,
                                                           tmp_path: Path) -> None:
    phone = virtual_phone_factory("virtual-hot", extra_args=NICE)
    # 2.5 s cases heat past the 45 C cool-down limit within a few cases, yet a case started below it
    # ends far below the 55 C trip.
    sweep = sweep_args(adb_server, phone, tmp_path, case_s=2.5)
    table, out, rows = _sweep(adb_server, phone, tmp_path, sweep, "--thermal-wait", "300")
    curve = heat_curve(rows)
    print("heat curve (round, ms, C before, C after, flags):", *curve, sep="\n")
    assert "cool-down: waited " in out and "below 45 °C" in out
    waited = sum(float((e.get("cooldown") or {}).get("waited_s") or 0) for _, _, e in rows)
    assert waited > 5
    # Each case started once the wait read the phone below the limit (the reading the wait ended on).
    starts = [(e.get("cooldown") or {}).get("start_c") for _, _, e in rows]
    assert all(s is not None and s < 45 for s in starts), starts
    assert not any(f in c[4] for c in curve for f in ("throttled", "hot-start"))
    assert not {"throttled", "hot-start"} & set(table["cells"][0]["flags"]), [c[1] for c in curve]
    # The phone itself never got hot enough to slow its runner: every tick of its physics, the sweep's
    # included, stayed below the 55 C trip with the slowdown off. (Whether the rounds' latencies trend
    # up is not asserted: a shared host's own speed stepped down by 30 % for 12 of 20 rounds in one CI
    # run, even at nice -20, and `trend-up` rightly said so; heat was not the cause.)
    ticks = trace_ticks(phone.root / "physics" / "trace.tsv")
    assert len(ticks) > 100
    assert max(t["temp_c"] for t in ticks) < 55 and not any(t["throttled"] for t in ticks), \
        max(t["temp_c"] for t in ticks)
    if "trend-up" in table["cells"][0]["flags"]:
        print("trend-up with the phone never throttled: the host's speed moved", [c[1] for c in curve])
