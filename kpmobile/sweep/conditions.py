"""The conditions a case ran under: cool-down before it, temperatures and big-core frequencies
before and after it, the cores its runner ran on, and the flags these raise.

What is measured goes into the case's `extra` JSON:
``{"before": snapshot, "after": snapshot, "cooldown": {...}, "cores": {...}, "flags": [...]}``.
Flags: ``hot-start`` (still above the profile's thermal limit after the longest wait),
``throttled`` (a big core's max frequency fell more than 15 % during the case) and
``core-mismatch`` (the runner ran outside the cores its power mode binds to).
"""

from __future__ import annotations

from kpmobile.devices import casescript, telemetry
from kpmobile.records import CaseExtra, Telemetry


def from_stream(stream: casescript.CaseStream, limit_c: float, expected: tuple[int, ...] | None) -> CaseExtra:
    """Give the extra of a case run in one device round trip (kpmobile.devices.casescript), from its stream."""
    before = stream.before
    flags = ["hot-start"] if before.hottest_c is not None and before.hottest_c >= limit_c else []
    cooldown = {"rested_s": stream.rest_s, "waited_s": stream.waited_s, "limit_c": limit_c,
                "start_c": before.hottest_c, "polls": stream.polls}
    if stream.after is None:
        return CaseExtra(tuple(flags), Telemetry(cooldown=cooldown,
                                                 error="the device stream ended before the after-snapshot"))
    drops = telemetry.throttled(before, stream.after)
    if drops:
        flags.append("throttled")
    check = telemetry.core_check(telemetry.parse_core_samples(stream.core_samples), expected)
    if check["mismatch"]:
        flags.append("core-mismatch")
    return CaseExtra(tuple(flags), Telemetry(cooldown=cooldown, before=before.to_json(), after=stream.after.to_json(),
                                             throttled_cores=drops or None, cores=check))
