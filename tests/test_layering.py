"""The import graph points down the floors: cli -> sweep -> (devices, runners, backends, zoo, store) ->
(records, stats, errors); report reads records and the store only; nothing imports cli.

Every import is counted, also those inside functions (they are how a module reaches a floor lazily).
Run as a script, it prints the upward edges and the sweep's line counts.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kpmobile"

# floor -> floors it must never import
FORBIDDEN: dict[str, set[str]] = {
    "sweep": {"report", "cli"},
    "report": {"sweep", "zoo", "devices", "cli"},
    "store": {"sweep", "report", "cli", "zoo", "devices", "runners", "backends"},
    "devices": {"sweep", "report", "cli", "store"},
    "runners": {"sweep", "report", "cli", "store"},
    "backends": {"sweep", "report", "cli", "store"},
    "zoo": {"sweep", "report", "cli", "store"},
    "records": {"sweep", "report", "cli", "store", "zoo", "devices", "runners", "backends"},
    "stats": {"sweep", "report", "cli", "store", "zoo", "devices", "runners", "backends"},
    "errors": {"sweep", "report", "cli", "store", "zoo", "devices", "runners", "backends"},
}
ALLOWED_TO_IMPORT_CLI = {"cli", "__main__"}


def floor(module: str) -> str:
    """Give the floor of a kpmobile module: its subpackage or top-level module name ("sweep", "records")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    """Give the dotted name of a file under the package."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Give the kpmobile modules a file imports anywhere in it (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("kpmobile"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            if base.startswith("kpmobile"):
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
    return out


def upward_edges() -> list[tuple[str, str]]:
    """Give every (importer, imported) pair that climbs a floor, sorted."""
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        src = module_name(path)
        src_floor = floor(src)
        for target in imports_of(path):
            dst_floor = floor(target)
            if dst_floor == src_floor or not dst_floor:
                continue
            if dst_floor in FORBIDDEN.get(src_floor, set()):
                edges.add((src, target))
            elif dst_floor == "cli" and src_floor not in ALLOWED_TO_IMPORT_CLI:
                edges.add((src, target))
    return sorted(edges)


def _edges_from(src_floor: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in upward_edges() if floor(a) == src_floor]


@pytest.mark.parametrize("src", ["sweep", "store", "records", "stats", "errors", "devices", "runners",
                                 "backends"])
def test_floor_does_not_import_upward(src: str) -> None:
    assert _edges_from(src) == []


def test_report_reads_records_and_the_store_only() -> None:
    assert _edges_from("report") == []


def test_nothing_imports_the_cli() -> None:
    assert [(a, b) for a, b in upward_edges() if floor(b) == "cli"] == []


# Inside the sweep, floors from the top: a module imports only modules on lower floors.
SWEEP_FLOORS = (
    ("run",),
    ("engine", "phone", "host"),
    ("prepare",),
    ("discover",),
    ("conditions", "faults", "pipeline", "reference", "config", "lease"),
    ("plan", "case", "settings"),
    ("costs", "flagvalues"),
)


def test_the_sweep_goes_down_its_floors() -> None:
    level = {name: i for i, names in enumerate(SWEEP_FLOORS) for name in names}
    climbs = []
    for path in (PACKAGE / "sweep").glob("*.py"):
        if path.name == "__init__.py":
            continue
        src = path.stem
        assert src in level, f"sweep/{path.name} has no floor in SWEEP_FLOORS"
        for target in imports_of(path):
            parts = target.split(".")
            if parts[:2] != ["kpmobile", "sweep"] or len(parts) < 3 or parts[2] not in level or parts[2] == src:
                continue
            if level[parts[2]] <= level[src]:
                climbs.append(f"sweep/{src} -> sweep/{parts[2]}")
    assert sorted(set(climbs)) == []


def test_the_checker_sees_an_upward_edge(tmp_path: Path) -> None:
    bad = tmp_path / "kpmobile" / "sweep" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from kpmobile.report.mobile import mobile_table\n    from ..cli import app\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "kpmobile"
    try:
        assert imports_of(bad) >= {"kpmobile.report.mobile", "kpmobile.cli"}
        assert ("kpmobile.sweep.bad", "kpmobile.report.mobile") in upward_edges()
    finally:
        PACKAGE = saved


if __name__ == "__main__":
    for a, b in upward_edges():
        print(f"upward: {a} -> {b}")
    sweep = sorted((PACKAGE / "sweep").glob("*.py"))
    for path in sweep:
        print(f"{len(path.read_text().splitlines()):6d} {path.relative_to(PACKAGE.parent)}")
    print(f"{sum(len(p.read_text().splitlines()) for p in sweep):6d} total")
    sys.exit(0)
