"""``--precision auto`` on the command line: the default of every model option, and ``boxseg models`` says what
it chose on this CPU and why (engine.inference.precision.AUTO_RULES)."""

from __future__ import annotations

import subprocess
import sys

from app.cli.main import build_parser
from engine.inference import precision as pr
from tests.conftest import REPO

def test_auto_is_the_default_everywhere():
    for argv in (["segment", "x.png", "--box", "1,1,5,5"], ["eval", "d"], ["batch", "m.csv", "-o", "o"]):
        assert build_parser().parse_args(argv).precision == "auto", argv

def test_boxseg_models_shows_what_auto_chose_and_why():
    r = subprocess.run([sys.executable, "-m", "app.cli.main", "models"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    cap = pr.cpu_capability()
    want = pr.AUTO_RULES[cap].model_precision
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("precision auto on this CPU"))
    assert f"capability {cap}): model litemedsam-{want}, inference precision f32" in line
    assert line.endswith("no int8 layers" if want == "fp32" else ("as exact f32 arithmetic", "on int8 kernels"))
    assert f"why: {pr.AUTO_RULES[cap].reason}" in r.stdout
