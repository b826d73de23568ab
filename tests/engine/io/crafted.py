"""Crafted bad inputs (issue 18's audit), written small by the tests themselves.

Each maker writes one file (or folder) into ``folder`` and returns its path. Every one of them must
give a one-line :class:`~engine.base.errors.InputError` (``boxseg info``: exit 2) quickly and within a
small memory bound — never a traceback, a hang or an allocation the header merely claims. Valid files
that look unusual (``valid_*``) must open. The fuzz tests reuse them as seeds.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

PATIENT = "Crafted^Patient^Seed"  # must never appear in any output (errors, warnings, logs, files)


def _ct_dataset(rows=8, cols=8, z=0.0, uid="1.2.826.0.1.3680043.8.498.1", pixels=None, inst=1):
    """A small valid CT slice (pydicom Dataset, explicit VR little endian, int16 pixels)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT
    ds.PatientID = "SEED-ID-4711"
    ds.Modality = "CT"
    ds.StudyInstanceUID = uid + ".1"
    ds.SeriesInstanceUID = uid + ".2"
    ds.FrameOfReferenceUID = uid + ".3"
    ds.InstanceNumber = inst
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if pixels is None:
        pixels = (np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) % 200)
    ds.PixelData = np.asarray(pixels, np.int16).tobytes()
    return ds


def _save(ds, path: Path, **kw) -> Path:
    ds.save_as(path, enforce_file_format=True, **kw)
    return path


def _raw_text(ds, path: Path, tag: str, value: bytes) -> Path:
    """Save ``ds`` and then overwrite the value of the 2-character-VR text element ``tag`` with
    ``value`` (same length, so the file stays parseable) — pydicom refuses to write invalid DS/IS."""
    _save(ds, path)
    data = path.read_bytes()
    from pydicom.datadict import tag_for_keyword

    t = tag_for_keyword(tag)
    key = struct.pack("<HH", t >> 16, t & 0xFFFF)
    i = data.index(key, 132)
    length = struct.unpack("<H", data[i + 6:i + 8])[0]
    assert len(value) <= length, (tag, length)
    new = data[:i + 8] + value.ljust(length, b" ") + data[i + 8 + length:]
    path.write_bytes(new)
    return path


def series(folder: Path, n=3, **kw) -> Path:
    """A valid n-slice CT series folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _save(_ct_dataset(z=float(i), inst=i + 1, **kw), folder / f"s{i:03d}.dcm")
    return folder


# --- bad DICOM ----------------------------------------------------------------------------------

def dicom_text_slope(folder: Path) -> Path:
    ds = _ct_dataset()
    ds.RescaleSlope = "1.000000"  # room for the bad value
    return _raw_text(ds, folder / "slope.dcm", "RescaleSlope", b"abc")


def dicom_text_frames(folder: Path) -> Path:
    ds = _ct_dataset()
    ds.NumberOfFrames = "1000"
    return _raw_text(ds, folder / "frames.dcm", "NumberOfFrames", b"x1")


def dicom_text_grid_offsets(folder: Path) -> Path:
    ds = _ct_dataset(pixels=np.zeros((16, 8), np.int16).reshape(16, 8)[:8])
    ds.NumberOfFrames = 2
    ds.PixelData = np.zeros((2, 8, 8), np.int16).tobytes()
    ds.GridFrameOffsetVector = ["0.00000", "1.00000"]
    return _raw_text(ds, folder / "grid.dcm", "GridFrameOffsetVector", b"0\\zz")


def series_with_one_bad_file(folder: Path) -> Path:
    """A 3-slice series plus one file with a non-numeric RescaleSlope: the series opens, the bad file is
    skipped with a warning."""
    series(folder, 3)
    ds = _ct_dataset(z=3.0, inst=4)
    ds.RescaleSlope = "1.000000"
    _raw_text(ds, folder / "s003.dcm", "RescaleSlope", b"abc")
    return folder


def dicom_huge_rows(folder: Path) -> Path:
    ds = _ct_dataset()
    ds.Rows = ds.Columns = 30000
    ds.PixelData = b"\0" * 128
    return _save(ds, folder / "huge.dcm")


def dicom_huge_rows_encapsulated(folder: Path) -> Path:
    """30000x30000 declared, RLE-encapsulated with one tiny fragment."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    ds = _ct_dataset()
    ds.Rows = ds.Columns = 30000
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([struct.pack("<16L", 1, 64, *([0] * 14)) + b"\x81\0" * 8])
    ds["PixelData"].VR = "OB"
    return _save(ds, folder / "huge_rle.dcm")


def dicom_deflate_bomb(folder: Path, inflated_mib: int = 1024) -> Path:
    """A Deflated Explicit VR file whose dataset inflates to ``inflated_mib`` MiB (a private element of
    zeros before the pixel data): the header scan must not inflate it all."""
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = _ct_dataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, ds.file_meta, enforce_standard=True)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    # (0009,0010) private creator, then (0009,1000) UN of zeros, then nothing else: the bomb is the header
    body = struct.pack("<HH2sH", 0x0008, 0x0060, b"CS", 2) + b"CT"
    body += struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 4) + b"BOMB"
    size = inflated_mib << 20
    body += struct.pack("<HH2sHL", 0x0009, 0x1000, b"UN", 0, size)
    out = [comp.compress(body)]
    chunk = b"\0" * (1 << 20)
    for _ in range(inflated_mib):
        out.append(comp.compress(chunk))
    out.append(comp.flush())
    buf.write(b"".join(out))
    p = folder / "bomb.dcm"
    p.write_bytes(buf.getvalue())
    return p


def dicom_zero_orientation(folder: Path) -> Path:
    ds = _ct_dataset()
    ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
    return _save(ds, folder / "iop0.dcm")


def dicom_zero_spacing(folder: Path) -> Path:
    ds = _ct_dataset()
    ds.PixelSpacing = [0, 0]
    return _save(ds, folder / "ps0.dcm")


def fifo_in_series(folder: Path) -> Path:
    """A valid series folder with a FIFO beside the slices: the scan must not block on it."""
    series(folder, 2)
    os.mkfifo(folder / "pipe.dcm")
    return folder


def deep_folder(folder: Path, depth: int = 1100) -> Path:
    """A folder nested ``depth`` levels deep (os.walk recursion is not an answer) with one slice at the bottom."""
    p = folder
    for _ in range(depth):
        p = p / "d"
        try:
            os.mkdir(p)
        except OSError:  # PATH_MAX: go on relative to the last folder
            break
    return folder


def remove_tree(folder: Path) -> None:
    """Remove ``folder`` and everything below it without recursion. pytest's own clean-up of old temporary
    folders (shutil.rmtree, recursive on Python 3.11) hits the recursion limit on :func:`deep_folder`'s
    tree, so a test that makes one removes it itself."""
    dirs, stack = [], [Path(folder)]
    while stack:
        d = stack.pop()
        dirs.append(d)
        for e in os.scandir(d):
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            else:
                os.unlink(e.path)
    for d in reversed(dirs):  # children were appended after their parents
        os.rmdir(d)


def valid_no_preamble(folder: Path) -> Path:
    """A valid CT slice written without the 128-byte preamble and 'DICM' prefix (older equipment)."""
    from pydicom.filewriter import dcmwrite

    ds = _ct_dataset()
    p = folder / "nopreamble.dcm"
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    p.write_bytes(buf.getvalue()[132:])  # drop the preamble and prefix, keep the file meta group
    return p


def valid_no_meta(folder: Path) -> Path:
    """A bare implicit-VR dataset: no preamble, no file meta at all (ACR-NEMA style)."""
    from pydicom.filewriter import write_dataset

    ds = _ct_dataset()
    del ds.file_meta
    buf = io.BytesIO()
    from pydicom.filebase import DicomFileLike

    fp = DicomFileLike(buf)
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    p = folder / "nometa"
    p.write_bytes(buf.getvalue())
    return p


# --- bad NIfTI -----------------------------------------------------------------------------------

def _nifti_header(shape, dtype=np.int16, affine=None):
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    a = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    hdr.set_sform(a, 1)
    hdr.set_qform(a, 1)
    return hdr


def nifti_huge(folder: Path, gz: bool = False) -> Path:
    """A header claiming 3000^3 int16 voxels with 64 bytes of data."""
    hdr = _nifti_header((3000, 3000, 3000))
    raw = hdr.binaryblock + b"\0" * 4 + b"\0" * 64
    p = folder / ("huge.nii.gz" if gz else "huge.nii")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    return p


def nifti_truncated(folder: Path, gz: bool = True) -> Path:
    """A plausible 64x64x64 header with a tenth of its data."""
    hdr = _nifti_header((64, 64, 64))
    raw = hdr.binaryblock + b"\0" * 4 + b"\1" * (64 * 64 * 64 * 2 // 10)
    p = folder / ("trunc.nii.gz" if gz else "trunc.nii")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    return p


def _nifti_with_sform(path: Path, srows: np.ndarray) -> Path:
    """A 4x4x4 int16 NIfTI-1 whose sform rows are ``srows`` (3x4) and qform code 0, patched into the
    header block because nibabel will not write a NaN or singular affine through its API."""
    import nibabel as nib

    data = np.zeros((4, 4, 4), np.int16)
    raw = bytearray(nib.Nifti1Image(data, np.eye(4)).header.binaryblock)
    raw[252:256] = struct.pack("<hh", 0, 1)  # qform_code 0, sform_code 1
    raw[280:328] = struct.pack("<12f", *np.asarray(srows, np.float64).ravel())
    path.write_bytes(bytes(raw) + b"\0" * 4 + data.tobytes())
    return path


def nifti_nan_affine(folder: Path) -> Path:
    a = np.eye(4)[:3]
    a[0, 0] = np.nan
    return _nifti_with_sform(folder / "nan.nii", a)


def nifti_singular_affine(folder: Path) -> Path:
    a = np.eye(4)[:3]
    a[2, 2] = 0.0
    return _nifti_with_sform(folder / "singular.nii", a)


# --- bad npz -------------------------------------------------------------------------------------

def _npz(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for k, v in members.items():
            zf.writestr(k + ".npy", v)
    return path


def _npy_header(shape, descr="|u1") -> bytes:
    h = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    h = h + " " * (63 - (len(h) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()


def npz_huge(folder: Path) -> Path:
    """A 2D case whose imgs header declares (1e5, 1e5, 3) uint8 with a few bytes of data."""
    boxes = io.BytesIO()
    np.save(boxes, np.array([[0, 0, 4, 4]]))
    return _npz(folder / "2DBox_CT_huge.npz", {"imgs": _npy_header((100000, 100000, 3)) + b"\0" * 16,
                                                "boxes": boxes.getvalue()})


def _case(folder: Path, name: str, spacing) -> Path:
    p = folder / name
    np.savez(p, imgs=np.zeros((4, 8, 8), np.uint8), boxes=np.array([[1, 1, 0, 5, 5, 3]]),
             spacing=np.asarray(spacing, np.float64))
    return p


def npz_spacing_two(folder: Path) -> Path:
    return _case(folder, "3DBox_CT_sp2.npz", [1.0, 1.0])


def npz_spacing_zero(folder: Path) -> Path:
    return _case(folder, "3DBox_CT_sp0.npz", [1.0, 0.0, 1.0])


def npz_spacing_nan(folder: Path) -> Path:
    return _case(folder, "3DBox_CT_spnan.npz", [1.0, np.nan, 1.0])


# --- raster --------------------------------------------------------------------------------------

def png_huge(folder: Path) -> Path:
    """A PNG whose IHDR claims 100000x100000 RGB (a decompression bomb; Pillow's own guard is a warning
    below 2x its limit)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    p = folder / "huge.png"
    p.write_bytes(png)
    return p


#: makers of inputs that must be refused with exit 2 by ``boxseg info``
BAD = [dicom_text_slope, dicom_text_frames, dicom_text_grid_offsets, dicom_huge_rows, dicom_huge_rows_encapsulated,
       dicom_deflate_bomb, dicom_zero_orientation, nifti_huge, nifti_truncated, nifti_nan_affine,
       nifti_singular_affine, npz_huge, npz_spacing_two, npz_spacing_zero, npz_spacing_nan, png_huge]
