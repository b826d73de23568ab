"""The rooms and their rules (docs/ARCHITECTURE.md): the import-linter contracts of pyproject.toml, no import
circles, no project import hidden in a function body, and what importing the engine or the app pulls in."""

from __future__ import annotations

import ast
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import app
import engine
import quantization
from tests.conftest import REPO

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "torch", "nncf", "app", "quantization")
OURS = ("engine", "app", "quantization")

#: function-level imports of our own modules, each allowed by a contract in pyproject.toml that says why
LAZY_ALLOWED = {
    ("app.cli.desktop", "app.gui.launch"), ("app.cli.desktop", "app.gui.smoke"),  # `boxseg app` reaches Qt
    ("engine.batch.run", "engine.batch.cluster"),  # `distributed` (~0.3 s) only when a cluster runs
}


def _modules(package: str) -> list[str]:
    pkg = {"engine": engine, "app": app, "quantization": quantization}[package]
    return [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")
                        if not m.name.endswith(".__main__")]


def _source(module: str) -> Path:
    base = REPO / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import of ``module`` outside
    ``if TYPE_CHECKING:``; ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    is_pkg = _source(module).name == "__init__.py"
    out = []

    def visit(node, in_func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            func = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, func) for a in child.names if a.name.split(".")[0] in OURS)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = module.split(".")[: len(module.split(".")) - child.level + (1 if is_pkg else 0)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                if base.split(".")[0] in OURS:
                    for a in child.names:
                        sub = f"{base}.{a.name}"
                        out.append((sub if _source(sub).exists() else base, child.lineno, func))
            visit(child, func)

    visit(tree, False)
    return out


ALL = _modules("engine") + _modules("app") + _modules("quantization")


def test_the_rooms_exist():
    for room in ("engine.base", "engine.data", "engine.io", "engine.inference", "engine.eval", "engine.batch",
                 "engine.pipeline", "app.cli", "app.gui", "app.autosave"):
        assert room in ALL, room
    flat = [m for m in _modules("engine") if m.count(".") == 1 and not _source(m).name == "__init__.py"]
    assert flat == ["engine.pipeline"], f"engine modules outside a room: {flat}"


def test_no_project_import_is_hidden_in_a_function():
    """In engine and app (quantization's offline tools import their torch/nncf modules on demand)."""
    hidden = sorted((m, t, line) for m in ALL if not m.startswith("quantization") for t, line, in_func in _imports(m)
                    if in_func and (m, t) not in LAZY_ALLOWED)
    assert not hidden, "function-level imports of project modules (hoist them, or add a contract that says why): " + \
        ", ".join(f"{m}:{line} -> {t}" for m, t, line in hidden)


def test_no_import_circles():
    graph = {m: sorted({t for t, _, _ in _imports(m) if t in ALL and t != m}) for m in ALL}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for t in graph[m]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                dfs(t)
        stack.pop()
        state[m] = 2

    for m in ALL:
        if m not in state:
            dfs(m)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_import_scan_sees_every_kind_of_import():
    """_imports reads relative, absolute and function-level imports (so the checks above can fail)."""
    imports = dict(((t, f) for t, _, f in _imports("engine.inference.session")))
    assert imports["engine.inference.predictor"] is False and imports["engine.inference.runtime"] is False
    assert ("app.gui.launch", True) in {(t, f) for t, _, f in _imports("app.cli.desktop")}
    assert "engine.inference.session" not in {t for t, _, _ in _imports("engine.inference.predictor")}


def test_engine_modules_import_nothing_forbidden():
    mods = _modules("engine")
    assert "engine.inference.predictor" in mods and "engine.eval.metrics" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"engine pulled in: {r.stdout.strip()}"


def test_cli_imports_neither_qt_nor_torch_nor_dask():
    code = ("import sys; from app.cli.main import build_parser; build_parser(); "
            "print(','.join(k for k in sys.modules if k.split('.')[0] in ('PySide6','torch','nncf','distributed')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_import_linter_contracts():
    exe = shutil.which("lint-imports") or (Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter not installed (test extra)")
    r = subprocess.run([str(exe)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout and "engine rooms" in r.stdout


# OpenCV and scipy are not run-time dependencies of the desktop app: OpenCV is test-only (parity tests of
# engine.inference.imgproc) and scipy is imported on first use by engine.eval.metrics (challenge metrics, eval CLI).
NOT_AT_RUNTIME = ("cv2", "scipy")


def test_engine_and_app_import_neither_opencv_nor_scipy():
    mods = [m for m in _modules("engine") + _modules("app") if not m.startswith(("engine.eval", "engine.batch.cluster"))]
    assert "app.gui.main_window" in mods and "engine.io.raster" in mods and "engine.inference.prompts" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(k for k in sys.modules if k.split('.')[0] in {NOT_AT_RUNTIME!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing engine/app pulled in: {r.stdout.strip()}"


def test_segmentation_runs_without_opencv_and_scipy(tmp_path):
    """`boxseg segment` with an overlay, and reading PNGs back, with cv2 and scipy made unimportable."""
    sample = REPO / "assets" / "sample" / "CT_small.dcm"
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {NOT_AT_RUNTIME!r}:\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from app.cli.main import main\n"
        f"rc = main(['segment', {str(sample)!r}, '--box', '72,0,110,28', '-o', {str(tmp_path / 'm.png')!r},\n"
        f"           '--overlay', {str(tmp_path / 'ov.png')!r}])\n"
        "from engine.io.dispatch import open_image\n"
        f"assert open_image({str(tmp_path / 'ov.png')!r}).is_rgb\n"
        f"assert open_image({str(tmp_path / 'm.png')!r}).voxels.max() == 255\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_without_scipy_is_a_clear_engine_error():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'scipy':\n"
        "            raise ImportError('scipy is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from engine.base.errors import BoxSegError\n"
        "from engine.eval.metrics import compute_case_metrics\n"
        "m = np.zeros((1, 8, 8), np.uint8); m[0, 2:5, 2:5] = 1\n"
        "try:\n"
        "    compute_case_metrics(m, m, spacing=(1, 1, 1), is_3d=True)\n"
        "except ImportError as e:\n"
        "    assert isinstance(e, BoxSegError), type(e)\n"
        "    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "the challenge metrics need scipy: pip install scipy"
