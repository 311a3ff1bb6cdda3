"""Framed device streams: the real snippets run under /bin/sh here, parsed back byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kpmobile.devices import android, framing, identify
from kpmobile.errors import ParseError


def _sh(script: str, cwd: Path) -> bytes:
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, cwd=cwd, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bodies_come_back_byte_for_byte(tmp_path: Path) -> None:
    f = framing.Framer()
    (tmp_path / "no-newline.txt").write_bytes(b"last line without newline")
    (tmp_path / "log.txt").write_bytes(b"a\n\n=KP1 0123456789abcdef fake\nb\n")  # another nonce's header
    script = "; ".join([
        f.command("hello", "printf 'two\\nlines\\n'"),
        f.file("nonl", "no-newline.txt"),
        f.file("log", "log.txt"),
        f.file("gone", "missing.txt"),
        f.command("empty", "true"),
        f.end(),
    ])
    frames = framing.parse_frames(_sh(script, tmp_path), f.nonce)
    assert frames.complete
    assert frames.sections["hello"] == b"two\nlines\n"
    assert frames.sections["nonl"] == b"last line without newline"
    assert frames.sections["log"] == (tmp_path / "log.txt").read_bytes()
    assert frames.sections["gone"] is None and not frames.present("gone")
    assert frames.sections["empty"] == b""


def test_a_cut_stream_is_not_complete_and_junk_is_refused() -> None:
    f = framing.Framer()
    cut = f"=KP1 {f.nonce} a\nbody\n=KP1 {f.nonce} b\npart".encode()
    frames = framing.parse_frames(cut, f.nonce)
    assert not frames.complete
    assert frames.sections == {"a": b"body", "b": b"part"}
    with pytest.raises(ParseError):
        framing.parse_frames(b"/system/bin/sh: syntax error\n", f.nonce)


def test_names_and_nonces_are_checked() -> None:
    with pytest.raises(ValueError):
        framing.Framer("x; rm -rf /")
    with pytest.raises(ValueError):
        framing.Framer().header("bad name")
    with pytest.raises(ValueError):
        framing.Framer().header("end")


def test_identity_script_under_sh_gives_props_cores_and_freqs(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    for core, khz in ((0, 1800000), (1, 1800000), (2, 2400000)):
        (cpu / f"cpu{core}" / "cpufreq").mkdir(parents=True)
        (cpu / f"cpu{core}" / "cpufreq" / "cpuinfo_max_freq").write_text(f"{khz}\n")
    (cpu / "present").write_text("0-2\n")
    (tmp_path / "cpuinfo").write_text("".join(
        f"processor\t: {c}\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n"
        for c, part in ((0, "0xd05"), (1, "0xd05"), (2, "0xd0b"))))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "getprop").write_text("#!/bin/sh\nprintf '[ro.product.model]: [Pixel 7]\\n[ro.soc.model]: [x]\\n'\n")
    (bin_dir / "getprop").chmod(0o755)
    f = framing.Framer()
    script = (android.identity_script(f).replace("/sys/devices/system/cpu", str(cpu))
              .replace("/proc/cpuinfo", str(tmp_path / "cpuinfo")))
    found = android.parse_identity(_sh(f"PATH={bin_dir}:$PATH; {script}", tmp_path), f.nonce)
    assert found.props == {"ro.product.model": "Pixel 7", "ro.soc.model": "x"}
    assert found.cpuinfo == (tmp_path / "cpuinfo").read_text() and found.present.strip() == "0-2"
    assert len(found.cpufreq.splitlines()) == 3
    ident = identify.identify_cpu(found.props, found.cpuinfo, found.present, found.cpufreq)
    assert [(c.cores, c.core_name, c.max_khz) for c in ident.clusters] == [
        ((0, 1), "Cortex-A55", 1800000), ((2,), "Cortex-A76", 2400000)]


def test_files_at_once_frames_present_and_missing_files_in_one_cat(tmp_path: Path) -> None:
    f = framing.Framer()
    (tmp_path / "first").write_bytes(f"=KP1 {f.nonce} head\nh\n".encode())
    (tmp_path / "a.txt").write_bytes(b"a body\nno newline")
    script = f.files_at_once("first", [("gone", "missing.txt"), ("a", "a.txt"), ("also-gone", "nope")], "hdr")
    frames = framing.parse_frames(_sh(script, tmp_path), f.nonce)
    assert frames.complete
    assert frames.sections == {"head": b"h", "gone": None, "a": b"a body\nno newline", "also-gone": None}
    assert sorted(p.name for p in tmp_path.glob("hdr.*")) == ["hdr.0", "hdr.1", "hdr.2", "hdr.3"]
