"""Energy per inference: unit inference on real battery dumps, the energy math, the sampler through
the real adb server on virtual phones with a physical battery, and the physics' pure pieces."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import AdbServer, PhoneFactory
from conftest import run_kpmobile as kpmobile

from kpmobile.config import Physics, load_profile
from kpmobile.devices.energy import (
    CHARGING_HINT,
    NO_BATTERY_NOTE,
    BatterySample,
    Sampler,
    energy_of,
    infer_units,
    power_w,
    split_samples,
)
from kpmobile.devices.virtual_phone.physics import (
    battery_texts,
    busy_cores,
    fill_clusters,
    mean_power,
    read_trace,
    slowdown_pct,
    thermal_step,
    throttle_state,
)
from kpmobile.devices.virtual_phone.physics import power_w as phone_power_w
from kpmobile.records import CpuCluster, Energy
from kpmobile.report.energy import inferences_per_wh

REAL = Path(__file__).parent / "data" / "real" / "power_supply"


def _dump(name: str) -> dict[str, str]:
    """Give a real uevent / `acc --info` dump as KEY -> value (POWER_SUPPLY_ prefix dropped)."""
    out = {}
    for line in (REAL / name).read_text().splitlines():
        key, _, value = line.partition("=")
        out[key.removeprefix("POWER_SUPPLY_")] = value
    return out


def _samples(dump: dict[str, str], n: int = 3, phase: str = "idle") -> list[BatterySample]:
    return [BatterySample(phase, float(i), float(dump["CURRENT_NOW"]), float(dump["VOLTAGE_NOW"]), dump["STATUS"])
            for i in range(n)]


def test_units_of_a_real_discharging_battery() -> None:
    """Chrome OS BATC: 1560000 at 3942000 while discharging: µA, µV, positive discharge: 6.15 W."""
    samples = _samples(_dump("brunch_batc_discharging_uevent.txt"))
    units = infer_units(samples)
    assert units is not None
    assert (units.current_unit, units.voltage_unit, units.discharge_sign) == ("uA", "uV", 1)
    assert "discharge is positive" in units.how and "while discharging" in units.how
    assert power_w(samples[0], units) == pytest.approx(1.56 * 3.942)


def test_real_phones_on_usb_are_flagged_charging() -> None:
    """Mi 8 charging (-326171 µA) and Pixel 3a on USB, not charging (976 µA): flagged, with the hint."""
    for name in ("mi8_charging_acc_info.txt", "pixel3a_usb_not_charging_acc_info.txt"):
        dump = _dump(name)
        record = energy_of("/sys/class/power_supply/battery", _samples(dump) + _samples(dump, phase="run"), 10.0)
        assert record.flags == ("charging",) and record.hint == CHARGING_HINT, name
        assert record.status == dump["STATUS"]
        assert "dumpsys battery unplug" in (record.hint or "")


def test_the_same_draw_in_both_vendor_conventions_gives_the_same_power() -> None:
    phys = Physics()
    for draw in (0.9, 2.5):
        ua = battery_texts(draw, phys, "Discharging", "ua-negative")
        ma = battery_texts(draw, phys, "Discharging", "ma-positive")
        assert int(ua["current_now"]) < 0 < int(ma["current_now"])
        powers = []
        for texts in (ua, ma):
            samples = [BatterySample("run", 0.0, float(texts["current_now"]), float(texts["voltage_now"]),
                                     texts["status"])] * 3
            units = infer_units(samples)
            assert units is not None
            powers.append(power_w(samples[0], units))
        assert powers[0] == pytest.approx(draw, rel=1e-3) and powers[1] == pytest.approx(draw, rel=1e-3)


def test_energy_math_and_notes() -> None:
    idle = [BatterySample("idle", i, -250_000.0, 4_000_000.0, "Discharging") for i in range(5)]
    run = [BatterySample("run", i, -750_000.0, 4_000_000.0, "Discharging") for i in range(8)]
    record = energy_of("/sys/class/power_supply/battery", idle + run, 20.0)
    assert (record.samples, record.idle_samples) == (8, 5)
    assert record.mean_w == pytest.approx(3.0) and record.idle_w == pytest.approx(1.0)
    assert record.energy_mj == pytest.approx(40.0)  # (3 - 1) W x 20 ms
    assert inferences_per_wh(record.energy_mj) == pytest.approx(90_000)
    assert record.flags == () and record.hint is None
    assert Energy.from_json(record.to_json()) == record
    none = energy_of("", [], 20.0)
    assert none.energy_mj is None and none.note == NO_BATTERY_NOTE and none.mean_w is None
    few = energy_of("/sys/class/power_supply/battery", idle[:1] + run, 20.0)
    assert few.energy_mj is None and "too few battery samples" in (few.note or "")
    flat = energy_of("/sys/class/power_supply/battery", idle + idle[:3], 20.0)
    assert flat.energy_mj is None and "too few" in (flat.note or "")


def test_split_samples_from_stderr() -> None:
    text = ("warn\n--- KPBAT ---\nKPBAT dir /sys/class/power_supply/battery\n"
            "KPBAT idle 12.50 -250000 3850000 Discharging\nKPBAT run 12.60 -700000 3850000 Not charging\n"
            "KPBAT run 12.70 garbage\n")
    head, folder, samples = split_samples(text)
    assert head == "warn\n" and folder == "/sys/class/power_supply/battery"
    assert [(s.phase, s.current, s.status) for s in samples] == [
        ("idle", -250000.0, "Discharging"), ("run", -700000.0, "Not charging"), ("run", None, "")]
    assert split_samples("plain") == ("plain", None, [])


def test_physics_pure_pieces() -> None:
    clusters = (CpuCluster((0, 1, 2, 3), "Cortex-A55", 1805000), CpuCluster((4, 5), "Cortex-A76", 2600000))
    assert fill_clusters(3.0, clusters) == [1.0, 2.0]
    assert fill_clusters(0.5, clusters) == [0.0, 0.5]
    phys = Physics(idle_w=1.0, core_w={"Cortex-A76": 2.0, "Cortex-A55": 0.5}, resistance_c_per_w=10.0,
                   time_constant_s=5.0, ambient_c=30.0, trip_c=45.0, hysteresis_c=2.0, throttle_ratio=0.5)
    assert phone_power_w(phys, clusters, [1.0, 2.0]) == pytest.approx(1.0 + 0.5 + 4.0)
    hot = thermal_step(30.0, 3.0, phys, 5.0)  # target 50 C, one time constant
    assert hot == pytest.approx(50 - 20 * math.exp(-1))
    assert thermal_step(hot, 1.0, phys, 1000.0) == pytest.approx(30.0)
    assert throttle_state(45.0, False, phys) and throttle_state(44.0, True, phys)
    assert not throttle_state(42.9, True, phys) and not throttle_state(44.0, False, phys)
    assert slowdown_pct(True, phys) == pytest.approx(100.0) and slowdown_pct(False, phys) == 0.0
    assert load_profile("virtual-hot").physics is not None and load_profile("virtual").physics is None
    # A busy thread read over ticks that came out 0.12 s and 0.08 s long (of 0.1 s planned) averages
    # one core: no clipping of the long tick.
    t0 = {(1, 0): (0, 0)}
    t1 = {(1, 0): (120_000_000, 0)}
    t2 = {(1, 0): (200_000_000, 0)}
    assert (busy_cores(t0, t1, 0.1) + busy_cores(t1, t2, 0.1)) / 2 == pytest.approx(1.0)
    assert busy_cores(t0, {(1, 0): (50_000_000, 50_000_000)}, 0.1) == pytest.approx(1.0)  # runnable the whole tick
    # A shell loop that sleeps most of its life: on a loaded host each wake-up waits 30 ms for a CPU, which
    # is not work; its 5 ms of run time is.
    sleeper = {(2, 0): (5_000_000, 30_000_000)}
    assert busy_cores({}, sleeper, 0.1, {(2, 0): 0.35}) == pytest.approx(0.05, abs=0.005)  # k=1 read 0.155
    assert busy_cores({}, {(3, 0): (20_000_000, 80_000_000)}, 0.1, {(3, 0): 1.0}) == pytest.approx(1.0)


def test_sampler_script_runs_in_sh(tmp_path: Path) -> None:
    """Without a battery the sampler notes none and the wrapped command's output and code pass through."""
    import subprocess

    sampler = Sampler(str(tmp_path / "bat.txt"), idle_s=0.3)
    script = sampler.wrap("echo out; echo err >&2; exit 3").replace("/sys/class/power_supply", str(tmp_path))
    res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert res.returncode == 3 and res.stdout == "out\n"
    head, folder, samples = split_samples(res.stderr)
    assert head == "err\n" and folder == "" and samples == []


def _sampled(server: AdbServer, serial: str, command: str) -> tuple[Energy, str]:
    record, out, _ = _sampled_with(server, serial, command)
    return record, out


def _sampled_with(server: AdbServer, serial: str, command: str) -> tuple[Energy, str, list[BatterySample]]:
    sampler = Sampler("/data/local/tmp/kpbat.txt", idle_s=1.0)
    proc = server.adb("-s", serial, "shell", sampler.wrap(command), timeout=120)
    _, folder, samples = split_samples(proc.stderr)
    return energy_of(folder, samples, 10.0), proc.stdout, samples


BUSY = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done"


def _shown(trace: list[tuple[float, float]], at: float, before_s: float = 0.02, after_s: float = 1.0) -> list[float]:
    """Give the powers the battery files showed around uptime `at` (/proc/uptime is cut to 10 ms, and a
    sample reads its current a moment after its uptime: a moment that can reach 100 ms and more when the
    host is loaded, so the window runs a second on; a units slip is x1000, far outside any of it)."""
    earlier = [w for t, w in trace if t <= at - before_s]
    return earlier[-1:] + [w for t, w in trace if at - before_s < t <= at + after_s]


def test_battery_follows_the_cpu_use_through_adb(adb_server: AdbServer, virtual_phone_factory: PhoneFactory) -> None:
    """µA-negative and mA-positive virtual phones give the same power within 5 %.

    Each sample, read in its vendor's units and sign, is a power the phone's battery files showed at
    that moment (the physics' host-side trace), so each phone's sampled mean power is within 5 % (in
    fact 0.5 %) of what its battery showed; and the idle draw agrees across the two within 5 %.
    Busy power is checked against each phone's own battery, not across the two phones: it follows the
    CPU each busy loop got, and two loops on a loaded 2-core host get unequal shares (CI: 2.27 vs 2.10 W)."""
    from concurrent.futures import ThreadPoolExecutor

    phones = {v: virtual_phone_factory("virtual-battery", extra_args=["--battery", v])
              for v in ("ua-negative", "ma-positive")}
    with ThreadPoolExecutor(2) as pool:
        futures = {v: pool.submit(_sampled_with, adb_server, p.serial, BUSY) for v, p in phones.items()}
        results = {v: f.result() for v, f in futures.items()}
    records = {}
    for vendor, (record, out, samples) in results.items():
        assert out.strip() == "done"
        assert record.samples >= 2 and record.idle_samples >= 5, record
        assert record.mean_w is not None and record.idle_w is not None
        assert record.mean_w > record.idle_w * 1.5, record  # a busy core on top of idle
        assert record.energy_mj is not None and record.energy_mj > 0
        assert (record.battery or "").endswith("/sys/class/power_supply/battery") and record.flags == ()
        trace = read_trace(phones[vendor].root / "physics" / "trace.tsv")
        units = infer_units(samples)
        assert units is not None
        for phase, sampled in (("run", record.mean_w), ("idle", record.idle_w)):
            mine = [s for s in samples if s.phase == phase]
            shown = []
            for s in mine:
                w = power_w(s, units)
                assert w is not None
                best = min(_shown(trace, s.uptime_s), key=lambda x, w=w: abs(x - w))  # type: ignore[misc]
                assert w == pytest.approx(best, rel=0.005, abs=0.005), (vendor, phase, s, _shown(trace, s.uptime_s))
                shown.append(best)
            assert sampled == pytest.approx(sum(shown) / len(shown), rel=0.05)
            window = mean_power(trace, mine[0].uptime_s, mine[-1].uptime_s)
            print(f"{vendor} {phase}: sampled {sampled:.3f} W, battery showed {sum(shown) / len(shown):.3f} W at the"
                  f" samples, {window or 0:.3f} W over the window ({len(mine)} samples)")
        records[vendor] = record
    ua, ma = records["ua-negative"], records["ma-positive"]
    assert "uA" in (ua.units or "") and "negative" in (ua.units or "")
    assert "mA" in (ma.units or "") and "positive" in (ma.units or "")
    assert ma.idle_w == pytest.approx(ua.idle_w, rel=0.05)
    print(f"busy ma/ua: {(ma.mean_w or 0) / (ua.mean_w or 1):.3f}, "
          f"idle ma/ua: {(ma.idle_w or 0) / (ua.idle_w or 1):.3f}")


def test_physics_trace_mean_power() -> None:
    trace = [(10.0, 1.0), (10.1, 3.0), (10.2, 1.0)]
    assert mean_power(trace, 10.0, 10.2) == pytest.approx(2.0)
    assert mean_power(trace, 10.05, 10.3) == pytest.approx((0.05 * 1 + 0.1 * 3 + 0.1 * 1) / 0.25)
    assert mean_power(trace, 9.0, 10.1) is None and mean_power(trace, 10.1, 10.1) is None


def test_charging_and_missing_battery_through_adb(adb_server: AdbServer, virtual_phone_factory: PhoneFactory) -> None:
    charging = virtual_phone_factory("virtual-battery", extra_args=["--battery-status", "Charging"])
    record, _ = _sampled(adb_server, charging.serial, BUSY)
    assert record.flags == ("charging",) and record.hint == CHARGING_HINT and record.status == "Charging"
    bare = virtual_phone_factory("virtual")
    record, out = _sampled(adb_server, bare.serial, "echo hi")
    assert out.strip() == "hi"
    assert record.energy_mj is None and record.mean_w is None and record.note == NO_BATTERY_NOTE


def _bench(server: AdbServer, tmp: Path, *extra: str) -> dict[str, Any]:
    res = kpmobile("bench", "--adb-server", server.address, "--no-virtual", "--db", str(tmp / "kp.db"),
                   "--out", str(tmp / "out"), "--json", *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(json.loads(res.stdout))


@pytest.mark.e2e
@pytest.mark.slow
def test_bench_energy_on_a_virtual_phone_with_a_battery(adb_server: AdbServer, virtual_phone_factory: PhoneFactory,
                                                        tmp_path: Path) -> None:
    """bench --energy: every cell has mean, idle and mJ/inference; picodet-s-320 costs more than tinypose."""
    phone = virtual_phone_factory("virtual-battery")
    out = _bench(adb_server, tmp_path, "--device", phone.serial, "--models", "pp-tinypose-128x96,picodet-s-320",
                 "--threads", "1", "--warmup", "1", "--repeats", "20", "--rounds", "1", "--energy",
                 "--energy-idle", "1.5")
    assert out["ok"] == 2 and out["failed"] == 0
    report = kpmobile("report", "energy", "--db", str(tmp_path / "kp.db"), "--run", out["run_id"], "--format", "json")
    assert report.returncode == 0, report.stderr
    cells = {c["model"]: c for c in json.loads(report.stdout)["cells"]}
    for cell in cells.values():
        assert cell["mean_w"] > cell["idle_w"] > 0 and cell["samples"] >= 2 and cell["idle_samples"] >= 5
        assert cell["mj_per_inference"] > 0 and cell["inferences_per_wh"] > 0 and cell["flags"] == []
    print(kpmobile("report", "energy", "--db", str(tmp_path / "kp.db"), "--run", out["run_id"]).stdout)
    assert cells["picodet-s-320"]["mj_per_inference"] > cells["pp-tinypose-128x96"]["mj_per_inference"]
    mobile = kpmobile("report", "mobile", "--db", str(tmp_path / "kp.db"), "--run", out["run_id"], "--format", "json")
    energy = {c["model"]: c["energy"] for c in json.loads(mobile.stdout)["cells"]}
    assert energy["picodet-s-320"]["mj_per_inference"] == cells["picodet-s-320"]["mj_per_inference"]


@pytest.mark.e2e
@pytest.mark.slow
def test_bench_energy_charging_and_without_battery(adb_server: AdbServer, virtual_phone_factory: PhoneFactory,
                                                   tmp_path: Path) -> None:
    charging = virtual_phone_factory("virtual-battery", extra_args=["--battery-status", "Charging"])
    bare = virtual_phone_factory("virtual")
    out = _bench(adb_server, tmp_path, "--models", "pp-tinypose-128x96", "--threads", "1", "--warmup", "1",
                 "--repeats", "5", "--rounds", "1", "--energy", "--energy-idle", "1")
    assert out["ok"] == 2
    report = kpmobile("report", "energy", "--db", str(tmp_path / "kp.db"), "--run", out["run_id"], "--format", "json")
    cells = {c["label"]: c for c in json.loads(report.stdout)["cells"]}
    assert len(cells) == 2, cells.keys()  # one label per phone
    assert charging.serial != bare.serial
    flagged = [c for c in cells.values() if c["flags"] == ["charging"]]
    assert len(flagged) == 1 and "dumpsys battery unplug" in flagged[0]["hint"]
    none = [c for c in cells.values() if c["mj_per_inference"] is None and c["mean_w"] is None]
    assert len(none) == 1 and none[0]["notes"] == [NO_BATTERY_NOTE]
    bench = kpmobile("bench", "--adb-server", adb_server.address, "--no-virtual", "--db", str(tmp_path / "kp.db"),
                     "--out", str(tmp_path / "out"), "--models", "pp-tinypose-128x96", "--threads", "1",
                     "--warmup", "1", "--repeats", "3", "--rounds", "1", "--energy", "--energy-idle", "1")
    assert "flagged charging); for a clean figure unplug" in bench.stdout and NO_BATTERY_NOTE in bench.stdout
    text = kpmobile("report", "energy", "--db", str(tmp_path / "kp.db"), "--run", out["run_id"])
    assert "dumpsys battery unplug" in text.stdout and "no energy figure" in text.stdout


def test_cooldown_line_and_take_energy() -> None:
    from kpmobile.sweep.costs import cooldown_line, sampler_for, take_energy

    extras: list[dict[str, Any]] = [{"cooldown": {"rested_s": 0.0, "waited_s": 4.0, "limit_c": 45.0}},
                                    {"cooldown": {"rested_s": 0.0, "waited_s": 0.02, "limit_c": 45.0}}, {}]
    assert cooldown_line(extras) == "cool-down: waited 4.0 s in all before 1 of 3 cases (until the hottest zone" \
                                    " was below 45 °C)"
    assert cooldown_line([{}, {"cooldown": {"waited_s": 0.0}}]) is None
    sampler = sampler_for("/r/x.txt", True, 1.0)
    assert sampler is not None and sampler.file == "/r/x.txt.bat" and sampler_for("/r", False, 1.0) is None
    stderr, energy = take_energy("only the runner\n", sampler, 5.0)
    assert stderr == "only the runner\n" and energy is not None and "printed nothing" in (energy.note or "")
    assert take_energy("x", None, 5.0) == ("x", None)


def test_the_idle_baseline_is_taken_after_the_cool_down_wait(tmp_path: Path) -> None:
    """The sweep's case script under /bin/sh on a fake phone that is hot for 1.5 s: every idle sample is
    read after the wait ended (a phone just cooled is at rest), every run sample after the baseline,
    and the sampler's loop and files are gone afterwards."""
    import subprocess

    from kpmobile.devices import casescript, telemetry
    from kpmobile.devices.framing import Framer
    from kpmobile.sweep import costs

    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu\n")
    (zone / "temp").write_text("60000\n")
    freq = tmp_path / "cpu" / "cpu0" / "cpufreq"
    freq.mkdir(parents=True)
    for name in ("scaling_cur_freq", "scaling_max_freq", "cpuinfo_max_freq"):
        (freq / name).write_text("2000000\n")
    battery = tmp_path / "power_supply" / "battery"
    battery.mkdir(parents=True)
    for name, value in (("current_now", "-500000"), ("voltage_now", "3850000"), ("status", "Discharging"),
                        ("type", "Battery")):
        (battery / name).write_text(value + "\n")
    files = casescript.CaseFiles.beside(str(tmp_path), str(tmp_path / "results" / "case.txt"))
    sampler = costs.sampler_for(files.result, True, 0.5)
    framer = Framer()
    cooling = casescript.Cooling(limit_c=45, max_wait_s=30, poll_s=0.1)
    script = costs.wrap(casescript.case_script(framer, ["sleep", "0.5"], files, [0], cooling, 0.05,
                                               costs.hooks(sampler)), sampler)
    script = (script.replace(telemetry.THERMAL_DIR, str(tmp_path / "thermal"))
              .replace(telemetry.CPU_DIR, str(tmp_path / "cpu"))
              .replace("/sys/class/power_supply", str(tmp_path / "power_supply")))
    script = f"( sleep 1.5; echo 30000 > {zone / 'temp'} ) & {script}"
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=60)
    stream = casescript.parse_case_stream(done.stdout, framer.nonce)
    assert done.returncode == 0 and stream.returncode == 0 and stream.complete
    assert stream.waited_s >= 0.8 and stream.polls >= 5
    ends = [line.split() for line in stream.frames.text("wait").splitlines() if line.startswith("u ")]
    waited_until = float(ends[0][3])
    _, folder, samples = split_samples(done.stderr.decode())
    idle = [s.uptime_s for s in samples if s.phase == "idle"]
    run = [s.uptime_s for s in samples if s.phase == "run"]
    assert folder == str(battery) and len(idle) >= 3 and len(run) >= 2, samples
    assert min(idle) >= waited_until, (idle, waited_until)
    assert min(run) >= max(idle)
    record = energy_of(folder, samples, 10.0)
    assert record.idle_w == pytest.approx(0.5 * 3.85) and record.mean_w == pytest.approx(0.5 * 3.85)
    assert not list((tmp_path / "results").iterdir())  # samples and the loop's pid file removed
