"""Where kpmobile keeps its data files (device profiles, assets), its cache (models, .nb, ONNX) and its store.

The device profiles and assets live at the top of the repository (`device_profiles/`, `assets/`)
and ship inside the package as `kpmobile/device_profiles` and `kpmobile/assets`: in the checkout
these two are symlinks to the top-level folders, and a wheel holds the files themselves
(package-data in pyproject.toml). Both are found with `importlib.resources`, so an installed
kpmobile never reads the checkout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DEVICE_DIR = "/data/local/tmp/kpmobile"


def package_data_dir(name: str) -> Path:
    """Give the folder `name` shipped inside the kpmobile package (`device_profiles`, `assets`)."""
    folder = resources.files("kpmobile") / name
    # Profiles are globbed and assets pushed over adb: both need files on disk, not in a zip.
    return Path(str(folder))


PROFILES_DIR = package_data_dir("device_profiles")
ASSETS_DIR = package_data_dir("assets")


def cache_dir() -> Path:
    """Give the cache folder for built models and conversions ($KPMOBILE_CACHE or ~/.cache/kpmobile)."""
    base = os.environ.get("KPMOBILE_CACHE") or str(Path.home() / ".cache" / "kpmobile")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Give the folder holding the SQLite store ($KPMOBILE_HOME or ~/.local/share/kpmobile)."""
    base = os.environ.get("KPMOBILE_HOME") or str(Path.home() / ".local" / "share" / "kpmobile")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db() -> Path:
    """Give the default SQLite store path."""
    return data_dir() / "kpmobile.db"
