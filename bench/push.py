"""Compare adbutils push throughput (kpmobile's Phone.push) with `adb push` of the same 20 MB file.

Starts a private adb server and one virtual phone, pushes one 20 MB random file `--trials` times
each way, in pairs whose order alternates, and prints the command, the machine, the median
throughputs and, as its last line, adbutils MB/s / adb push MB/s (goal >= 0.8).

    .venv/bin/python bench/push.py [--mb 20] [--trials 9]
"""

from __future__ import annotations

import argparse
import os
import time

from _common import command_line, lab, load, machine, median

from kpmobile.devices import android


def main() -> None:
    """Print the command, the machine, both throughputs and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--trials", type=int, default=9)
    args = parser.parse_args()
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    with lab(1, "kpmobile-push-") as the_lab:
        serial = the_lab.phones[0].serial
        local = the_lab.tmp / "payload.bin"
        local.write_bytes(os.urandom(args.mb * 1024 * 1024))
        size_mb = local.stat().st_size / 1e6
        phone = android.Phone(serial, the_lab.server)
        remote = "/data/local/tmp/kpmobile-push/payload.bin"
        phone.check(["mkdir", "-p", "/data/local/tmp/kpmobile-push"])
        ours: list[float] = []
        adb: list[float] = []

        def by_adb() -> None:
            the_lab.adb("-s", serial, "push", str(local), remote)

        def by_phone() -> None:
            phone.push(local, remote)

        for trial in range(args.trials):
            # Each goes first every other trial: the second push overwrites the file the first one
            # just wrote, while the phone may still be writing it back, which must not always hit one side.
            pair = [(by_adb, adb), (by_phone, ours)]
            for push, into in pair if trial % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                push()
                into.append(size_mb / (time.perf_counter() - start))
        digest = phone.md5sums([remote]).get(remote)
        from kpmobile.sweep.prepare import file_md5

        if digest != file_md5(local):
            raise SystemExit("the pushed file differs from the local one")
        print(f"file: {size_mb:.1f} MB, {args.trials} pushes each way, in pairs whose order alternates; "
              "pushed copy verified by md5")
        print(f"adb push:           median {median(adb):.0f} MB/s ({', '.join(f'{v:.0f}' for v in adb)})")
        print(f"adbutils Phone.push: median {median(ours):.0f} MB/s ({', '.join(f'{v:.0f}' for v in ours)})")
        print(f"load after: {load()}")
        print(f"ratio {median(ours) / median(adb):.3f}")


if __name__ == "__main__":
    main()
