"""SQLite store of runs, cases (parsed numbers + raw logs) and device fingerprints."""

from kpmobile.store.db import CaseRow, RunBusy, RunRow, Store
from kpmobile.store.errors import StoreError

__all__ = ["CaseRow", "RunBusy", "RunRow", "Store", "StoreError"]
