"""How the ARM virtual phone runs aarch64 executables: an exec shim that hands them to qemu-aarch64.

binfmt_misc is not mounted on the machines kpmobile is tested on, so `./benchmark_bin` alone gives
"Exec format error". The phone's shell therefore runs with a small LD_PRELOAD library (built here
with the host's C compiler, cached by source hash) that wraps execve/execv/execvp/execvpe and
posix_spawn(p). Whatever shell form a command uses (`./b`, an absolute path, `cd d && ./b`,
`sh -c`, `exec`, `timeout 10 ./b`), the program is started through one of those calls, and:

- an aarch64 ELF is started as `qemu-aarch64 -L /usr/aarch64-linux-gnu -U LD_PRELOAD -0 ARGV0 FILE ARGS`;
- any other ELF inside the phone's sandbox fails as it does in Android's shell, mksh (exec.c:
  execve gives ENOEXEC, scriptexec() finds ELF magic and calls errorf, so the status is 1):
  `/system/bin/sh: FILE: not executable: 64-bit ELF file`, exit 1;
- a script inside the sandbox whose interpreter is neither the phone's shell nor a file in the
  sandbox (kpmobile's `#!python` runner) fails as mksh reports a failed execve other than
  ENOEXEC (errorfx(126, ...)): `/system/bin/sh: FILE: No such file or directory`, exit 126.

Programs outside the sandbox (the host's /bin/sh, md5sum, cat, ...) are the phone's own system
binaries and run unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kpmobile.errors import ConfigError

ARM64_ABIS = ("arm64-v8a",)
ARM32_ABIS = ("armeabi-v7a", "armeabi")
QEMU_AARCH64 = "qemu-aarch64"
AARCH64_PREFIX = Path("/usr/aarch64-linux-gnu")
QEMU_ARM = "qemu-arm"
ARMHF_PREFIX = Path("/usr/arm-linux-gnueabihf")
DEBIAN_PACKAGES = ("qemu-user", "libc6-arm64-cross", "libstdc++6-arm64-cross", "libgomp1-arm64-cross",
                   "libgcc-s1-arm64-cross")
# The Android emulator's property saying the device runs under qemu. kpmobile reads it to mark
# timings "emulated"; the ARM virtual phone sets it because its ARM code runs under qemu-user.
EMULATED_PROP = "ro.kernel.qemu"

_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

/* 0: run as is; 1: through qemu (argv rewritten); 2: not executable (ELF of another machine);
   3: interpreter missing on the phone */
static int classify(const char *path, const char **qemu, const char **prefix, int *elf_class) {
    char head[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, head, sizeof head - 1);
    close(fd);
    if (n < 4) return 0;
    head[n] = 0;
    const char *root = getenv("KPMOBILE_VIRTUAL_ROOT");
    char real[PATH_MAX];
    int inside = 0;
    if (root && realpath(path, real)) {
        size_t len = strlen(root);
        inside = strncmp(real, root, len) == 0 && real[len] == '/';
    }
    if (memcmp(head, "\177ELF", 4) == 0 && n >= 20) {
        int machine = (unsigned char)head[18] | ((unsigned char)head[19] << 8);
        *elf_class = head[4];
        if (machine == 183 && getenv("KPMOBILE_QEMU_AARCH64")) {
            *qemu = getenv("KPMOBILE_QEMU_AARCH64");
            *prefix = getenv("KPMOBILE_QEMU_AARCH64_PREFIX");
            return 1;
        }
        if (machine == 40 && getenv("KPMOBILE_QEMU_ARM")) {
            *qemu = getenv("KPMOBILE_QEMU_ARM");
            *prefix = getenv("KPMOBILE_QEMU_ARM_PREFIX");
            return 1;
        }
        return inside ? 2 : 0;
    }
    if (inside && head[0] == '#' && head[1] == '!') {
        char *p = head + 2;
        while (*p == ' ' || *p == '\t') p++;
        char *end = p;
        while (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') end++;
        *end = 0;
        if (strcmp(p, "/bin/sh") == 0 || strcmp(p, "/system/bin/sh") == 0) return 0;
        if (realpath(p, real) && root && strncmp(real, root, strlen(root)) == 0) return 0;
        return 3;
    }
    return 0;
}

static char **qemu_argv(const char *qemu, const char *prefix, const char *path, char *const argv[]) {
    int argc = 0;
    while (argv && argv[argc]) argc++;
    char **out = calloc((size_t)argc + 10, sizeof *out);
    if (!out) return NULL;
    int i = 0;
    out[i++] = (char *)qemu;
    if (prefix && *prefix) { out[i++] = "-L"; out[i++] = (char *)prefix; }
    out[i++] = "-U"; out[i++] = "LD_PRELOAD";
    out[i++] = "-0"; out[i++] = (char *)(argc ? argv[0] : path);
    out[i++] = (char *)path;
    for (int k = 1; k < argc; k++) out[i++] = argv[k];
    out[i] = NULL;
    return out;
}

static void refuse(const char *path, int verdict, int elf_class) {
    char msg[PATH_MAX + 96];
    int len;
    const char *root = getenv("KPMOBILE_VIRTUAL_ROOT");
    if (root && strncmp(path, root, strlen(root)) == 0 && path[strlen(root)] == '/')
        path += strlen(root);  /* the device path, as the phone's shell names it */
    if (verdict == 2)
        len = snprintf(msg, sizeof msg, "/system/bin/sh: %s: not executable: %s-bit ELF file\n", path,
                       elf_class == 1 ? "32" : "64");
    else
        len = snprintf(msg, sizeof msg, "/system/bin/sh: %s: No such file or directory\n", path);
    if (len > 0) { ssize_t w = write(2, msg, (size_t)len); (void)w; }
}

static int do_execve(const char *path, char *const argv[], char *const envp[]) {
    static execve_fn real;
    if (!real) real = (execve_fn)dlsym(RTLD_NEXT, "execve");
    const char *qemu = NULL, *prefix = NULL;
    int elf_class = 2;
    int verdict = classify(path, &qemu, &prefix, &elf_class);
    if (verdict == 1) {
        char **argv2 = qemu_argv(qemu, prefix, path, argv);
        if (!argv2) { errno = ENOMEM; return -1; }
        int rc = real(qemu, argv2, envp);
        free(argv2);
        return rc;
    }
    if (verdict >= 2) {
        refuse(path, verdict, elf_class);
        _exit(verdict == 2 ? 1 : 126);  /* mksh: errorf (1) / errorfx(126, ...) */
    }
    return real(path, argv, envp);
}

int execve(const char *path, char *const argv[], char *const envp[]) { return do_execve(path, argv, envp); }
int execv(const char *path, char *const argv[]) { return do_execve(path, argv, environ); }

static int search_exec(const char *file, char *const argv[], char *const envp[]) {
    if (strchr(file, '/')) return do_execve(file, argv, envp);
    const char *path = getenv("PATH");
    if (!path) path = "/bin:/usr/bin";
    char buf[PATH_MAX];
    const char *p = path;
    while (1) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len == 0) snprintf(buf, sizeof buf, "./%s", file);
        else snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, file);
        if (access(buf, X_OK) == 0) {
            int rc = do_execve(buf, argv, envp);
            if (errno != ENOENT && errno != EACCES && errno != ENOTDIR) return rc;
        }
        if (!colon) break;
        p = colon + 1;
    }
    errno = ENOENT;
    return -1;
}

int execvp(const char *file, char *const argv[]) { return search_exec(file, argv, environ); }
int execvpe(const char *file, char *const argv[], char *const envp[]) { return search_exec(file, argv, envp); }

static int do_spawn(const char *sym, pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                    const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    spawn_fn real = (spawn_fn)dlsym(RTLD_NEXT, sym);
    const char *qemu = NULL, *prefix = NULL;
    int elf_class = 2;
    int verdict = classify(path, &qemu, &prefix, &elf_class);
    if (verdict == 1) {
        char **argv2 = qemu_argv(qemu, prefix, path, argv);
        if (!argv2) return ENOMEM;
        spawn_fn plain = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
        int rc = plain(pid, qemu, fa, attr, argv2, envp);
        free(argv2);
        return rc;
    }
    if (verdict >= 2) return verdict == 2 ? ENOEXEC : ENOENT;
    return real(pid, path, fa, attr, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    return do_spawn("posix_spawn", pid, path, fa, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    if (!strchr(file, '/')) {
        const char *path = getenv("PATH");
        char buf[PATH_MAX];
        const char *p = path ? path : "/bin:/usr/bin";
        while (1) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            snprintf(buf, sizeof buf, "%.*s/%s", (int)len, len ? p : ".", file);
            if (access(buf, X_OK) == 0) return do_spawn("posix_spawn", pid, buf, fa, attr, argv, envp);
            if (!colon) break;
            p = colon + 1;
        }
    }
    return do_spawn("posix_spawnp", pid, file, fa, attr, argv, envp);
}
"""


@dataclass(frozen=True)
class Emulation:
    """What the ARM virtual phone needs to run ARM code: qemu, the target's libraries, the exec shim."""

    qemu_aarch64: str
    aarch64_prefix: Path
    shim: Path
    qemu_arm: str | None = None  # 32-bit ARM: only where qemu-arm and armhf libraries are installed
    armhf_prefix: Path | None = None

    @property
    def abis(self) -> tuple[str, ...]:
        """Give the ABIs this phone can run, as ro.product.cpu.abilist lists them."""
        return ARM64_ABIS + (ARM32_ABIS[:1] if self.qemu_arm else ())

    def env(self) -> dict[str, str]:
        """Give the environment variables that put the exec shim in force in the phone's shell."""
        env = {"LD_PRELOAD": str(self.shim), "KPMOBILE_QEMU_AARCH64": self.qemu_aarch64,
               "KPMOBILE_QEMU_AARCH64_PREFIX": str(self.aarch64_prefix)}
        if self.qemu_arm and self.armhf_prefix:
            env["KPMOBILE_QEMU_ARM"] = self.qemu_arm
            env["KPMOBILE_QEMU_ARM_PREFIX"] = str(self.armhf_prefix)
        return env


def is_arm_abi(abi: str) -> bool:
    """Tell whether an Android ABI name is an ARM one."""
    return abi in ARM64_ABIS or abi in ARM32_ABIS


def missing_parts() -> list[str]:
    """Give what this host lacks to run aarch64 executables (empty when it has everything)."""
    missing: list[str] = []
    if shutil.which(QEMU_AARCH64) is None:
        missing.append("qemu-aarch64 (Debian package qemu-user)")
    for lib, package in (("ld-linux-aarch64.so.1", "libc6-arm64-cross"), ("libstdc++.so.6", "libstdc++6-arm64-cross"),
                         ("libgomp.so.1", "libgomp1-arm64-cross"), ("libgcc_s.so.1", "libgcc-s1-arm64-cross")):
        if not (AARCH64_PREFIX / "lib" / lib).exists():
            missing.append(f"{AARCH64_PREFIX}/lib/{lib} ({package})")
    if shutil.which("cc") is None:
        missing.append("a C compiler, cc (Debian package gcc), to build the exec shim")
    return missing


def _install_hint() -> str:
    return "apt-get install -y " + " ".join(DEBIAN_PACKAGES) + " gcc"


def build_shim(folder: Path) -> Path:
    """Give the exec shim library, compiled into `folder` unless a build of the same source is there."""
    digest = hashlib.sha256(_SHIM_C.encode()).hexdigest()[:16]
    target = folder / f"kp-exec-shim-{digest}.so"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"kp-exec-shim-{digest}.c"
    source.write_text(_SHIM_C)
    tmp = folder / f".kp-exec-shim-{digest}-{os.getpid()}.so"
    try:
        res = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(source), "-ldl"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot build the ARM virtual phone's exec shim ({exc})", _install_hint()) from exc
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"cannot build the ARM virtual phone's exec shim: {last}", _install_hint())
    tmp.replace(target)  # atomic: two phones starting at once never load half a library
    return target


def prepare_emulation(folder: Path) -> Emulation:
    """Give the emulation of an ARM virtual phone, or fail naming the Debian packages to install."""
    missing = missing_parts()
    if missing:
        raise ConfigError("the ARM virtual phone cannot run aarch64 code here: missing " + "; ".join(missing),
                          _install_hint())
    qemu = shutil.which(QEMU_AARCH64) or QEMU_AARCH64
    qemu_arm = shutil.which(QEMU_ARM)
    armhf = ARMHF_PREFIX if qemu_arm and (ARMHF_PREFIX / "lib" / "ld-linux-armhf.so.3").exists() else None
    return Emulation(qemu, AARCH64_PREFIX, build_shim(folder), qemu_arm if armhf else None, armhf)
