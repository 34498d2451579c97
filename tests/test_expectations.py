"""conformance.suite.expectations: which files apply, ranges, strict xfail with the range edit, stale entries."""

import os
import subprocess
import sys

import pytest

import checkfaults
from conformance.suite import expectations


@pytest.mark.parametrize("name,device,applies", [
    ("all.txt", "hpu", True),
    ("cpu.txt", "cpu", True),
    ("cpu.txt", "cuda", False),
    ("npu.txt", "npu", True),  # an out-of-tree device's file
    ("notes.md", "cpu", False),
    ("all.md", "cpu", False),
])
def test_applies(name, device, applies):
    assert expectations.applies(name, device) is applies


@pytest.mark.parametrize("line,since,until", [
    ("test_a.py::x", None, None),
    ("test_a.py::x  torch>=2.13", (2, 13), None),
    ("test_a.py::x  torch<2.15  # link", None, (2, 15)),
    ("test_a.py::x torch<2.15 torch>=2.12 # either order", (2, 12), (2, 15)),
    ("test_a.py::x\ttorch>=2.9", (2, 9), None),
    ("test_a.py::x  torch>=3.0  torch<3.10", (3, 0), (3, 10)),
])
def test_parse_ranges(line, since, until):
    (entry,) = expectations.parse(line, "e/cpu.txt")
    assert (entry.prefix, entry.since, entry.until) == ("test_a.py::x", since, until)


@pytest.mark.parametrize("since,until,version,applies", [
    (None, None, (2, 4), True),
    (None, None, None, True),
    ((2, 13), None, (2, 12), False),
    ((2, 13), None, (2, 13), True),
    ((2, 13), None, (3, 0), True),  # open-ended: a new release carries the bug without an edit
    (None, (2, 15), (2, 14), True),
    (None, (2, 15), (2, 15), False),
    ((2, 12), (2, 15), (2, 11), False),
    ((2, 12), (2, 15), (2, 14), True),
    ((2, 12), None, None, False),  # unknown version: only the unbounded entries
    (None, (2, 15), None, False),
])
def test_entry_applies_within_its_range(since, until, version, applies):
    entry = expectations.Entry("test_a.py::x", "", "e/all.txt", 1, since=since, until=until)
    assert entry.applies(version) is applies


@pytest.mark.parametrize("line,problem", [
    ("test_a.py::x  torch>2.13", "'torch>2.13' is not a torch range"),
    ("test_a.py::x  torch<=2.15", "'torch<=2.15' is not a torch range"),
    ("test_a.py::x  torch==2.13", "'torch==2.13' is not a torch range"),
    ("test_a.py::x  torch>=2.14.1", "'torch>=2.14.1' is not a torch range"),
    ("test_a.py::x  torch>=2", "'torch>=2' is not a torch range"),
    ("test_a.py::x  torch >= 2.13", "'torch' is not a torch range"),
    ("test_a.py::x[a b]  # a prefix with a space", "'b]' is not a torch range"),
    ("test_a.py::x  torch>=2.12  torch>=2.13", "two lower bounds"),
    ("test_a.py::x  torch<2.12  torch<2.13", "two upper bounds"),
    ("test_a.py::x  torch>=2.15  torch<2.15", "empty range `torch>=2.15 torch<2.15`"),
    ("test_a.py::x  torch>=2.15  torch<2.13", "empty range"),
])
def test_malformed_range_names_file_and_line(line, problem):
    with pytest.raises(expectations.ExpectationError) as err:
        expectations.parse("# header\n\n" + line, "e/cpu.txt")
    assert str(err.value).startswith("e/cpu.txt:3: ") and problem in str(err.value)
    assert err.value.exit_code == 2  # a usage error: one line, no traceback


def test_retired_per_version_file_is_an_error(tmp_path):
    (tmp_path / "all.txt").write_text("test_a.py::x  # link\n")
    (tmp_path / "cpu-torch-2.11.txt").write_text("test_a.py::y  # link\n")
    with pytest.raises(expectations.ExpectationError, match=r"cpu-torch-2.11.txt: per-version expectation files "
                       r"are retired: move its entries into all.txt or <device>.txt with a range"):
        expectations.load("cpu", (2, 13), str(tmp_path))


@pytest.mark.parametrize("since,until,version,edit", [
    (None, None, (2, 15), "fixed in 2.15: add `torch<2.15` to conformance/suite/expectations/cpu.txt:12"),
    ((2, 13), None, (2, 16), "fixed in 2.16: add `torch<2.16` to conformance/suite/expectations/cpu.txt:12"),
    ((2, 12), (2, 17), (2, 15),
     "fixed in 2.15: change `torch<2.17` to `torch<2.15` at conformance/suite/expectations/cpu.txt:12"),
    ((2, 13), None, (2, 13), "passes on 2.13, the first release of `torch>=2.13`: move the lower bound up to the "
     "first release that fails, or remove the entry, at conformance/suite/expectations/cpu.txt:12"),
])
def test_edit_when_passing(since, until, version, edit):
    entry = expectations.Entry("test_a.py::x", "link", "conformance/suite/expectations/cpu.txt", 12,
                               since=since, until=until)
    assert entry.edit_when_passing(version) == edit


def test_parse_comment_blocks_head_their_group():
    text = "\n".join([
        "# header, separated by a blank line: belongs to nothing",
        "",
        "# pytorch#132644: gloo hang",
        "# https://github.com/pytorch/pytorch/issues/132644",
        "test_schedules.py::test_x[world2]",
        "test_split.py::test_y  # inline https://example.invalid/1",
        "test_split.py::test_z",
        "# second",
        "# block",
        "test_split.py::test_w",
        "",
        "test_split.py::test_v",
    ])
    got = expectations.parse(text, "e/cpu.txt")
    assert [(e.prefix, e.reason, e.line) for e in got] == [
        ("test_schedules.py::test_x[world2]",
         "pytorch#132644: gloo hang https://github.com/pytorch/pytorch/issues/132644", 5),
        ("test_split.py::test_y", "inline https://example.invalid/1", 6),
        ("test_split.py::test_z", "pytorch#132644: gloo hang https://github.com/pytorch/pytorch/issues/132644", 7),
        ("test_split.py::test_w", "second block", 10),
        ("test_split.py::test_v", "", 12),
    ]


def test_load_picks_applicable_files_and_ranges(tmp_path):
    (tmp_path / "cpu.txt").write_text("test_a.py::x  # cpu\ntest_a.py::w  torch<2.7  # fixed in 2.7\n")
    (tmp_path / "cuda.txt").write_text("test_a.py::y  # cuda\n")
    (tmp_path / "all.txt").write_text("test_a.py::z  torch>=2.7  # since 2.7\n")
    got = expectations.load("cpu", (2, 7), str(tmp_path))
    assert [(e.prefix, e.file, e.line) for e in got] == [
        ("test_a.py::z", f"{tmp_path.name}/all.txt", 1), ("test_a.py::x", f"{tmp_path.name}/cpu.txt", 1)]
    assert [e.prefix for e in expectations.load("cpu", (2, 6), str(tmp_path))] == ["test_a.py::x", "test_a.py::w"]


def test_shipped_files_name_the_repository_path():
    entries = expectations.load("cpu", (2, 13))
    assert entries and all(e.file.startswith("conformance/suite/expectations/") for e in entries)
    assert all(os.path.isfile(e.path) for e in entries)


def test_shipped_files_parse_and_name_known_checks():
    """Every shipped file is all.txt or a device's, and every entry carries a reason (the upstream link)."""
    from conformance.torchenv import profiles

    for name in sorted(os.listdir(expectations.DIR)):
        assert name.endswith(".txt") and name[:-4] in {"all", *profiles.names()}, \
            f"expectation file {name} is for no known device"
        with open(os.path.join(expectations.DIR, name)) as f:
            for entry in expectations.parse(f.read(), name):
                assert entry.reason, f"{name}:{entry.line}: entry {entry.prefix!r} has no comment/link"
                assert "::" in entry.prefix and entry.prefix.startswith("test_"), entry
                assert "https://" in entry.reason, f"{name}:{entry.line}: entry {entry.prefix!r} has no link"


def test_strict_xfail_and_stale_warning(tmp_path):
    """In the suite: an entry on a failing check is xfailed, on a passing check it fails (strict XPASS) with the
    range edit to make, entries for other devices or other releases are ignored, and entries that match nothing are
    warned about with file and line."""
    torch = pytest.importorskip("torch")
    from conformance.torchenv import api

    major, minor = api.parse_version(torch.__version__)
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "cpu.txt").write_text("\n".join([
        "# upstream-bug-1",
        "test_microbatch.py::test_uneven_split[10-4]",
        "test_microbatch.py::test_uneven_split[7-3]  torch>=2.4  # fixed-upstream-2",
        "test_microbatch.py::test_no_such_check  # typo-3",
        "test_split.py::test_seed_split_begin_2stages  # module not selected: silent",
        "test_no_such_module.py::test_x  # typo-4",
        f"test_microbatch.py::test_uneven_split[5-2]  torch<{major}.{minor}  # fixed before this release",
        f"test_microbatch.py::test_stale_in_range  torch>={major}.{minor + 1}  # not this release: not warned",
    ]) + "\n")
    (exp / "cuda.txt").write_text("test_microbatch.py::test_uneven_split[5-2]  # other device\n")
    ids = ["test_microbatch.py::test_uneven_split[10-4]", "test_microbatch.py::test_uneven_split[7-3]",
           "test_microbatch.py::test_uneven_split[5-2]"]
    outcomes, output = checkfaults.run_checks(
        ids, tmp_path, faults={ids[0]: "chunk_not_tensor_split"},
        env={checkfaults.EXPECTATIONS_ENV: str(exp)}, args=("-W", "always::pytest.PytestWarning"))
    assert outcomes[ids[0]].outcome == "xfailed"
    assert outcomes[ids[0]].message == "exp/cpu.txt:2: upstream-bug-1"
    assert outcomes[ids[1]].outcome == "failed"
    assert (f"[XPASS(strict)] exp/cpu.txt:3 [torch>=2.4]: fixed-upstream-2 -- fixed in {major}.{minor}: "
            f"add `torch<{major}.{minor}` to exp/cpu.txt:3") in outcomes[ids[1]].message
    assert outcomes[ids[2]].outcome == "passed"
    assert f"{exp / 'cpu.txt'}:4: ExpectationWarning: expectation entry 'test_microbatch.py::test_no_such_check' " \
           "matches no collected check" in output
    assert f"{exp / 'cpu.txt'}:6: ExpectationWarning" in output
    assert "test_seed_split_begin_2stages' matches" not in output
    assert "test_stale_in_range" not in output


def test_malformed_range_stops_the_run_with_one_line(tmp_path):
    """`conformance run` with a malformed range: exit 2 (usage) and the line naming file:line, no traceback."""
    pytest.importorskip("torch")
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "all.txt").write_text("# a bug\ntest_microbatch.py::test_uneven_split[7-3]  torch>2.13  # link\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(checkfaults.__file__),
                                                       os.environ.get("PYTHONPATH", "")]))
    env[checkfaults.EXPECTATIONS_ENV] = str(exp)
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--device", "cpu", "--junitxml",
                           str(tmp_path / "cpu.xml"), "--", "-p", "checkfaults", "-k", "test_uneven_split"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "exp/all.txt:2: 'torch>2.13' is not a torch range" in output
    assert "Traceback" not in output
