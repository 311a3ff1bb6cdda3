"""The virtual phone's command line, `serve [flags]`: one parser for both of its entries.

`python -m kpmobile.devices.virtual_phone serve ...` (what `launch.py` starts) and
`kpmobile virtual-phone serve ...` (the typer CLI forwards its arguments here) take the same flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from kpmobile.devices.virtual_phone.faults import RUNNER_FAULTS
from kpmobile.devices.virtual_phone.link import LINKS
from kpmobile.errors import KpError

PROG = "python -m kpmobile.devices.virtual_phone"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """Give the argument parser of the `serve` command."""
    parser = argparse.ArgumentParser(prog=prog, description="A device-side adb server on loopback.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a virtual phone until interrupted")
    serve.add_argument("--port", type=int, required=True, help="TCP port (0: any free one)")
    serve.add_argument("--profile", default="virtual", help="device profile name (device_profiles/*.toml)")
    serve.add_argument("--getprop", type=Path, help="a real `adb shell getprop` dump to serve")
    serve.add_argument("--auth", choices=("none", "accept", "deny"), default="none")
    serve.add_argument("--root", type=Path, help="sandbox folder (default: a temporary one)")
    serve.add_argument("--cpuinfo", type=Path, help="a /proc/cpuinfo to serve instead of the profile's")
    serve.add_argument("--cpufreq", metavar="SPEC",
                       help="cores present and their cpufreq max kHz, e.g. 0-3:1804800,4-7:2419200 "
                            "(default: the profile's clusters)")
    serve.add_argument("--host", default="127.0.0.1", help="only 127.0.0.1 is accepted")
    serve.add_argument("--disconnect-after", type=int, help="drop the device at the (N+1)th shell/sync service")
    serve.add_argument("--abi", default="x86_64",
                       help="ABI to report (default x86_64: runs x86 code natively; arm64-v8a: an ARM phone that "
                            "runs aarch64 executables through qemu-aarch64, its timings emulated)")
    serve.add_argument("--quota", type=int, help="storage quota in bytes; pushes beyond it fail")
    serve.add_argument("--runner-fault", choices=RUNNER_FAULTS, default="none",
                       help="fault the runner plays (switch it at run time in ROOT/faults/runner)")
    serve.add_argument("--link", choices=tuple(LINKS), default="loopback",
                       help="cable to play: usb2 (~35 MB/s, 1 ms round trip), usb3 (~300 MB/s, 0.3 ms) or loopback")
    serve.add_argument("--slowdown", type=float, default=0.0, metavar="PCT",
                       help="tests only: kpmobile's runners run PCT %% slower (switch it at run time in"
                            " ROOT/faults/slowdown); getprop and `devices --json` show it")
    serve.add_argument("--nice", type=int, default=0, metavar="N",
                       help="tests only: run every shell command (its session) at nice N, -20 to 19 (root for N < 0)")
    serve.add_argument("--cpus", metavar="LIST",
                       help="host CPUs the phone and all it runs keep to, e.g. 0 or 0-1,3 (default: all), "
                            "as a real phone's cores are its own")
    serve.add_argument("--battery", choices=("none", "ua-negative", "ma-positive"),
                       help="battery files in this vendor's convention (default: the profile's [physics], else"
                            " none): µA negative while discharging, or mA positive")
    serve.add_argument("--battery-status", choices=("Discharging", "Charging", "Full", "Not charging"),
                       default="Discharging", help="what power_supply/battery/status says")
    serve.add_argument("--offline", action="store_true",
                       help="never answer the host's CNXN: adb lists the phone as offline")
    serve.add_argument("-v", "--verbose", action="store_true", help="log connections and services")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Give the exit code of running the command line `argv` (argparse exits 2 on bad flags)."""
    from kpmobile.devices.virtual_phone.server import serve

    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        serve(args.port, profile=args.profile, getprop=args.getprop, auth=args.auth, root=args.root,
              cpuinfo=args.cpuinfo, host=args.host, disconnect_after=args.disconnect_after, quota=args.quota,
              abi=args.abi, runner_fault=args.runner_fault, offline=args.offline, cpufreq=args.cpufreq,
              link=args.link, slowdown=args.slowdown, nice=args.nice, battery=args.battery,
              battery_status=args.battery_status, cpus=args.cpus)
    except KpError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    return 0
