"""Time from launch to BoxSeg's first window on an X display (Linux; how docs/packaging.md measured it).

    xvfb-run -a python packaging/startup_time.py dist/BoxSeg/BoxSeg [--open assets/sample/CT_small.dcm] [-n 5]

Starts ``EXE app [PATH]`` with the xcb platform (a real window, not offscreen) and polls the X server
(``xwininfo``, package x11-utils) every 10 ms until a viewable top-level window titled "BoxSeg..."
exists (``window_s``) and, with ``--open``, until its title names the opened file (``opened_s``:
the image is read and shown), then kills the process. User folders point into a temporary folder,
so no autosave or setting of the user's is read or written. Prints one JSON line per run and the
median. Any command works as EXE (e.g. ``.venv/bin/boxseg`` for the unfrozen app).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW = re.compile(r'^\s*(0x[0-9a-f]+) "(BoxSeg[^"]*)"', re.M)


def viewable_titles() -> list[str]:
    tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout
    titles = []
    for wid, title in WINDOW.findall(tree):
        info = subprocess.run(["xwininfo", "-id", wid], capture_output=True, text=True).stdout
        if "IsViewable" in info:
            titles.append(title)
    return titles


def one_run(exe: str, path: str | None, timeout: float = 120.0) -> dict:
    with tempfile.TemporaryDirectory(prefix="boxseg-startup-") as tmp:
        env = dict(os.environ, QT_QPA_PLATFORM="xcb", HOME=tmp, XDG_CONFIG_HOME=f"{tmp}/config",
                   XDG_DATA_HOME=f"{tmp}/data", XDG_CACHE_HOME=f"{tmp}/cache", BOXSEG_AUTOSAVE_DIR=f"{tmp}/autosave")
        cmd = [exe, "app"] + ([path] if path else [])
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        result: dict = {}
        try:
            name = Path(path).name if path else None
            while time.perf_counter() - t0 < timeout:
                if proc.poll() is not None:
                    raise RuntimeError(f"{exe} exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
                titles = viewable_titles()
                now = time.perf_counter() - t0
                if titles and "window_s" not in result:
                    result["window_s"] = round(now, 3)
                if name is None and titles:
                    return result
                if name and any(name in t for t in titles):
                    result["opened_s"] = round(now, 3)
                    return result
                time.sleep(0.01)
            raise RuntimeError(f"no BoxSeg window within {timeout:.0f} s")
        finally:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exe")
    ap.add_argument("--open", default=None, help="a file to open at start (also times until it is shown)")
    ap.add_argument("-n", type=int, default=3, help="runs (the first one also fills the OS file cache)")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        sys.exit("startup_time.py: no X display (run it under xvfb-run -a)")
    runs = []
    for _ in range(args.n):
        runs.append(one_run(args.exe, args.open))
        print(json.dumps(runs[-1]), flush=True)
    summary = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(json.dumps({"median": summary, "runs": len(runs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
