"""Series open time with JPEG-LS / JPEG 2000 decoded in process vs by the decoder child (engine.io.decoder_process).

    python bench/decoder_process.py --slices 300 --syntax jpegls,j2k --repeat 3

Builds an N-slice 512x512 CT series in a temporary folder from the 3 real CT slices of the shared data
(``shared/data/raw/dcmqi/ct-3slice``; each slice shifted so that no two are alike; a synthetic phantom when the
shared data is missing), compressed losslessly with pydicom's encoders (pyjpegls, pylibjpeg-openjpeg), and times
``engine.io.dicom.read_dicom(folder)`` in a fresh Python process per run: the first open (the decoder child
started during the header scan) and a second open of the same series in that process (the child reused).
Prints a Markdown table; the series is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BOXSEG_SHARED", REPO.parent / "shared")) / "data" / "raw" / "dcmqi" / "ct-3slice"

_MEASURE = """
import json, sys, time
from engine.io import decoder_process as dp
from engine.io.dicom import read_dicom
dp._pool.broken = sys.argv[2] == "in-process"
out = []
for _ in range(2):
    t = time.perf_counter(); c = time.process_time()
    img = read_dicom(sys.argv[1])
    out.append((time.perf_counter() - t, time.process_time() - c))
print(json.dumps({"times": out, "shape": list(img.voxels.shape), "sum": float(img.voxels.astype("float64").sum()),
                  "child_cpu": dp.child_cpu_seconds()}))
"""


def build_series(folder: Path, slices: int, syntax) -> None:
    import pydicom
    from pydicom.uid import generate_uid

    sources = sorted(SHARED.glob("*.dcm"))
    if sources:
        base = [pydicom.dcmread(p) for p in sources]
        planes = [b.pixel_array.astype(np.int16) for b in base]
    else:
        from tests.engine.io import crafted

        base = [crafted._ct_dataset(rows=512, cols=512)]
        yy, xx = np.mgrid[:512, :512]
        planes = [(((yy - 256) ** 2 + (xx - 256) ** 2 < 200 ** 2) * 1000 + (xx % 37) * 3).astype(np.int16)]
    series_uid = generate_uid()
    for z in range(slices):
        ds = base[z % len(base)].copy()
        arr = np.roll(planes[z % len(planes)], (z // len(planes)) % 64, axis=1)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 2.5 * z]
        ds.InstanceNumber = z + 1
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.PixelData = arr.tobytes()
        ds.compress(syntax, arr)
        ds.save_as(folder / f"{z:04d}.dcm", enforce_file_format=True)


def measure(folder: Path, mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(folder), mode], capture_output=True, text=True,
                       env=env, cwd=REPO, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--syntax", default="jpegls", help="comma-separated: jpegls, j2k")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    syntaxes = {"jpegls": JPEGLSLossless, "j2k": JPEG2000Lossless}
    print("| series | mode | first open s (median) | second open s | parent CPU s (first) | child CPU s (both) |")
    print("|---|---|---:|---:|---:|---:|")
    for key in a.syntax.split(","):
        folder = Path(tempfile.mkdtemp(prefix=f"boxseg-{key}-"))
        try:
            build_series(folder, a.slices, syntaxes[key])
            mb = sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20
            sums = set()
            by_mode: dict[str, list[dict]] = {"in-process": [], "child": []}
            for _ in range(a.repeat):  # the modes alternate: a shared machine's load changes both alike
                for mode, runs in by_mode.items():
                    runs.append(measure(folder, mode))
            for mode, runs in by_mode.items():
                sums |= {r["sum"] for r in runs}
                first = statistics.median(r["times"][0][0] for r in runs)
                second = statistics.median(r["times"][1][0] for r in runs)
                cpu = statistics.median(r["times"][0][1] for r in runs)
                child = statistics.median(r["child_cpu"] for r in runs)
                print(f"| {key} {a.slices}x512x512 ({mb:.0f} MB) | {mode} | {first:.2f} | {second:.2f} | {cpu:.2f} | "
                      f"{child:.2f} |", flush=True)
            assert len(sums) == 1, f"the two modes read different voxels: {sums}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
