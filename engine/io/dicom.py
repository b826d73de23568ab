"""DICOM images in: series folders (recursive), single files, multi-frame files -> :class:`Image`.

* A folder is scanned recursively; image files are grouped by SeriesInstanceUID (non-image objects
  — SEG, RTSTRUCT, SR, presentation states, ... — and non-DICOM files are skipped).
  :func:`scan_folder` lists the series (:func:`group_series` groups any list of files: a DICOMDIR's, see
  :mod:`engine.io.studies`); :func:`choose_series` takes the one asked for (UID or its
  1-based number in the listing) or the one with the most slices (a tie is an error: a choice is
  needed).
* Slices are sorted by their position along the slice normal, ``n = row_cosine x column_cosine``
  of ImageOrientationPatient, ``d = n . ImagePositionPatient`` ascending (the order SimpleITK/ITK
  and 3D Slicer use); never by file name or InstanceNumber. Slice spacing comes from those
  positions, not SliceThickness. Irregular spacing, missing slices and gantry tilt are reported
  in ``Image.warnings``.
* Values are stored values x RescaleSlope + RescaleIntercept (HU for CT); MONOCHROME1 is inverted
  so that higher values are brighter; colour (RGB, YBR_*, PALETTE COLOR) becomes RGB.
* Compressed transfer syntaxes are decoded by pydicom's pixel handlers (pylibjpeg plugins,
  Pillow, pyjpegls); a missing decoder is an :class:`InputError` naming the package to install.
  JPEG-LS and JPEG 2000 are decoded in a child process with a time limit per frame
  (:mod:`engine.io.decoder_process`: a corrupt stream can keep CharLS busy for seconds).

Patient-identifying attributes are never put into descriptions, warnings or errors.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import BoxSegError, Cancelled, InputError
from engine.data.geometry import affine_from_dicom, raster_affine
from engine.data.image import Image
from engine.io import decoder_process
from engine.io.formats import SEG_SOP_CLASS
from engine.io.gate import check_data_present, check_size

log = logging.getLogger(__name__)

#: modalities of DICOM objects that are not images to segment (skipped when scanning folders)
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SR", "PR", "KO", "REG", "DOC",
                        "RWV", "ECG", "AU", "HD"}

#: transfer syntax UID -> what to ``pip install`` to decode it
_CODEC_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pillow (or pylibjpeg pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",
    # JPEG Lossless: python-gdcm (Apache-2.0 wrapper of BSD GDCM; ~18 MB, too big for the installers' 300 MB:
    # docs/formats.md); pylibjpeg-libjpeg also decodes it but is GPL-3.0
    "1.2.840.10008.1.2.4.57": "python-gdcm",
    "1.2.840.10008.1.2.4.70": "python-gdcm",
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",
}

#: relative spread of slice steps above which spacing is "irregular"
IRREGULAR_REL = 0.01
#: angle (degrees) between the slice normal and the slice stacking direction reported as gantry tilt
TILT_DEG = 0.05


@dataclass
class SeriesInfo:
    """One series found in a folder (headers only; no pixels read).

    uid: SeriesInstanceUID; modality, description (SeriesDescription), number (SeriesNumber);
    files: its image files; frames: total frames (single-frame files count 1); rows, columns: the
    first file's size; skipped: "file: reason" of its files whose header was refused (left out).
    """

    uid: str
    modality: str
    description: str
    number: int | None
    files: list[Path] = field(default_factory=list)
    headers: list = field(default_factory=list, repr=False)
    frames: int = 0
    rows: int = 0
    columns: int = 0
    skipped: list[str] = field(default_factory=list)

    def line(self, index: int | None = None) -> str:
        """One patient-free line for listings: '#2 CT 120 slices 512x512 "desc" UID'."""
        num = f"#{index} " if index is not None else ""
        desc = f" '{self.description}'" if self.description else ""
        return f"{num}{self.modality} {self.frames} slice(s) {self.columns}x{self.rows}{desc} {self.uid}"


class _Silent(logging.Filter):
    """Drops pydicom's log records while a :func:`quiet` block runs (its validation warnings are logged as
    well as warned, and quote the offending value: with a corrupt length, the elements after it too)."""

    depth = 0

    def filter(self, record):
        return _Silent.depth == 0


logging.getLogger("pydicom").addFilter(_Silent())


@contextlib.contextmanager
def quiet():
    """Silence pydicom's/highdicom's warnings and pydicom's log: they quote attribute values, the patient's
    name among them."""
    _Silent.depth += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _Silent.depth -= 1


@contextlib.contextmanager
def corrupt_is_input_error(name: str):
    """Reading one file's bytes: anything but BoxSeg's own errors is corrupt or unsupported data, an
    :class:`InputError` naming the file (pydicom converts values lazily, so any attribute access of a
    corrupt file can raise; the Rust RLE decoder panics). Only the exception's type is quoted: pydicom's
    messages quote values. The block runs :func:`quiet`."""
    try:
        with quiet():
            yield
    except BoxSegError:
        raise
    except Exception as e:  # noqa: BLE001 - see above
        raise InputError(f"{name}: cannot read as DICOM (corrupt or unsupported data: {type(e).__name__})") from e
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # pyo3's, a BaseException
            raise
        raise InputError(f"{name}: cannot decode the pixel data (the decoder failed on corrupt data)") from e


class _Clamped:
    """A binary file whose ``read(n)`` never asks for more than is left: pydicom reads an element's declared
    length at once, and a corrupt length of 4 GiB would allocate 4 GiB before finding the file short."""

    def __init__(self, f):
        self._f = f
        self._size = os.fstat(f.fileno()).st_size

    def read(self, n=-1):
        if n is None or n < 0:
            return self._f.read()
        return self._f.read(max(0, min(n, self._size - self._f.tell())))

    def __getattr__(self, name):
        return getattr(self._f, name)


@contextlib.contextmanager
def _clamped(path: Path):
    with open(path, "rb") as f:
        yield _Clamped(f)


#: most bytes a Deflated Explicit VR file may inflate to for a header read (the header lies before the pixels)
HEADER_INFLATE_MAX = 16 << 20
_DEFLATED = "1.2.840.10008.1.2.1.99"


def _dcmread(path: Path, *, inflate_limit: int = HEADER_INFLATE_MAX, **kw):
    """pydicom's read, quietly, with two additions.

    * A file without the 128-byte preamble and "DICM" (older equipment, ACR-NEMA style exports) is read
      with ``force`` when it starts like a dataset (a group 0x0002 or 0x0008 tag, little endian), as dcmtk
      does — not any file, so a folder of JPEGs is not parsed as DICOM.
    * A Deflated Explicit VR file is inflated here, at most ``inflate_limit`` bytes (pydicom inflates the
      whole file into memory, a few KiB of a crafted file can inflate to GiB): a header read
      (``stop_before_pixels``) sees the first ``inflate_limit`` bytes, a full read that would inflate
      more is an :class:`InputError` (callers pass the header part plus the declared pixel bytes).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    with quiet():
        try:
            with _clamped(path) as f:  # read_file_meta_info itself, on the clamped file (it takes a path)
                pydicom.filereader.read_preamble(f, False)
                meta = pydicom.filereader._read_file_meta_info(f)
        except Exception:  # noqa: BLE001 - any corrupt file meta: read below as without one
            meta = None
        if meta is not None and str(meta.get("TransferSyntaxUID", "")) == _DEFLATED \
                and "FileMetaInformationGroupLength" in meta:
            return _read_deflated(path, meta, inflate_limit, **kw)
        try:
            with _clamped(path) as f:
                return _unbuffered(pydicom.dcmread(f, **kw))
        except InvalidDicomError:
            if not _starts_like_dataset(path):
                raise
        with _clamped(path) as f:
            ds = _unbuffered(pydicom.dcmread(f, force=True, **kw))
        _fill_transfer_syntax(ds)
        return ds


def _unbuffered(ds):
    """A dataset read from a file object keeps it as ``buffer`` (closed by now; deepcopy warns about it)."""
    if getattr(ds, "buffer", None) is not None:
        ds.buffer = None
    return ds


def _read_deflated(path: Path, meta, limit: int, **kw):
    """Inflate a deflated file's dataset (bounded, see :func:`_dcmread`) and parse it as explicit VR little
    endian, the encoding inside the deflate stream; the dataset keeps its Deflated transfer syntax."""
    import io
    import zlib

    import pydicom
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    header_only = bool(kw.get("stop_before_pixels"))
    offset = 132 + 12 + int(meta.FileMetaInformationGroupLength)
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    with open(path, "rb") as f:
        f.seek(offset)
        while len(out) <= limit and not d.eof:
            chunk = d.unconsumed_tail or f.read(1 << 20)
            if not chunk:
                break
            try:
                out += d.decompress(chunk, limit + 1 - len(out))
            except zlib.error as e:
                raise InputError(f"{path.name}: corrupt deflated data ({e})") from e
    if len(out) > limit:
        if not header_only:
            raise InputError(f"{path.name}: deflated data inflates to more than {limit} bytes, more than its "
                             "header declares (a decompression bomb?)")
        del out[limit:]
    plain = copy.deepcopy(meta)
    plain.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, plain, enforce_standard=False)
    buf.write(out)
    buf.seek(0)
    ds = pydicom.dcmread(buf, **kw)
    ds.file_meta = meta
    return ds


def _starts_like_dataset(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        return False
    group, elem = int.from_bytes(head[:2], "little"), int.from_bytes(head[2:4], "little")
    return group in (0x0002, 0x0008) and elem < 0x0200


def _fill_transfer_syntax(ds) -> None:
    """A dataset read without file meta: record the encoding pydicom found, so its pixels can be decoded."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def read_header(path: Path):
    """The header of one file (pixel data not read), or None for anything that is not a readable DICOM file."""
    try:
        return _dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - a corrupt file is not a DICOM header (pydicom raises many kinds)
        return None


#: numeric attributes checked in every image header before use: keyword -> (value count or None, integer?)
_NUMERIC = {"Rows": (1, True), "Columns": (1, True), "NumberOfFrames": (1, True), "SamplesPerPixel": (1, True),
            "BitsAllocated": (1, True), "BitsStored": (1, True), "PixelRepresentation": (1, True),
            "RescaleSlope": (1, False), "RescaleIntercept": (1, False), "DoseGridScaling": (1, False),
            "ImageOrientationPatient": (6, False), "ImagePositionPatient": (3, False), "PixelSpacing": (2, False),
            "SliceThickness": (1, False), "SpacingBetweenSlices": (1, False), "GridFrameOffsetVector": (None, False)}


def check_header(ds, name: str) -> None:
    """Refuse an image header whose numbers cannot be used, before any pixel is read (issue 18's gate).

    Checks: the numeric attributes of ``_NUMERIC`` parse (an empty Type 2 value is allowed) and have
    their value count; Rows/Columns/frames >= 1, SamplesPerPixel 1 or 3, BitsAllocated 1/8/16/32/64;
    ImageOrientationPatient two perpendicular unit vectors; GridFrameOffsetVector one offset per
    frame; the declared pixels within the memory budget (:func:`engine.io.gate.check_size`).
    Raises :class:`InputError` naming ``name`` (the file as the user sees it); quotes no patient data.
    """
    vals: dict[str, list[float]] = {}
    with quiet():
        for kw, (count, integer) in _NUMERIC.items():
            if kw not in ds:
                continue
            raw = ds[kw].value
            if raw is None or raw == "" or (isinstance(raw, (list, tuple)) and not len(raw)):
                continue
            items = list(raw) if not isinstance(raw, (str, bytes, int, float)) else [raw]
            try:
                nums = [float(v) for v in items]
            except (TypeError, ValueError, OverflowError):
                raise InputError(f"{name}: {kw} {str(raw)[:40]!r} is not a number") from None
            if not all(np.isfinite(nums)) or (integer and any(v != int(v) for v in nums)):
                raise InputError(f"{name}: {kw} {str(raw)[:40]!r} is not a {'whole' if integer else 'finite'} number")
            if count is not None and len(nums) != count:
                raise InputError(f"{name}: {kw} has {len(nums)} value(s), {count} expected")
            vals[kw] = nums
    rows, cols = int(vals.get("Rows", [0])[0]), int(vals.get("Columns", [0])[0])
    frames = int(vals.get("NumberOfFrames", [1])[0])
    spp = int(vals.get("SamplesPerPixel", [1])[0])
    bits = int(vals.get("BitsAllocated", [16])[0])
    if rows < 1 or cols < 1 or frames < 1:
        raise InputError(f"{name}: image of {cols}x{rows} pixels x {frames} frame(s) is empty")
    if spp not in (1, 3):
        raise InputError(f"{name}: SamplesPerPixel {spp} (only 1, grey, or 3, colour, are images)")
    if bits not in (1, 8, 16, 32, 64):
        raise InputError(f"{name}: BitsAllocated {bits} is not 1, 8, 16, 32 or 64")
    if "ImageOrientationPatient" in vals:
        iop = np.asarray(vals["ImageOrientationPatient"])
        r, c = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
        if not (0.9 < r < 1.1 and 0.9 < c < 1.1) or abs(iop[:3] @ iop[3:]) > 0.01 * r * c:
            raise InputError(f"{name}: ImageOrientationPatient {'/'.join(f'{v:g}' for v in iop)} is not two "
                             "perpendicular unit vectors")
    if "GridFrameOffsetVector" in vals and frames > 1 and len(vals["GridFrameOffsetVector"]) != frames:
        raise InputError(f"{name}: GridFrameOffsetVector has {len(vals['GridFrameOffsetVector'])} offsets for "
                         f"{frames} frames")
    # stored values become float32 when rescaled (4 bytes), colour stays uint8 per sample
    check_size(name, (frames, rows, cols, spp), 1 if spp == 3 else max(4, bits // 8), what="DICOM image")


def modality_of(ds) -> str:
    """The Modality code ('CT', 'MR', ...), 'OT' when absent or not a code: a corrupt element length makes
    pydicom read the elements after it (patient data among them) as Modality's values."""
    v = ds.get("Modality", "")
    v = v if isinstance(v, str) else ""
    v = v.strip().upper()
    return v if v and len(v) <= 16 and all(c.isalnum() or c in " _" for c in v) else "OT"


def text_of(ds, keyword: str, limit: int = 64) -> str:
    """A short text attribute (SeriesDescription, a UID) as shown to the user, '' when it is not one: a value
    longer than its VR allows or with control characters holds other elements' bytes (a corrupt length)."""
    v = ds.get(keyword, "")
    v = str(v).strip() if isinstance(v, str) else ""
    return v if len(v) <= limit and v.isprintable() else ""


def _is_image_header(ds) -> bool:
    return ds is not None and "Rows" in ds and "SeriesInstanceUID" in ds \
        and modality_of(ds) not in NON_IMAGE_MODALITIES


#: folders deeper than this below the opened one are not searched (a DICOM CD nests 4-6 levels)
MAX_DEPTH = 32


def _walk_files(folder: Path, should_stop: StopFn | None) -> tuple[list[Path], int]:
    """Regular files under ``folder`` (never FIFOs, devices or sockets, which would block or stream), skipping
    hidden names, DICOMDIR and BoxSeg's temporary files; iterative, so any depth is safe, and each folder is
    entered once (link loops). Returns (sorted files, folders not searched because of :data:`MAX_DEPTH`)."""
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [(folder, 0)]
    too_deep = 0
    while stack:
        if should_stop is not None and should_stop():
            raise Cancelled(f"scan of {folder.name} stopped after {len(files)} files")
        d, depth = stack.pop()
        try:
            st = d.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(d))
        except OSError:
            continue  # unreadable folder: skipped like an unreadable file
        for e in entries:
            if e.name.startswith(".") or e.name.upper() == "DICOMDIR":
                continue
            try:
                if e.is_dir():
                    if depth + 1 > MAX_DEPTH:
                        too_deep += 1
                    else:
                        stack.append((Path(e.path), depth + 1))
                elif e.is_file():
                    files.append(Path(e.path))
            except OSError:
                continue
    return sorted(files), too_deep


def scan_folder(folder: Path, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None
                ) -> list[SeriesInfo]:
    """All image series under ``folder`` (recursive), most slices first.

    progress(done, total) is called per file; ``should_stop()`` True raises :class:`Cancelled`. A file whose
    header fails :func:`check_header` is left out of its series and listed in ``SeriesInfo.skipped``.
    Raises :class:`InputError` when the folder holds no usable DICOM image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    files, too_deep = _walk_files(folder, should_stop)
    found, refused = group_series(files, folder, progress=progress, should_stop=should_stop)
    if not found:
        deep = f"; {too_deep} folder(s) deeper than {MAX_DEPTH} levels not searched" if too_deep else ""
        if refused:
            raise InputError(f"{folder}: no usable DICOM image ({len(refused)} refused, first: {refused[0]}){deep}")
        raise InputError(f"{folder}: no DICOM image files found (searched {len(files)} file(s), recursively){deep}")
    return found


def group_series(files: list[Path], root: Path, *, progress: ProgressFn | None = None,
                 should_stop: StopFn | None = None) -> tuple[list[SeriesInfo], list[str]]:
    """Read the headers of ``files`` and group the image files by SeriesInstanceUID, most slices first.

    Non-DICOM files and non-image objects are passed over; a header that fails :func:`check_header` is
    left out of its series (listed in its ``SeriesInfo.skipped``). ``root``: the folder file names in
    messages are relative to. progress(done, total) per file; ``should_stop()`` True raises
    :class:`Cancelled`. Returns (series, "file: reason" of every refused header).
    """
    groups: dict[str, SeriesInfo] = {}
    refused: list[tuple[str, str]] = []  # (series UID, "file: reason")
    for i, f in enumerate(files):
        if should_stop is not None and should_stop():
            raise Cancelled(f"scan of {Path(root).name} stopped after {i} of {len(files)} files")
        ds = read_header(f)
        rel = _relative(f, root)
        uid = None
        try:
            with corrupt_is_input_error(rel):
                if not _is_image_header(ds):
                    continue
                uid = text_of(ds, "SeriesInstanceUID")
                if not uid:
                    raise InputError(f"{rel}: SeriesInstanceUID is not a UID")
                check_header(ds, rel)
                if decoder_process.isolated(_transfer_syntax(ds)):
                    decoder_process.warm()  # its imports overlap the rest of the scan
                desc = text_of(ds, "SeriesDescription")
                number, rows, columns = _int_or_none(ds.get("SeriesNumber")), int(ds.Rows), int(ds.Columns)
                frames = int(ds.get("NumberOfFrames", 1) or 1)
        except InputError as e:
            refused.append((uid, str(e)))
            continue
        finally:
            if progress is not None:
                progress(i + 1, len(files))
        s = groups.get(uid)
        if s is None:
            s = groups[uid] = SeriesInfo(uid, modality_of(ds), desc, number, rows=rows, columns=columns)
        s.files.append(f)
        s.headers.append(ds)
        s.frames += frames
    for uid, why in refused:
        if uid in groups:
            groups[uid].skipped.append(why)
    log.debug("scanned %d file(s): %d image series, %d refused", len(files), len(groups), len(refused))
    found = sorted(groups.values(), key=lambda s: (-s.frames, s.number if s.number is not None else 1 << 30, s.uid))
    return found, [why for _, why in refused]


def _relative(f: Path, root: Path) -> str:
    try:
        return Path(f).relative_to(root).as_posix()
    except ValueError:
        return Path(f).name


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def choose_series(series: list[SeriesInfo], choice: str | None = None, *, where: str = "folder") -> SeriesInfo:
    """The series asked for (exact UID, or its 1-based number in :func:`scan_folder`'s order), or the largest.

    Raises :class:`InputError` for an unknown choice, or when no choice is given and several
    series share the largest slice count.
    """
    if choice:
        c = str(choice).strip()
        if c.isdigit() and 1 <= int(c) <= len(series):
            return series[int(c) - 1]
        for s in series:
            if s.uid == c:
                return s
        raise InputError(f"{where}: no series {c!r}; found {len(series)}: "
                         + "; ".join(s.line(i) for i, s in enumerate(series, 1)))
    if len(series) > 1 and series[0].frames == series[1].frames:
        tied = [s for s in series if s.frames == series[0].frames]
        raise InputError(f"{where}: {len(series)} series found and {len(tied)} have {series[0].frames} slice(s); "
                         f"choose one with --series: " + "; ".join(s.line(i) for i, s in enumerate(series, 1)))
    return series[0]


# --- pixel decoding ------------------------------------------------------------------------------

def _transfer_syntax(ds):
    """The dataset's TransferSyntaxUID (file meta), None when it has none."""
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _decode(ds, name: str, should_stop: StopFn | None = None) -> np.ndarray:
    """Stored pixel values (frames, rows, cols[, 3]) for any transfer syntax, or a clear InputError.
    ``should_stop`` is polled between the frames the decoder child returns (JPEG-LS, JPEG 2000)."""
    return _finish_decode(ds, name, _start_decode(ds, name), should_stop)


def _start_decode(ds, name: str):
    """The checks before decoding; for JPEG-LS / JPEG 2000, the request sent to the decoder child
    (a :class:`engine.io.decoder_process.Job`), None for what :func:`_finish_decode` decodes in process."""
    ts = _transfer_syntax(ds)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError(f"{name}: DICOM file without pixel data (not an image)")
    _check_pixel_length(ds, name, ts)
    if decoder_process.isolated(ts):
        with quiet():
            return decoder_process.submit(ds, name)
    return None


def _finish_decode(ds, name: str, job, should_stop: StopFn | None = None) -> np.ndarray:
    """:func:`_decode` after :func:`_start_decode`: the frames from the child (``job``) or decoded here."""
    ts = _transfer_syntax(ds)
    ts_name = getattr(ts, "name", str(ts or "unknown transfer syntax"))
    try:
        with quiet():
            arr = job.result(should_stop) if job is not None and not job.fallback else ds.pixel_array
    except (RuntimeError, NotImplementedError) as e:
        msg = str(e)
        if "missing dependencies" in msg or "No pixel data decoders" in msg or "no plugins" in msg.lower():
            pkg = _CODEC_PACKAGES.get(str(ts), "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
            raise InputError(f"{name}: no decoder installed for {ts_name} pixel data; install one with: "
                             f"pip install {pkg}") from e
        first = msg.strip().splitlines()[-1].strip() if msg.strip() else type(e).__name__
        raise InputError(f"{name}: cannot decode {ts_name} pixel data (corrupt or unsupported: {first[:160]})") from e
    except (ValueError, EOFError, OSError, KeyError, AttributeError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise InputError(f"{name}: pixel data cannot be read (truncated or corrupt DICOM file: {first})") from e
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if nframes == 1:
        arr = arr[None]
    expect = 4 if spp == 3 else 3
    if arr.ndim != expect:
        raise InputError(f"{name}: unexpected pixel array shape {arr.shape} for {nframes} frame(s)")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        with quiet():
            arr = apply_color_lut(arr, ds)
        if arr.ndim == 3:
            arr = arr[None]
    return arr


def _pixel_bytes(ds) -> int:
    """Bytes of native pixel data the header declares: Rows x Columns x frames x samples x bits / 8."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if spp == 3 and str(ds.get("PhotometricInterpretation", "")).upper() in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        spp = 2  # chroma subsampled horizontally: two samples per pixel on average
    return (rows * cols * frames * spp * bits + 7) // 8


#: RLE Lossless cannot expand more than 64:1 (a 2-byte run codes at most 128 bytes), plus its 64-byte headers
_RLE_MAX_RATIO = 64
#: other compressed pixel data: above COMPRESSED_CHECK_BYTES declared, a ratio beyond this is refused (a
#: constant 1024x1024 16-bit JPEG 2000 frame compresses ~8000:1; whole files of such frames do not occur)
_COMPRESSED_MAX_RATIO = 16384
_COMPRESSED_CHECK_BYTES = 256 << 20


def _check_pixel_length(ds, name: str, ts) -> None:
    """Before decoding: native pixel data must hold what Rows x Columns x frames x samples declares, and RLE
    fragments cannot decode to more than 64x their size — a crafted header with a few bytes of data
    would otherwise make the decoder allocate the declared size first."""
    from pydicom.uid import UID

    elem = ds.get("PixelData") if "PixelData" in ds else None
    if elem is None or ts is None:
        return
    declared = _pixel_bytes(ds)
    raw = ds["PixelData"].value
    size = len(raw) if raw is not None else 0
    uid = UID(str(ts))
    if not uid.is_transfer_syntax:
        raise InputError(f"{name}: unknown transfer syntax {str(ts)[:64]!r}")
    if uid.is_compressed and str(uid) != "1.2.840.10008.1.2.5" and declared > _COMPRESSED_CHECK_BYTES \
            and declared > _COMPRESSED_MAX_RATIO * size:
        raise InputError(f"{name}: compressed pixel data of {size} bytes cannot hold the {declared} bytes the header "
                         "declares (corrupt or crafted)")
    if not uid.is_compressed:
        # odd lengths are padded to even; 1-bit data is packed
        check_data_present(name, declared - (declared % 2 if declared % 2 else 0), size, what="pixel data")
    elif str(uid) == "1.2.840.10008.1.2.5" and declared > _RLE_MAX_RATIO * size + (1 << 16):
        raise InputError(f"{name}: RLE pixel data of {size} bytes cannot hold the {declared} bytes the header "
                         "declares (corrupt or crafted)")


def _rescale_of(ds, frame_groups=None) -> tuple[float, float]:
    """(slope, intercept) of the Modality LUT (enhanced multi-frame: from the functional groups)."""
    for item in (frame_groups, _shared(ds)):
        if item is not None and "PixelValueTransformationSequence" in item:
            t = item.PixelValueTransformationSequence[0]
            return float(t.get("RescaleSlope", 1) or 1), float(t.get("RescaleIntercept", 0) or 0)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    if str(ds.get("Modality", "")).upper() == "RTDOSE" and "DoseGridScaling" in ds:
        slope *= float(ds.DoseGridScaling)
    return slope, float(ds.get("RescaleIntercept", 0) or 0)


def _shared(ds):
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        return ds.SharedFunctionalGroupsSequence[0]
    return None


def _value_dtype(headers, slopes_intercepts) -> np.dtype:
    """Smallest dtype holding every rescaled value exactly: uint8, int16 or float32."""
    integral = all(s == 1 and float(b).is_integer() for s, b in slopes_intercepts)
    if not integral:
        return np.dtype(np.float32)
    lo, hi = 0.0, 0.0
    for ds, (_, b) in zip(headers, slopes_intercepts):
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        smin, smax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        lo, hi = min(lo, smin + b), max(hi, smax + b)
    if lo >= 0 and hi <= 255:
        return np.dtype(np.uint8)
    if lo >= -32768 and hi <= 32767:
        return np.dtype(np.int16)
    return np.dtype(np.float32)


def _to_values(arr, slope: float, intercept: float, dtype: np.dtype, photometric: str, bits_range=None) -> np.ndarray:
    """Stored (Y,X) -> original units in ``dtype``; MONOCHROME1 inverted within the rescaled stored range."""
    if slope == 1 and intercept == 0:
        v = arr
    else:
        v = arr.astype(np.float64) * slope + intercept
    if photometric == "MONOCHROME1" and bits_range is not None:
        lo, hi = bits_range[0] * slope + intercept, bits_range[1] * slope + intercept
        v = (lo + hi) - np.asarray(v, np.float64)
    return np.asarray(v).astype(dtype, copy=False)


def _stored_range(ds) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


# --- geometry ------------------------------------------------------------------------------------

def _floats(v, n: int) -> np.ndarray | None:
    try:
        a = np.asarray([float(x) for x in v], np.float64)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (n,) and np.all(np.isfinite(a)) else None


def _pixel_spacing(ds, groups=None) -> tuple[tuple[float, float], bool]:
    """((row spacing, column spacing) mm, known?) from PixelSpacing, ImagerPixelSpacing or 1 mm."""
    for item in (groups, _shared(ds)):
        if item is not None and "PixelMeasuresSequence" in item:
            ps = _floats(item.PixelMeasuresSequence[0].get("PixelSpacing"), 2)
            if ps is not None and np.all(ps > 0):
                return (float(ps[0]), float(ps[1])), True
    for tag in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        ps = _floats(ds.get(tag), 2)
        if ps is not None and np.all(ps > 0):
            return (float(ps[0]), float(ps[1])), True
    return (1.0, 1.0), False


def _orientation(ds, groups=None) -> np.ndarray | None:
    for item in (groups, _shared(ds)):
        if item is not None and "PlaneOrientationSequence" in item:
            o = _floats(item.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6)
            if o is not None:
                return o
    return _floats(ds.get("ImageOrientationPatient"), 6)


def _position(ds, groups=None) -> np.ndarray | None:
    if groups is not None and "PlanePositionSequence" in groups:
        return _floats(groups.PlanePositionSequence[0].get("ImagePositionPatient"), 3)
    return _floats(ds.get("ImagePositionPatient"), 3)


def stack_geometry(positions: np.ndarray, iop: np.ndarray, pixel_spacing, fallback_step: float
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sort slices by position along the normal and build the affine.

    positions: (N,3) ImagePositionPatient (LPS mm) per slice; iop: the 6 direction cosines;
    pixel_spacing: (row, column) spacing mm; fallback_step: slice spacing (mm) for N == 1.
    Returns (order: indices of the input slices in Z order, affine voxel->RAS, warnings).
    Raises :class:`InputError` when slices share a position (a 4D / multi-echo series).
    """
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    d = positions @ normal
    order = np.argsort(d, kind="stable")
    p, d = positions[order], d[order]
    warnings: list[str] = []
    n = len(order)
    if n == 1:
        return order, affine_from_dicom(row, col, pixel_spacing, p[0], normal * fallback_step), warnings
    steps = np.diff(d)
    if np.any(steps < 1e-3):
        dup = int(np.sum(steps < 1e-3))
        raise InputError(f"{dup} slice(s) share a position with another slice (several time points, echoes or "
                         f"acquisitions in one series?); BoxSeg reads one 3D volume per series")
    med = float(np.median(steps))
    if steps.max() - steps.min() > IRREGULAR_REL * med + 1e-3:
        gaps = np.round(steps / med).astype(int)
        missing = int(np.sum(np.maximum(gaps - 1, 0)))
        if missing:
            warnings.append(f"about {missing} slice(s) missing (gaps up to {steps.max():.3g} mm where "
                            f"{med:.3g} mm is usual); the label map assumes a regular {med:.3g} mm grid")
        else:
            warnings.append(f"irregular slice spacing ({steps.min():.4g}..{steps.max():.4g} mm); "
                            f"the label map assumes a regular {med:.4g} mm grid")
        step_len = med
    else:
        step_len = float((d[-1] - d[0]) / (n - 1))
    total = p[-1] - p[0]
    cosang = float(np.clip(abs(total @ normal) / max(np.linalg.norm(total), 1e-12), -1, 1))
    tilt = float(np.degrees(np.arccos(cosang)))
    if tilt > TILT_DEG:
        warnings.append(f"gantry tilt of {tilt:.2f} degrees: slices are sheared; the affine keeps the true "
                        f"slice positions (a non-orthogonal grid, as 3D Slicer loads it without correction)")
        step = total / np.linalg.norm(total) * (step_len / cosang)
    else:
        step = normal * step_len
    return order, affine_from_dicom(row, col, pixel_spacing, p[0], step), warnings


# --- readers ---------------------------------------------------------------------------------------

def _strip_pixels(ds):
    for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if k in ds:
            delattr(ds, k)
    return ds


def read_series(info: SeriesInfo, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None
                ) -> Image:
    """Read one series found by :func:`scan_folder` into an :class:`Image` (slices sorted by position)."""
    with corrupt_is_input_error(Path(info.files[0]).parent.name if info.files else f"series {info.uid}"):
        return _read_series(info, progress, should_stop)


def _read_series(info: SeriesInfo, progress: ProgressFn | None, should_stop: StopFn | None) -> Image:
    headers = info.headers
    if any(int(h.get("NumberOfFrames", 1) or 1) > 1 for h in headers):
        if len(headers) == 1:
            return read_dicom_file(info.files[0], progress=progress, should_stop=should_stop)
        raise InputError(f"series {info.uid}: {len(headers)} multi-frame files in one series; open one file")
    sizes = sorted({(int(h.Rows), int(h.Columns)) for h in headers})
    if len(sizes) > 1:
        raise InputError(f"series {info.uid}: slices of different sizes ({', '.join(f'{c}x{r}' for r, c in sizes)}); "
                         "not one volume")
    spp = {int(h.get("SamplesPerPixel", 1) or 1) for h in headers}
    if len(spp) > 1:
        raise InputError(f"series {info.uid}: mixes grey and colour slices; not one volume")
    iops = [_orientation(h) for h in headers]
    poss = [_position(h) for h in headers]
    ps, spacing_known = _pixel_spacing(headers[0])
    warnings: list[str] = []
    if len(headers) > 1 and all(o is not None for o in iops) and all(p is not None for p in poss):
        iop0 = iops[0]
        if any(np.abs(o - iop0).max() > 1e-3 for o in iops):
            raise InputError(f"series {info.uid}: slices with different orientations (a localizer or "
                             "multi-planar series?); not one volume")
        order, affine, warnings = stack_geometry(np.stack(poss), iop0, ps, 1.0)
    elif len(headers) == 1 and iops[0] is not None and poss[0] is not None:
        order, affine, warnings = stack_geometry(poss[0][None], iops[0], ps, _slice_thickness(headers[0]))
    else:
        inst = [(_int_or_none(h.get("InstanceNumber")) or 0) for h in headers]
        order = np.argsort(inst, kind="stable")
        affine = raster_affine(ps)
        if len(headers) > 1:
            warnings.append("no ImagePositionPatient/ImageOrientationPatient: slices ordered by InstanceNumber, "
                            "1 mm apart, without patient geometry")
    rows, cols = sizes[0]
    resc = [_rescale_of(h) for h in headers]
    color = spp.pop() == 3 or str(headers[0].get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
    dtype = np.dtype(np.uint8) if color else _value_dtype(headers, resc)
    voxels = np.empty((len(order), rows, cols, 3) if color else (len(order), rows, cols), dtype)
    kept = []

    def load(z: int):
        f = info.files[order[z]]
        with corrupt_is_input_error(f.name):
            ds = _dcmread(f, inflate_limit=HEADER_INFLATE_MAX + _pixel_bytes(headers[order[z]]))
            return f, ds, _start_decode(ds, f.name)

    # slices the decoder child decodes (JPEG-LS, JPEG 2000): the next file is read and sent while the child
    # decodes this one, so parsing and decoding overlap instead of waiting on each other
    pending: list = []  # (file, dataset, decoder job or None), read but not yet decoded; at most two
    try:
        for z, idx in enumerate(order):
            if should_stop is not None and should_stop():
                raise Cancelled(f"reading series stopped after {z} of {len(order)} slices")
            if not pending:
                pending.append(load(z))
            if pending[0][2] is not None and z + 1 < len(order):
                pending.append(load(z + 1))
            f, ds, job = pending.pop(0)
            with corrupt_is_input_error(f.name):
                arr = _finish_decode(ds, f.name, job)[0]
            if arr.shape[:2] != (rows, cols):
                raise InputError(f"{f.name}: {arr.shape[1]}x{arr.shape[0]} pixels where the series has {cols}x{rows}")
            if color:
                voxels[z] = _color_u8(arr)
            else:
                photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
                voxels[z] = _to_values(arr, *resc[idx], dtype, photometric, _stored_range(ds))
            kept.append(_strip_pixels(ds))
            if progress is not None:
                progress(z + 1, len(order))
    finally:
        for _, _, job in pending:  # an error or Cancel left a request in a child: it is killed
            if job is not None:
                job.abandon()
    if info.skipped:
        warnings.insert(0, f"{len(info.skipped)} file(s) of the series left out: " + "; ".join(info.skipped[:3])
                        + ("; ..." if len(info.skipped) > 3 else ""))
    h0 = headers[0]
    modality = info.modality
    desc = f"DICOM {modality} series, {len(order)} slice(s)" + (f", '{info.description}'" if info.description else "")
    return Image(voxels=voxels, affine=affine, modality=modality, units=_units(modality, color), description=desc,
                 source=Path(info.files[0]).parent, series_uid=info.uid,
                 frame_of_reference_uid=str(h0.get("FrameOfReferenceUID", "")) or None, warnings=warnings,
                 spacing_known=spacing_known, files=[Path(info.files[i]) for i in order],
                 dicom=kept)


def _slice_thickness(ds) -> float:
    for tag in ("SpacingBetweenSlices", "SliceThickness"):
        v = ds.get(tag)
        try:
            if v is not None and float(v) > 0:
                return float(v)
        except (TypeError, ValueError):
            pass
    return 1.0


def _units(modality: str, color: bool) -> str:
    return "HU" if modality == "CT" and not color else ""


def _color_u8(arr: np.ndarray) -> np.ndarray:
    """RGB of any bit depth -> uint8 (16-bit colour scaled by its maximum code value)."""
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    top = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else max(float(a.max()), 1.0)
    return np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)


def read_dicom_file(path: Path, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Image:
    """One DICOM file: a 2D image (Z=1) or a multi-frame file as a volume.

    Enhanced multi-frame (per-frame PlanePositionSequence) and grid multi-frame (RT Dose
    GridFrameOffsetVector) are sorted by position like a series; other multi-frame files (US cine,
    secondary capture) keep their frame order, 1 mm apart, with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with corrupt_is_input_error(path.name):
        return _read_dicom_file(path, progress, should_stop)


def _read_dicom_file(path: Path, progress: ProgressFn | None, should_stop: StopFn | None) -> Image:
    from pydicom.errors import InvalidDicomError

    try:
        head = _dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path.name}: cannot read as DICOM (not a DICOM file, or truncated/corrupt)") from e
    modality = modality_of(head)
    if modality == "SEG" or str(head.get("SOPClassUID", "")) == SEG_SOP_CLASS:
        raise InputError(f"{path.name}: a DICOM-SEG (a label map, not an image); use it with `boxseg convert` "
                         "or open its series")
    if "Rows" not in head:
        raise InputError(f"{path.name}: DICOM {modality} object without an image")
    check_header(head, path.name)
    if decoder_process.isolated(_transfer_syntax(head)):
        decoder_process.warm()  # its imports overlap reading the pixel data
    try:
        ds = _dcmread(path, inflate_limit=HEADER_INFLATE_MAX + _pixel_bytes(head))
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path.name}: cannot read as DICOM (not a DICOM file, or truncated/corrupt)") from e
    arr = _decode(ds, path.name, should_stop)
    nframes = arr.shape[0]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    color = arr.ndim == 4
    pfg = ds.get("PerFrameFunctionalGroupsSequence")
    frame_groups = [pfg[i] for i in range(nframes)] if pfg is not None and len(pfg) == nframes else [None] * nframes
    resc = [_rescale_of(ds, g) for g in frame_groups]
    dtype = np.dtype(np.uint8) if color else _value_dtype([ds] * nframes, resc)
    ps, spacing_known = _pixel_spacing(ds, frame_groups[0])
    iop = _orientation(ds, frame_groups[0])
    warnings: list[str] = []
    positions = None
    if iop is not None:
        if pfg is not None and frame_groups[0] is not None:
            poss = [_position(ds, g) for g in frame_groups]
            if all(p is not None for p in poss):
                positions = np.stack(poss)
        elif "GridFrameOffsetVector" in ds and _position(ds) is not None and nframes > 1:
            off = np.asarray([float(v) for v in ds.GridFrameOffsetVector], np.float64)
            if off.shape == (nframes,):
                normal = np.cross(iop[:3], iop[3:])
                base = off - off[0] if off[0] != 0 else off  # first != 0: offsets are absolute (RT Dose)
                positions = _position(ds)[None] + base[:, None] * normal[None]
        elif nframes == 1 and _position(ds) is not None:
            positions = _position(ds)[None]
    if positions is not None:
        order, affine, warnings = stack_geometry(positions, iop, ps, _slice_thickness(ds))
    else:
        order = np.arange(nframes)
        affine = raster_affine(ps)
        if nframes > 1:
            warnings.append(f"multi-frame image without patient geometry: {nframes} frames kept in stored order, "
                            "1 mm apart")
    voxels = np.empty(arr.shape, dtype)
    lo_hi = _stored_range(ds)
    for z, idx in enumerate(order):
        if should_stop is not None and should_stop():
            raise Cancelled(f"reading {path.name} stopped after {z} of {nframes} frames")
        voxels[z] = _color_u8(arr[idx]) if color else _to_values(arr[idx], *resc[idx], dtype, photometric, lo_hi)
        if progress is not None:
            progress(z + 1, nframes)
    kind = "RGB" if color else modality
    what = f"{nframes}-frame" if nframes > 1 else "2D"
    desc = f"DICOM {kind} {what} image" + (f", '{text_of(ds, 'SeriesDescription')}'" if text_of(ds, "SeriesDescription") else "")
    return Image(voxels=voxels, affine=affine, modality=modality, units=_units(modality, color), description=desc,
                 source=path, series_uid=str(ds.get("SeriesInstanceUID", "")) or None,
                 frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")) or None, warnings=warnings,
                 spacing_known=spacing_known,
                 dicom=[_strip_pixels(ds)], dicom_frames=np.asarray(order) if nframes > 1 else None)


def read_dicom(path: Path, *, series: str | None = None, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> Image:
    """A DICOM folder (series chosen by :func:`choose_series`) or a single DICOM file."""
    path = Path(path)
    if path.is_dir():
        found = scan_folder(path, progress=progress, should_stop=should_stop)
        info = choose_series(found, series, where=str(path))
        img = read_series(info, progress=progress, should_stop=should_stop)
        if len(found) > 1:
            img.warnings.insert(0, f"{len(found)} series in the folder; using {info.line()}")
        return img
    return read_dicom_file(path, progress=progress, should_stop=should_stop)


__all__ = ["SeriesInfo", "choose_series", "group_series", "read_dicom", "read_dicom_file", "read_series",
           "scan_folder", "stack_geometry"]
