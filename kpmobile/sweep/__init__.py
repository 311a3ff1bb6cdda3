"""Plan and execute sweeps: models x devices x threads, storing after every case."""
