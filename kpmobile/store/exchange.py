"""Export a run (with its devices, cases and raw logs) to versioned JSON, and import it into another store."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kpmobile import __version__
from kpmobile.errors import ConfigError
from kpmobile.records import RunPlan
from kpmobile.store.db import CaseRow, RunRow, Store, add_samples
from kpmobile.store.models import EnergyDoc, ExportDoc
from kpmobile.store.ops import OpProfileRow
from kpmobile.typed import validate

SCHEMA = "kpmobile-run"
VERSION = 2  # 2: op_profiles (issue 17)

# version N -> N + 1. To read files of an older layout, add its step here;
# migrate() chains the steps up to VERSION.
Migration = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 files carried no operator profiles."""
    return {**data, "op_profiles": data.get("op_profiles", []), "version": 2}


MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}

_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunRow) if f.name not in ("pid", "pid_start"))
_CASE_FIELDS = tuple(f.name for f in dataclasses.fields(CaseRow) if f.name not in ("id", "samples_ms"))
_OP_FIELDS = tuple(f.name for f in dataclasses.fields(OpProfileRow) if f.name not in ("id", "kernels"))
_KERNEL_FIELDS = ("op_type", "kernel", "func", "calls", "avg_ms", "min_ms", "max_ms", "share")


def export_run(store: Store, run_id: str | None = None) -> dict[str, Any]:
    """Give one run (the latest when `run_id` is None) as a versioned, self-contained JSON document."""
    run = store.run(run_id)
    cases = store.cases(run.id)
    known = store.devices()
    fps = list(dict.fromkeys([*run.plan.devices, *(c.device_fp for c in cases)]))
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "exported": time.time(),
        "exported_by": f"kpmobile {__version__}",
        "run": {**{f.name: getattr(run, f.name) for f in dataclasses.fields(run)}, "plan": run.plan.to_json()},
        "devices": {fp: known[fp] for fp in fps if fp in known},
        "cases": [_case_json(c) for c in cases],
        "op_profiles": [_op_json(p) for p in store.op_profiles(run.id)],
    }


def _op_json(profile: OpProfileRow) -> dict[str, Any]:
    """Give a stored op profile as export JSON (no row id; its kernels slowest first)."""
    data = {k: getattr(profile, k) for k in _OP_FIELDS}
    data["kernels"] = [k.to_json() for k in profile.kernels]
    return data


def _case_json(case: CaseRow) -> dict[str, Any]:
    """Give a stored case as export JSON (no row id; samples as a list)."""
    data = {k: v for k, v in dataclasses.asdict(case).items() if k != "id"}
    data["samples_ms"] = list(case.samples_ms)
    return data


def write_export(data: dict[str, Any], path: Path) -> Path:
    """Give the path `data` was written to, as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_export(path: Path) -> dict[str, Any]:
    """Give the document in an export file, migrated to the current version and checked."""
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", "pass the file `runs export` wrote") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not UTF-8 JSON ({exc})", "pass the file `kpmobile runs export` wrote") from exc
    return migrate(data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number kpmobile stores")


def migrate(data: Any) -> dict[str, Any]:
    """Give `data` upgraded step by step to the current version and checked; refuse unknown versions."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(f"not a {SCHEMA} export (no \"schema\": \"{SCHEMA}\" field)",
                          "pass a file written by `kpmobile runs export`")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"{SCHEMA} export has no whole-number version (got {ascii(version)})",
                          "re-export the run with `kpmobile runs export`")
    if version > VERSION:
        raise ConfigError(f"{SCHEMA} export is version {version}, newer than this kpmobile reads ({VERSION})",
                          "upgrade kpmobile on this host, or export with the older kpmobile")
    while version < VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ConfigError(f"{SCHEMA} export version {version} cannot be migrated (oldest readable: "
                              f"{min(MIGRATIONS, default=VERSION)})", "re-export the run with a newer kpmobile")
        data = step(dict(data))
        if data.get("version") != version + 1:
            raise ConfigError(f"migration from version {version} did not give version {version + 1}",
                              "report this as a kpmobile bug")
        version += 1
    check(data)
    checked: dict[str, Any] = data
    return checked


def check(data: dict[str, Any]) -> ExportDoc:
    """Give the export as its typed model; ConfigError naming the first bad field otherwise."""
    doc = validate(ExportDoc, data, f"{SCHEMA} v{VERSION} export", "import only files `kpmobile runs export` wrote")
    try:
        RunPlan.from_json(data["run"]["plan"])  # the reader every command uses must take it too
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ConfigError(f"{SCHEMA} export: run.plan does not read as a plan ({exc})",
                          "import only files `kpmobile runs export` wrote") from None
    for i, case in enumerate(doc.cases):
        if case.run_id not in (None, doc.run.id):
            raise ConfigError(f"{SCHEMA} export: case {i} belongs to run {case.run_id}, not {doc.run.id}",
                              "import only files `kpmobile runs export` wrote")
        if case.case_key != case.expected_key():
            raise ConfigError(f"{SCHEMA} export: case {i} key {ascii(case.case_key)} does not match its fields",
                              "import only files `kpmobile runs export` wrote")
        energy = (case.extra or {}).get("energy")
        if energy is not None:
            validate(EnergyDoc, energy, f"{SCHEMA} export: case {i} extra.energy",
                     "import only files `kpmobile runs export` wrote")
    for i, profile in enumerate(doc.op_profiles):
        if profile.run_id not in (None, doc.run.id):
            raise ConfigError(f"{SCHEMA} export: op profile {i} belongs to run {profile.run_id}, not {doc.run.id}",
                              "import only files `kpmobile runs export` wrote")
    return doc


def _canonical(data: dict[str, Any]) -> str:
    cases = sorted((_case_values(c) for c in data["cases"]), key=lambda c: str(c["case_key"]))
    run = {k: data["run"].get(k) for k in _RUN_FIELDS}
    run["plan"] = RunPlan.from_json(run["plan"]).to_json()  # an export of an older version reads the same
    ops = [{k: p.get(k) for k in (*_OP_FIELDS, "kernels") if k != "run_id"} for p in data.get("op_profiles") or ()]
    return json.dumps({"run": run, "cases": cases, "op_profiles": ops}, sort_keys=True)


def _case_values(case: dict[str, Any]) -> dict[str, Any]:
    out = {k: case.get(k) for k in _CASE_FIELDS}
    out["extra"] = out["extra"] or {}
    out["attempt"] = out["attempt"] or 1
    out["samples_ms"] = list(case.get("samples_ms") or ())
    return out


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    run_id: str
    cases: int
    devices_added: int
    already_present: bool


def import_run(store: Store, data: dict[str, Any]) -> ImportResult:
    """Give what importing `data` (an export document) into `store` did; the run keeps its id.

    A run id already in the store is refused unless the stored run is identical (then nothing
    is written). Device fingerprints already known are kept as they are. Case row ids are the
    store's own; a case is identified by (run id, case key).
    """
    data = migrate(data)
    run = data["run"]
    run_id = str(run["id"])
    if any(r.id == run_id for r in store.runs()):
        if _canonical(export_run(store, run_id)) == _canonical(data):
            return ImportResult(run_id, len(data["cases"]), 0, True)
        raise ConfigError(f"run {run_id} is already in {store.path} with different content",
                          "import into another store (--db), or delete the stored run first")
    known = store.devices()
    added = 0
    with store.transaction() as db:
        # The owner of an imported run is a process of another store: it holds nothing here.
        db.execute(
            "INSERT INTO runs(id, started, finished, status, command, host, kpmobile_version, plan, error)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, run["started"], run["finished"], run["status"], run["command"], run["host"],
             run["kpmobile_version"], json.dumps(run["plan"]), run.get("error")),
        )
        now = time.time()
        for fp, info in data.get("devices", {}).items():
            if fp in known:
                continue
            db.execute("INSERT OR IGNORE INTO devices(fingerprint, serial, info, first_seen, last_seen)"
                       " VALUES (?,?,?,?,?)", (fp, str(info.get("serial", "")), json.dumps(info), now, now))
            added += 1
        columns = ", ".join(_CASE_FIELDS)
        marks = ", ".join("?" for _ in _CASE_FIELDS)
        for case in data["cases"]:
            values = _case_values(case)
            values["run_id"] = run_id
            values["attempt"] = values["attempt"] or 1
            values["record"] = json.dumps(values["record"]) if values["record"] is not None else None
            values["extra"] = json.dumps(values["extra"])
            cur = db.execute(f"INSERT INTO cases({columns}) VALUES ({marks})", [values[k] for k in _CASE_FIELDS])
            add_samples(db, int(cur.lastrowid or 0), values["samples_ms"])
        for profile in data.get("op_profiles") or ():
            _insert_op_profile(db, run_id, profile)
    return ImportResult(run_id, len(data["cases"]), added, False)


def _insert_op_profile(db: sqlite3.Connection, run_id: str, profile: dict[str, Any]) -> None:
    """Store one exported op profile and its kernels (in the import's transaction)."""
    values = {**{k: profile.get(k) for k in _OP_FIELDS}, "run_id": run_id}
    cur = db.execute(f"INSERT INTO op_profiles({', '.join(_OP_FIELDS)}) VALUES ({', '.join('?' for _ in _OP_FIELDS)})",
                     [values[k] for k in _OP_FIELDS])
    pid = int(cur.lastrowid or 0)
    db.executemany(f"INSERT INTO op_times(profile_id, rank, {', '.join(_KERNEL_FIELDS)}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   [(pid, rank, *(k[f] for f in _KERNEL_FIELDS))
                    for rank, k in enumerate(profile.get("kernels") or ())])
