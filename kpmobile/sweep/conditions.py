"""The conditions a case ran under: cool-down before it, temperatures and big-core frequencies
before and after it, the cores its runner ran on, and the flags these raise.

What is measured goes into the case's `extra` JSON:
``{"before": snapshot, "after": snapshot, "cooldown": {...}, "cores": {...}, "flags": [...]}``.
Flags: ``hot-start`` (still above the profile's thermal limit after the longest wait),
``throttled`` (a big core's max frequency fell more than 15 % during the case, or was capped more
than 15 % below its cpuinfo max when the case began or ended: a phone that tripped between two cases
runs the next one throttled though nothing falls during it) and
``core-mismatch`` (the runner ran outside the cores its power mode binds to).
"""

from __future__ import annotations

from kpmobile.devices import casescript, telemetry
from kpmobile.records import CaseExtra, Telemetry


def from_stream(stream: casescript.CaseStream, limit_c: float, expected: tuple[int, ...] | None) -> CaseExtra:
    """Give the extra of a case run in one device round trip (kpmobile.devices.casescript), from its stream."""
    before = stream.before
    # The reading the cool-down wait ended on decides: the before-snapshot a moment later can read a
    # tenth of a degree higher on a phone still settling, though the wait saw it below the limit.
    start_c = stream.start_c if stream.start_c is not None else before.hottest_c
    flags = ["hot-start"] if start_c is not None and start_c >= limit_c else []
    cooldown = {"rested_s": stream.rest_s, "waited_s": stream.waited_s, "limit_c": limit_c,
                "start_c": start_c, "polls": stream.polls}
    if stream.after is None:
        return CaseExtra(tuple(flags), Telemetry(cooldown=cooldown,
                                                 error="the device stream ended before the after-snapshot"))
    drops = sorted(set(telemetry.throttled(before, stream.after)) | set(telemetry.capped(before))
                   | set(telemetry.capped(stream.after)))
    if drops:
        flags.append("throttled")
    check = telemetry.core_check(telemetry.parse_core_samples(stream.core_samples), expected)
    if check["mismatch"]:
        flags.append("core-mismatch")
    return CaseExtra(tuple(flags), Telemetry(cooldown=cooldown, before=before.to_json(), after=stream.after.to_json(),
                                             throttled_cores=drops or None, cores=check))
