"""Start-up checks of the Python environment that would silently corrupt measurements."""

from __future__ import annotations

from importlib import metadata

from kpmobile.errors import EnvironmentProblem


def package_version(name: str) -> str | None:
    """Give an installed distribution's version, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
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
