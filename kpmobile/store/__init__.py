"""SQLite store of runs, cases (parsed numbers + raw logs) and device fingerprints."""

from kpmobile.store.db import CaseRow, RunRow, Store

__all__ = ["CaseRow", "RunRow", "Store"]
