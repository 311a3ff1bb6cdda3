"""Run comparison and thread scaling, on synthetic stores (pure logic)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from kpmobile import stats
from kpmobile.errors import ConfigError
from kpmobile.records import BenchCase
from kpmobile.report.compare import (
    RunComparison,
    cell_samples,
    compare_runs,
    comparison_table,
    regressions,
    rounds_table,
)
from kpmobile.report.scaling import scaling_table, thread_scaling
from kpmobile.report.table import to_markdown
from kpmobile.store import Store

MODELS = {"pp-tinypose-128x96": {"display": "PP-TinyPose-128x96 (pose)"},
          "picodet-s-192": {"display": "PicoDet-s-192x192 (det)"}}
BASE = {"pp-tinypose-128x96": 40.0, "picodet-s-192": 60.0}
JITTER = (0.0, 0.6, -0.5, 0.3, -0.2)  # round offsets, ms
VERDICT_ROUNDS = 5  # the exact test can pass p < 0.05 from 4 rounds a side


Latency = Callable[[str, str, int, int], float]


def base_latency(model: str, fp: str, threads: int, rnd: int) -> float:
    """Give a plausible latency: 4 threads 2.5x faster, a little jitter per round."""
    value = BASE[model] / (2.5 if threads == 4 else 1.0)
    return value + JITTER[rnd] * (1 if fp.endswith("A") else 1.3)


def make_run(store: Store, devices: dict[str, str], latency: Latency = base_latency, rounds: int = 3,
             threads: tuple[int, ...] = (1, 4), notes: tuple[str, ...] = ()) -> str:
    """Give the id of a synthetic run stored with every case ok."""
    plan = {"models": MODELS, "threads": list(threads),
            "devices": {fp: {"label": label, "serial": f"s-{fp}"} for fp, label in devices.items()}}
    run = store.new_run("test", plan)
    for fp in devices:
        for rnd in range(rounds):
            for model in MODELS:
                for t in threads:
                    case = BenchCase(model=model, device=fp, threads=t, backend="arm", round=rnd)
                    ms = latency(model, fp, t, rnd)
                    store.add_case(run, case, serial=f"s-{fp}", status="ok", numbers={"avg_ms": ms},
                                   record={"notes": list(notes)}, raw_log=f"avg = {ms}")
    store.finish_run(run, "complete")
    return run


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "kp.db")


def _compare(store: Store, a: str, b: str, force: bool = False, threshold: float = 0.05) -> RunComparison:
    ra, rb = store.run(a), store.run(b)
    return compare_runs(ra, store.cases(a), rb, store.cases(b), force=force, threshold=threshold)


def test_a_run_compared_with_itself_is_same_in_every_cell(store: Store) -> None:
    run = make_run(store, {"fpA": "Kirin 980", "fpB": "Snapdragon 660"}, rounds=VERDICT_ROUNDS)
    result = _compare(store, run, run)
    assert len(result.cells) == 8
    assert {c.verdict for c in result.cells} == {"same"}
    assert all(c.ratio == pytest.approx(1.0) for c in result.cells)
    assert regressions(result, 0.0) == []


def test_slowed_cells_are_flagged_slower_and_the_rest_stay_same(store: Store) -> None:
    devices = {"fpA": "Kirin 980", "fpB": "Snapdragon 660"}
    a = make_run(store, devices, rounds=VERDICT_ROUNDS)

    def slowed(model: str, fp: str, t: int, rnd: int) -> float:
        factor = 1.3 if (fp == "fpA" and model == "picodet-s-192") else 1.0
        return base_latency(model, fp, t, rnd) * factor

    b = make_run(store, devices, slowed, rounds=VERDICT_ROUNDS)
    result = _compare(store, a, b)
    verdicts = {(c.device_a, c.setting.model, c.setting.threads): c.verdict for c in result.cells}
    assert verdicts[("fpA", "picodet-s-192", 1)] == "slower"
    assert verdicts[("fpA", "picodet-s-192", 4)] == "slower"
    assert [v for k, v in verdicts.items() if k[0] == "fpB" or k[1] != "picodet-s-192"] == ["same"] * 6
    assert len(regressions(result, 10)) == 2
    assert regressions(result, 40) == []  # 30 % slower is under a 40 % gate
    back = _compare(store, b, a)
    assert sum(c.verdict == "faster" for c in back.cells) == 2
    md = to_markdown(comparison_table(result, MODELS))
    assert "PicoDet-s-192x192 (det) 1-thread" in md and "+30.0%" in md and "slower" in md


def test_a_small_change_below_the_threshold_is_same(store: Store) -> None:
    a = make_run(store, {"fpA": "Kirin 980"}, rounds=VERDICT_ROUNDS)
    b = make_run(store, {"fpA": "Kirin 980"}, lambda m, fp, t, r: base_latency(m, fp, t, r) * 1.03,
                 rounds=VERDICT_ROUNDS)
    assert {c.verdict for c in _compare(store, a, b).cells} == {"same"}
    assert {c.verdict for c in _compare(store, a, b, threshold=0.01).cells} <= {"slower", "same"}


def test_too_few_rounds_give_insufficient_whatever_the_change(store: Store) -> None:
    # The case: 1 round each of 40.0 and 44.4 ms once gave "slower" with p = 1.000.
    one_a = make_run(store, {"fpA": "Kirin 980"}, rounds=1)
    one_b = make_run(store, {"fpA": "Kirin 980"}, lambda m, fp, t, r: base_latency(m, fp, t, r) * 1.11, rounds=1)
    result = _compare(store, one_a, one_b)
    assert {c.verdict for c in result.cells} == {"insufficient"} and regressions(result, 5) == []
    assert all(c.need_rounds == 4 and c.p_value is None and c.ci is None for c in result.cells)
    assert all(c.ratio == pytest.approx(1.11) for c in result.cells)
    # 3 rounds fully separated: the exact test's smallest p is 2 / C(6, 3) = 0.1, so still no verdict.
    three_a = make_run(store, {"fpA": "Kirin 980"})
    three_b = make_run(store, {"fpA": "Kirin 980"}, lambda m, fp, t, r: base_latency(m, fp, t, r) * 1.3)
    cells = _compare(store, three_a, three_b).cells
    assert {c.verdict_text for c in cells} == {"insufficient (need >= 4 rounds)"}
    assert "insufficient (need >= 4 rounds)" in to_markdown(comparison_table(_compare(store, three_a, three_b)))
    four_b = make_run(store, {"fpA": "Kirin 980"}, lambda m, fp, t, r: base_latency(m, fp, t, r) * 1.3, rounds=4)
    four_a = make_run(store, {"fpA": "Kirin 980"}, rounds=4)
    cells = _compare(store, four_a, four_b).cells
    assert {c.verdict for c in cells} == {"slower"} and all(c.p_value == pytest.approx(2 / 70) for c in cells)


def test_different_fingerprints_are_refused_unless_forced(store: Store) -> None:
    a = make_run(store, {"fpA": "Kirin 980", "fpB": "Snapdragon 660"})
    b = make_run(store, {"fpA2": "Kirin 980", "fpB": "Snapdragon 660"})
    with pytest.raises(ConfigError) as err:
        _compare(store, a, b)
    text = err.value.one_line()
    assert "fingerprints differ" in text and "fpA" in text and "fpA2" in text and "--force" in text
    forced = _compare(store, a, b, force=True)
    assert forced.forced and ("fpA", "fpA2") in forced.pairs and ("fpB", "fpB") in forced.pairs
    assert len(forced.cells) == 8 and all(c.forced == (c.device_a == "fpA") for c in forced.cells)
    assert "(forced)" in to_markdown(comparison_table(forced))


def test_force_pairs_by_label_before_position(store: Store) -> None:
    a = make_run(store, {"x1": "Kirin 980", "x2": "Snapdragon 660"})
    b = make_run(store, {"y2": "Snapdragon 660", "y1": "Kirin 980"})
    forced = _compare(store, a, b, force=True)
    assert set(forced.pairs) == {("x1", "y1"), ("x2", "y2")}


def test_a_device_only_in_one_run_is_reported_not_refused(store: Store) -> None:
    a = make_run(store, {"fpA": "Kirin 980", "fpB": "Snapdragon 660"}, rounds=VERDICT_ROUNDS)
    b = make_run(store, {"fpA": "Kirin 980"}, rounds=VERDICT_ROUNDS)
    result = _compare(store, a, b)
    assert result.counts() == {"same": 4, "only-a": 4}
    assert any("only in run" in n for n in result.notes)


def test_thread_scaling_gives_speedup_interval_and_efficiency(store: Store) -> None:
    run = make_run(store, {"fpA": "Kirin 980"})
    rows = thread_scaling(store.run(run), store.cases(run))
    assert [(r.model, r.threads, r.base_threads) for r in rows] == [("picodet-s-192", 4, 1),
                                                                    ("pp-tinypose-128x96", 4, 1)]
    for r in rows:
        assert r.speedup == pytest.approx(2.5, rel=0.03)
        assert r.ci[0] <= r.speedup <= r.ci[1] and r.ci[0] > 2.0
        assert r.efficiency == pytest.approx(r.speedup / 4)
        assert r.warning is None
    table = scaling_table(rows, MODELS)
    assert table.rows[0][4].endswith("x") and table.rows[0][6].endswith("%")


def test_scaling_warns_when_more_threads_are_slower_or_not_applied(store: Store) -> None:
    slower = make_run(store, {"fpA": "Kirin 980"},
                      lambda m, fp, t, r: BASE[m] * (1.2 if t == 4 else 1.0) + JITTER[r])
    rows = thread_scaling(store.run(slower), store.cases(slower))
    assert all(r.speedup < 1 and r.warning and "significantly slower" in r.warning for r in rows)
    note = "threads applied: no (x86 MobileConfig has no set_threads)"
    ignored = make_run(store, {"fpA": "Kirin 980"}, notes=(note,))
    rows = thread_scaling(store.run(ignored), store.cases(ignored))
    assert all(r.warning and "did not apply --threads" in r.warning for r in rows)


def test_rounds_table_summarises_each_cell(store: Store) -> None:
    run = make_run(store, {"fpA": "Kirin 980"})
    table = rounds_table(store.run(run), store.cases(run))
    assert len(table.rows) == 4 and all(row[2] == "3" for row in table.rows)
    assert table.data[0]["values_ms"] and table.data[0]["cv"] >= 0


def _iterations_run(store: Store, rounds: int, factor: float, per_round: int = 10) -> str:
    """Give a run whose cases carry per-iteration samples, as kpmobile's runners print them."""
    run = store.new_run("test", {"models": MODELS, "threads": [1], "devices": {"fpV": {"label": "Virtual phone"}}})
    for rnd in range(rounds):
        samples = [factor * (20.0 + 0.3 * ((i * 7 + rnd * 3) % 5)) for i in range(per_round)]
        store.add_case(run, BenchCase(model="pp-tinypose-128x96", device="fpV", threads=1, backend="x86", round=rnd),
                       serial="V", status="ok", numbers={"avg_ms": sum(samples) / len(samples)}, samples=samples)
    store.finish_run(run, "complete")
    return run


def test_iterations_are_the_samples_where_the_runner_printed_them_from_2_rounds_on(store: Store) -> None:
    base, slowed = _iterations_run(store, 2, 1.0), _iterations_run(store, 2, 1.1)
    (cell,) = _compare(store, base, slowed).cells
    assert (cell.verdict, cell.samples, cell.n_samples) == ("slower", "iterations", (20, 20))
    assert cell.ratio == pytest.approx(1.1, rel=0.01) and cell.p_value is not None and cell.p_value < 1e-4
    assert cell.ci is not None and cell.ci[0] < 1.1 < cell.ci[1]
    (same,) = _compare(store, base, _iterations_run(store, 2, 1.0)).cells
    assert same.verdict == "same"
    # One round a side: its iterations share one moment of load, so no verdict however many there are.
    (one,) = _compare(store, _iterations_run(store, 1, 1.0, 50), _iterations_run(store, 1, 1.3, 50)).cells
    assert (one.verdict, one.need_rounds, one.p_value) == ("insufficient", 2, None)
    assert one.verdict_text == "insufficient (need >= 2 rounds)"


def _clustered_run(store: Store, rng: random.Random, cells: int, rounds: int, between: float, within: float,
                   factor: float = 1.0, per_round: int = 10) -> str:
    """Give a run of `cells` one-thread cells whose iterations are log-normal about a mean that moves per round:
    log t = log(20 ms * factor) + N(0, between) per round + N(0, within) per iteration."""
    models = {f"m{i}": {"display": f"M{i}"} for i in range(cells)}
    run = store.new_run("test", {"models": models, "threads": [1], "devices": {"fpV": {"label": "Virtual phone"}}})
    for rnd in range(rounds):
        for model in models:
            shift = rng.gauss(0.0, between)
            samples = [20.0 * factor * math.exp(shift + rng.gauss(0.0, within)) for _ in range(per_round)]
            store.add_case(run, BenchCase(model=model, device="fpV", threads=1, backend="x86", round=rnd),
                           serial="V", status="ok", numbers={"avg_ms": sum(samples) / len(samples)}, samples=samples)
    store.finish_run(run, "complete")
    return run


def test_rounds_that_disagree_make_iterations_count_as_rounds_not_as_independent_samples(store: Store) -> None:
    # Rounds 10 % apart, iterations 3 % apart within a round (this host's virtual phone measured round CVs of
    # 8-13 %): 30 iterations a side from 3 rounds are worth about 3 samples, so no verdict can be given.
    rng = random.Random(15)
    a, b = (_clustered_run(store, rng, 60, 3, between=0.10, within=0.03) for _ in range(2))
    result = _compare(store, a, b)
    verdicts = [c.verdict for c in result.cells]
    # Taken as 30 independent samples a side, the same iterations give confident verdicts on identical runs.
    naive = [stats.compare(c.iterations, d.iterations).verdict
             for c, d in zip(cell_samples(store.cases(a)).values(), cell_samples(store.cases(b)).values())]
    print("naive:", {v: naive.count(v) for v in set(naive)},
          "clustered:", {v: verdicts.count(v) for v in set(verdicts)})
    assert sum(v in ("slower", "faster") for v in naive) >= 0.4 * len(naive)
    assert sum(v in ("slower", "faster") for v in verdicts) <= 0.05 * len(verdicts)
    assert verdicts.count("insufficient") >= 0.9 * len(verdicts)
    cell = result.cells[0]
    assert cell.round_icc is not None and cell.round_icc > 0.8 and cell.design_effect > 8
    assert cell.effective_n[0] <= 3 and cell.need_rounds is not None and cell.need_rounds >= 4
    assert cell.to_json()["design_effect"] == cell.design_effect


def test_rounds_that_agree_leave_iterations_nearly_independent_and_a_10pct_slowdown_is_slower(store: Store) -> None:
    rng = random.Random(16)
    a, b = (_clustered_run(store, rng, 60, 3, between=0.003, within=0.03) for _ in range(2))
    slowed = _clustered_run(store, rng, 60, 3, between=0.003, within=0.03, factor=1.1)
    same = [c.verdict for c in _compare(store, a, b).cells]
    slow = _compare(store, a, slowed).cells
    assert same.count("same") >= 0.95 * len(same) and "slower" not in same and "faster" not in same
    assert sum(c.verdict == "slower" for c in slow) >= 0.9 * len(slow)
    # Pooled over 120 cells the rounds' share is small; a cell's own 6 rounds can only raise it, by chance.
    assert sorted(c.design_effect for c in slow)[len(slow) // 2] < 1.2
    # 95 % intervals: about 3 of 60 miss the true 1.1 by chance.
    assert sum(c.ci is not None and c.ci[0] < 1.1 < c.ci[1] for c in slow) >= 0.9 * len(slow)
