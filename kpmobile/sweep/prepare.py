"""Preparation: build the models, convert them for each target (cached by content hash), push to phones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kpmobile.errors import KpError
from kpmobile.filememo import recall, remember, remembered
from kpmobile.paths import DEVICE_DIR, cache_dir
from kpmobile.records import BenchCase, ModelSpec, OutputStat
from kpmobile.sweep import pipeline as pipe
from kpmobile.sweep.case import Counters, Progress
from kpmobile.sweep.discover import Target


@dataclass(frozen=True)
class Models:
    """The sweep's models built on the host: their folders and content hashes."""

    specs: dict[str, ModelSpec]
    dirs: dict[str, Path]
    hashes: dict[str, str]


def build_models(specs: dict[str, ModelSpec], progress: Progress) -> Models:
    """Give the sweep's models, built (or found in the zoo's cache)."""
    from kpmobile.zoo.build import ensure_model, model_hash

    dirs: dict[str, Path] = {}
    for name, spec in specs.items():
        progress.note(f"model {name}")
        dirs[name] = ensure_model(spec)
    return Models(dict(specs), dirs, {name: model_hash(d) for name, d in dirs.items()})


@dataclass(frozen=True)
class Staged:
    """What a phone's cases need on the device: its .nb files, reference outputs and pipeline files."""

    nb_remote: dict[str, str] = field(default_factory=dict)  # model name -> device path
    nb_hash: dict[str, str] = field(default_factory=dict)
    nb_local: dict[str, Path] = field(default_factory=dict)
    reference: dict[str, tuple[OutputStat, ...]] = field(default_factory=dict)  # model -> host output stats
    pipeline_files: tuple[pipe.PipelineFile, ...] = ()

    def files(self, target: Target) -> list[tuple[Path, str, int]]:
        """Give every file to push: (host path, device path, mode)."""
        out: list[tuple[Path, str, int]] = [(target.runner_local, target.runner_remote, 0o755)]
        out += [(self.nb_local[name], remote, 0o644) for name, remote in self.nb_remote.items()]
        out += [(f.local, f.remote, f.mode) for f in self.pipeline_files]
        return out


def stage_phones(targets: Sequence[Target], models: Models, precision: str, pipelines: Sequence[str],
                 threads: Sequence[int], counters: Counters, progress: Progress) -> dict[str, Staged]:
    """Give each working target (by fingerprint) its converted models, references and pipeline files."""
    from kpmobile.zoo.convert import check_nb_target, convert_nb

    refs = reference_outputs(models, progress)
    done: dict[tuple[str, str], tuple[Path, str]] = {}
    staged: dict[str, Staged] = {}
    for t in targets:
        if t.broken:
            continue
        nb_remote, nb_hash, nb_local = {}, {}, {}
        for name in models.specs:
            key = (name, t.backend)
            if key not in done:
                conv = convert_nb(models.dirs[name], t.backend, fp16=precision == "fp16")
                counters.converted(conv.cached)
                progress.note(f"{name} -> {t.backend} .nb: {'cached' if conv.cached else 'converted'}")
                check_nb_target(conv.path, t.info.abi or "")
                done[key] = (conv.path, conv.key)
            path, nb_key = done[key]
            nb_remote[name] = f"{DEVICE_DIR}/models/{name}-{nb_key[:12]}.nb"
            nb_hash[name] = nb_key
            nb_local[name] = path
        files = _pipeline_files(t, nb_local, models.dirs, pipelines, threads)
        staged[t.fp] = Staged(nb_remote, nb_hash, nb_local, dict(refs), tuple(files))
    return staged


def reference_outputs(models: Models, progress: Progress) -> dict[str, tuple[OutputStat, ...]]:
    """Give the host's output statistics of each model (x86 .nb, all-ones input); empty when none."""
    from kpmobile.sweep.reference import reference_stats
    from kpmobile.zoo.convert import convert_nb

    refs: dict[str, tuple[OutputStat, ...]] = {}
    for name, spec in models.specs.items():
        try:
            refs[name] = reference_stats(convert_nb(models.dirs[name], "x86").path, spec.input_shape)
        except KpError as exc:
            progress.note(f"{name}: no reference outputs ({exc.one_line()})")
            refs[name] = ()
    return refs


def _pipeline_files(t: Target, nb_local: dict[str, Path], model_dirs: dict[str, Path], pipelines: Sequence[str],
                    threads: Sequence[int]) -> list[pipe.PipelineFile]:
    """Give the files a target's pipeline cases need: kpmobile's runner, or PaddleDetection main's folders."""
    if not pipelines:
        return []
    if t.pipeline_mode == pipe.MODE_RUNNER:
        return pipe.runner_files()
    if t.pipeline_mode != pipe.MODE_MAIN:
        return []
    seen: dict[str, pipe.PipelineFile] = {}
    for p in pipelines:
        for n in threads:
            case = BenchCase(model=p, device=t.fp, threads=n, pipeline=p)
            files, _ = main_case_files(t, case, nb_local, model_dirs)
            for f in files:
                seen.setdefault(f.remote, f)
    return list(seen.values())


def main_case_files(t: Target, case: BenchCase, nb_local: dict[str, Path],
                    model_dirs: dict[str, Path]) -> tuple[list[pipe.PipelineFile], list[str]]:
    """Give the files and command line of a PaddleDetection-main pipeline case."""
    return pipe.main_files(Path(t.pipeline_runner[0]), case, nb_local, model_dirs, cache_dir() / "pipeline")


def push_files(target: Target, staged: Staged, counters: Counters, progress: Progress) -> None:
    """Push the runner and models whose md5 differs on the device; skip the rest."""
    files = staged.files(target)
    on_device = device_md5s(target, [remote for _, remote, _ in files])
    for local, remote, mode in files:
        if on_device.get(remote) == file_md5(local):
            counters.add(pushes_skipped=1)
            continue
        target.phone.push(local, remote, mode)
        counters.add(pushes=1)
        progress.note(f"{target.info.serial}: pushed {PurePosixPath(remote).name}")


def device_md5s(target: Target, remotes: Sequence[str]) -> dict[str, str]:
    """Give remote path -> md5 of the files on the phone, hashing only those written since they were
    last hashed.

    One `stat` gives each file's size, mtime, ctime and inode; a file whose identity is the one it
    had when it was hashed keeps that md5 (kpmobile.filememo, keyed by the phone and the path), as
    git's index and rsync's quick check trust a file's stat. The ctime changes with every write
    and cannot be set back, so nothing written since is missed. The rest are hashed in one more
    call, and their md5 remembered only when their ctime is older than the phone's clock at the
    hashing: a write within that same second could leave the identity as it was."""
    identities = target.phone.identities(remotes)
    key = f"phone-md5:{target.fp}:{target.info.serial}:"
    sums = {r: md5 for r, ident in identities.items() if (md5 := recall(key + r, ident)) is not None}
    unknown = [r for r in identities if r not in sums]
    if unknown:
        hashed, now = target.phone.md5sums_at(unknown)
        sums.update(hashed)
        if now is not None:
            remember((key + r, identities[r], md5) for r, md5 in hashed.items() if identities[r].ctime_s < now)
    return sums


def file_md5(path: Path) -> str:
    """Give a host file's md5 (remembered across runs while the file is unchanged: kpmobile.filememo)."""
    def compute() -> str:
        digest = hashlib.md5()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    return remembered(path, "md5", compute)


# the host's backends ------------------------------------------------------------------------
@dataclass
class HostArtifacts:
    """Per-model files the host backends run: the Paddle model, its x86 .nb and its ONNX export.

    Converted on first use, so a backend that is skipped converts nothing.
    """

    models: Models
    nb: dict[str, Path] = field(default_factory=dict)
    onnx: dict[str, Path] = field(default_factory=dict)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, engine) -> conversion key
    errors: dict[tuple[str, str], str] = field(default_factory=dict)

    def convert(self, model: str, engine: str, counters: Counters, progress: Progress) -> str | None:
        """Convert `model` for `engine` once ("lite" -> x86 .nb, "ort" -> ONNX); give why it failed, or None."""
        from kpmobile.zoo.convert import convert_nb, convert_onnx

        if engine == "paddle" or (model, engine) in self.keys:
            return None
        if (model, engine) in self.errors:
            return self.errors[(model, engine)]
        kind = "x86 .nb" if engine == "lite" else "ONNX"
        try:
            model_dir = self.models.dirs[model]
            conv = convert_nb(model_dir, "x86") if engine == "lite" else convert_onnx(model_dir)
        except KpError as exc:
            self.errors[(model, engine)] = exc.one_line()
            progress.note(f"{model}: {kind} conversion failed: {exc.one_line()}")
            return exc.one_line()
        counters.converted(conv.cached)
        progress.note(f"{model} -> {kind}: {'cached' if conv.cached else 'converted'}")
        (self.nb if engine == "lite" else self.onnx)[model] = conv.path
        self.keys[(model, engine)] = conv.key
        return None
