"""Imports point inward: core ← runtime ← backends, benchmarks ← CLI; the testbed (the emulated cluster)
sits beside the runtime, above it, and only the CLI imports it.

Every import statement in the project's packages is read with :mod:`ast`, including those inside
functions (the lazy imports that once hid a cycle between ``benchmarks`` and ``harness_cli``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Which of the project's layers each layer may import. Benchmarks measure engines, so they may
# import backends; backends never import benchmarks; nothing below the CLI imports it. The testbed is
# root-only tooling, not the runtime: it may use the runtime, and only the CLI may use it.
ALLOWED = {
    "core": {"core"},
    "runtime": {"core", "runtime"},
    "testbed": {"core", "runtime", "testbed"},
    "backends": {"core", "runtime", "backends"},
    "benchmarks": {"core", "runtime", "backends", "benchmarks"},
    "cli": {"core", "runtime", "testbed", "backends", "benchmarks", "cli"},
}
PACKAGES = ("harness", "testbed", "backends", "benchmarks", "harness_cli")


def layer_of_module(name: str) -> str | None:
    """The layer a dotted module name belongs to, or None for third-party and standard modules."""
    top = name.split(".")[0]
    if name == "harness.runtime" or name.startswith("harness.runtime."):
        return "runtime"
    return {"harness": "core", "testbed": "testbed", "backends": "backends", "benchmarks": "benchmarks",
            "harness_cli": "cli"}.get(top)


def layer_of_file(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return layer_of_module(rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``; relative imports resolved against ``module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[:-node.level]
                base = ".".join(parent + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}" if layer_of_module(f"{base}.{alias.name}") == "runtime"
                       else base) for alias in node.names]
    return found


def violations(paths: list[Path], root: Path = ROOT) -> list[str]:
    """One line per import that points outward: ``file:line: layer imports module (layer)``."""
    problems = []
    for path in paths:
        rel = path.relative_to(root)
        mine = layer_of_file(path, root)
        module = rel.as_posix().removesuffix(".py").replace("/", ".")
        for line, name in imported_modules(path.read_text(encoding="utf-8"), module):
            theirs = layer_of_module(name)
            if theirs and theirs not in ALLOWED[mine]:
                problems.append(f"{rel}:{line}: {mine} imports {name} ({theirs})")
    return problems


def project_files() -> list[Path]:
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def test_every_import_points_inward():
    assert len(project_files()) > 30 and any(p.parent.name == "testbed" for p in project_files())
    assert violations(project_files()) == []


def test_the_emulated_cluster_is_outside_the_runtime():
    """The testbed is a package of its own, and ``harness cluster`` is its only user among the packages."""
    assert not (ROOT / "harness" / "runtime" / "cluster.py").exists()
    users = {p.relative_to(ROOT).as_posix() for p in project_files() if p.parent.name != "testbed"
             for _, name in imported_modules(p.read_text(encoding="utf-8"), "") if layer_of_module(name) == "testbed"}
    assert users == {"harness_cli/cluster.py"}, users


@pytest.mark.parametrize("where, planted, expected", [
    ("harness/runtime/planted.py", "from harness_cli.errors import UsageError\n", "runtime imports harness_cli.errors (cli)"),
    ("harness/planted.py", "def f():\n    from harness.runtime.records import SUMMARY\n", "core imports harness.runtime.records"),
    ("harness/planted.py", "from harness.runtime import records\n", "core imports harness.runtime.records (runtime)"),
    ("benchmarks/planted.py", "import harness_cli.main\n", "benchmarks imports harness_cli.main (cli)"),
    ("backends/planted.py", "from benchmarks.costmodel import GBIT\n", "backends imports benchmarks.costmodel"),
    ("harness/runtime/planted.py", "from backends.torch.engine import TorchEngine\n", "runtime imports backends.torch"),
    ("harness/runtime/planted.py", "from testbed import up\n", "runtime imports testbed (testbed)"),
    ("harness/planted.py", "import testbed.cpus\n", "core imports testbed.cpus (testbed)"),
    ("backends/planted.py", "def f():\n    from testbed.hosts import enter\n", "backends imports testbed.hosts"),
    ("benchmarks/planted.py", "from testbed import cluster\n", "benchmarks imports testbed (testbed)"),
    ("testbed/planted.py", "from harness_cli.errors import UsageError\n", "testbed imports harness_cli.errors (cli)"),
    ("testbed/planted.py", "from backends import make_engine\n", "testbed imports backends (backends)"),
])
def test_a_planted_upward_import_is_caught(tmp_path, where, planted, expected):
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text(planted)
    found = violations([path], root=tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_inward_imports_are_allowed(tmp_path):
    path = tmp_path / "harness_cli" / "planted_ok.py"
    path.parent.mkdir()
    path.write_text("from harness.runtime.records import SUMMARY\nfrom backends import make_engine\n"
                    "from benchmarks.sweep import run_sweep\nimport numpy\nimport testbed\n")
    testbed = tmp_path / "testbed" / "planted_ok.py"
    testbed.parent.mkdir()
    testbed.write_text("from harness.runtime.errors import ConfigError\nfrom testbed.spec import ClusterSpec\n")
    assert violations([path, testbed], root=tmp_path) == []


def test_the_runtime_loads_no_framework():
    """The runtime is numpy-only: importing all of it loads no framework (fresh interpreter)."""
    import subprocess
    import sys

    modules = sorted(p.stem for p in (ROOT / "harness" / "runtime").glob("*.py") if p.stem != "__init__")
    assert {"loop", "train", "records", "checkpoint", "faults", "launch", "hostfile", "config", "engine"} <= set(modules)
    frameworks = ("torch", "tensorflow", "keras", "horovod", "pandas", "matplotlib")
    code = (f"import sys, importlib; [importlib.import_module('harness.runtime.' + m) for m in {modules!r}]; "
            f"print(','.join(m for m in {frameworks!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
