"""Find the JUnit inputs in one sorted step, read them, skip duplicates by content hash, name and group the envs."""

from __future__ import annotations

import errno
import glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from conformance.protocol import properties
from conformance.protocol.files import JOURNAL_SUFFIX, LOCK_SUFFIX, PARTIAL_SUFFIX
from conformance.report import model as m
from conformance.report.junit_in import parse_file

MERGED_NAME = "merged.xml"
_GLOB_CHARS = "*?["
# Files `conformance run` keeps beside reports/<env>.xml while it runs (<env>.lock is accepted too).
MARKERS = {
    LOCK_SUFFIX: "lock marker {name} exists: a run may still be writing this env",
    JOURNAL_SUFFIX: "results journal {name} exists: a run of this env is in progress, or died before writing its JUnit",
}
# Files without an `env` property become one env per folder when they are one-per-class or one-per-target
# results (Maven Surefire, Gradle and Ant write TEST-<class>.xml; Bazel writes <target>/test.xml under
# bazel-testlogs), or when one folder holds more of them than a device matrix has envs.
PER_CLASS_PREFIX = "TEST-"
BAZEL_ROOT = "bazel-testlogs"
GROUP_MIN_FILES = 32


@dataclass
class Inputs:
    """Files to read, where they were searched for, and what looked wrong while finding them."""

    files: list[Path] = field(default_factory=list)
    searched: str = ""
    warnings: list[m.InputWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a folder argument gave ("8 files under reports/examples")


def env_stem(path: Path) -> str:
    """Env name a file implies: base name without `.xml` (and without `.partial`)."""
    name = path.name
    name = name.removesuffix(PARTIAL_SUFFIX)
    return name[:-4] if name.lower().endswith(".xml") else name


def _display(path: Path | str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _loops(path: Path) -> bool:
    """The path is a symlink whose chain never ends (ELOOP), which Path.is_file() reports as 'not a file'."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _scan_folder(base: Path, recursive: bool = False) -> tuple[list[Path], list[m.InputWarning]]:
    """`<base>/*.xml` (`<base>/**/*.xml` when `recursive`) without merged.xml, plus a `.partial` only where its
    finished file is absent (a run that died before renaming it); markers of runs that wrote nothing yet are
    warnings."""
    scan = base.rglob if recursive else base.glob
    found = [p for p in scan("*.xml") if p.name != MERGED_NAME]
    warnings = []
    for partial in scan("*.xml" + PARTIAL_SUFFIX):
        if not partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)]).exists():
            found.append(partial)
    for suffix in MARKERS:
        for marker in sorted(scan("*" + suffix)):
            stem = marker.name[: -len(suffix)]
            stem = stem.removesuffix(".xml")
            folder = marker.parent
            if not (folder / f"{stem}.xml").exists() and not (folder / f"{stem}.xml{PARTIAL_SUFFIX}").exists():
                warnings.append(m.InputWarning(_display(marker), f"env '{stem}': a run has written no results yet "
                                               f"({marker.name} exists)", env=stem, slug=m.W_IN_PROGRESS))
    return sorted(found), warnings


def _expand(arg: str) -> tuple[list[Path], list[m.InputWarning], bool]:
    """Paths named by one argument and whether it named anything: a path that exists is taken literally (so
    `results[cuda].xml` is that file, not a glob), a folder is scanned with its subfolders (`reports/examples` holds
    `h100x2/cuda.xml`), anything else with `*?[` is a glob where `**` spans any depth, the top level included."""
    if os.path.lexists(arg):
        path = Path(arg)
        if path.is_dir():
            files, warnings = _scan_folder(path, recursive=True)
            return files, warnings, True
        return [path], [], True
    if any(ch in arg for ch in _GLOB_CHARS):
        hits = [Path(p) for p in glob.glob(arg, recursive=True)]
        # Folders matched by a glob are not inputs; files and symlink loops go on (a loop gets its warning).
        return sorted(p for p in hits if p.is_file() or _loops(p)), [], bool(hits)
    return [], [], False


def find_inputs(args: list[str], default_dir: str = "reports", exclude: Path | None = None) -> Inputs:
    """Resolve the command-line inputs (default `<default_dir>/*.xml` minus our merged.xml) once, sorted."""
    out = Inputs()
    candidates: list[Path] = []
    if args:
        out.searched = " ".join(args)
        for arg in args:
            paths, warnings, found = _expand(arg)
            if os.path.isdir(arg) and not os.path.islink(arg):
                folders = len({p.parent for p in paths})
                out.notes.append(f"{arg}: {len(paths)} JUnit files in {folders} folder{'s' if folders != 1 else ''} "
                                 "(subfolders included)")
            if not found:
                glob_like = any(ch in arg for ch in _GLOB_CHARS)
                out.warnings.append(m.InputWarning(arg, "matches no file" if glob_like else "no such file",
                                                   slug=m.W_NO_SUCH_FILE))
            candidates += paths
            out.warnings += warnings
    else:
        out.searched = os.path.join(default_dir, "*.xml")
        candidates, out.warnings = _scan_folder(Path(default_dir))
    out.files = _unique_files(candidates, exclude, out.warnings)
    for path in out.files:
        out.warnings += _in_progress(path)
    return out


def _unique_files(candidates: list[Path], exclude: Path | None, warnings: list[m.InputWarning]) -> list[Path]:
    """Regular files among `candidates`, each once, sorted; loops and non-files become warnings."""
    seen: dict[str, Path] = {}
    excluded = os.path.realpath(exclude) if exclude is not None else None
    finished = {str(p) for p in candidates}
    for path in candidates:
        if path.name.endswith(PARTIAL_SUFFIX) and str(path)[: -len(PARTIAL_SUFFIX)] in finished:
            continue  # the finished file is read; its warning says the partial one exists

        if _loops(path):
            warnings.append(m.InputWarning(_display(path), "symlink loop (the link resolves to itself); skipped",
                                           slug=m.W_SYMLINK_LOOP))
            continue
        real = os.path.realpath(path)
        if real == excluded:
            continue  # our own output, e.g. an explicit glob that also matches --output-dir/merged.xml
        if real in seen:
            warnings.append(m.InputWarning(_display(path), "named twice on the command line; read once",
                                           slug=m.W_NAMED_TWICE))
            continue
        if not path.is_file():
            warnings.append(m.InputWarning(_display(path), "not a regular file; skipped", slug=m.W_NOT_A_FILE))
            continue
        seen[real] = path
    return sorted(seen.values(), key=str)


def _in_progress(path: Path) -> list[m.InputWarning]:
    """Warnings for markers that say a parallel run is still writing this env's file."""
    found = []
    stem = env_stem(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        found.append(m.InputWarning(_display(path), f"only the partial file of env '{stem}' was read: its run did "
                                                    "not finish (or is still running); env marked incomplete",
                                    env=stem, slug=m.W_IN_PROGRESS))
    else:
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        if partial.exists():
            found.append(m.InputWarning(_display(path), f"{partial.name} exists beside it: a newer run may still "
                                                        "be writing this env; the finished file was used",
                                        env=stem, slug=m.W_IN_PROGRESS))
    for suffix, text in MARKERS.items():
        for marker in sorted({path.with_name(f"{stem}.xml{suffix}"), path.with_name(stem + suffix)}):
            if marker.exists():
                found.append(m.InputWarning(_display(path), text.format(name=marker.name), env=stem,
                                            slug=m.W_IN_PROGRESS))
    return found


def _digest(path: Path) -> str:
    """sha256 of the file, read in blocks (hashlib.file_digest is 3.11+; a 300 MB input is never held whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_inputs(files: list[Path]) -> tuple[list[m.EnvResult], list[m.InputWarning]]:
    """Read every file (already sorted); a file with the same bytes as an earlier one is skipped."""
    envs: list[m.EnvResult] = []
    warnings: list[m.InputWarning] = []
    by_hash: dict[str, str] = {}
    for path in files:
        shown = _display(path)
        try:
            digest = _digest(path)
        except OSError as exc:
            warnings.append(m.InputWarning(shown, f"cannot be read ({exc.strerror or exc}); not merged",
                                           slug=m.W_UNREADABLE))
            continue
        if digest in by_hash:
            warnings.append(m.InputWarning(shown, f"same content as {by_hash[digest]}; duplicate skipped",
                                           slug=m.W_DUPLICATE_FILE))
            continue
        by_hash[digest] = shown
        parsed = parse_file(path, shown, env_stem(path), split_suites=False)
        if parsed.merged:
            warnings.append(m.InputWarning(shown, "is a merged report written by `conformance report`; pass "
                                                  "the per-env files instead (not merged, to avoid counting "
                                                  "twice)", slug=m.W_MERGED_INPUT))
            continue
        warnings += parsed.warnings
        for env in parsed.envs:
            env.sha256 = digest
            if path.name.endswith(PARTIAL_SUFFIX) and not env.incomplete:
                env.incomplete = "run did not finish: only the .partial file exists"
            envs.append(env)
    envs = group_envs(envs)
    name_envs(envs)
    owner = {path: env.name for env in envs for path in env.member_paths or [env.path]}
    for w in warnings:
        if w.env is None:
            w.env = owner.get(w.path)
    return envs, warnings


def _group_folder(env: m.EnvResult, crowded: set[str]) -> str | None:
    """The folder this env's file is grouped under, or None when it stays its own env."""
    if properties.ENV in env.properties:
        return None
    path = Path(env.path)
    parts = path.parts
    if path.name == "test.xml" and BAZEL_ROOT in parts:
        return str(Path(*parts[: parts.index(BAZEL_ROOT) + 1]))
    folder = str(path.parent)
    if path.name.startswith(PER_CLASS_PREFIX) or folder in crowded:
        return folder
    return None


def group_envs(envs: list[m.EnvResult]) -> list[m.EnvResult]:
    """Envs without an `env` property from per-class/per-target files (or a crowded folder): one env per folder,
    so 2,000 Surefire files are one column, not 2,000."""
    per_folder: dict[str, int] = {}
    for env in envs:
        if properties.ENV not in env.properties:
            folder = str(Path(env.path).parent)
            per_folder[folder] = per_folder.get(folder, 0) + 1
    crowded = {folder for folder, n in per_folder.items() if n > GROUP_MIN_FILES}
    groups: dict[str, list[m.EnvResult]] = {}
    out: list[m.EnvResult] = []
    for env in envs:
        group = _group_folder(env, crowded)
        if group is None:
            out.append(env)
        elif group not in groups:
            groups[group] = [env]
            out.append(env)  # placeholder, replaced below: keeps the first file's position
        else:
            groups[group].append(env)
    firsts = {id(members[0]): folder for folder, members in groups.items()}
    return [_merge_group(firsts[id(env)], groups[firsts[id(env)]]) if id(env) in firsts else env for env in out]


def _merge_group(folder: str, members: list[m.EnvResult]) -> m.EnvResult:
    """One env holding every member file's testcases, totals and (first-seen) properties."""
    if len(members) == 1 and not Path(members[0].path).name.startswith(PER_CLASS_PREFIX):
        return members[0]
    name = Path(folder).name or Path(folder).resolve().name or folder  # "." is named after the folder it is
    group = m.EnvResult(name=name, path=folder, files=len(members))
    group.sha256 = hashlib.sha256("".join(e.sha256 for e in members).encode()).hexdigest()
    incomplete = []
    for env in members:
        group.cases += env.cases
        group.tests += env.tests
        group.failures += env.failures
        group.errors += env.errors
        group.skipped += env.skipped
        for key, value in env.properties.items():
            group.properties.setdefault(key, value)
        group.timestamp = group.timestamp or env.timestamp
        group.hostname = group.hostname or env.hostname
        group.system_out += env.system_out
        group.system_err += env.system_err
        if env.incomplete:
            incomplete.append(f"{env.path}: {env.incomplete}")
    group.incomplete = "; ".join(incomplete)
    group.member_paths = [e.path for e in members]
    return group


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
