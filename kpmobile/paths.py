"""Where kpmobile keeps its cache (models, .nb, ONNX) and its store."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "device_profiles"
ASSETS_DIR = REPO_ROOT / "assets"
DEVICE_DIR = "/data/local/tmp/kpmobile"


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
