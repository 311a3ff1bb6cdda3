"""Start-up checks of the Python environment that would silently corrupt measurements."""

from __future__ import annotations

import os
import re
import sys

from kpmobile.errors import EnvironmentProblem


def package_version(name: str) -> str | None:
    """Give an installed distribution's version, or None.

    Every command checks this at start-up, so the wheel's `NAME-VERSION.dist-info` folder is
    looked for on sys.path first; importlib.metadata (some 50 ms to import) is the fallback."""
    found = _dist_info_version(name)
    if found is not None:
        return found
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _dist_info_version(name: str) -> str | None:
    wanted = re.compile(re.escape(re.sub(r"[-_.]+", "_", name).lower()) + r"-([^-]+)\.dist-info")
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            match = wanted.fullmatch(entry.lower())
            if match:
                return match.group(1)
    return None


def check_numpy(numpy_version: str | None = None, lite_version: str | None = None) -> None:
    """Refuse numpy >= 2 beside paddlelite: Tensor.from_numpy then silently writes zeros."""
    numpy_version = numpy_version if numpy_version is not None else package_version("numpy")
    lite_version = lite_version if lite_version is not None else package_version("paddlelite")
    if not numpy_version or not lite_version:
        return
    major = numpy_version.split(".")[0]
    if major.isdigit() and int(major) >= 2:
        raise EnvironmentProblem(
            f"numpy {numpy_version} is installed beside paddlelite {lite_version}, which then feeds zeros "
            "into every input",
            "run `.venv/bin/pip install 'numpy<1.24'` (or rerun scripts/setup)",
        )
