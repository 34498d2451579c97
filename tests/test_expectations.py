"""conformance.suite.expectations: which files apply, how entries parse, strict xfail and stale-entry warnings."""

import pytest

import checkfaults
from conformance.suite import expectations


@pytest.mark.parametrize("name,device,version,applies", [
    ("all.txt", "hpu", None, True),
    ("cpu.txt", "cpu", (2, 13), True),
    ("cpu.txt", "cuda", (2, 13), False),
    ("torch-2.6.txt", "xpu", (2, 6), True),
    ("torch-2.6.txt", "xpu", (2, 7), False),
    ("torch-lt-2.8.txt", "cpu", (2, 7), True),
    ("torch-lt-2.8.txt", "cpu", (2, 8), False),
    ("torch-lt-2.8.txt", "cpu", None, False),  # no importable torch: version files never apply
    ("cuda-torch-2.10.txt", "cuda", (2, 10), True),
    ("cuda-torch-2.10.txt", "xpu", (2, 10), False),
    ("xpu-torch-lt-2.11.txt", "xpu", (2, 10), True),
    ("xpu-torch-lt-2.11.txt", "xpu", (2, 11), False),
    ("notes.md", "cpu", (2, 13), False),
    ("torch-2.txt", "cpu", (2, 13), False),
])
def test_applies(name, device, version, applies):
    assert expectations.applies(name, device, version) is applies


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


def test_load_picks_applicable_files(tmp_path):
    (tmp_path / "cpu.txt").write_text("test_a.py::x  # cpu\n")
    (tmp_path / "cuda.txt").write_text("test_a.py::y  # cuda\n")
    (tmp_path / "torch-lt-2.8.txt").write_text("test_a.py::z  # old\n")
    got = expectations.load("cpu", (2, 7), str(tmp_path))
    assert [(e.prefix, e.file) for e in got] == [
        ("test_a.py::x", f"{tmp_path.name}/cpu.txt"), ("test_a.py::z", f"{tmp_path.name}/torch-lt-2.8.txt")]


def test_shipped_files_parse_and_name_known_checks():
    """Every shipped file applies to something and every entry carries a reason (the upstream link)."""
    import os

    for name in sorted(os.listdir(expectations.DIR)):
        assert name.endswith(".txt") and any(
            expectations.applies(name, d, (2, m)) for d in ("cpu", "cuda", "xpu", "hpu") for m in range(4, 16)
        ), f"expectation file {name} applies to no device/version"
        with open(os.path.join(expectations.DIR, name)) as f:
            for entry in expectations.parse(f.read(), name):
                assert entry.reason, f"{name}:{entry.line}: entry {entry.prefix!r} has no comment/link"
                assert "::" in entry.prefix and entry.prefix.startswith("test_"), entry


def test_strict_xfail_and_stale_warning(tmp_path):
    """In the suite: an entry on a failing check is xfailed, on a passing check it fails (strict XPASS), entries
    for other devices are ignored, and entries that match nothing are warned about with file and line."""
    pytest.importorskip("torch")
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "cpu.txt").write_text("\n".join([
        "# upstream-bug-1",
        "test_microbatch.py::test_uneven_split[10-4]",
        "test_microbatch.py::test_uneven_split[7-3]  # fixed-upstream-2",
        "test_microbatch.py::test_no_such_check  # typo-3",
        "test_split.py::test_seed_split_begin_2stages  # module not selected: silent",
        "test_no_such_module.py::test_x  # typo-4",
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
    assert "[XPASS(strict)] exp/cpu.txt:3: fixed-upstream-2" in outcomes[ids[1]].message
    assert outcomes[ids[2]].outcome == "passed"
    assert f"{exp / 'cpu.txt'}:4: ExpectationWarning: expectation entry 'test_microbatch.py::test_no_such_check' " \
           "matches no collected check" in output
    assert f"{exp / 'cpu.txt'}:6: ExpectationWarning" in output
    assert "test_seed_split_begin_2stages' matches" not in output
