"""The one-round-trip case script: run under /bin/sh here and through the virtual phone's shell."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kpmobile.devices import android, casescript, telemetry
from kpmobile.devices.framing import Framer
from kpmobile.sweep import conditions

RUNNER = """import sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:])
t = time.monotonic()
while time.monotonic() - t < float(args.get("--busy", "0.3")):
    pass
open(args["--result_path"], "w").write("avg = 1.5\\nline two without newline")
print("runner stdout")
print("runner stderr", file=sys.stderr)
sys.exit(int(args.get("--rc", "0")))
"""


def _fake_device(tmp_path: Path, temps_mc: list[int]) -> tuple[Path, Path]:
    """Give (thermal dir, cpu dir) of a fake device tree under tmp_path."""
    thermal, cpu = tmp_path / "thermal", tmp_path / "cpu"
    for n, temp in enumerate(temps_mc):
        zone = thermal / f"thermal_zone{n}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(f"zone{n}\n")
        (zone / "temp").write_text(f"{temp}\n")
    freq = cpu / "cpu0" / "cpufreq"
    freq.mkdir(parents=True)
    for name, value in (("scaling_cur_freq", 1800000), ("scaling_max_freq", 2000000), ("cpuinfo_max_freq", 2000000)):
        (freq / name).write_text(f"{value}\n")
    return thermal, cpu


def _run_local(tmp_path: Path, cooling: casescript.Cooling, temps_mc: list[int], rc: int = 0,
               cool_after_s: float | None = None) -> tuple[subprocess.CompletedProcess[bytes], casescript.CaseStream]:
    thermal, cpu = _fake_device(tmp_path, temps_mc)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    files = casescript.CaseFiles.beside(str(tmp_path), str(tmp_path / "results" / "case.txt"))
    framer = Framer()
    argv = [sys.executable, str(runner), f"--result_path={files.result}", f"--rc={rc}"]
    script = casescript.case_script(framer, argv, files, [0], cooling, interval_s=0.05)
    script = script.replace(telemetry.THERMAL_DIR, str(thermal)).replace(telemetry.CPU_DIR, str(cpu))
    if cool_after_s is not None:
        zone = thermal / "thermal_zone0" / "temp"
        script = f"( sleep {cool_after_s}; echo 30000 > {zone} ) & {script}"
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=60)
    return done, casescript.parse_case_stream(done.stdout, framer.nonce)


def test_a_cool_phone_runs_at_once_and_everything_comes_back(tmp_path: Path) -> None:
    done, s = _run_local(tmp_path, casescript.Cooling(limit_c=45), [36000, 31000])
    assert done.returncode == 0 and s.returncode == 0 and s.complete
    assert s.stdout == b"runner stdout\n" and done.stderr == b"runner stderr\n"
    assert s.result == b"avg = 1.5\nline two without newline"
    assert s.before.hottest_c == 36.0 and s.before.cur_khz == {0: 1800000} and s.after is not None
    assert s.polls == 0 and s.waited_s < 1.0
    assert sum(telemetry.parse_core_samples(s.core_samples).values()) > 0
    assert not list((tmp_path / "results").iterdir())  # result, samples and pid file removed
    extra = conditions.from_stream(s, 45.0, None).to_json()
    assert extra["flags"] == [] and extra["cores"]["samples"] > 0 and extra["after"]["max_khz"] == {"0": 2000000}


def test_a_hot_phone_waits_then_reports_how_long(tmp_path: Path) -> None:
    cooling = casescript.Cooling(limit_c=45, max_wait_s=0.6, poll_s=0.1)
    _, s = _run_local(tmp_path, cooling, [60000, 31000])
    assert s.polls == 6 and 0.5 <= s.waited_s < 5
    assert "hot-start" in conditions.from_stream(s, 45.0, None).to_json()["flags"]
    _, cooled = _run_local(tmp_path / "b", casescript.Cooling(limit_c=45, max_wait_s=30, poll_s=0.1),
                           [60000], cool_after_s=0.3)
    assert 1 <= cooled.polls < 100 and 0.2 <= cooled.waited_s < 30
    extra = conditions.from_stream(cooled, 45.0, None).to_json()
    assert "hot-start" not in extra["flags"] and extra["before"]["hottest_c"] == 30.0
    assert extra["cooldown"]["waited_s"] == cooled.waited_s


def test_a_failing_runner_gives_its_exit_code(tmp_path: Path) -> None:
    done, s = _run_local(tmp_path, casescript.Cooling(), [36000], rc=3)
    assert done.returncode == 3 and s.returncode == 3 and s.complete
    assert s.result is not None  # it wrote one before failing; the sweep stores the case failed anyway


def test_a_runner_that_writes_no_result_file(tmp_path: Path) -> None:
    runner = tmp_path / "quiet.py"
    runner.write_text("print('nothing written')\n")
    files = casescript.CaseFiles.beside(str(tmp_path), str(tmp_path / "results" / "case.txt"))
    framer = Framer()
    script = casescript.case_script(framer, [sys.executable, str(runner)], files, [], casescript.Cooling())
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=60)
    s = casescript.parse_case_stream(done.stdout, framer.nonce)
    assert done.returncode == 0 and s.complete and s.result is None and s.stdout == b"nothing written\n"
    assert not list((tmp_path / "results").iterdir())


def test_wait_fields_and_a_stream_cut_before_the_runner_ended() -> None:
    f = Framer()
    data = (f"=KP1 {f.nonce} wait\nu 100.00 100.50 103.25\npolls 2\nhottest_mc 44000\n\n"
            f"=KP1 {f.nonce} before\nT thermal_zone0 cpu 44000\n\n=KP1 {f.nonce} stdout\npartial").encode()
    s = casescript.parse_case_stream(data, f.nonce)
    assert (s.rest_s, s.waited_s, s.polls) == (0.5, 2.75, 2)
    assert not s.complete and s.returncode is None and s.after is None
    assert "telemetry_error" in conditions.from_stream(s, 45.0, None).to_json()


@pytest.mark.e2e
def test_through_the_virtual_phone_one_round_trip(adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory()
    zone = phone.root / "sys" / "class" / "thermal" / "thermal_zone0" / "temp"
    zone.write_text("52000\n")  # hot: the script waits until it cools
    dev = android.Phone(phone.serial, adb_server.address)
    files = casescript.CaseFiles.beside("/data/local/tmp", "/data/local/tmp/kpmobile/results/r1/case.txt")
    framer = Framer()
    argv = ["sh", "-c", f"echo out; echo err >&2; echo 'avg = 2' > {files.result}; sleep 0.3"]
    script = casescript.case_script(framer, argv, files, [0, 1], casescript.Cooling(45, 20, 0, 0.1), 0.05)
    started = phone.root / "data" / "local" / "tmp" / "kpmobile" / "results" / "r1"  # the script's first act
    cooler = subprocess.Popen(["sh", "-c", f"while [ ! -d {started} ]; do sleep 0.02; done; sleep 0.4; "
                                           f"echo 30000 > {zone}"])
    start = time.monotonic()
    trips = dev.round_trips
    res = dev.shell_raw(script, timeout=60)
    cooler.wait(timeout=10)
    assert dev.round_trips - trips == 1
    s = casescript.parse_case_stream(res.stdout, framer.nonce)
    assert res.returncode == 0 and s.complete and s.stdout == b"out\n" and res.stderr == b"err\n"
    assert s.result == b"avg = 2\n"
    assert 0.3 <= s.waited_s <= time.monotonic() - start and s.polls >= 1
    assert s.before.hottest_c is not None and s.before.hottest_c < 45
    assert not (phone.root / "data" / "local" / "tmp" / "kpmobile" / "results" / "r1" / "case.txt").exists()


@pytest.mark.e2e
@pytest.mark.slow  # builds the model on a cold cache
def test_a_sweep_takes_one_round_trip_per_case_and_waits_for_a_hot_phone(
        adb_server: Any, virtual_phone_factory: Any, tmp_path: Path, kpmobile_cli: Any) -> None:
    import json
    import sqlite3

    from conftest import FAST

    phone = virtual_phone_factory()
    zone = phone.root / "sys" / "class" / "thermal" / "thermal_zone0" / "temp"
    zone.write_text("95000\n")  # above the virtual profile's 90 °C limit
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("[sweep]\nthermal_wait_s = 60\n")
    results = phone.root / "data" / "local" / "tmp" / "kpmobile" / "results"
    # Cool down a second after the first case script began (it makes the results folder first).
    cooler = subprocess.Popen(["sh", "-c", f"while [ ! -d {results} ]; do sleep 0.05; done; sleep 1; "
                                           f"echo 30000 > {zone}"])
    res = kpmobile_cli("bench", "--config", str(sweep), "--adb-server", adb_server.address, "--no-virtual",
                   "--models", "pp-tinypose-128x96", "--threads", "1,2", *FAST, "--db", str(tmp_path / "kp.db"),
                   "--out", str(tmp_path / "out"), "--json")
    cooler.wait(timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    with sqlite3.connect(tmp_path / "kp.db") as con:
        rows = con.execute("SELECT extra, avg_ms FROM cases ORDER BY id").fetchall()
    extras = [json.loads(e) for e, _ in rows]
    assert [e["round_trips"] for e in extras] == [1, 1]
    first = extras[0]["cooldown"]
    assert first["polls"] >= 1 and first["waited_s"] >= 0.5 and "hot-start" not in extras[0]["flags"]
    assert extras[1]["cooldown"]["polls"] == 0
    kept = sorted((tmp_path / "out").rglob("*.txt"))
    assert len(kept) == 2 and all("avg" in p.read_text() for p in kept)  # the result files, kept on disk


def _stream(wait_mc: int, before_mc: int) -> bytes:
    n = "abc123"
    return (f"=KP1 {n} wait\nu 10.0 10.0 22.5\npolls 6\nhottest_mc {wait_mc}\n\n"
            f"=KP1 {n} before\nT thermal_zone0 cpu {before_mc}\n\n"
            f"=KP1 {n} stdout\nok\n\n=KP1 {n} rc\n0\n\n"
            f"=KP1 {n} after\nT thermal_zone0 cpu {before_mc + 3000}\n\n=KP1 {n} end\n").encode()


def test_hot_start_is_judged_on_the_reading_the_cool_down_ended_on() -> None:
    from kpmobile.devices.casescript import parse_case_stream
    from kpmobile.sweep.conditions import from_stream

    # The wait read 44.9 C and let the case start; the snapshot a moment later read 45.0 C.
    settled = parse_case_stream(_stream(44900, 45000), "abc123")
    assert settled.start_c == 44.9 and settled.waited_s == 12.5
    extra = from_stream(settled, 45.0, None)
    assert "hot-start" not in extra.flags
    assert extra.telemetry is not None and extra.telemetry.cooldown is not None
    assert extra.telemetry.cooldown["start_c"] == 44.9
    # A wait that gave up with the phone still at the limit is a hot start.
    assert "hot-start" in from_stream(parse_case_stream(_stream(47000, 47000), "abc123"), 45.0, None).flags


def test_the_stream_ends_with_the_script_not_with_the_samplers_sleep(tmp_path: Path) -> None:
    # adbd (like this pipe) ends a shell's stream once every writer is gone: the sampler, asleep
    # between samples for 30 s here, must not hold the host's stream (fd 3) open.
    thermal, cpu = _fake_device(tmp_path, [36000])
    files = casescript.CaseFiles.beside(str(tmp_path), str(tmp_path / "results" / "case.txt"))
    framer = Framer()
    argv = ["sh", "-c", f"sleep 0.3; echo 'avg = 1' > {files.result}"]
    script = casescript.case_script(framer, argv, files, [0], casescript.Cooling(), interval_s=30)
    script = script.replace(telemetry.THERMAL_DIR, str(thermal)).replace(telemetry.CPU_DIR, str(cpu))
    proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = proc.communicate(timeout=20)  # the old script kept the stream open for the 30 s sleep
    s = casescript.parse_case_stream(out, framer.nonce)
    assert proc.returncode == 0 and s.complete and s.result == b"avg = 1\n"
    assert sum(telemetry.parse_core_samples(s.core_samples).values()) > 0
