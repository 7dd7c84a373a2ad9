"""The layers: core/ (no Qt) <- training/ and app/.

Imports are checked in fresh interpreters (``sys.modules`` after importing every module of a package),
and the sources of core/ and training/ are read for any import of ``app``, even one inside a function
that the import check would not reach. That the torch-free commands (``stylemix render --engine
stream``, ``analyze``, ``params``, ``compare``) do not load torch is checked in
tests/test_stream.py.
"""

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[str]:
    """Every module of ``package`` (sub-packages included; ``__main__`` modules left out: importing
    one runs it)."""
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        if not info.name.endswith("__main__"):
            found.append(info.name)
    return found


def _loaded_after_importing(modules: list[str]) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), STYLEMIX_NO_WARMUP="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def _offending(loaded: set[str], tops: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if m.split(".")[0] in tops)


def test_the_module_lists_are_complete():
    core, training = _modules("core"), _modules("training")
    assert {"core.params", "core.console", "core.playback", "core.cli", "core.suggest"} <= set(core)
    assert {"training.train", "training.methods", "training.datasets"} <= set(training)
    assert any(m.startswith("training.synth") for m in training)


def test_importing_core_loads_neither_qt_nor_the_app():
    loaded = _loaded_after_importing(_modules("core"))
    assert "core.console" in loaded and "core.playback" in loaded  # the check did import them
    assert _offending(loaded, ("PySide6", "shiboken6", "pyqtgraph", "app")) == []


def test_importing_training_loads_neither_the_app_nor_qt():
    loaded = _loaded_after_importing(_modules("training"))
    assert "training.train" in loaded
    assert _offending(loaded, ("PySide6", "shiboken6", "pyqtgraph", "app")) == []


def _app_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Every import of ``app`` in one source file, wherever it is (module level or in a function):
    ``import app...``, ``from app... import``, ``importlib.import_module("app...")``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module",
                                                                                  "__import__")):
            names = [node.args[0].value]
        found += [f"{path.relative_to(root)}:{node.lineno}: {n}" for n in names
                  if n == "app" or n.startswith("app.")]
    return found


@pytest.mark.parametrize("package", ["core", "training"])
def test_sources_never_import_the_app(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    assert [hit for f in files for hit in _app_imports(f)] == []


def test_the_source_check_finds_an_app_import(tmp_path):
    """The check above is not blind: it finds each form of importing the app."""
    src = tmp_path / "mod.py"
    src.write_text("import os\n"
                   "def f():\n"
                   "    from app.main import run_app\n"
                   "    import app.tasks as t\n"
                   "    return importlib.import_module('app.model')\n")
    hits = sorted(h.split(": ")[1] for h in _app_imports(src, tmp_path))
    assert hits == ["app.main", "app.model", "app.tasks"]
