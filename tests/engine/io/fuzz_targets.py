"""Fuzz targets over every reader, their seeds, and the failure oracle (issue 18, item 7).

A target turns fuzzer bytes into a file of its reader's kind (a ``.dcm``, one slice of a DICOM series
folder, a ``.nii``, a label map onto a matching image, a model or batch manifest, ...) and reads it
through the path the app and the CLI use (:func:`engine.io.dispatch.open_image`,
:func:`~engine.io.dispatch.read_labelmap`, ...). :func:`run_one` reads one input and raises
:class:`Failure` when the reader

* raises anything other than BoxSeg's own errors (:class:`~engine.base.errors.BoxSegError`: InputError,
  ModelError, ...), or one of them with a message of more than one line, or a MemoryError anywhere in
  the exception's chain (a reader that turns it into an InputError still tried to allocate > the limit);
* takes more than :data:`MAX_SECONDS` of CPU time (CPU, not wall clock: the machines that run this are
  shared; a hang is the long campaign's wall-clock timeout), the pixel decoder child's included
  (:func:`engine.io.decoder_process.child_cpu_seconds`: a frame it was stopped on counts its wall clock);
* accepts NaN, infinite or singular geometry (the returned Image's or LabelMap's affine);
* lets a seeded patient name or ID (:data:`SECRETS`) reach an error message, a warning, a log record,
  stdout/stderr or the image's description/warnings.

The memory bound (> :data:`MAX_BYTES`) is an address-space limit (:func:`memory_limit`) around the read:
an allocation beyond it raises MemoryError, which the oracle reports.

Used by ``tests/engine/io/test_fuzz.py`` (hypothesis: a short, structure-aware run in the test suite,
and the replay of every regression input under ``tests/data/fuzz/``) and by ``bench/fuzz.py`` (the
coverage-guided atheris campaign).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import re
import resource
import shutil
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.base.errors import BoxSegError
from engine.batch.manifest import read_manifest as read_batch_manifest
from engine.data.geometry import affine_problem
from engine.data.image import Image
from engine.data.labelmap import LabelMap, Segment
from engine.inference.manifest import find_model, read_manifest as read_model_manifest
from engine.io import decoder_process
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from engine.io.itksnap import read_label_descriptions, write_label_descriptions
from tests.engine.io import crafted

REPO = Path(__file__).resolve().parents[3]
#: the patient name and ID put into every DICOM seed; none may appear in any output
SEED_NAME, SEED_ID = "Fuzz^Seed^Name", "FUZZ-SEED-ID-0815"
SECRETS = (SEED_NAME, SEED_ID, crafted.PATIENT, "SEED-ID-4711")
MAX_SECONDS = 5.0
MAX_BYTES = 3 << 29  # 1.5 GiB
#: regression inputs, one folder per target (``tests/data/fuzz/<target>/<name>.bin``)
REGRESSIONS = REPO / "tests" / "data" / "fuzz"


class Failure(Exception):
    """What the oracle found: ``kind`` (exception, memory, slow, geometry, leak, multiline) and ``signature``
    (kind + exception type + the innermost frame of our or a library's code: one per distinct bug)."""

    def __init__(self, kind: str, detail: str, signature: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.signature = kind, detail, signature


@contextlib.contextmanager
def memory_limit(extra_bytes: int = MAX_BYTES):
    """Limit the process's address space to what it maps now plus ``extra_bytes`` (the soft limit only,
    restored afterwards: an unprivileged process may raise it back up to the unchanged hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a record whose arguments do not format is still not a leak
            self.lines.append(str(record.msg))


def _signature(kind: str, e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    where = next((f for f in reversed(frames) if "fuzz_targets" not in f.filename), frames[-1] if frames else None)
    loc = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{kind}:{type(e).__name__}@{loc}"


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


# --- the targets -----------------------------------------------------------------------------------

@dataclass
class Context:
    """A scratch folder and the images label maps are read onto, made once per process (:func:`context`)."""

    root: Path
    series: Path = None  # a 3-slice CT series folder (DICOM-SEG's image)
    dicom_image: Image = None
    nifti_image: Image = None  # a 4x5x6 NIfTI volume with an oblique affine (NIfTI labels, .seg.nrrd)
    png_image: Image = None  # a 12x16 grey PNG (PNG label maps)
    mutated_series: Path = None  # two valid slices; the fuzzed one is written beside them as s002.dcm


def _ct(z: float, inst: int, uid="1.2.826.0.1.3680043.8.498.77", rows=8, cols=8):
    ds = crafted._ct_dataset(rows=rows, cols=cols, z=z, uid=uid, inst=inst)
    ds.PatientName, ds.PatientID = SEED_NAME, SEED_ID
    # the Type 2 attributes highdicom copies into a SEG (the seeds are written by our own SEG writer)
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19700101", "O", "20260101", "120000"
    ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber, ds.SeriesNumber = "", "1", "", 1
    return ds


def context(root: Path | None = None) -> Context:
    root = Path(root or tempfile.mkdtemp(prefix="boxseg-fuzz-"))
    ctx = Context(root=root)
    ctx.series = root / "series"
    ctx.series.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        _ct(float(i), i + 1).save_as(ctx.series / f"s{i:03d}.dcm", enforce_file_format=True)
    ctx.dicom_image = open_image(ctx.series)
    ctx.mutated_series = root / "mutated"
    ctx.mutated_series.mkdir(exist_ok=True)
    for i in range(2):
        _ct(float(i), i + 1).save_as(ctx.mutated_series / f"s{i:03d}.dcm", enforce_file_format=True)
    import nibabel as nib

    affine = np.array([[0.9, 0.1, 0.0, -10.0], [-0.1, 0.9, 0.0, 20.0], [0.0, 0.0, 2.5, 5.0], [0, 0, 0, 1]])
    vol = (np.arange(4 * 5 * 6) % 97).reshape(6, 5, 4).astype(np.int16)  # (x, y, z) for NIfTI
    nib.save(nib.Nifti1Image(vol, affine), root / "image.nii.gz")
    ctx.nifti_image = open_image(root / "image.nii.gz")
    from PIL import Image as PILImage

    PILImage.fromarray((np.arange(12 * 16) % 251).reshape(12, 16).astype(np.uint8)).save(root / "image.png")
    ctx.png_image = open_image(root / "image.png")
    return ctx


def _labels(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[..., 1:3, 1:3] = 1
    labels[..., 2:4, 3:5] = 2
    return labels


_RASTER_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"II*\0", ".tif"), (b"MM\0*", ".tif"), (b"BM", ".bmp"))


def _raster_name(data: bytes) -> str:
    return "fuzz" + next((s for m, s in _RASTER_MAGIC if data.startswith(m)), ".png")


_IMGS_SHAPE = re.compile(rb"imgs\.npy.{0,200}?'shape': \(([^)]*)\)", re.S)


def _npz_name(data: bytes) -> str:
    """A 2D case's name when the (stored, uncompressed) imgs array looks like (H, W, 3), else a 3D case's."""
    m = _IMGS_SHAPE.search(data)
    two_d = m is not None and m.group(1).replace(b" ", b"").rstrip(b",").endswith(b",3")
    return "2DBox_CT_fuzz.npz" if two_d else "3DBox_CT_fuzz.npz"


def _write(folder: Path, name: str, data: bytes) -> Path:
    p = folder / name
    p.write_bytes(data)
    return p


def _t_dicom(ctx, data):
    return open_image(_write(ctx.root, "fuzz.dcm", data))


def _t_series(ctx, data):
    _write(ctx.mutated_series, "s002.dcm", data)
    return open_image(ctx.mutated_series)


def _t_nifti(ctx, data):
    return open_image(_write(ctx.root, "fuzz.nii", data))


def _t_nifti_gz(ctx, data):
    # the fuzzer mutates the uncompressed file (a mutated gzip stream mostly fails its CRC); corrupt gzip
    # streams are the crafted inputs' job
    return open_image(_write(ctx.root, "fuzz.nii.gz", gzip.compress(data, compresslevel=1)))


def _t_raster(ctx, data):
    return open_image(_write(ctx.root, _raster_name(data), data))


def _t_npz(ctx, data):
    return open_image(_write(ctx.root, _npz_name(data), data))


def _t_dicom_seg(ctx, data):
    p = _write(ctx.root, "fuzz-seg.dcm", data)
    read_labelmap(p)  # on its own grid first, then onto its series
    return read_labelmap(p, ctx.dicom_image)


def _t_nifti_labels(ctx, data):
    return read_labelmap(_write(ctx.root, "fuzz-labels.nii", data), ctx.nifti_image)


def _t_png_labels(ctx, data):
    return read_labelmap(_write(ctx.root, "fuzz-labels.png", data), ctx.png_image)


def _t_seg_nrrd(ctx, data):
    p = _write(ctx.root, "fuzz.seg.nrrd", data)
    read_labelmap(p)
    return read_labelmap(p, ctx.nifti_image)


def _t_label_descriptions(ctx, data):
    return read_label_descriptions(_write(ctx.root, "fuzz.label.txt", data))


def _t_model_manifest(ctx, data):
    folder = ctx.root / "models"
    folder.mkdir(exist_ok=True)
    _write(folder, "manifest.json", data)
    entries = read_model_manifest(folder)
    if entries:
        m = find_model(None, [folder])
        for g in m.graphs:
            m.path(g)
        _ = m.version, m.model_id
    return entries


def _t_batch_csv(ctx, data):
    return read_batch_manifest(_write(ctx.root, "fuzz.csv", data))


def _t_batch_jsonl(ctx, data):
    return read_batch_manifest(_write(ctx.root, "fuzz.jsonl", data))


@dataclass
class Target:
    name: str
    read: Callable[[Context, bytes], object]
    what: str
    seeds: Callable[[Context], list[bytes]] = field(default=lambda ctx: [])


# --- seeds -------------------------------------------------------------------------------------------

def _pydicom_files(limit: int = 200_000) -> list[Path]:
    import pydicom

    d = Path(pydicom.__file__).parent / "data" / "test_files"
    return [p for p in sorted(d.rglob("*")) if p.is_file() and p.stat().st_size < limit
            and p.suffix.lower() not in (".txt", ".json", ".dump", ".icc", ".gz") and p.name != "README"]


def _renamed(path: Path) -> bytes:
    """The file with PatientName/PatientID replaced by the seeded ones (the file as it is if pydicom cannot
    write it back)."""
    import pydicom

    raw = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(raw), force=True)
            ds.PatientName, ds.PatientID = SEED_NAME, SEED_ID
            buf = io.BytesIO()
            ds.save_as(buf)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - a seed pydicom cannot rewrite is still a seed
        return raw


def _crafted(makers) -> list[bytes]:
    out = []
    with tempfile.TemporaryDirectory() as d:
        for make in makers:
            sub = Path(d) / make.__name__
            sub.mkdir()
            p = make(sub)
            if p.is_file():
                out.append(p.read_bytes())
    return out


def _dicom_seeds(ctx) -> list[bytes]:
    out = [_renamed(p) for p in _pydicom_files()]
    out.append(_renamed(REPO / "assets" / "sample" / "CT_small.dcm"))
    out += [p.read_bytes() for p in sorted(ctx.series.iterdir())][:1]
    out += _crafted([crafted.dicom_text_slope, crafted.dicom_text_frames, crafted.dicom_text_grid_offsets,
                     crafted.dicom_huge_rows, crafted.dicom_huge_rows_encapsulated, crafted.dicom_zero_orientation,
                     crafted.dicom_zero_spacing, crafted.valid_no_preamble, crafted.valid_no_meta,
                     lambda d: crafted.dicom_deflate_bomb(d, inflated_mib=20)])
    return out


def _series_seeds(ctx) -> list[bytes]:
    out = [(ctx.series / "s002.dcm").read_bytes()]
    out += _crafted([crafted.dicom_text_slope, crafted.dicom_zero_orientation, crafted.valid_no_preamble])
    out += [_renamed(p) for p in _pydicom_files() if p.name in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm")]
    return out


def _nibabel_files(suffix: str) -> list[Path]:
    import nibabel

    d = Path(nibabel.__file__).parent / "tests" / "data"
    return [p for p in sorted(d.glob("*" + suffix)) if p.stat().st_size < 400_000 and ".dconn." not in p.name]


def _nifti_seeds(ctx) -> list[bytes]:
    out = [p.read_bytes() for p in _nibabel_files(".nii")]
    out += [gzip.decompress(p.read_bytes()) for p in _nibabel_files(".nii.gz")]
    out.append(gzip.decompress((ctx.root / "image.nii.gz").read_bytes()))
    out += _crafted([crafted.nifti_huge, crafted.nifti_nan_affine, crafted.nifti_singular_affine,
                     lambda d: crafted.nifti_truncated(d, gz=False)])
    return out


def _raster_seeds(ctx) -> list[bytes]:
    from PIL import Image as PILImage

    out = [(ctx.root / "image.png").read_bytes()]
    rgb = (np.arange(10 * 14 * 3) % 256).reshape(10, 14, 3).astype(np.uint8)
    for fmt, arr, kw in (("JPEG", rgb, {}), ("TIFF", rgb, {}), ("BMP", rgb, {}), ("PNG", rgb, {}),
                         ("TIFF", (np.arange(80) * 700).reshape(8, 10).astype(np.uint16), {}),
                         ("PNG", (np.arange(80) * 700).reshape(8, 10).astype(np.uint16), {}),
                         ("TIFF", rgb, {"compression": "tiff_deflate"})):
        buf = io.BytesIO()
        PILImage.fromarray(arr).save(buf, fmt, **kw)
        out.append(buf.getvalue())
    out += _crafted([crafted.png_huge])
    return out


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npz_seeds(ctx) -> list[bytes]:
    out = [_npz_bytes(imgs=np.zeros((4, 8, 8), np.uint8), boxes=np.array([[1, 1, 0, 5, 5, 3]]),
                      spacing=np.array([1.0, 1.0, 2.5])),
           _npz_bytes(imgs=np.zeros((8, 8, 3), np.uint8), boxes=np.array([[1, 1, 5, 5]])),
           _npz_bytes(imgs=np.zeros((4, 8, 8), np.uint8), boxes=np.array([[1, 1, 0, 5, 5, 3]]),
                      gts=np.zeros((4, 8, 8), np.uint8), spacing=np.array([0.5, 0.5, 1.0]))]
    out += _crafted([crafted.npz_huge, crafted.npz_spacing_two, crafted.npz_spacing_zero, crafted.npz_spacing_nan])
    return out


def _written(ctx, name: str, image: Image, segments=None) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = write_labelmap(Path(d) / name, _labels(image.shape), image, segments=segments)
        return p.read_bytes()


def _seg_seeds(ctx) -> list[bytes]:
    segs = [Segment(1, "liver", (220, 40, 40)), Segment(2, "spleen", (40, 200, 60))]
    out = [_written(ctx, "seg.dcm", ctx.dicom_image, segs), _written(ctx, "seg1.dcm", ctx.dicom_image)]
    out += [_renamed(p) for p in _pydicom_files() if p.name in ("CT_small.dcm",)]
    return out


def _nifti_label_seeds(ctx) -> list[bytes]:
    return [gzip.decompress(_written(ctx, "labels.nii.gz", ctx.nifti_image)),
            _written(ctx, "labels.nii", ctx.nifti_image)]


def _png_label_seeds(ctx) -> list[bytes]:
    return [_written(ctx, "labels.png", ctx.png_image)]


def _seg_nrrd_seeds(ctx) -> list[bytes]:
    segs = [Segment(1, "liver", (220, 40, 40)), Segment(2, "spleen", (40, 200, 60))]
    return [_written(ctx, "labels.seg.nrrd", ctx.nifti_image, segs), _written(ctx, "plain.seg.nrrd", ctx.nifti_image)]


def _label_description_seeds(ctx) -> list[bytes]:
    with tempfile.TemporaryDirectory() as d:
        p = write_label_descriptions(Path(d) / "x.label.txt", [Segment(1, "liver", (220, 40, 40)),
                                                               Segment(2, "spleen \"x\"", (40, 200, 60))])
        written = p.read_bytes()
    itk = (b'################################################\n# ITK-SnAP Label Description File\n'
           b'#    IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n'
           b'    0     0    0    0        0  0  0    "Clear Label"\n'
           b'    1   255    0    0        1  1  1    "Label 1"\n'
           b'   17     0  255    0      0.5  1  0    "Kidney (left)"\n')
    return [written, itk]


def _model_manifest_seeds(ctx) -> list[bytes]:
    bundled = (REPO / "assets" / "models" / "manifest.json").read_bytes()
    small = {"format": 1, "models": [{"name": "m", "family": "litemedsam", "precision": "fp32", "input_size": 256,
                                      "graphs": {"encoder": "e.xml"},
                                      "files": [{"path": "e.xml", "sha256": "0" * 64, "bytes": 1},
                                                {"path": "e.bin", "sha256": "1" * 64}]}]}
    return [bundled, json.dumps(small).encode(), b'{"format": 1, "models": []}']


def _batch_csv_seeds(ctx) -> list[bytes]:
    return [b"image,box,study,object,slice,window\nimages/a.nii.gz,\"10,20,30,40\",s1,liver,3,abdomen\n"
            b"images/a.nii.gz,\"1,2,0,5,6,4\",s1,spleen,,\nb.dcm,\"1,2,3\",,,x,\n",
            b"\xef\xbb\xbfpath;box\nx.png;1 2 3 4\n"]


def _batch_jsonl_seeds(ctx) -> list[bytes]:
    return [b'{"image": "a.nii.gz", "box": [10, 20, 30, 40], "slice": 2, "object": "liver"}\n'
            b'# comment\n{"image": "b", "box": "1,2,0,5,6,4", "series": "1.2.3", "window": "40,400"}\n'
            b'{"image": "", "box": null}\n[1, 2]\n',
            b'{"path": "x.png", "box": [1.5, 2, 3, 4], "study": "../../etc"}\n']


TARGETS = {t.name: t for t in [
    Target("dicom", _t_dicom, "DICOM file (open_image on a .dcm)", _dicom_seeds),
    Target("dicom_series", _t_series, "DICOM series folder: two valid slices and the fuzzed one", _series_seeds),
    Target("nifti", _t_nifti, "NIfTI .nii (open_image)", _nifti_seeds),
    Target("nifti_gz", _t_nifti_gz, "NIfTI .nii.gz: the fuzzed bytes gzip-compressed (open_image)", _nifti_seeds),
    Target("raster", _t_raster, "PNG/JPEG/TIFF/BMP by magic (open_image)", _raster_seeds),
    Target("npz", _t_npz, "challenge .npz, named 2D when imgs looks (H, W, 3) (open_image)", _npz_seeds),
    Target("dicom_seg", _t_dicom_seg, "DICOM-SEG (read_labelmap alone and onto its series)", _seg_seeds),
    Target("nifti_labels", _t_nifti_labels, "NIfTI label map onto a matching volume (read_labelmap)",
           _nifti_label_seeds),
    Target("png_labels", _t_png_labels, "PNG label map onto a matching 2D image (read_labelmap)", _png_label_seeds),
    Target("seg_nrrd", _t_seg_nrrd, "3D Slicer .seg.nrrd (read_labelmap alone and onto a matching volume)",
           _seg_nrrd_seeds),
    Target("label_descriptions", _t_label_descriptions, "ITK-SNAP label description file",
           _label_description_seeds),
    Target("model_manifest", _t_model_manifest, "model manifest.json (engine.inference.manifest)",
           _model_manifest_seeds),
    Target("batch_csv", _t_batch_csv, "batch manifest, CSV (engine.batch.manifest.read_manifest)", _batch_csv_seeds),
    Target("batch_jsonl", _t_batch_jsonl, "batch manifest, JSON lines", _batch_jsonl_seeds),
]}


# --- the oracle --------------------------------------------------------------------------------------

def _texts(result) -> list[str]:
    if isinstance(result, Image):
        return [result.description, *result.warnings]
    if isinstance(result, LabelMap):
        return list(result.warnings)
    return []


def _check_result(result) -> None:
    for obj in ([result] if isinstance(result, (Image, LabelMap)) else []):
        why = affine_problem(obj.affine)
        if why is not None:
            raise Failure("geometry", f"{type(obj).__name__} accepted with {why}", f"geometry:{type(obj).__name__}")
        arr = obj.voxels if isinstance(obj, Image) else obj.labels
        if arr.ndim not in (3, 4) or 0 in arr.shape:
            raise Failure("geometry", f"{type(obj).__name__} of shape {arr.shape}", f"shape:{type(obj).__name__}")


def run_one(target: Target | str, data: bytes, ctx: Context, *, limit_memory: bool = True):
    """Read ``data`` with ``target``; returns the reader's result, or raises :class:`Failure`."""
    target = TARGETS[target] if isinstance(target, str) else target
    records = _Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.INFO)
    out, err = io.StringIO(), io.StringIO()
    error = None
    result = None
    t0 = time.process_time() + decoder_process.child_cpu_seconds()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err), (memory_limit() if limit_memory else contextlib.nullcontext()):
            warnings.simplefilter("always")
            try:
                result = target.read(ctx, data)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - the oracle judges every exception (pyo3 panics too)
                error = e
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    seconds = time.process_time() + decoder_process.child_cpu_seconds() - t0
    if error is not None:
        if any(isinstance(x, MemoryError) for x in _chain(error)):
            raise Failure("memory", f"MemoryError (> {MAX_BYTES >> 20} MiB) in {type(error).__name__}: "
                          f"{str(error)[:200]}", _signature("memory", error)) from error
        if not isinstance(error, BoxSegError):
            raise Failure("exception", f"{type(error).__name__}: {str(error)[:300]}",
                          _signature("exception", error)) from error
        if "\n" in str(error).strip():
            raise Failure("multiline", f"{type(error).__name__} of {str(error).count(chr(10)) + 1} lines: "
                          f"{str(error)[:300]!r}", _signature("multiline", error)) from error
    if seconds > MAX_SECONDS:
        raise Failure("slow", f"{seconds:.1f} s of CPU", f"slow:{target.name}")
    texts = [str(error) if error is not None else "", *(str(w.message) for w in caught), *records.lines,
             out.getvalue(), err.getvalue(), *_texts(result)]
    for secret in SECRETS:
        hit = next((t for t in texts if secret in t), None)
        if hit is not None:
            where = type(error).__name__ if error is not None and secret in str(error) else "output"
            raise Failure("leak", f"{secret!r} in {where}: {hit[:200]!r}", f"leak:{target.name}:{where}")
    if error is None:
        _check_result(result)
    return result if error is None else error


def seeds(target: Target | str, ctx: Context) -> list[bytes]:
    target = TARGETS[target] if isinstance(target, str) else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return target.seeds(ctx)


def regression_inputs() -> list[tuple[str, Path]]:
    """(target, file) of every kept regression input under :data:`REGRESSIONS`."""
    return [(d.name, p) for d in sorted(REGRESSIONS.iterdir()) if d.is_dir() and d.name in TARGETS
            for p in sorted(d.iterdir()) if p.is_file()] if REGRESSIONS.is_dir() else []


def input_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def cleanup(ctx: Context) -> None:
    shutil.rmtree(ctx.root, ignore_errors=True)


__all__ = ["Context", "Failure", "MAX_BYTES", "MAX_SECONDS", "REGRESSIONS", "SECRETS", "TARGETS", "Target",
           "cleanup", "context", "input_name", "memory_limit", "regression_inputs", "run_one", "seeds"]
