"""The envs a reader asked for (`--envs`, default all) and what follows from them: rows, divergence, headline."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from conformance.report import model as m
from conformance.repro.commandline import repro_command


class View:
    """The envs a reader asked for and what depends on them: the rows that exist there, divergence and consensus
    among those envs only (a row that differs only in a hidden env is not a gap here)."""

    def __init__(self, matrix: m.Matrix, envs: Sequence[str] | None = None) -> None:
        wanted = set(envs) if envs else None
        self.matrix = matrix
        self.index = [i for i, c in enumerate(matrix.envs) if wanted is None or c.name in wanted]
        self.full = len(self.index) == len(matrix.envs)
        self.envs = [matrix.envs[i] for i in self.index]
        if self.full:
            self.rows = matrix.rows
        else:
            self.rows = [r for r in matrix.rows if any(r.outcome(i) != m.MISSING for i in self.index)]

    def divergent(self, row: m.Row) -> bool:
        if self.full:
            return row.divergent
        kinds = {row.outcome(i) for i in self.index}
        kinds.discard(m.UNAVAILABLE)  # an absent device is no compatibility gap, as in the full matrix
        return len(kinds) > 1

    def problem(self, row: m.Row) -> bool:
        return any(row.outcome(i) in m.PROBLEMS for i in self.index)

    def consensus(self, row: m.Row) -> str:
        for i in self.index:
            if row.outcome(i) != m.UNAVAILABLE:
                return row.outcome(i)
        return m.UNAVAILABLE

    @property
    def failing_elsewhere(self) -> list[str]:
        """Envs outside the view with failures: the report still exits 1 for them, so the view must name them."""
        shown = set(self.index)
        return [c.name for i, c in enumerate(self.matrix.envs) if i not in shown and c.counts.problems]

    def headline(self, text: Callable[[str], str]) -> str:
        """'N checks x E envs: D divergent, problems in ...', input names passed through `text`."""
        n = len(self.envs)
        envs = f"{n} env{'s' if n != 1 else ''}" if self.full else f"{n} of {len(self.matrix.envs)} envs"
        bad = [text(c.name) for c in self.envs if c.counts.problems]
        state = f"problems in {', '.join(bad)}" if bad else "no failures"
        elsewhere = self.failing_elsewhere
        if elsewhere:
            state += f" in this view; problems outside it in {', '.join(text(name) for name in elsewhere)}"
        divergent = sum(1 for r in self.rows if self.divergent(r))
        return f"{len(self.rows)} checks x {envs}: {divergent} divergent, {state}"


def headline(matrix: m.Matrix) -> str:
    """One line for stdout and the top of the Markdown."""
    return View(matrix).headline(str)


_EXPECTATION = re.compile(r"^\S+\.txt:\d+: ")  # "expectations/all.txt:15: ": where the xfail was declared
_URL = re.compile(r"https?://\S+")
_TAG = re.compile(r"(github\.com/pytorch/pytorch/(?:blob|tree)/)v\d+\.\d+\.\d+(?=/)")


def reason_text(message: str) -> str:
    """The reason of a failure or xfail for grouping: its first line, without the expectation file:line."""
    first = message.strip().split("\n", 1)[0]
    return _EXPECTATION.sub("", first)


# Cells that get the `conformance repro ...` line that writes the check's standalone script (HTML message,
# GitHub annotation): the script exits 1 while the problem is there, so a strict XPASS (now fixed) gets none.
REPRO_OUTCOMES = frozenset({m.FAILED, m.ERROR, m.CRASHED, m.XFAIL})


def repro_for(check_id: str, cell: m.Cell, col: m.EnvColumn) -> str | None:
    """`conformance repro '<id>' --device <env's device>` for a cell of REPRO_OUTCOMES of a check `repro` covers,
    else None."""
    if cell.outcome not in REPRO_OUTCOMES:
        return None
    return repro_command(check_id, col.build.device or "cpu")


def strip_links(text: str) -> str:
    """The text without its URLs (the renderer writes them as links of its own)."""
    return _URL.sub("", text).rstrip(" :")


def release_tag(version: str) -> str:
    """'2.11.0' of '2.11.0+cu130' (PyTorch's git tags are v<major>.<minor>.<patch>), '' when it is no release."""
    match = re.match(r"(\d+\.\d+\.\d+)(?:$|[+])", version)
    return match.group(1) if match else ""


def release_link(url: str, tag: str) -> str:
    """A link into PyTorch's source at a release tag, pointed at `tag` (an xfail written against 2.13 names the code
    a 2.11 run actually ran)."""
    return _TAG.sub(rf"\g<1>v{tag}", url) if tag else url


def device_names(names: str, count: int) -> str:
    """'4 x NVIDIA H200' (with the multiplication sign) for 'NVIDIA H200, NVIDIA H200, ...'; other lists as written."""
    parts = [p.strip() for p in names.split(",")] if names else []
    if len(parts) > 1 and len(set(parts)) == 1:
        return f"{len(parts)} × {parts[0]}"  # noqa: RUF001 - the multiplication sign is meant
    if len(parts) == 1 and count > 1:
        return f"{count} × {parts[0]}"  # noqa: RUF001 - the multiplication sign is meant
    return names
