"""The one output helper: write reports to paths or stdout, atomically one by one or replaced as a set."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

STDOUT = "-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_output(path: str | os.PathLike[str], render: Callable[[TextIO], None], *, encoding: str = "utf-8") -> None:
    """Call `render(stream)` into `path` ('-' = stdout).

    The folder is created; the text goes to a temporary file in the same folder that is renamed over `path` only
    when rendering finished, so readers (a dashboard, a parallel `conformance report`) never see half a file and a
    failed render leaves the previous report untouched.
    """
    if str(path) == STDOUT:
        render(sys.stdout)
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as stream:
            render(stream)
        # mkstemp creates 0600; a report is meant to be read by others (CI artifacts, web servers).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | os.PathLike[str], text: str | bytes) -> None:
    """`write_output` for an already rendered text (`bytes` are UTF-8 already and written as they are)."""

    def render(stream: TextIO) -> None:
        if isinstance(text, bytes):
            stream.flush()
            stream.buffer.write(text)
        else:
            stream.write(text)

    write_output(path, render)


@dataclass(frozen=True)
class Staged:
    """A temporary file beside `target`, rendered but not yet moved into place."""

    target: Path
    tmp: Path


def stage(targets: Sequence[str | os.PathLike[str]]) -> list[Staged]:
    """Create one empty temporary file beside each target (folders created), for the renderers to fill."""
    staged: list[Staged] = []
    try:
        for path in targets:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            staged.append(Staged(target, Path(tmp)))
    except BaseException:
        discard(staged)
        raise
    return staged


def discard(staged: Sequence[Staged]) -> None:
    """Remove the temporary files; the targets stay as they were."""
    for item in staged:
        try:
            os.unlink(item.tmp)
        except FileNotFoundError:
            pass


def _backup(target: Path) -> Path | None:
    """A hard link to the current target, so a failed set replace can put it back (None: nothing to keep)."""
    if not target.is_file():
        return None
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
    os.close(fd)
    os.unlink(name)
    try:
        os.link(target, name)
    except OSError:  # no hard links here (some network or FAT filesystems): best effort
        return None
    return Path(name)


def commit(staged: Sequence[Staged]) -> None:
    """Move every staged file over its target. If one move fails, the targets already replaced get their old
    content back and the error propagates: readers see the old set or the new set, never a mix."""
    mode = 0o666 & ~_umask()
    done: list[tuple[Staged, Path | None]] = []
    backups: list[Path] = []
    try:
        for item in staged:
            os.chmod(item.tmp, mode)  # mkstemp creates 0600; reports are read by others (CI artifacts, web)
            backup = _backup(item.target)
            if backup is not None:
                backups.append(backup)
            os.replace(item.tmp, item.target)
            done.append((item, backup))
    except BaseException:
        for item, backup in reversed(done):
            if backup is not None:
                os.replace(backup, item.target)
            else:
                item.target.unlink(missing_ok=True)
        discard(staged)
        raise
    finally:
        for backup in backups:
            backup.unlink(missing_ok=True)


def write_outputs(items: Sequence[tuple[str | os.PathLike[str], Callable[[TextIO], None]]], *,
                  encoding: str = "utf-8") -> None:
    """Render every item into a temporary file, then replace all targets as a set: a render that fails midway
    leaves every previous report in place, none half new."""
    staged = stage([path for path, _ in items])
    try:
        for item, (_, render) in zip(staged, items, strict=True):
            with item.tmp.open("w", encoding=encoding, newline="\n") as stream:
                render(stream)
    except BaseException:
        discard(staged)
        raise
    commit(staged)
