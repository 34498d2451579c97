"""Input text made inert for terminals and CI logs: control characters escaped, no CI log command can start.

Shared by the console lines and the GitHub annotations (renderers do not import each other); stdlib only.
"""

from __future__ import annotations

import re

# Input text (env names, check ids, paths, messages) must not act on the terminal or the CI log: control
# characters (a newline starts a line the input chose, ESC drives the terminal), Unicode line separators,
# bidi overrides and zero-width characters are written as Python-style escapes.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# CI log commands: GitHub Actions reads `::cmd ...::` at the start of a line (leading blanks ignored), Azure
# Pipelines `##vso[` and `##[` and TeamCity `##teamcity[` anywhere in a line.
_GITHUB_COMMAND = re.compile(r"^(\s*):")
_HASH_COMMAND = re.compile(r"#(?=#(?:vso|teamcity)?\[)", re.IGNORECASE)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_line(text: str) -> str:
    """`text` as one inert line: control characters escaped, no CI annotation or log command can start."""
    text = _UNSAFE.sub(_escape, text)
    text = _HASH_COMMAND.sub(r"\\x23", text)
    return _GITHUB_COMMAND.sub(r"\1\\x3a", text)
