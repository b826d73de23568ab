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
    assert "engine.predictor" in mods and "engine.metrics" in mods
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
