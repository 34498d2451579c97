"""Tests of the one output helper: stdout, folder creation, atomic replace, no partial file on failure."""

from __future__ import annotations

import os

import pytest

from conformance.output import commit, stage, write_output, write_outputs, write_text


def test_dash_writes_to_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_text("-", "hello\n")
    assert capsys.readouterr().out == "hello\n"
    assert list(tmp_path.iterdir()) == []


def test_creates_folder_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "r.md"
    write_text(target, "x")
    assert target.read_text() == "x"
    assert os.listdir(target.parent) == ["r.md"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_render_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "r.html"
    target.write_text("old")

    def render(stream):
        stream.write("half of a new report")
        raise ValueError("renderer broke")

    with pytest.raises(ValueError, match="renderer broke"):
        write_output(target, render)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.html"]


def test_replace_is_atomic_rename(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    calls = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append((os.path.dirname(a), b)), real(a, b)))
    write_text(target, "{}")
    assert calls == [(str(tmp_path), target)]


def test_bytes_are_written_unchanged(tmp_path):
    target = tmp_path / "r.json"
    write_text(target, "é\n".encode())
    assert target.read_bytes() == b"\xc3\xa9\n"


def test_outputs_replaced_as_a_set_or_not_at_all(tmp_path):
    for name in ("a.md", "b.xml"):
        (tmp_path / name).write_text("old")

    def new(stream):
        stream.write("new")

    def broken(stream):
        stream.write("half")
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError):
        write_outputs([(tmp_path / "a.md", new), (tmp_path / "b.xml", broken)])
    assert [(tmp_path / n).read_text() for n in ("a.md", "b.xml")] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.xml"]
    write_outputs([(tmp_path / "a.md", new), (tmp_path / "b.xml", new), (tmp_path / "sub" / "c.json", new)])
    assert [(tmp_path / n).read_text() for n in ("a.md", "b.xml", "sub/c.json")] == ["new"] * 3


def test_a_failed_replace_puts_the_earlier_outputs_back(tmp_path):
    (tmp_path / "a.md").write_text("old")
    (tmp_path / "b.xml").mkdir()  # os.replace of a file over a folder fails
    staged = stage([tmp_path / "a.md", tmp_path / "b.xml", tmp_path / "new.json"])
    for item in staged:
        item.tmp.write_text("new")
    with pytest.raises(OSError):
        commit(staged)
    assert (tmp_path / "a.md").read_text() == "old"
    assert not (tmp_path / "new.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.xml"]
