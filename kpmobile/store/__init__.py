"""SQLite store of runs, cases (parsed numbers + raw logs) and device fingerprints."""

from kpmobile.store.db import CaseRow, RunBusy, RunRow, Store
from kpmobile.store.errors import StoreError
from kpmobile.store.ops import OpProfileRow

__all__ = ["CaseRow", "OpProfileRow", "RunBusy", "RunRow", "Store", "StoreError"]
