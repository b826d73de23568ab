"""What a batch knows about its outputs: their names, the input fingerprint of each study, and the
records that make a batch resumable.

Each finished study has a record ``OUTDIR/.boxseg/<output>.json`` holding the study's input
fingerprint (:func:`fingerprint`: its parameters plus name, size and modification time of every
input file), the model's sha256 and the output's size and sha256. A later run skips a study whose
record matches and whose output is byte for byte the one recorded (:func:`up_to_date`), so a batch is
resumable and a rerun is a no-op; an output changed, truncated or replaced since is redone. A record
always describes a complete output: the new record replaces the old one only after the new output is
in place, and a study that fails keeps its previous output and record (both of the earlier run).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.base.atomic import remove_stale_temps, write_text
from engine.base.errors import InputError
from engine.batch.manifest import Study
from engine.inference.manifest import sha256_file
from engine.io.formats import LABELMAP_SUFFIXES, kind_of

RECORD_DIR = ".boxseg"
RECORD_FORMAT = 2  # 2: the output's sha256 (1 had its size only: such outputs are redone)
FORMATS = ("auto", "nifti", "dicom-seg", "png", "seg-nrrd")


def output_name(study: Study, fmt: str = "auto") -> str:
    """The study's output file name: ``<case>.npz`` for challenge cases, else ``<study>`` plus
    ``.nii.gz`` / ``.dcm`` (DICOM-SEG) / ``.png`` / ``.seg.nrrd`` (3D Slicer); ``auto`` follows the input
    (DICOM -> DICOM-SEG, NIfTI -> NIfTI, 2D raster -> PNG). A NIfTI output has its ITK-SNAP label
    descriptions and segment metadata beside it (``<study>.label.txt``, ``<study>.meta.json``, written by
    :func:`engine.io.dispatch.write_labelmap`)."""
    if fmt not in FORMATS:
        raise InputError(f"output format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if study.kind == "npz":
        return f"{study.study}.npz"
    if fmt == "auto":
        p = Path(study.image)
        kind = None if p.is_dir() else kind_of(p)
        fmt = "nifti" if kind in ("nifti", "npz") else "png" if kind == "raster" else "dicom-seg"
    return study.study + LABELMAP_SUFFIXES[fmt][0]


def input_files(path: Path) -> list[tuple[str, int, int]]:
    """(relative name, size, mtime_ns) of the input: the file, or every file under a DICOM folder."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file():
        s = p.stat()
        return [(p.name, s.st_size, s.st_mtime_ns)]
    out = []
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for f in sorted(files):
            fp = Path(root) / f
            try:
                s = fp.stat()
            except OSError:
                continue
            out.append((fp.relative_to(p).as_posix(), s.st_size, s.st_mtime_ns))
    if not out:
        raise InputError(f"{p}: the folder is empty")
    return out


def fingerprint(study: Study, output: str) -> tuple[str, int]:
    """sha256 of the study's parameters (kind, series, objects, output name) and of its input files'
    names, sizes and modification times; returns (hex digest, input bytes)."""
    files = input_files(Path(study.image))
    params = {"kind": study.kind, "series": study.series, "output": output,
              "objects": [[o.name, list(o.box), o.slice, o.window] for o in study.objects], "files": files}
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), sum(f[1] for f in files)


def record_path(outdir: Path, output: str) -> Path:
    return Path(outdir) / RECORD_DIR / f"{output}.json"


def read_record(outdir: Path, output: str) -> dict | None:
    try:
        return json.loads(record_path(outdir, output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def up_to_date(outdir: Path, output: str, fp: str, model_sha256: str) -> dict | None:
    """The study's record when its output exists with this input fingerprint and model, else None."""
    rec = read_record(outdir, output)
    if not rec or rec.get("fingerprint") != fp or rec.get("model_sha256") != model_sha256:
        return None
    out = Path(outdir) / output
    try:
        if rec.get("sha256") is None or out.stat().st_size != rec.get("bytes") or sha256_file(out) != rec["sha256"]:
            return None
    except OSError:
        return None
    return rec


def remove_stale_temp_files(outdir: Path) -> int:
    """Remove temporary files of killed writers older than a day from the output folder and its records
    (:func:`engine.base.atomic.remove_stale_temps`). Younger ones may be another batch's write in
    progress on the same folder, so they stay; every writer removes its own temporary file itself."""
    return remove_stale_temps(outdir) + remove_stale_temps(Path(outdir) / RECORD_DIR)


def write_record(outdir: Path, output: str, data: dict) -> Path:
    """Write the study's record (atomically: a record exists only complete)."""
    path = record_path(outdir, output)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, json.dumps(data, indent=1))


__all__ = ["FORMATS", "RECORD_DIR", "RECORD_FORMAT", "fingerprint", "input_files", "output_name", "read_record",
           "record_path", "remove_stale_temp_files", "up_to_date", "write_record"]
