"""The issue body beside a reproduction: title, expected vs what happened, the script, the environment, and where
the check lives in this project. The environment comes from the target interpreter in a subprocess
(`torch.utils.collect_env` and the device names), so this process never imports torch.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

ENV_PROBE = r"""
import sys
import torch
from torch.utils import collect_env
print(collect_env.get_pretty_env_info())
kind = sys.argv[1]
module = getattr(torch, kind, None)
names = []
if kind == "cpu":
    import platform
    names = [platform.processor() or platform.machine()]
elif module is not None and module.is_available():
    names = [module.get_device_name(i) for i in range(module.device_count())]
print("@@devices " + "; ".join(names or ["none visible"]))
"""


@dataclass(frozen=True)
class Environment:
    collect_env: str
    devices: str


@dataclass(frozen=True)
class Outcome:
    """What running the script printed and its exit code (None: not run)."""

    output: str
    code: int | None


VERDICTS = {0: "not reproduced (the check passes here)", 1: "reproduced", 2: "could not run here"}


def probe_environment(python: str, torch_type: str, timeout: float = 180) -> Environment:
    """`torch.utils.collect_env` and the device names of `python`'s torch, or why they could not be read."""
    try:
        proc = subprocess.run([python, "-c", ENV_PROBE, torch_type], check=False, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Environment(f"(collect_env did not finish: {exc})", "unknown")
    text, _, devices = proc.stdout.rpartition("@@devices ")
    if proc.returncode != 0 or not text:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Environment(f"(collect_env failed with exit code {proc.returncode}: {tail[0]})", "unknown")
    return Environment(text.strip(), devices.strip())


def fence(text: str, lang: str = "") -> str:
    """A fenced code block whose fence outlasts any backtick run inside."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def body(*, title: str, check_id: str, expected: str, script: str, script_name: str, device: str, backend: str,
         world: int, check_path: str, known: list[str], outcome: Outcome | None, env: Environment | None,
         suite_command: str) -> str:
    """The Markdown issue body."""
    ranks = "in one process" if world == 1 else f"on {world} ranks it starts itself (torch.multiprocessing, spawn)"
    lines = [f"# {title}", "",
             f"Found by the pp-conformance check `{check_id}` on {device} ({backend or 'no collective backend'}).",
             ""]
    if known:
        lines += ["Known in pp-conformance as an upstream problem:", "", *[f"- {k}" for k in known], ""]
    lines += ["## Expected", "", expected[:1].upper() + expected[1:], "", "## What happened", ""]
    if outcome is None or outcome.code is None:
        lines += [f"(not run when this body was written: run `python {script_name}`)", ""]
    else:
        verdict = VERDICTS.get(outcome.code, f"exit code {outcome.code}")
        lines += [f"`python {script_name}` exited {outcome.code}: {verdict}.", "", fence(outcome.output), ""]
    how = (f"Plain torch and the standard library, no other package; runs {ranks} on {backend or device}. Exit 1 "
           "(and expected vs actual) when the problem reproduces, 0 when it does not, 2 when it cannot run here.")
    lines += ["## Reproduction", "", how, "", fence(script, "python"), "", "## Environment", ""]
    if env is None:
        lines += ["(not collected: run `python -m torch.utils.collect_env`)", ""]
    else:
        lines += [f"- device: {device}, backend: {backend or '-'}", f"- device names: {env.devices}", "",
                  "`python -m torch.utils.collect_env`:", "", fence(env.collect_env), ""]
    lines += ["## Where this comes from", "",
              f"- conformance check: `{check_id}` ({check_path})",
              f"- with the suite: `{suite_command}`", ""]
    return "\n".join(lines)
