"""Guard rails on the package's shape: no import cycles, no test code in the wheel, settings declared once and
documented, every package saying whether it may import torch, CI running lint and types."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conformance.protocol import settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "conformance"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth (functions included); `if TYPE_CHECKING:` blocks never run."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The package modules one import statement loads (a `from pkg import sub` loads the submodule)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in known:
            out.add(sub)
        elif base in known:
            out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[name] = set().union(*(_targets(name, path, n, known) for n in _runtime_imports(tree))) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one concrete cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[set[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return [_one_cycle(graph, comp) for comp in comps]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    start = min(comp)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & comp):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    raise AssertionError(f"no cycle through {start} in {sorted(comp)}")


def test_cycle_finder_finds_function_level_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    tree = ast.parse("def f():\n    from conformance.suite import plugin\n"
                     "if TYPE_CHECKING:\n    import conformance.x\n")
    imports = _runtime_imports(tree)
    assert len(imports) == 1 and isinstance(imports[0], ast.ImportFrom)
    known = {"conformance.suite", "conformance.suite.plugin"}
    assert _targets("conformance.a", PACKAGE / "a.py", imports[0], known) == {"conformance.suite.plugin"}


def test_package_has_no_import_cycles_counting_function_level_imports():
    graph = import_graph()
    assert len(graph) > 40 and "conformance.suite.plugin" in graph
    found = cycles(graph)
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(" -> ".join(c) for c in found)


# --- layering ---------------------------------------------------------------------------------------------------
#
# Which package may import which: the allowed edges, as data. A package may always import its own modules. Every
# import counts: module level, function level, `if TYPE_CHECKING:` blocks, and modules named as strings
# (importlib.import_module("..."), `-p conformance.suite.plugin`, tables of module names such as the suite's
# scenario modules). Any other edge fails the test below.

LAYERS: dict[str, frozenset[str]] = {
    # conformance/__init__ (the version), errors, output, signals: stdlib only, shared by every process
    "base": frozenset(),
    # every value that crosses a process or file boundary; the bottom of the package
    "protocol": frozenset({"base"}),
    # builds, device decision, API versions (torch only inside functions)
    "torchenv": frozenset({"protocol", "base"}),
    # the rank pool: knows no suite module and no pytest
    "pool": frozenset({"torchenv", "protocol", "base"}),
    # conformance/pytest_private.py: the one adapter to pytest's internals
    "pytest_private": frozenset({"base"}),
    # the pytest process and its rank-side scenarios
    "suite": frozenset({"pool", "torchenv", "protocol", "pytest_private", "base"}),
    # supervisor of `conformance run`: starts the suite by module name, reads its journal
    "runner": frozenset({"suite", "protocol", "base"}),
    # reproduction scripts and issue text for one check id
    "repro": frozenset({"suite", "torchenv", "protocol", "base"}),
    # the cross-device report: reads what the protocol defines, never the suite or the pool
    "report": frozenset({"repro", "protocol", "base"}),
    # one thin module per subcommand
    "commands": frozenset({"runner", "report", "repro", "torchenv", "protocol", "base"}),
    # conformance/cli.py: dispatch (and the report's sanitised one-line error)
    "cli": frozenset({"commands", "report", "protocol", "base"}),
    # conformance/__main__.py
    "main": frozenset({"cli"}),
}
_TOP_LEVEL = {"conformance": "base", "conformance.errors": "base", "conformance.output": "base",
              "conformance.signals": "base", "conformance.pytest_private": "pytest_private",
              "conformance.cli": "cli", "conformance.__main__": "main"}

# Renderers format the report model; none imports another (shared formatting lives in the model's modules).
RENDERERS = frozenset({"conformance.report.html", "conformance.report.markdown", "conformance.report.console",
                       "conformance.report.jsonfmt", "conformance.report.annotations"})
# Renderer-to-renderer imports not yet removed: must be empty (each entry is a known offender, with its reason).
PENDING: frozenset[tuple[str, str]] = frozenset()


def layer_of(module: str) -> str | None:
    if module in _TOP_LEVEL:
        return _TOP_LEVEL[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _named_modules(tree: ast.AST, known: set[str]) -> set[str]:
    """Modules of the package a string names: the whole string, or the module part of `module:attribute`."""
    found = set()
    for text in _string_constants(tree):
        name = text.partition(":")[0].strip()
        if name in known:
            found.add(name)
    return found


def module_edges(name: str, path: Path, source: str, known: set[str]) -> set[str]:
    """Every package module `name` imports or names: statements at any depth (TYPE_CHECKING ones too) and strings."""
    tree = ast.parse(source, str(path))
    found = set().union(*(_targets(name, path, node, known) for node in ast.walk(tree)
                          if isinstance(node, (ast.Import, ast.ImportFrom))))
    return (found | _named_modules(tree, known)) - {name}


def layering_violations(sources: dict[str, tuple[Path, str]]) -> list[str]:
    """`importer -> imported (why)` for every edge the table does not allow, and every module outside the table."""
    known = set(sources)
    problems = []
    for name, (path, source) in sorted(sources.items()):
        layer = layer_of(name)
        if layer is None:
            problems.append(f"{name}: in no layer of LAYERS (add its package to the table)")
            continue
        for target in sorted(module_edges(name, path, source, known)):
            to = layer_of(target)
            if to is not None and to != layer and to not in LAYERS[layer]:
                problems.append(f"{name} -> {target} ({layer} may not import {to})")
            if name in RENDERERS and target in RENDERERS and (name, target) not in PENDING:
                problems.append(f"{name} -> {target} (a renderer imports another renderer)")
    return problems


def _package_sources() -> dict[str, tuple[Path, str]]:
    return {name: (path, path.read_text(encoding="utf-8")) for name, path in _modules().items()}


def test_imports_follow_the_layering_table():
    sources = _package_sources()
    assert {layer_of(name) for name in sources} >= set(LAYERS), "a layer of the table has no module: remove it"
    found = layering_violations(sources)
    assert not found, "imports outside the layering table (tests/test_structure.py LAYERS):\n" + "\n".join(found)


def test_pending_renderer_imports_are_still_real():
    """PENDING lists only imports that exist: a removed one must leave the list (it is meant to end empty)."""
    sources = _package_sources()
    known = set(sources)
    stale = [edge for edge in PENDING if edge[1] not in module_edges(edge[0], *sources[edge[0]], known)]
    assert not stale, f"PENDING entries no longer imported, remove them: {stale}"


def test_layering_check_fails_on_wrong_way_imports():
    """Synthetic modules fed to the checker: each wrong-way import (statement, function-level, string-named,
    renderer to renderer) is reported; the same imports the right way round are not."""
    sources = _package_sources()
    fake = PACKAGE / "protocol" / "fake.py"
    wrong = {
        "conformance.protocol.fake": (fake, "from conformance.suite import plugin\n"),
        "conformance.pool.fake": (PACKAGE / "pool" / "fake.py",
                                  "def f():\n    from conformance.suite.ranks import schedules\n"),
        "conformance.torchenv.fake": (PACKAGE / "torchenv" / "fake.py",
                                      'import importlib\nimportlib.import_module("conformance.report.model")\n'),
        "conformance.report.fake": (PACKAGE / "report" / "fake.py",
                                    'MODULES = ("conformance.pool.worker",)\n'),
    }
    found = layering_violations({**sources, **wrong})
    assert found == ["conformance.pool.fake -> conformance.suite.ranks.schedules (pool may not import suite)",
                     "conformance.protocol.fake -> conformance.suite.plugin (protocol may not import suite)",
                     "conformance.report.fake -> conformance.pool.worker (report may not import pool)",
                     "conformance.torchenv.fake -> conformance.report.model (torchenv may not import report)"], found
    renderer = {"conformance.report.console": (PACKAGE / "report" / "console.py",
                                               "from conformance.report.markdown import render\n")}
    assert layering_violations({**sources, **renderer}) == [
        "conformance.report.console -> conformance.report.markdown (a renderer imports another renderer)"]
    right = {"conformance.suite.fake": (PACKAGE / "suite" / "fake.py",
                                        "from conformance.protocol import outcomes\n"
                                        "from conformance.pool import pools\n"
                                        'MODULES = ("conformance.suite.ranks.schedules",)\n')}
    assert layering_violations({**sources, **right}) == []
    assert layering_violations({**sources, "conformance.newpkg.x": (PACKAGE / "newpkg" / "x.py", "")}) == [
        "conformance.newpkg.x: in no layer of LAYERS (add its package to the table)"]


# Third-party imports a package may not make at all (function level included): pytest belongs to the suite's
# process, and the supervisor, the report and the protocol run where torch may be missing. torchenv and the pool
# import torch only inside functions (their modules are imported by processes without torch).
FORBIDDEN_IMPORTS: dict[str, frozenset[str]] = {
    "protocol": frozenset({"pytest", "_pytest", "torch"}),
    "torchenv": frozenset({"pytest", "_pytest"}),
    "pool": frozenset({"pytest", "_pytest"}),
    "runner": frozenset({"pytest", "_pytest", "torch"}),
    "report": frozenset({"pytest", "_pytest", "torch"}),
    "commands": frozenset({"pytest", "_pytest"}),
    "cli": frozenset({"pytest", "_pytest", "torch"}),
}
TORCH_INSIDE_FUNCTIONS = frozenset({"torchenv", "pool"})


def third_party_violations(sources: dict[str, tuple[Path, str]]) -> list[str]:
    problems = []
    for name, (path, source) in sorted(sources.items()):
        layer = layer_of(name)
        tree = ast.parse(source, str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                if root in FORBIDDEN_IMPORTS.get(layer or "", ()):
                    problems.append(f"{name}:{node.lineno} imports {root} ({layer} may not)")
                elif root == "torch" and layer in TORCH_INSIDE_FUNCTIONS and id(node) in top_level:
                    problems.append(f"{name}:{node.lineno} imports torch at module level ({layer}: inside functions)")
    return problems


def test_pytest_and_torch_only_where_their_process_has_them():
    sources = _package_sources()
    found = third_party_violations(sources)
    assert not found, "\n".join(found)
    planted = {"conformance.torchenv.api": (PACKAGE / "torchenv" / "api.py", "def f():\n    import pytest\n"),
               "conformance.pool.fake": (PACKAGE / "pool" / "fake.py", "import torch\n"),
               "conformance.report.fake": (PACKAGE / "report" / "fake.py", "def f():\n    from torch import nn\n")}
    assert third_party_violations({**sources, **planted}) == [
        "conformance.pool.fake:1 imports torch at module level (pool: inside functions)",
        "conformance.report.fake:2 imports torch (report may not)",
        "conformance.torchenv.api:2 imports pytest (torchenv may not)"]


# --- the wheel ------------------------------------------------------------------------------------------------

def _build_wheel(tmp: Path, plant: dict[str, str] | None = None) -> Path:
    """Build the wheel from a copy of the checkout (plus `plant`: extra files by path), leaving the tree clean."""
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    shutil.copytree(PACKAGE, src / "conformance", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.cfg", "setup.py"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for rel, text in (plant or {}).items():
        (src / rel).write_text(text, encoding="utf-8")
    isolation = []
    try:
        import setuptools  # noqa: F401 - a local build backend spares the network

        isolation = ["--no-build-isolation"]
    except ImportError:
        pass
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--wheel-dir",
                           str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("pp_conformance-*.whl")
    return wheel


def wheel_problems(wheel: Path) -> list[str]:
    """Test-only code in a wheel: fault or crash modules, tests, and CONFORMANCE_TEST_* switches in its sources."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        sources = {n: zf.read(n).decode("utf-8") for n in names if n.endswith(".py")}
    assert "conformance/suite/plugin.py" in names and "conformance/suite/checks/pytest.ini" in names, names
    problems = [f"module {n}" for n in names if re.search(r"fault|crash", n, re.I)]
    problems += [f"test file {n}" for n in names if n.startswith("tests/") or "/support/" in n]
    for name, text in sources.items():
        problems += [f"switch {s} in {name}" for s in sorted(set(re.findall(r"CONFORMANCE_TEST_\w*", text)))]
    return problems


def test_wheel_holds_no_fault_injection_and_no_crash_switch(tmp_path):
    assert wheel_problems(_build_wheel(tmp_path / "clean")) == []
    # the same inspection on a wheel that does ship them
    planted = _build_wheel(tmp_path / "planted", {"conformance/pool/faults.py": '"""Faults."""\n',
                                                  "conformance/signals.py": 'CRASH = "CONFORMANCE_TEST_CRASH"\n'})
    assert wheel_problems(planted) == ["module conformance/pool/faults.py",
                                       "switch CONFORMANCE_TEST_CRASH in conformance/signals.py"]


# --- settings ---------------------------------------------------------------------------------------------------

def _string_constants(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _declared_patterns() -> list[re.Pattern[str]]:
    # `CONFORMANCE_<DEVICE>_INDEX` stands for one variable per device (CONFORMANCE_CUDA_INDEX, ...)
    return [re.compile(re.escape(s.name).replace(re.escape("<DEVICE>"), "[A-Z0-9]+") + "$") for s in settings.ALL]


def test_every_conformance_variable_in_the_package_is_declared_in_settings():
    patterns, names = _declared_patterns(), set(settings.by_name())
    undeclared: dict[str, set[str]] = {}
    for name, path in _modules().items():
        for text in _string_constants(ast.parse(path.read_text(encoding="utf-8"))):
            for var in re.findall(r"\bCONFORMANCE_[A-Z0-9_<>]*[A-Z0-9>]", text):
                if var not in names and not any(p.match(var) for p in patterns):
                    undeclared.setdefault(var, set()).add(name)
    assert not undeclared, ("CONFORMANCE_* names used but not declared in conformance/protocol/settings.py: "
                            f"{undeclared}")


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^#{{1,3}} )", text, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(2)


def readme_setting_row(s: settings.Setting) -> str:
    """A Settings table row as the README writes it: variable, default, help (pipes escaped)."""
    default = f"`{s.default}`" if s.default else "-"
    text = s.help.replace("|", "\\|")
    return f"| `{s.name}` | {default} | {text} |"


def test_readme_settings_table_lists_every_setting_with_its_default_and_help():
    section = _readme_section("Settings")
    rows = [line for line in section.splitlines() if line.startswith("| `CONFORMANCE_")]
    want = [readme_setting_row(s) for s in settings.ALL if not s.internal]
    assert rows == want, "README 'Settings' table differs from conformance/protocol/settings.py ALL:\n" + "\n".join(
        f"- {r}" for r in rows if r not in want) + "\n" + "\n".join(f"+ {w}" for w in want if w not in rows)


# --- package docstrings -----------------------------------------------------------------------------------------

TORCH_POLICY = re.compile(r"(never imports? torch|no torch|must not import torch|may import torch|imports? torch)",
                          re.I)


def test_every_package_docstring_says_whether_it_may_import_torch():
    silent = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if not TORCH_POLICY.search(doc):
            silent.append(str(init.relative_to(ROOT)))
    assert not silent, f"package docstrings that do not say whether the package may import torch: {silent}"


# --- CI runs the guard rails ------------------------------------------------------------------------------------

def test_ci_runs_lint_and_type():
    yaml = pytest.importorskip("yaml")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^tox -e lint,type\b", ci_run, re.M), ".ci/run must run the lint and type envs"
    assert re.search(r"^tox -e cpu,report,tests$", ci_run, re.M), ".ci/run must run the README's test command"
    wf = yaml.safe_load((ROOT / ".github/workflows/conformance.yml").read_text(encoding="utf-8"))
    on = wf.get("on", wf.get(True))
    assert "push" in on and not (on["push"] or {}).get("branches"), "the project job must run on every push"
    project = wf["jobs"]["project"]
    assert "if" not in project
    assert any("tox -e tests,lint,type" in step.get("run", "") for step in project["steps"])
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert "[testenv:lint]" in tox and "[testenv:type]" in tox


# --- private APIs -------------------------------------------------------------------------------------------------

ADAPTERS = {"conformance.pytest_private", "conformance.suite.torch_private"}


def _private_imports(tree: ast.AST) -> list[str]:
    """Modules of pytest's or torch's internals an import statement names (`_pytest`, `torch.x._y`)."""
    found = []
    for node in _runtime_imports(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if isinstance(node, ast.ImportFrom) and node.module in ("torch.utils", "torch.distributed.pipelining"):
            names += [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in ("_pytest", "torch") and any(p.startswith("_") and p != "__future__" for p in parts):
                found.append(name)
    return found


def test_private_pytest_and_torch_apis_only_in_their_adapters():
    assert _private_imports(ast.parse("from torch.distributed.pipelining import _backward\nimport _pytest.junitxml\n"
                                      "from torch.utils._pytree import tree_flatten\nimport torch.nn\n")) == [
        "torch.distributed.pipelining._backward", "_pytest.junitxml", "torch.utils._pytree"]
    outside = {name: found for name, path in _modules().items() if name not in ADAPTERS
               for found in [_private_imports(ast.parse(path.read_text(encoding="utf-8")))] if found}
    assert not outside, f"private pytest/torch modules imported outside the adapters {sorted(ADAPTERS)}: {outside}"


def test_installed_pytest_is_in_the_range_the_adapter_is_known_good_for():
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    pin = next(Requirement(r) for r in requires("pp-conformance") or [] if Requirement(r).name == "pytest")
    assert any(spec.operator == "<" for spec in pin.specifier), "pytest needs an upper bound (pytest_private.py)"
    assert pin.specifier.contains(version("pytest")), f"pytest {version('pytest')} outside {pin}"
    doc = ast.get_docstring(ast.parse((PACKAGE / "pytest_private.py").read_text(encoding="utf-8"))) or ""
    assert all(str(spec.version) in doc for spec in pin.specifier), f"pytest_private.py must name the pin {pin}"
