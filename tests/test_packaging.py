"""A non-editable install of kpmobile finds its device profiles and assets away from the checkout.

How the test installs, and why it is an honest `pip install .` into a fresh venv:
- The checkout's files (tracked and untracked-not-ignored, symlinks kept as symlinks) are copied to
  a temporary folder and `pip wheel --no-deps` builds a wheel there, as `pip install .` would
  (build isolation: setuptools comes from the package index / pip cache).
- `python -m venv --without-pip` makes a fresh venv (from the shared venv's base interpreter), and
  pip installs the wheel into it (`pip --python NEW_VENV install --no-deps --no-index WHEEL`).
- Installing paddle, paddlelite, paddledet ... into every fresh venv would take minutes and
  gigabytes, so the new venv borrows the dependencies: after the install, a `.pth` file appends the
  shared venv's site-packages to its sys.path. A `.pth` line only appends a folder; the shared
  venv's own `.pth` files, among them the editable-install finder that points at /work/main, are
  not run. The installed kpmobile comes first on sys.path, and the test checks that `kpmobile` is
  imported from the new venv and that neither the checkout nor its copy is on sys.path.
- The commands run as `NEW_VENV/bin/kpmobile ...` (the console script the wheel installs), from a
  folder outside the checkout, without PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _copy_checkout(dest: Path) -> None:
    """Copy the checkout's tracked and untracked-not-ignored files to `dest`, symlinks as symlinks."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give a fresh venv with kpmobile installed from a wheel of this checkout (not editable)."""
    base = tmp_path_factory.mktemp("install")
    src, wheels, venv = base / "src", base / "wheels", base / "venv"
    _copy_checkout(src)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)], base, env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("kpmobile-*.whl")
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                 str(wheel)], base, env)
    assert done.returncode == 0, done.stderr[-3000:]
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base,
                     env).stdout.strip())
    (site / "zz_kpmobile_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _env(tmp: Path, adb_home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(KPMOBILE_HOME=str(tmp / "home"), COLUMNS="250")
    return env


def test_installed_package_holds_profiles_and_assets(installed: Path, tmp_path: Path) -> None:
    probe = ("import json, sys, kpmobile\n"
             "from kpmobile.paths import ASSETS_DIR, PROFILES_DIR\n"
             "from kpmobile.config import load_profiles\n"
             "print(json.dumps({'module': kpmobile.__file__, 'path': sys.path, 'profiles': str(PROFILES_DIR),\n"
             "  'assets': str(ASSETS_DIR), 'names': sorted(load_profiles()),\n"
             "  'scene': (ASSETS_DIR / 'pipeline_scene.ppm').is_file()}))\n")
    done = _run([str(installed / "bin" / "python"), "-c", probe], tmp_path, _env(tmp_path))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    site = str(installed.resolve())
    assert seen["module"].startswith(site) and seen["profiles"].startswith(site) and seen["assets"].startswith(site)
    assert not Path(seen["profiles"]).is_symlink() and seen["scene"]
    assert {"generic", "kirin980", "sdm660", "virtual"} <= set(seen["names"])
    assert not any(p and Path(p).resolve() in (ROOT, ROOT / "kpmobile") for p in seen["path"])
    assert not any("/src" in p and p.startswith(str(installed.parent)) for p in seen["path"])


def test_installed_cli_lists_devices_and_benches_a_virtual_phone(installed: Path, adb_server: Any,
                                                                 virtual_phone_factory: Any, tmp_path: Path) -> None:
    phone = virtual_phone_factory()
    cli = str(installed / "bin" / "kpmobile")
    env = _env(tmp_path)
    listed = _run([cli, "devices", "--adb-server", adb_server.address, "--json"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    (device,) = [d for d in json.loads(listed.stdout) if d["serial"] == phone.serial]
    assert device["profile"] == "virtual"

    bench = _run([cli, "bench", "--adb-server", adb_server.address, "--no-virtual", "--device", phone.serial,
                  "--models", "pp-tinypose-128x96", "--threads", "1", "--warmup", "1", "--repeats", "2", "--quick",
                  "--db", str(tmp_path / "kp.db"), "--out", str(tmp_path / "out"), "--json"], tmp_path, env)
    assert bench.returncode == 0, bench.stderr[-3000:]
    result = json.loads(bench.stdout)
    assert result["ok"] == 1 and result["failed"] == 0
    # The column label is the profile's display name: found only when the profiles are.
    assert result["table"]["header"][1].startswith("Virtual phone")
