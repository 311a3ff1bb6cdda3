"""Engine adapters run inside the worker process; each imports its engine only when opened.

Nothing here is imported by the orchestrator: paddle, paddlelite and onnxruntime each live in
their own worker process.
"""
