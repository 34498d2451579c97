"""The one output helper: write a report to a path or stdout, atomically, never leaving partial files."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
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
