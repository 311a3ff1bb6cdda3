"""Plan and execute sweeps: models x devices x threads, storing after every case."""

from kpmobile.sweep.run import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]
