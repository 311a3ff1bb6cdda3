"""Facts about files remembered across runs (kpmobile.filememo), and the core sampler's child lookup."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kpmobile import filememo
from kpmobile.devices import telemetry


@pytest.fixture()
def fresh_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KPMOBILE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(filememo, "_MEMO", None)
    return tmp_path / "cache" / "info" / "file-facts.json"


def test_a_fact_is_computed_once_while_the_file_is_unchanged(tmp_path: Path, fresh_memo: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "model.nb"
    f.write_bytes(b"one")
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return f.read_text().upper()

    assert filememo.remembered(f, "upper", compute) == "ONE"
    assert filememo.remembered(f, "upper", compute) == "ONE" and len(calls) == 1
    monkeypatch.setattr(filememo, "_MEMO", None)  # a new process reads the memo file
    assert filememo.remembered(f, "upper", compute) == "ONE" and len(calls) == 1
    assert fresh_memo.is_file() and any(k.startswith("upper:") for k in json.loads(fresh_memo.read_text()))
    f.write_bytes(b"two")  # rewritten: size, mtime or ctime differ
    assert filememo.remembered(f, "upper", compute) == "TWO" and len(calls) == 2
    assert filememo.remembered(f, "lower", lambda: "x") == "x"  # another fact of the same file


def test_a_failed_computation_is_not_remembered_and_a_broken_memo_is_ignored(tmp_path: Path, fresh_memo: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "a.toml"
    f.write_text("x = [1, 2.5, 'three']\n[t]\nk = true\n")

    def boom() -> str:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        filememo.remembered(f, "boom", boom)
    assert filememo.remembered(f, "boom", lambda: "ok") == "ok"
    fresh_memo.write_text("{not json")
    monkeypatch.setattr(filememo, "_MEMO", None)
    assert filememo.toml_data(f) == {"x": [1, 2.5, "three"], "t": {"k": True}}
    monkeypatch.setattr(filememo, "_MEMO", None)
    assert filememo.toml_data(f) == {"x": [1, 2.5, "three"], "t": {"k": True}}  # from the memo now
    f.write_text("x = 1979-05-27\n")  # a TOML date: JSON cannot hold it, so it is parsed each time
    assert str(filememo.toml_data(f)["x"]) == "1979-05-27"
    bad = tmp_path / "bad.toml"
    bad.write_text("x = = 1\n")
    with pytest.raises(ValueError):  # tomli.TOMLDecodeError is a ValueError
        filememo.toml_data(bad)


def test_the_sampler_finds_children_without_a_fork_even_without_a_final_newline(tmp_path: Path) -> None:
    # /proc/PID/task/PID/children has no final newline: `read` then fails yet fills the variable.
    # With no pgrep on PATH, only the builtin read can find the child.
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        pytest.skip("this kernel has no /proc/PID/task/PID/children")
    snippet = telemetry._CHILDREN.format(pid="$$")
    script = f'/bin/sleep 5 & s=$!; {snippet}; echo "$s|$k"; kill $s'
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env={"PATH": str(tmp_path)})
    sleeper, found = done.stdout.strip().split("|")
    assert found.split() == [sleeper]


def test_the_spliced_runner_is_remembered_until_a_file_it_is_spliced_from_changes(tmp_path: Path,
                                                                                 fresh_memo: Path) -> None:
    from kpmobile.runners import executable_runner, splice

    source = tmp_path / "runner.py"
    source.write_text("from kpmobile.runners.runner_common import run_main\nprint('one')\n")
    first = executable_runner(source, "runner", tmp_path / "out", "/usr/bin/python3")
    assert "print('one')" in first.read_text() and "# --- spliced from" in first.read_text()
    assert any(k.startswith("spliced-runner:") for k in json.loads(fresh_memo.read_text()))
    assert executable_runner(source, "runner", tmp_path / "out", "/usr/bin/python3") == first
    source.write_text("from kpmobile.runners.runner_common import run_main\nprint('two')\n")
    second = executable_runner(source, "runner", tmp_path / "out", "/usr/bin/python3")
    assert second != first and "print('two')" in second.read_text()
    shared = splice.spliced_files(source)[1:]
    assert shared and all(p.is_file() for p in shared)  # a change to a shared module counts too
