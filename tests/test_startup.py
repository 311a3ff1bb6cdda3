"""Start-up stays light: a command imports only what it needs (behaviour, not timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

# Imported by a command that needs them, never by start-up, --help or `devices`.
HEAVY = ("paddle", "ppdet", "paddlelite", "matplotlib", "scipy", "numpy", "pydantic", "urllib3", "PIL.ImageFile")

_PROBE = """
import json, sys
sys.argv = ["kpmobile", *json.loads(sys.argv[1])]
from kpmobile.cli.app import app
try:
    app()
except SystemExit:
    pass
# A module counts once it ran: it has a __file__ (vars(), as getattr would load a deferred one).
real = [n for n, m in list(sys.modules.items()) if m is not None and vars(m).get("__file__")]
sys.stderr.write("\\nLOADED " + json.dumps(sorted(real)) + "\\n")
"""


def _loaded(*args: str) -> tuple[set[str], str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(args))], capture_output=True,
                          text=True, timeout=120)
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("LOADED "))
    return set(json.loads(line[len("LOADED "):])), done.stdout


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(n for n in loaded if any(n == h or n.startswith(h + ".") for h in HEAVY) or n == "requests")


@pytest.mark.parametrize("args", [["--help"], ["bench", "--help"], ["runs", "--help"], ["models", "list", "--json"]])
def test_help_and_light_commands_import_nothing_heavy(args: list[str]) -> None:
    loaded, out = _loaded(*args)
    assert out.strip()
    assert _heavy(loaded) == []
    assert "adbutils" not in loaded  # only commands that talk to phones import it


@pytest.mark.e2e
def test_devices_json_imports_adbutils_but_not_requests(adb_server: Any, virtual_phone_factory: Any) -> None:
    phone = virtual_phone_factory()
    loaded, out = _loaded("devices", "--adb-server", adb_server.address, "--json")
    assert phone.serial in [d["serial"] for d in json.loads(out)]
    assert "adbutils" in loaded
    assert _heavy(loaded) == []


def test_a_bad_option_value_still_gets_typers_message() -> None:
    done = subprocess.run([sys.executable, "-m", "kpmobile", "bench", "--warmup", "-1"], capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "greater than or equal to 0" in done.stderr


def test_bench_checks_plain_flags_without_pydantic_and_json_needs_no_progress_bar(tmp_path: Any) -> None:
    # An unknown model stops the sweep right after the flags are checked and the (silent) progress
    # began, before any phone is sought.
    loaded, _ = _loaded("bench", "--models", "no-such-model", "--threads", "1,4", "--warmup", "3", "--cooldown",
                        "0.5", "--no-virtual", "--db", str(tmp_path / "kp.db"), "--json")
    assert {"kpmobile.sweep.config", "kpmobile.cli.progress"} <= loaded  # flags checked, progress made
    assert "pydantic" not in loaded and "kpmobile.sweep.settings" not in loaded
    assert "rich.progress" not in loaded


_ENDING = """
import atexit, sys, threading, time
from kpmobile.cli.app import main
atexit.register(lambda: print("atexit ran", file=sys.stderr))
done = threading.Event()
def late():
    time.sleep(0.2)  # a worker still busy when the command returns
    done.set()
    print("worker joined", file=sys.stderr)
threading.Thread(target=late).start()
sys.argv = ["kpmobile", *sys.argv[1:]]
main()
print("not reached", file=sys.stderr)
"""


@pytest.mark.parametrize(("args", "code"), [(["models", "list", "--json"], 0), (["runs", "show", "no-such-run"], 2)])
def test_the_cli_ends_its_process_with_threads_joined_atexit_run_and_output_flushed(args: list[str], code: int,
                                                                                 tmp_path: Any) -> None:
    done = subprocess.run([sys.executable, "-c", _ENDING, *args, *(["--db", str(tmp_path / "s.db")] if code else [])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "worker joined" in done.stderr and "atexit ran" in done.stderr
    assert done.stderr.index("worker joined") < done.stderr.index("atexit ran")
    assert "not reached" not in done.stderr
    if code == 0:
        assert len(json.loads(done.stdout)) > 3  # every byte of stdout arrived
    else:
        assert done.stderr.count("error: ") == 1
