"""The virtual phone's storage: a host folder standing in for /data/local/tmp, /sdcard, /proc and /sys."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from kpmobile.config import Profile
from kpmobile.devices import midr
from kpmobile.devices.identify import parse_cpu_list, parse_getprop
from kpmobile.devices.virtual_phone.emulation import ARM64_ABIS, EMULATED_PROP, Emulation, is_arm_abi
from kpmobile.errors import ConfigError
from kpmobile.paths import PROFILES_DIR
from kpmobile.records import CpuCluster
from kpmobile.textfile import read_text

# device path -> folder inside ROOT; longer device paths first so the regex prefers them.
MAPPED: tuple[tuple[str, str], ...] = (
    ("/storage/emulated/0", "sdcard"),
    ("/storage/self/primary", "sdcard"),
    ("/sys/devices/system/cpu", "sys/devices/system/cpu"),
    ("/sys/class/thermal", "sys/class/thermal"),
    ("/sys/class/power_supply", "sys/class/power_supply"),
    ("/data/local/tmp", "data/local/tmp"),
    ("/proc/cpuinfo", "proc/cpuinfo"),
    ("/sdcard", "sdcard"),
)
# A device path is rewritten only where it stands alone (not inside a longer word or path), so
# ROOT/... is never rewritten twice. The pattern starts with its "/" so that the regex engine skips
# ahead from slash to slash (every shell of a sweep goes through this, the ~4 KB case script too),
# then looks at the character before that slash.
_DEVICE_PATH = re.compile(
    r"/(?<![\w./~-]/)(" + "|".join(re.escape(dev[1:]) for dev, _ in MAPPED) + r")(?![\w.-])"
)
_SAFE_ROOT = re.compile(r"^[\w./+@%:,-]+$")
_PROP_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]\s*$")

# core name -> (CPU implementer, CPU part) as /proc/cpuinfo on arm64 shows them.
ARM_PARTS: dict[str, tuple[int, int]] = {
    "Cortex-A53": (0x41, 0xD03),
    "Cortex-A55": (0x41, 0xD05),
    "Cortex-A57": (0x41, 0xD07),
    "Cortex-A72": (0x41, 0xD08),
    "Cortex-A73": (0x41, 0xD09),
    "Cortex-A75": (0x41, 0xD0A),
    "Cortex-A76": (0x41, 0xD0B),
    "Cortex-A77": (0x41, 0xD0D),
    "Cortex-A78": (0x41, 0xD41),
    "Cortex-X1": (0x41, 0xD44),
    "Cortex-A510": (0x41, 0xD46),
    "Cortex-A710": (0x41, 0xD47),
    "Cortex-X2": (0x41, 0xD48),
    "Kryo 260 Gold": (0x51, 0x800),
    "Kryo 260 Silver": (0x51, 0x801),
    "Kryo 385 Gold": (0x51, 0x802),
    "Kryo 385 Silver": (0x51, 0x803),
    "Kryo 485 Gold": (0x51, 0x804),
    "Kryo 485 Silver": (0x51, 0x805),
}
_ARM_FEATURES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                 "lrcpc dcpop asimddp")
_X86_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
              "sse sse2 ht syscall nx lm constant_tsc rep_good nopl cpuid pni ssse3 fma cx16 sse4_1 sse4_2 "
              "movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm avx2 bmi1 bmi2")

_GETPROP_SCRIPT = """#!/bin/sh
# getprop of the kpmobile virtual phone: reads {props}
props='{props}'
if [ "$#" -eq 0 ]; then
  cat "$props"
  exit 0
fi
while IFS= read -r line; do
  case "$line" in
    "[$1]: ["*) value="${{line#"[$1]: ["}}"; printf '%s\\n' "${{value%]}}"; exit 0 ;;
  esac
done < "$props"
printf '%s\\n' "${{2-}}"
"""


def parse_getprop_dump(text: str) -> dict[str, str]:
    """Give the properties of an `adb shell getprop` dump (or a build.prop), as identification reads them."""
    return parse_getprop(text)


def force_x86_64(props: Mapping[str, str], abi: str = "x86_64") -> dict[str, str]:
    """Give the properties with every ABI property saying `abi` (x86_64: the host runs the binaries)."""
    return force_abis(props, (abi,))


def force_abis(props: Mapping[str, str], abis: tuple[str, ...]) -> dict[str, str]:
    """Give the properties with the ABI properties listing exactly `abis` (the first is the primary):
    the phone claims only what it can run."""
    abi = abis[0]
    bits64 = [a for a in abis if a in ("arm64-v8a", "x86_64")]
    bits32 = [a for a in abis if a not in bits64]
    out = dict(props)
    for key in list(out):
        if key.endswith("cpu.abi"):
            out[key] = abi
        elif key.endswith("cpu.abilist"):
            out[key] = ",".join(abis)
        elif key.endswith("cpu.abilist64"):
            out[key] = ",".join(bits64)
        elif key.endswith("cpu.abilist32"):
            out[key] = ",".join(bits32)
    out["ro.product.cpu.abi"] = abi
    out["ro.product.cpu.abilist"] = ",".join(abis)
    return out


def _clusters_of(profile: Profile) -> tuple[CpuCluster, ...]:
    if profile.clusters:
        return profile.clusters
    cores = tuple(range(min(os.cpu_count() or 2, 8)))
    return (CpuCluster(cores, "x86_64", 2000000),)


def cpuinfo_text(clusters: tuple[CpuCluster, ...], hardware: str, arm: bool | None = None) -> str:
    """Give a /proc/cpuinfo for these clusters: arm64 style when they name ARM cores (or `arm`), else x86 style."""
    cores = sorted((core, cl) for cl in clusters for core in cl.cores)
    if arm is None:
        arm = any(cl.core_name in ARM_PARTS or midr.by_name(cl.core_name) for cl in clusters)
    blocks: list[str] = []
    for core, cl in cores:
        if arm:
            known = midr.by_name(cl.core_name)
            implementer, part = ARM_PARTS.get(cl.core_name) or ((known.implementer, known.part) if known
                                                                 else (0x41, 0x000))
            variant = known.variant if known is not None and known.variant is not None else 1
            blocks.append(
                f"processor\t: {core}\nBogoMIPS\t: 38.40\nFeatures\t: {_ARM_FEATURES}\n"
                f"CPU implementer\t: 0x{implementer:02x}\nCPU architecture: 8\nCPU variant\t: 0x{variant:x}\n"
                f"CPU part\t: 0x{part:03x}\nCPU revision\t: 0\n"
            )
        else:
            blocks.append(
                f"processor\t: {core}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                f"model name\t: {cl.core_name}\nstepping\t: 7\ncpu MHz\t\t: {cl.max_khz / 1000:.3f}\n"
                f"physical id\t: 0\nsiblings\t: {len(cores)}\ncore id\t\t: {core}\n"
                f"cpu cores\t: {len(cores)}\nflags\t\t: {_X86_FLAGS}\nbogomips\t: {cl.max_khz / 500:.2f}\n"
            )
    text = "\n".join(blocks)
    return text + (f"\nHardware\t: {hardware}\n" if arm else "\n")


def _profile_cpuinfo(profile: Profile) -> str | None:
    # A profile's `cpuinfo` is either the text itself or a file name beside the profiles.
    if not profile.cpuinfo:
        return None
    if "\n" in profile.cpuinfo:
        return profile.cpuinfo
    path = Path(profile.cpuinfo)
    path = path if path.is_absolute() else PROFILES_DIR / path
    return path.read_text() if path.is_file() else None


def cpufreq_clusters(spec: str) -> tuple[CpuCluster, ...]:
    """Give the cores and max kHz of a --cpufreq SPEC ("0-3:1804800,4-7:2419200,8-9"): the cores present
    and their cpufreq maxima, whatever /proc/cpuinfo lists (a hot-plugged phone lists fewer); an item
    without ":KHZ" is present with no cpufreq entry (an offline core on some kernels)."""
    clusters = []
    for item in spec.split(","):
        cores, colon, khz = item.strip().partition(":")
        if not parse_cpu_list(cores) or (colon and not khz.isdigit()):
            raise ConfigError(f"bad --cpufreq item '{item}'", "write CORES[:KHZ] items, e.g. 0-3:1804800,4-7:2419200")
        clusters.append(CpuCluster(parse_cpu_list(cores), "unknown", int(khz) if colon else 0))
    return tuple(clusters)


class Sandbox:
    """A folder that plays the phone's storage; device paths map into it."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        if not _SAFE_ROOT.match(str(self.root)):
            raise ConfigError(f"virtual phone root '{self.root}' holds characters unsafe in shell commands",
                              "use a folder whose path has no spaces or quotes")
        self.props: dict[str, str] = {}
        self.emulation: Emulation | None = None  # ARM phones: how aarch64 executables run here

    @property
    def props_file(self) -> Path:
        """Give the file the sandbox's getprop reads."""
        return self.root / "system" / "props.txt"

    def prepare(self, profile: Profile, getprop: Path | None = None, cpuinfo: Path | None = None,
                abi: str = "x86_64", cpufreq: str | None = None, emulation: Emulation | None = None) -> None:
        """Write the phone's folders, properties, getprop, /proc/cpuinfo, cpufreq and thermal files.

        An ARM `abi` makes an ARM phone: ARM /proc/cpuinfo, the ABIs `emulation` can run, and
        ro.kernel.qemu=1, because its ARM code runs under qemu (timings are emulated).
        """
        for _, rel in MAPPED:
            if rel != "proc/cpuinfo":
                (self.root / rel).mkdir(parents=True, exist_ok=True)
        for rel in ("proc", "system/bin", "data/local/tmp"):
            (self.root / rel).mkdir(parents=True, exist_ok=True)
        try:
            source = parse_getprop_dump(read_text(getprop, f"getprop dump {getprop}")) if getprop \
                else dict(profile.getprop)
        except OSError as exc:
            raise ConfigError(f"cannot read getprop dump {getprop} ({exc})", "give an existing file") from exc
        arm = is_arm_abi(abi)
        self.emulation = emulation if arm else None
        if arm:
            runnable = emulation.abis if emulation is not None else ARM64_ABIS
            self.props = force_abis(source, (abi, *[a for a in runnable if a != abi]))
            self.props[EMULATED_PROP] = "1"
        else:
            self.props = force_x86_64(source, abi)
        if not getprop:
            # Each sandbox is one phone: a serial of its own keeps two virtual phones apart (fingerprints),
            # and a fixed root keeps the same virtual phone the same phone across runs.
            self.props["ro.serialno"] = "virtual-" + hashlib.sha1(str(self.root).encode()).hexdigest()[:10]
        self.props_file.write_text("".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())))
        script = self.root / "system" / "bin" / "getprop"
        script.write_text(_GETPROP_SCRIPT.format(props=self.props_file))
        script.chmod(0o755)

        clusters = _clusters_of(profile)
        hardware = self.props.get("ro.board.platform") or self.props.get("ro.hardware") or "virtual"
        try:
            text = read_text(cpuinfo, f"cpuinfo file {cpuinfo}") if cpuinfo else _profile_cpuinfo(profile)
        except OSError as exc:
            raise ConfigError(f"cannot read cpuinfo file {cpuinfo} ({exc})", "give an existing file") from exc
        (self.root / "proc" / "cpuinfo").write_text(text or cpuinfo_text(clusters, hardware, arm=arm or None))
        self._write_cpufreq(cpufreq_clusters(cpufreq) if cpufreq else clusters)
        self._write_thermal(clusters)

    def _write_cpufreq(self, clusters: tuple[CpuCluster, ...]) -> None:
        base = self.root / "sys" / "devices" / "system" / "cpu"
        cores = sorted(core for cl in clusters for core in cl.cores)
        span = f"0-{cores[-1]}\n" if len(cores) > 1 else f"{cores[0]}\n"
        for name in ("possible", "present", "online"):
            (base / name).write_text(span)
        (base / "kernel_max").write_text(f"{max(cores[-1], 7)}\n")
        for cl in clusters:
            for core in cl.cores:
                if cl.max_khz <= 0:
                    continue  # present, without a cpufreq entry
                freq = base / f"cpu{core}" / "cpufreq"
                freq.mkdir(parents=True, exist_ok=True)
                (base / f"cpu{core}" / "online").write_text("1\n")
                low = max(cl.max_khz // 4, 300000)
                for name, value in (("cpuinfo_max_freq", cl.max_khz), ("cpuinfo_min_freq", low),
                                    ("scaling_max_freq", cl.max_khz), ("scaling_min_freq", low),
                                    ("scaling_cur_freq", cl.max_khz), ("scaling_governor", "schedutil")):
                    (freq / name).write_text(f"{value}\n")

    def _write_thermal(self, clusters: tuple[CpuCluster, ...]) -> None:
        base = self.root / "sys" / "class" / "thermal"
        zones = [(f"cpu{i}-thermal", 36000 + 1000 * i) for i in range(len(clusters))]
        zones.append(("battery", 31000))
        for n, (kind, temp) in enumerate(zones):
            zone = base / f"thermal_zone{n}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "type").write_text(f"{kind}\n")
            (zone / "temp").write_text(f"{temp}\n")

    def rewrite_command(self, command: str) -> str:
        """Give the command with every mapped device path pointing into the sandbox."""
        hosts = self._hosts
        return _DEVICE_PATH.sub(lambda m: hosts[m.group(1)], command)

    @functools.cached_property
    def _hosts(self) -> dict[str, str]:
        """Give each mapped device path (without its leading "/") -> where it lives in the sandbox."""
        return {dev[1:]: str(self.root / rel) for dev, rel in MAPPED}

    def host_path(self, device_path: str) -> Path | None:
        """Give where a device path lives in the sandbox, or None for paths the phone does not map."""
        if not device_path.startswith("/"):
            return None
        norm = os.path.normpath(re.sub(r"/+", "/", device_path))
        for dev, rel in MAPPED:
            if norm == dev or norm.startswith(dev + "/"):
                host = self.root / rel / norm[len(dev):].lstrip("/")
                real = os.path.realpath(host)
                if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
                    return None  # a symlink leading out of the sandbox
                return host
        return None

    def shell_env(self) -> dict[str, str]:
        """Give the environment of shell commands: getprop first on PATH, HOME and TMPDIR in the sandbox."""
        env = dict(os.environ)
        env["PATH"] = f"{self.root / 'system' / 'bin'}:{env.get('PATH') or '/usr/bin:/bin'}"
        env["KPMOBILE_VIRTUAL_ROOT"] = str(self.root)
        env["HOME"] = str(self.root)
        env["TMPDIR"] = str(self.root / "data" / "local" / "tmp")
        if self.emulation is not None:
            env.update(self.emulation.env())
        return env

    def used_bytes(self, skip: Path | None = None) -> int:
        """Give the total size of the regular files in the sandbox, leaving out `skip`."""
        total = 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                path = os.path.join(folder, name)
                if skip is not None and path == str(skip):
                    continue
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_mode & 0o170000 == 0o100000:
                    total += st.st_size
        return total
