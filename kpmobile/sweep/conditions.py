"""The conditions a case ran under: cool-down before it, temperatures and big-core frequencies
before and after it, the cores its runner ran on, and the flags these raise.

What is measured goes into the case's `extra` JSON:
``{"before": snapshot, "after": snapshot, "cooldown": {...}, "cores": {...}, "flags": [...]}``.
Flags: ``hot-start`` (still above the profile's thermal limit after the longest wait),
``throttled`` (a big core's max frequency fell more than 15 % during the case) and
``core-mismatch`` (the runner ran outside the cores its power mode binds to).
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kpmobile.devices import telemetry
from kpmobile.errors import DeviceError
from kpmobile.records import CaseExtra, Telemetry


@dataclass
class Watch:
    """What was seen of a phone before a case, to compare with after it."""

    before: telemetry.Snapshot | None
    cooldown: dict[str, Any]
    flags: list[str] = field(default_factory=list)


def before_case(phone: telemetry.Shell, cores: tuple[int, ...], limit_c: float, cooldown_s: float,
                max_wait_s: float, stop: threading.Event | None = None) -> Watch:
    """Give the phone's state once it has rested `cooldown_s` and its hottest zone is below
    `limit_c` (or `max_wait_s` has passed); a phone whose sensors cannot be read is not waited for."""
    rested = 0.0
    if cooldown_s > 0:
        start = time.monotonic()
        while time.monotonic() - start < cooldown_s and not (stop is not None and stop.is_set()):
            time.sleep(min(0.2, cooldown_s))
        rested = time.monotonic() - start
    try:
        snap, waited = telemetry.wait_until_cool(phone, cores, limit_c, max_wait_s)
    except DeviceError:
        return Watch(None, {"rested_s": round(rested, 2), "waited_s": 0.0, "limit_c": limit_c,
                            "error": "thermal zones unreadable"})
    cooldown = {"rested_s": round(rested, 2), "waited_s": round(waited, 2), "limit_c": limit_c,
                "start_c": snap.hottest_c}
    flags = []
    if snap.hottest_c is not None and snap.hottest_c >= limit_c:
        flags.append("hot-start")
    return Watch(snap, cooldown, flags)


def after_case(phone: telemetry.Shell, cores: tuple[int, ...], watch: Watch, cores_file: str,
               expected: tuple[int, ...] | None) -> CaseExtra:
    """Give the case's extra: snapshots before and after, cool-down, sampled cores and flags."""
    flags = list(watch.flags)
    try:
        # One shell call for both: the snapshot, then the core samples after a marker line.
        mark = "--- kpmobile core samples ---"
        quoted = shlex.quote(cores_file)  # built from the run id: a shell word, never shell code
        text = phone.shell(f"{telemetry.snapshot_script(cores)}; echo '{mark}'; "
                           f"cat {quoted} 2>/dev/null; rm -f {quoted}", timeout=30).stdout
        head, _, samples = text.partition(mark + "\n")
        after = telemetry.parse_snapshot(head)
    except DeviceError as exc:
        return CaseExtra(tuple(flags), Telemetry(cooldown=watch.cooldown, error=exc.one_line()))
    before, drops = None, None
    if watch.before is not None:
        before = watch.before.to_json()
        found = telemetry.throttled(watch.before, after)
        if found:
            flags.append("throttled")
            drops = found
    check = telemetry.core_check(telemetry.parse_core_samples(samples), expected)
    if check["mismatch"]:
        flags.append("core-mismatch")
    return CaseExtra(tuple(flags), Telemetry(cooldown=watch.cooldown, before=before, after=after.to_json(),
                                             throttled_cores=drops, cores=check))
