"""compatibility.html: one self-contained page with the matrix (placeholder until the full renderer lands)."""

from __future__ import annotations

import html

from conformance.report import model as m


def render_html(matrix: m.Matrix) -> str:
    return f"<!doctype html><title>conformance</title><p>{html.escape(str(len(matrix.rows)))} checks</p>\n"
