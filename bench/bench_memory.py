"""Peak memory of the whole app: ``boxseg app --smoke-test`` on a 512x512x300 int16 CT, in a subprocess.

    python bench/bench_memory.py [--ct FILE] [--limit-mb 1200] [--out FILE] [SMOKE ARGS ...]

Writes a synthetic CT (``--ct`` reuses a file; made in a temporary folder otherwise): 512 x 512 x 300 int16
voxels (0.7 x 0.7 x 2 mm, 150 MiB), air around a soft-tissue body (40 HU) with a bright ellipsoid organ
(180 HU, on 121 slices, 64 x 50 mm across) that the smoke test boxes on the middle slice and propagates. Runs ``python -m app.cli.main app --smoke-test CT`` (open, drag a box with real mouse events,
propagate, save, reload) offscreen, with an empty settings folder (so the defaults are measured) and a
temporary embedding-cache folder, and samples the child's resident set (VmRSS, Linux) every 0.1 s.
Arguments it does not know go to the smoke test (e.g. ``--layout 1x3`` once the smoke test has it).

Prints and writes bench/results/memory-<date>.md: peak RSS (the kernel's high-water mark,
``getrusage(RUSAGE_CHILDREN).ru_maxrss``), RSS at the end of each phase of the sampled curve, the smoke
test's JSON line, and engine.base.sysinfo. Exit 1 when the peak is above ``--limit-mb`` (MB = 10^6 bytes;
issue 15: 1.2 GB). Takes 1-4 minutes (the propagation encodes ~120 slices).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.base.atomic import write_text  # noqa: E402
from engine.base.sysinfo import describe, markdown  # noqa: E402

SHAPE = (300, 512, 512)  # Z, Y, X
MM_XYZ = (0.7, 0.7, 2.0)


def make_ct(path: Path) -> Path:
    """The synthetic CT as NIfTI (int16 HU, RAS affine with both in-plane axes flipped, as scanners write)."""
    import nibabel as nib

    z, y, x = SHAPE
    zz, yy, xx = np.ogrid[:z, :y, :x]
    vol = np.full(SHAPE, -1000, np.int16)
    body = (((yy - 256) / 200.0) ** 2 + ((xx - 256) / 240.0) ** 2 <= 1)[0]
    vol[:, body] = 40
    organ = ((zz - 150) / 60.0) ** 2 + ((yy - 230) / 45.0) ** 2 + ((xx - 330) / 35.0) ** 2 <= 1
    vol[organ] = 180
    vol += np.random.default_rng(0).integers(-20, 21, size=(1, y, x), dtype=np.int16)  # texture, same per slice
    img = nib.Nifti1Image(np.transpose(vol, (2, 1, 0)), np.diag([-MM_XYZ[0], -MM_XYZ[1], MM_XYZ[2], 1.0]))
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_smoke(ct: Path, extra: list[str], env: dict) -> tuple[int, str, str, float, list[tuple[float, float]]]:
    """(exit code, stdout, stderr, peak RSS MiB, [(seconds, RSS MiB)] samples)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "app.cli.main", "app", "--smoke-test", str(ct), *extra],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []

    def sample():
        while p.poll() is None:
            r = _rss_mib(p.pid)
            if r is not None:
                samples.append((time.perf_counter() - t0, r))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = p.communicate()
    th.join()
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss: KiB on Linux, bytes on macOS; the largest of all children so far (only this one here)
    peak = maxrss / (2**20 if sys.platform == "darwin" else 1024)
    if maxrss <= before and samples:
        peak = max(r for _, r in samples)
    return p.returncode, out, err, peak, samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", type=Path, default=None, help="a CT to use (default: the synthetic one, made here)")
    ap.add_argument("--limit-mb", type=float, default=1200.0, help="fail above this peak RSS (10^6 bytes)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"memory-{dt.date.today()}.md")
    args, extra = ap.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="boxseg-bench-memory-") as tmp:
        ct = args.ct or make_ct(Path(tmp) / "ct-512x512x300.nii.gz")
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
               "XDG_CACHE_HOME": str(Path(tmp) / "cache"), "PYTHONPATH": str(REPO)}
        rc, out, err, peak, samples = run_smoke(ct, extra, env)
    peak_mb = peak * 2**20 / 1e6
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), "")
    result = json.loads(line) if line else {}
    curve = []  # the RSS curve, one point per 5 % of the run
    if samples:
        n = len(samples)
        curve = [samples[min(n - 1, round(i * (n - 1) / 20))] for i in range(21)]
    tail = []  # the last 30 s (commit of the propagated object, save, reload) at 1 s
    if samples:
        t_end = samples[-1][0]
        for t, r in samples:
            if t >= t_end - 30 and (not tail or t - tail[-1][0] >= 1.0):
                tail.append((t, r))
    t_peak = max(samples, key=lambda s: s[1])[0] if samples else float("nan")
    verdict = "within" if peak_mb <= args.limit_mb else "ABOVE"
    lines = [f"# Peak memory of the app: smoke test on a 512x512x300 CT ({dt.date.today()})", "",
             f"`python bench/bench_memory.py{' ' + ' '.join(extra) if extra else ''}`"
             + (f" --ct {args.ct.name}" if args.ct else " (synthetic int16 CT, 150 MiB of voxels)"), "",
             f"- peak RSS: **{peak:.0f} MiB = {peak_mb:.0f} MB** ({verdict} the {args.limit_mb:.0f} MB goal)",
             f"- smoke test exit {rc}: `{line or err.strip().splitlines()[-1:]}`",
             "- RSS along the run (s: MiB): " + ", ".join(f"{t:.0f}: {r:.0f}" for t, r in curve),
             f"- highest sample at {t_peak:.0f} s; the last 30 s (s: MiB): "
             + ", ".join(f"{t:.0f}: {r:.0f}" for t, r in tail), "",
             "## Machine", "", markdown(describe())]
    text = "\n".join(lines) + "\n"
    print(text)
    if rc != 0:
        print(err[-3000:], file=sys.stderr)
    write_text(args.out, text)
    return 0 if rc == 0 and peak_mb <= args.limit_mb and result else 1


if __name__ == "__main__":
    sys.exit(main())
