"""Find the JUnit inputs in one sorted step, read them, skip duplicates by content hash, name the envs."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from conformance.report import model as m
from conformance.report.junit_in import parse_bytes

MERGED_NAME = "merged.xml"
PARTIAL_SUFFIX = ".partial"  # reports/<env>.xml.partial: written while the run goes on, renamed at the end
# Files `conformance run` keeps beside reports/<env>.xml while it runs (<env>.lock is accepted too).
MARKERS = {
    ".lock": "lock marker {name} exists: a run may still be writing this env",
    ".journal": "results journal {name} exists: a run of this env is in progress, or died before writing its JUnit",
}


@dataclass
class Inputs:
    """Files to read, where they were searched for, and what looked wrong while finding them."""

    files: list[Path] = field(default_factory=list)
    searched: str = ""
    warnings: list[m.InputWarning] = field(default_factory=list)


def env_stem(path: Path) -> str:
    """Env name a file implies: base name without `.xml` (and without `.partial`)."""
    name = path.name
    if name.endswith(PARTIAL_SUFFIX):
        name = name[: -len(PARTIAL_SUFFIX)]
    return name[:-4] if name.lower().endswith(".xml") else name


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _expand(arg: str) -> tuple[list[Path], bool]:
    """Paths named by one argument (file, folder or glob) and whether it named anything at all."""
    if any(ch in arg for ch in "*?["):
        hits = [Path(p) for p in glob.glob(arg)]
        return [p for p in hits if p.is_file()], bool(hits)
    path = Path(arg)
    if path.is_dir():
        return sorted(path.glob("*.xml")) + sorted(path.glob("*.xml" + PARTIAL_SUFFIX)), True
    return ([path], True) if path.exists() else ([], False)


def find_inputs(args: list[str], default_dir: str = "reports", exclude: Path | None = None) -> Inputs:
    """Resolve the command-line inputs (default `<default_dir>/*.xml` minus our merged.xml) once, sorted."""
    out = Inputs()
    candidates: list[Path] = []
    if args:
        out.searched = " ".join(args)
        for arg in args:
            paths, found = _expand(arg)
            if not found:
                glob_like = any(ch in arg for ch in "*?[")
                out.warnings.append(m.InputWarning(arg, "matches no file" if glob_like else "no such file"))
            candidates += paths
    else:
        out.searched = os.path.join(default_dir, "*.xml")
        base = Path(default_dir)
        candidates = [p for p in base.glob("*.xml") if p.name != MERGED_NAME]
        # A run that died before renaming its partial file left results only there: read them too.
        for partial in base.glob("*.xml" + PARTIAL_SUFFIX):
            if not partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)]).exists():
                candidates.append(partial)
        for suffix in MARKERS:
            for marker in sorted(base.glob("*" + suffix)):
                stem = marker.name[: -len(suffix)]
                stem = stem[:-4] if stem.endswith(".xml") else stem
                if not (base / f"{stem}.xml").exists() and not (base / f"{stem}.xml{PARTIAL_SUFFIX}").exists():
                    out.warnings.append(m.InputWarning(_display(marker), f"env '{stem}': a run has written no "
                                                       f"results yet ({marker.name} exists)", env=stem))
    seen: dict[Path, Path] = {}
    excluded = exclude.resolve() if exclude is not None else None
    for path in candidates:
        real = path.resolve()
        if real == excluded:
            continue  # our own output, e.g. an explicit glob that also matches --output-dir/merged.xml
        if real in seen:
            out.warnings.append(m.InputWarning(_display(path), "named twice on the command line; read once"))
            continue
        seen[real] = path
        if not path.is_file():
            out.warnings.append(m.InputWarning(_display(path), "not a regular file; skipped"))
            del seen[real]
    out.files = sorted(seen.values(), key=lambda p: str(p))
    for path in out.files:
        out.warnings += _in_progress(path)
    return out


def _in_progress(path: Path) -> list[m.InputWarning]:
    """Warnings for markers that say a parallel run is still writing this env's file."""
    found = []
    stem = env_stem(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        found.append(m.InputWarning(_display(path), f"only the partial file of env '{stem}' exists: its run did "
                                                    "not finish (or is still running); env marked incomplete",
                                    env=stem))
    else:
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        if partial.exists():
            found.append(m.InputWarning(_display(path), f"{partial.name} exists beside it: a newer run may still "
                                                        "be writing this env; the finished file was used",
                                        env=stem))
    for suffix, text in MARKERS.items():
        for marker in sorted({path.with_name(f"{stem}.xml{suffix}"), path.with_name(stem + suffix)}):
            if marker.exists():
                found.append(m.InputWarning(_display(path), text.format(name=marker.name), env=stem))
    return found


def read_inputs(files: list[Path]) -> tuple[list[m.EnvResult], list[m.InputWarning]]:
    """Read every file (already sorted); a file with the same bytes as an earlier one is skipped."""
    envs: list[m.EnvResult] = []
    warnings: list[m.InputWarning] = []
    by_hash: dict[str, str] = {}
    for path in files:
        shown = _display(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            warnings.append(m.InputWarning(shown, f"cannot be read ({exc.strerror or exc}); not merged"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_hash:
            warnings.append(m.InputWarning(shown, f"same content as {by_hash[digest]}; duplicate skipped"))
            continue
        by_hash[digest] = shown
        parsed = parse_bytes(data, shown, env_stem(path), split_suites=False)
        if parsed.merged:
            warnings.append(m.InputWarning(shown, "is a merged report written by `conformance report`; pass "
                                                  "the per-env files instead (not merged, to avoid counting "
                                                  "twice)"))
            continue
        warnings += parsed.warnings
        for env in parsed.envs:
            env.sha256 = digest
            if path.name.endswith(PARTIAL_SUFFIX) and not env.incomplete:
                env.incomplete = "run did not finish: only the .partial file exists"
            envs.append(env)
    name_envs(envs)
    for w in warnings:
        if w.env is None:
            w.env = next((e.name for e in envs if e.path == w.path), None)
    return envs, warnings


def name_envs(envs: list[m.EnvResult]) -> None:
    """Make env names unique: colliding names get their parent folder, then a number, appended."""
    counts: dict[str, int] = {}
    for env in envs:
        counts[env.name] = counts.get(env.name, 0) + 1
    taken = {env.name for env in envs if counts[env.name] == 1}
    for env in envs:
        if counts[env.name] == 1:
            continue
        parent = Path(env.path).parent.name or "."
        candidate = f"{parent}/{env.name}"
        n = 2
        while candidate in taken:
            candidate = f"{parent}/{env.name}#{n}"
            n += 1
        taken.add(candidate)
        env.claimed = env.name
        env.name = candidate
