"""Build the one self-contained file of a pushed runner by splicing in the shared sources it imports.

A runner (`lite_runner.py`, `pipeline_runner.py`) imports the stdlib-only modules it shares with
the rest of kpmobile (`kpmobile.nbfile`, `kpmobile.runners.runner_common`) with plain
`from kpmobile.X import a, b` statements, so it runs from the checkout and is type-checked like
any module. The pushed file is
built at push time by splicing, not zipapp: each such import statement is replaced by the source
of module X (without its docstring and `from __future__` line), once per module, between marker
comments. The result is one readable text file needing only stdlib, numpy and paddlelite; a
splice that would not stand alone (a renamed import, a shared module importing kpmobile) is
refused with ValueError.
"""

from __future__ import annotations

import ast
from pathlib import Path

SHARED_MODULES = ("kpmobile.nbfile", "kpmobile.runners.runner_common")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the kpmobile package


def _module_file(module: str) -> str:
    """Give the file of a shared module relative to kpmobile's parent, e.g. kpmobile/nbfile.py."""
    return "/".join(module.split(".")) + ".py"


def _shared_body(module: str) -> str:
    """Give the source of a shared module from its first statement after the docstring and
    `from __future__` import; ValueError if it imports kpmobile."""
    text = (_PACKAGE_ROOT.parent / _module_file(module)).read_text(encoding="utf-8")
    tree = ast.parse(text)
    first = 0
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt is tree.body[0]:
            first = stmt.end_lineno or 0
        elif isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            first = stmt.end_lineno or 0
        else:
            break
    for node in ast.walk(tree):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        if any(_is_kpmobile(name) for name in names):
            raise ValueError(f"{_module_file(module)} imports kpmobile: a shared runner module must be stdlib only")
    return "\n".join(text.splitlines()[first:]).strip("\n") + "\n"


def _is_kpmobile(module: str) -> bool:
    return module == "kpmobile" or module.startswith("kpmobile.")


def spliced_files(source: Path) -> list[Path]:
    """Give the files `standalone_source(source)` may read: the runner and every shared module."""
    return [source, *(_PACKAGE_ROOT.parent / _module_file(m) for m in SHARED_MODULES)]


def standalone_source(source: Path) -> str:
    """Give the text of runner `source` with its `from kpmobile.X import ...` statements
    replaced by the shared modules' sources; ValueError when it cannot stand alone."""
    text = source.read_text(encoding="utf-8")
    lines = text.splitlines()
    spans: list[tuple[int, int, str | None]] = []  # (first line, last line, module to insert or None)
    done: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import) and any(_is_kpmobile(a.name) for a in node.names):
            raise ValueError(f"{source.name} line {node.lineno}: write `from kpmobile.X import name` to share code")
        if not isinstance(node, ast.ImportFrom) or not _is_kpmobile(node.module or ""):
            continue
        module = node.module or ""
        if module not in SHARED_MODULES or node.col_offset != 0:
            raise ValueError(f"{source.name} line {node.lineno} imports {module}: a pushed runner may import "
                             f"only {', '.join(SHARED_MODULES)}, at the top level")
        if any(alias.asname for alias in node.names):
            raise ValueError(f"{source.name} renames an import from {module}: the splice keeps names as they are")
        spans.append((node.lineno, node.end_lineno or node.lineno, None if module in done else module))
        done.add(module)
    spans.sort()
    out: list[str] = []
    last = 0
    for first, end, shared in spans:
        out.extend(lines[last:first - 1])
        if shared is not None:
            out.append(f"# --- spliced from {_module_file(shared)} ---")
            out.extend(_shared_body(shared).splitlines())
            out.append(f"# --- end of {_module_file(shared)} ---")
        last = end
    out.extend(lines[last:])
    return "\n".join(out) + "\n"
