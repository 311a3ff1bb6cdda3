"""A virtual phone: the device side of adb on 127.0.0.1, for tests and demos without hardware.

`serve()` (server.py) runs it in this process; `start_virtual_phone()` (launch.py) runs it as a
subprocess and waits until it listens. Shell commands run with /bin/sh in a sandbox folder that
stands in for the phone's storage.
"""
