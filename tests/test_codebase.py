"""The code's shape, checked on every test run (CI runs `make test`): the import order of `.importlinter`,
no cycle, pyflakes clean, modules under 600 lines."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("servebench", "services", "bench", "models")


def test_import_contracts_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache", "--config", str(REPO / ".importlinter")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("package", ["servebench"])
def test_no_import_cycle(package):
    """No module of ``package`` reaches itself again: a cycle anywhere, at module or function level, fails."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = []
    for module in sorted(m for m in graph.modules if m == package or m.startswith(package + ".")):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and imported.startswith(package) and graph.chain_exists(imported, module):
                cycles.append(f"{module} -> {' -> '.join(graph.find_shortest_chain(imported, module))}")
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_pyflakes_is_clean():
    """No unused import, undefined name or shadowed definition in the code (generated gRPC code aside)."""
    files = [p for d in (*PACKAGES, "tests") for p in sorted((REPO / d).rglob("*.py"))
             if "_pb2" not in p.name and "__pycache__" not in p.parts]
    proc = subprocess.run([sys.executable, "-m", "pyflakes", *map(str, files)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_no_module_over_600_lines():
    """Modules stay small enough to be named by what they own (generated gRPC code aside)."""
    long = {str(p.relative_to(REPO)): n for d in (*PACKAGES, "tests") for p in sorted((REPO / d).rglob("*.py"))
            if "_pb2" not in p.name and (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"modules over 600 lines: {long}"


def test_a_cycle_is_caught(tmp_path, monkeypatch):
    """The check above can fail: two modules that import each other are found."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclepkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclepkg", cache_dir=None)
    assert graph.chain_exists("cyclepkg.b", "cyclepkg.a") and graph.chain_exists("cyclepkg.a", "cyclepkg.b")
