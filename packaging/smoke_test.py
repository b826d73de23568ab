"""Smoke-test a frozen BoxSeg: run ``EXE app --smoke-test SAMPLE`` offscreen and check its JSON line.

    python packaging/smoke_test.py dist/BoxSeg/BoxSeg [--bundle dist/BoxSeg] [--sample PATH]

Checks: ``EXE --version`` prints the installed package's version (when boxseg is installed in this
Python); the smoke test exits 0 and prints one JSON line with ``mask_pixels > 0`` and
``saved: true``; the command line works frozen (``segment`` to DICOM-SEG and NIfTI, ``convert``,
``info``, ``models`` on the bundled CT slice; ``--no-cli`` skips this); with ``--bundle DIR``, no file
or folder in the bundle is named after torch or nncf.
Prints the JSON with the process's wall-clock time added (``wall_s``) and, with ``--bundle``, the
bundle's size (``bundle_mb``). Exit 0 when everything holds, 1 otherwise.

Used by the release workflow on every OS and by tests/packaging/test_packaging.py (standard library only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"torch|nncf", re.I)


def forbidden_files(bundle: Path) -> list[str]:
    """Paths under ``bundle`` (relative) with torch or nncf in a file or folder name."""
    return sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if FORBIDDEN.search(p.name))


def bundle_size(bundle: Path) -> int:
    """Bytes of the regular files under ``bundle`` (symbolic links not followed)."""
    return sum(p.lstat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())


def parse_smoke_output(stdout: str) -> dict:
    """The JSON object of the smoke test's output (its last line that parses as a JSON object)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no JSON line in the smoke test's output: {stdout[-500:]!r}")


def run(exe: Path, sample: Path, timeout: float = 900.0) -> dict:
    """Run the smoke test of ``exe`` on ``sample`` offscreen; the parsed JSON plus ``wall_s``."""
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM") or "offscreen")
    t0 = time.perf_counter()
    p = subprocess.run([str(exe), "app", "--smoke-test", str(sample)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{exe} app --smoke-test exited {p.returncode}:\n{p.stderr[-3000:]}")
    result = parse_smoke_output(p.stdout)
    result["wall_s"] = round(wall, 2)
    return result


def cli_checks(exe: Path, timeout: float = 600.0) -> list[str]:
    """The command line of the frozen app on the bundled CT slice: DICOM-SEG and NIfTI output (highdicom,
    nibabel), a PNG overlay read back as an input (Pillow), DICOM-SEG -> NIfTI and -> 3D Slicer .seg.nrrd
    (pynrrd) conversion, ITK-SNAP label descriptions beside the NIfTI, ``info`` and ``models``. Problems
    found (empty = all passed)."""
    import tempfile

    ct = REPO / "assets" / "sample" / "CT_small.dcm"
    problems = []
    with tempfile.TemporaryDirectory(prefix="boxseg-cli-") as tmp:
        out = Path(tmp)
        runs = [
            (["segment", ct, "--box", "72,0,110,28", "-o", out / "seg.dcm", "--overlay", out / "overlay.png"],
             [out / "seg.dcm", out / "overlay.png"]),
            (["segment", ct, "--box", "72,0,110,28", "-o", out / "seg.nii.gz"], [out / "seg.nii.gz", out / "seg.label.txt"]),
            (["convert", out / "seg.dcm", "-o", out / "back.nii.gz", "--reference", ct], [out / "back.nii.gz"]),
            (["convert", out / "seg.dcm", "-o", out / "back.seg.nrrd", "--reference", ct], [out / "back.seg.nrrd"]),
            (["stats", ct, out / "back.seg.nrrd"], []),
            # a 2D raster in and out (Pillow): the overlay PNG written above, segmented to a mask PNG
            (["segment", out / "overlay.png", "--box", "72,0,110,28", "-o", out / "mask.png"], [out / "mask.png"]),
            (["info", ct], []),
            (["models"], []),
        ]
        for args, outputs in runs:
            p = subprocess.run([str(exe)] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
            missing = [o.name for o in outputs if not o.is_file()]
            if p.returncode != 0 or missing:
                problems.append(f"`{' '.join(str(a) for a in args[:1])}` exited {p.returncode}, missing {missing}: "
                                f"{(p.stderr or p.stdout)[-1500:]}")
    return problems


def check(result: dict) -> list[str]:
    problems = []
    if not (isinstance(result.get("mask_pixels"), int) and result["mask_pixels"] > 0):
        problems.append(f"mask_pixels is {result.get('mask_pixels')!r}, expected > 0")
    if result.get("saved") is not True:
        problems.append(f"saved is {result.get('saved')!r}, expected true")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exe", type=Path, help="the frozen executable (dist/BoxSeg/BoxSeg, boxseg-cli.exe, ...)")
    ap.add_argument("--sample", type=Path, default=REPO / "assets" / "sample" / "CT_small.dcm")
    ap.add_argument("--bundle", type=Path, default=None, help="the bundle folder to scan for torch/nncf files")
    ap.add_argument("--no-cli", action="store_true", help="skip the command-line checks (segment, convert, ...)")
    args = ap.parse_args(argv)
    args.exe = args.exe.resolve()  # Windows: CreateProcess with a native absolute path

    problems = []
    v = subprocess.run([str(args.exe), "--version"], capture_output=True, text=True, timeout=300)
    print(f"{args.exe} --version: {v.stdout.strip() or v.stderr.strip()}", file=sys.stderr)
    try:
        import importlib.metadata as md

        want = md.version("boxseg")
        if v.returncode != 0 or want not in v.stdout.split():
            problems.append(f"--version printed {v.stdout.strip()!r} (exit {v.returncode}), expected boxseg {want}")
    except md.PackageNotFoundError:
        pass
    try:
        result = run(args.exe, args.sample)
    except Exception as e:  # noqa: BLE001
        print(f"smoke test FAILED: {e}", file=sys.stderr)
        return 1
    problems += check(result)
    if not args.no_cli:
        problems += cli_checks(args.exe)
    if args.bundle is not None:
        bad = forbidden_files(args.bundle)
        if bad:
            problems.append(f"torch/nncf files in the bundle: {bad[:10]}")
        result["bundle_mb"] = round(bundle_size(args.bundle) / 2**20, 1)
    print(json.dumps(result))
    for p in problems:
        print(f"smoke test FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
