"""Dependency rules: engine never imports Qt, torch, nncf, app or quantization."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys

import engine
from tests.conftest import REPO

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "torch", "nncf", "app", "quantization")


def test_engine_modules_import_nothing_forbidden():
    mods = [f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__)]
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


def test_cli_does_not_import_qt_or_torch():
    code = ("import sys; from app import cli; cli.build_parser(); "
            "print(','.join(k for k in sys.modules if k.split('.')[0] in ('PySide6','torch','nncf')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_import_linter_contracts():
    exe = shutil.which("lint-imports")
    if exe is None:
        import pytest

        pytest.skip("import-linter not installed (test extra)")
    r = subprocess.run([exe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


# OpenCV and scipy are not run-time dependencies of the desktop app: OpenCV is test-only (parity tests of
# engine.inference.imgproc) and scipy is imported on first use by engine.eval.metrics (challenge metrics, eval CLI).
NOT_AT_RUNTIME = ("cv2", "scipy")


def test_engine_and_app_import_neither_opencv_nor_scipy():
    import app

    mods = [f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__)]
    mods += [f"app.{m.name}" for m in pkgutil.iter_modules(app.__path__)]
    assert "app.gui.main_window" in mods and "engine.io.raster" in mods and "engine.inference.prompts" in mods
    code = (
        "import importlib, sys\n"
        "import app\n"
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
