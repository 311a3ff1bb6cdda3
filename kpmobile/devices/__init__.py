"""Devices kpmobile measures on: phones through adb, the host, and the virtual phone."""
