"""SQLite store of runs, cases (parsed numbers + raw logs) and device fingerprints."""

from kpmobile.store.db import CaseRow, RunRow, Store
from kpmobile.store.ops import OpProfileRow

__all__ = ["CaseRow", "OpProfileRow", "RunRow", "Store"]
