"""Real virtual environments for run tests: one without torch, made offline from this interpreter's packages."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def _requirements(names: list[str]) -> list[metadata.Distribution]:
    """The distributions `names` need at run time on this interpreter, transitively (extras left out)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _top_level_paths(dist: metadata.Distribution) -> set[Path]:
    """The files and folders a distribution put directly into site-packages (its metadata folder included)."""
    root = Path(str(dist.locate_file("")))
    tops = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith(".pth"):
            continue
        tops.add(root / first)
    return {p for p in tops if p.exists()}


def venv_without_torch(root: Path, packages: tuple[str, ...] = ("pytest", "numpy")) -> Path:
    """A real venv whose interpreter imports this checkout's package and `packages`, but has no torch.

    Made without a network: the packages are linked from this interpreter's site-packages (torch is not among
    pytest's or numpy's requirements). Returns the venv's python.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    site = Path(purelib)
    for dist in _requirements(list(packages)):
        for path in _top_level_paths(dist):
            target = site / path.name
            if not target.exists():
                target.symlink_to(path)
    (site / "conformance-checkout.pth").write_text(f"{REPO}\n")
    return python
