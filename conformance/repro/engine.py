"""The repro engine: a check id and a device in, a standalone script and an issue body out (no argparse here).

Also maps every expectation entry (a known upstream problem) to the check id its reproduction is written for.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conformance import errors
from conformance.repro import checkids, issue, scripts
from conformance.repro.commandline import repro_command
from conformance.torchenv import profiles

if TYPE_CHECKING:
    from conformance.suite import expectations

__all__ = ["Written", "entry_check_id", "generate", "known_entries", "repro_command", "target", "write"]

CHECKS_DIR = "conformance/suite/checks"
RANK_SIDE = {"schedules": "conformance/suite/ranks/schedules.py", "behaviour": "conformance/suite/ranks/behaviour.py",
             "composition": "conformance/suite/ranks/composition.py", "split": "conformance/suite/splitting.py",
             "training": "conformance/suite/ranks/training.py", "graphs": "conformance/suite/ranks/graphs.py"}
RUN_TIMEOUT = 300  # seconds the engine lets a script run when it records what happened


@dataclass(frozen=True)
class Written:
    script_path: Path
    issue_path: Path
    outcome: issue.Outcome | None


def target(device: str) -> scripts.Target:
    """The device as a script target (its torch device type, backend, modules to import first, rank variables)."""
    profile = profiles.find(device)
    if profile is None:
        raise errors.UsageError(f"unknown device {device!r}: use one of {', '.join(profiles.names())}")
    return scripts.Target(profile.name, profile.torch_type, profile.backend, tuple(profile.import_first),
                          dict(profile.rank_env))


def scenario(check_id: str) -> checkids.Scenario:
    sc = checkids.parse(check_id)
    if sc is None:
        raise errors.UsageError(checkids.why_not(check_id))
    return sc


def file_stem(check_id: str) -> str:
    """`repro_<check id as a file name>`, short enough for every file system."""
    slug = re.sub(r"[^A-Za-z0-9._]+", "_", checkids.normalize(check_id).replace(".py::", "__")).strip("_.")
    return "repro_" + slug[:120]


def generate(check_id: str, device: str) -> tuple[checkids.Scenario, scripts.Script]:
    sc = scenario(check_id)
    tgt = target(device)
    if tgt.backend is None and sc.area != "split":
        raise errors.UsageError(f"{sc.check_id} needs a collective backend; {device} has none "
                                f"({profiles.get(device).no_backend_reason or 'no backend'})")
    return sc, scripts.build(sc, tgt, file_stem(check_id) + ".py")


def all_entries() -> list[expectations.Entry]:
    """Every entry of every shipped expectation file, whatever its device or range."""
    # Imported here: the expectations module is the suite's (it imports pytest), and `conformance` starts every
    # command through this package's command module.
    from conformance.suite import expectations

    out: list[expectations.Entry] = []
    for name in sorted(os.listdir(expectations.DIR)):
        if name.endswith(".txt"):
            path = os.path.join(expectations.DIR, name)
            with open(path, encoding="utf-8") as f:
                out += expectations.parse(f.read(), f"{expectations.SHIPPED_AS}/{name}", path)
    return out


def known_entries(check_id: str) -> list[expectations.Entry]:
    cid = checkids.normalize(check_id)
    return [e for e in all_entries() if cid.startswith(e.prefix)]


def entry_check_id(prefix: str) -> str | None:
    """The check id an expectation entry's reproduction is written for: of the covered ids the prefix matches, the
    one with the fewest ranks (fastest to run), first in grammar order."""
    hits = [cid for cid in checkids.covered_ids() if cid.startswith(prefix)]
    if not hits:
        return None
    return min(hits, key=lambda cid: (checkids.parse(cid).world, hits.index(cid)))  # type: ignore[union-attr]


def run_script(python: str, path: Path, timeout: float = RUN_TIMEOUT) -> issue.Outcome:
    """Run a written script the way a maintainer would (its own folder, no PYTHONPATH) and keep its output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        proc = subprocess.run([python, path.name], check=False, cwd=path.parent, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return issue.Outcome(f"(still running after {timeout:.0f} s; stopped)", 1)
    output = (proc.stdout + proc.stderr).strip()
    lines = output.splitlines()
    if len(lines) > 60:  # keep the verdict at the end and the start of the run
        output = "\n".join([*lines[:10], f"... ({len(lines) - 50} lines cut) ...", *lines[-40:]])
    return issue.Outcome(output, proc.returncode)


def write(check_id: str, device: str, out_dir: Path, *, python: str, run: bool = True) -> Written:
    """Write `repro_<id>.py` and `repro_<id>.md` into `out_dir`; with `run`, run the script once with `python` and
    probe its environment, so the issue body says what happened."""
    sc, script = generate(check_id, device)
    tgt = target(device)
    stem = file_stem(check_id)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        script_path = out_dir / f"{stem}.py"
        script_path.write_text(script.text, encoding="utf-8")
    except OSError as exc:
        raise errors.UsageError(f"cannot write the reproduction into {out_dir}: {exc.strerror or exc}") from None
    outcome = run_script(python, script_path) if run else None
    env = issue.probe_environment(python, tgt.torch_type) if run else None
    known = [f"`{e.where}`{f' ({e.range})' if e.range else ''}: {e.reason}" for e in known_entries(sc.check_id)]
    module, _, rest = sc.check_id.partition("::")
    side = RANK_SIDE["graphs" if module == "test_graphs.py" else sc.area]  # the graphs area reuses others' builders
    path = f"`{CHECKS_DIR}/{module}::{rest.partition('[')[0]}`, scenario `{side}`"
    text = issue.body(title=script.title, check_id=sc.check_id, expected=script.expected, script=script.text,
                      script_name=script_path.name, device=device, backend=tgt.backend or "", world=sc.world,
                      check_path=path, known=known, outcome=outcome, env=env,
                      suite_command=f"conformance run --device {device} -- {shlex.quote(module)} -k "
                                    f"{shlex.quote(rest.partition('[')[0])}")
    issue_path = out_dir / f"{stem}.md"
    issue_path.write_text(text, encoding="utf-8")
    return Written(script_path, issue_path, outcome)
