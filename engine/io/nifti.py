"""NIfTI ``.nii`` / ``.nii.gz`` in and out.

Reading: nibabel's scaled data (scl_slope/scl_inter applied) in stored voxel order; array
``data[i, j, k]`` becomes ``Image.voxels[k, j, i]`` and nibabel's affine (voxel (i, j, k) -> RAS
mm) is kept unchanged — see :mod:`engine.data.image`. A 4D file with more than one volume is refused;
NIfTI has no modality, so CT is recognised from HU-like values (air at about -1000).

Writing: a label map (Z,Y,X) goes back as ``data[i, j, k]`` in uint8 (or uint16 above 255 labels)
with the source header's exact sform/qform (NIfTI input) or the image affine with sform and qform
codes 1 (scanner), as dcm2niix writes (DICOM/other input).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from engine.base.atomic import writing
from engine.base.errors import InputError
from engine.data.image import Image
from engine.io.gate import check_data_present, check_geometry, check_size

def _load(path: Path):
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        _check_extensions(path)
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputError(f"{path.name}: not a NIfTI-1/NIfTI-2 image")
        _gate(img, path)
        return img
    except InputError:
        raise
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError, ValueError,
            gzip.BadGzipFile, zlib.error, TypeError, struct.error, OverflowError) as e:
        raise InputError(f"{path.name}: not a readable NIfTI file (bad header or compressed data)") from e


def _check_extensions(path: Path) -> None:
    """Each header extension's declared size against the bytes the file holds, before nibabel reads it:
    nibabel reads an extension's declared size at once, and a corrupt size of 2 GiB allocates 2 GiB."""
    compressed = path.name.lower().endswith(".gz")
    plain_size = path.stat().st_size
    with (gzip.open if compressed else open)(path, "rb") as f:
        head = f.read(544)
        if len(head) < 352:
            return  # nibabel refuses it
        end = next((e for e in "<>" if struct.unpack(e + "i", head[:4])[0] in (348, 540)), None)
        if end is None:
            return
        pos = struct.unpack(end + "i", head[:4])[0]  # the header's size; the extension flag follows
        if len(head) < pos + 4 or head[pos] == 0:
            return
        vox = struct.unpack(end + "f", head[108:112])[0] if pos == 348 else struct.unpack(end + "q", head[168:176])[0]
        pos += 4
        # nibabel reads extensions while 16 bytes or more are left before vox_offset, and to the end of the file
        # when vox_offset lies before them (size < 0; the fuzzing campaign's rerun found this way round the check)
        size = vox - pos
        f.seek(pos)
        while size >= 16 or size < 0:  # each extension advances >= 8 bytes: ends at the end of the file
            raw = f.read(8)
            if len(raw) < 8:
                return  # the end (size < 0), or nibabel refuses it
            esize = struct.unpack(end + "i", raw[:4])[0]
            if esize < 8:  # nibabel would read(esize - 8 < 0): the whole rest of the (decompressed) file
                raise InputError(f"{path.name}: NIfTI header extension size {esize} is invalid")
            pos += esize
            size -= esize
            f.seek(pos)  # a gzip stream seeks forward by inflating (without keeping the data) and stops at its end
            if (f.tell() if compressed else min(pos, plain_size)) < pos:
                raise InputError(f"{path.name}: NIfTI header extension of {esize} bytes runs past the end of the file")


def _gate(img, path: Path) -> None:
    """The header's promises checked before nibabel allocates: size within the memory budget, the voxel
    bytes present in the file, a finite non-singular affine (:mod:`engine.io.gate`)."""
    hdr = img.header
    dtype = hdr.get_data_dtype()
    slope, inter = hdr.get_slope_inter()
    scaled = (slope is not None and slope != 1) or (inter is not None and inter != 0)
    # nibabel scales into float64 before we convert to float32: both exist for a moment
    per_voxel = dtype.itemsize + (12 if scaled or dtype.kind == "f" else 0)
    check_size(path.name, img.shape, per_voxel, what="NIfTI image")
    declared = int(np.prod(img.shape, dtype=np.int64)) * dtype.itemsize
    offset = int(hdr.get("vox_offset", 0) or 0)
    present = _payload_bytes(path, offset + declared) - offset
    check_data_present(path.name, declared, present, what="NIfTI voxel data")
    check_geometry(path.name, img.affine)


def _payload_bytes(path: Path, want: int) -> int:
    """Bytes of the (decompressed) file, counted up to ``want`` at most — a .nii by its size; a .nii.gz by
    its gzip trailer when that agrees (single-member files, the usual case; instant), else by inflating
    in 1 MiB steps without keeping the data (multi-member gzip, or a file shorter than its header says)."""
    size = path.stat().st_size
    if not path.name.lower().endswith(".gz"):
        return size
    with open(path, "rb") as f:
        if size >= 18:
            f.seek(-4, 2)
            isize = int.from_bytes(f.read(4), "little")
            if isize == want % 2**32 and want < 2**32:
                return want
        f.seek(0)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        total, buf, members = 0, b"", 0
        while total < want:
            if not buf:
                buf = f.read(1 << 20)
                if not buf:
                    break
            try:
                total += len(d.decompress(buf, 1 << 24))
            except zlib.error as e:
                if members:  # padding or garbage after a complete member: gzip readers ignore it too
                    break
                raise InputError(f"{path.name}: corrupt gzip data ({e})") from e
            if d.eof:
                members += 1
                buf, d = d.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                buf = d.unconsumed_tail
    return total


def _data_zyx(img, name: str) -> np.ndarray:
    """Scaled data as (Z,Y,X): 2D -> Z=1, 4D with one volume squeezed, more volumes refused."""
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) > 3:
        dims = "x".join(str(s) for s in img.shape)
        raise InputError(f"{name}: a {len(img.shape)}D NIfTI ({dims}); BoxSeg reads one 3D volume - extract "
                         f"one first (e.g. `fslroi IN OUT 0 1` or nibabel's `image.slicer[..., 0]`)")
    if len(shape) < 2 or min(shape) < 1:
        raise InputError(f"{name}: NIfTI of shape {img.shape} is not an image")
    try:
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, TypeError, OverflowError) as e:
        raise InputError(f"{name}: NIfTI voxel data is truncated or corrupt") from e
    if data.dtype.fields is not None:
        raise InputError(f"{name}: NIfTI with structured voxels ({data.dtype}) is not supported")
    data = data.reshape(shape + (1,) * (3 - len(shape)))
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0)))


def _looks_like_ct(v: np.ndarray) -> bool:
    """HU-like: air near -1000 and soft tissue/bone above 0 (NIfTI stores no modality)."""
    if v.size == 0:
        return False
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return -1200 <= lo <= -900 and hi > 100


def read_nifti(path: Path) -> Image:
    """A NIfTI image -> :class:`Image` (voxels in scaled units, nibabel's affine)."""
    path = Path(path)
    img = _load(path)
    voxels = _data_zyx(img, path.name)
    ct = _looks_like_ct(voxels)
    z, y, x = voxels.shape
    desc = f"NIfTI {x}x{y}x{z} {img.get_data_dtype()}" + (", CT-like values (HU)" if ct else "")
    return Image(voxels=voxels, affine=np.asarray(img.affine, np.float64), modality="CT" if ct else "OT",
                 units="HU" if ct else "", description=desc, source=path, nifti_header=img.header.copy())


def _orthogonal(affine: np.ndarray) -> bool:
    """True when the voxel axes are perpendicular (a qform can hold the affine; gantry tilt cannot)."""
    m = np.asarray(affine, np.float64)[:3, :3]
    gram = m.T @ m
    return bool(np.allclose(gram, np.diag(np.diag(gram)), atol=1e-6 * float(np.abs(gram).max())))


def label_dtype(labels: np.ndarray) -> np.dtype:
    """uint8 when every label fits, else uint16 (refuses negative labels and labels above 65535)."""
    a = np.asarray(labels)
    hi = int(a.max()) if a.size else 0
    lo = int(a.min()) if a.size else 0
    if lo < 0 or hi > 65535:
        raise InputError(f"label values must be 0..65535, got {lo}..{hi}")
    return np.dtype(np.uint8) if hi <= 255 else np.dtype(np.uint16)


def write_nifti_labels(path: Path, labels: np.ndarray, image: Image) -> Path:
    """Write a (Z,Y,X) label map in ``image``'s exact geometry; returns the path.

    NIfTI input: the source header is reused (same sform/qform matrices and codes, same shape),
    scaling reset, dtype uint8/uint16. Otherwise the image affine with sform/qform code 1; a
    non-orthogonal (gantry-tilt) affine keeps only the sform (qform cannot hold a shear).
    """
    import nibabel as nib

    path = Path(path)
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise InputError(f"label map shape (Z,Y,X) {labels.shape} does not match the image {image.shape}")
    dt = label_dtype(labels)
    # (X,Y,Z) view of the (Z,Y,X) labels: Fortran-contiguous, which is NIfTI's order, so nibabel writes it
    # slab by slab without a copy of the volume (a copy only where the dtype or layout differs)
    data = np.transpose(np.ascontiguousarray(labels.astype(dt, copy=False)), (2, 1, 0))
    if image.nifti_header is not None and isinstance(image.nifti_header, nib.Nifti1Header):
        hdr = image.nifti_header.copy()
        hdr.set_data_dtype(dt)
        hdr.set_data_shape(data.shape)
        out = nib.Nifti1Image(data, None, header=hdr)
        out.header.set_slope_inter(1.0, 0.0)
        out.set_sform(hdr.get_sform(), int(hdr["sform_code"]))
        out.set_qform(hdr.get_qform(), int(hdr["qform_code"]))
    else:
        out = _new_nifti(data, image.affine)
        out.header.set_data_dtype(dt)
    out.header["descrip"] = b"BoxSeg label map"
    return _save(out, path)


def _new_nifti(data: np.ndarray, affine: np.ndarray):
    """NIfTI-1 image with sform code 1, and qform code 1 when the affine has no shear (as dcm2niix)."""
    import nibabel as nib

    out = nib.Nifti1Image(data, affine)
    out.set_sform(affine, 1)
    if _orthogonal(affine):
        out.set_qform(affine, 1)
    else:
        out.set_qform(None, 0)
    out.header.set_xyzt_units("mm")
    return out


def _save(out, path: Path) -> Path:
    import nibabel as nib

    path = Path(path)
    with writing(path) as tmp:
        nib.save(out, str(tmp))
    return path


def write_nifti_image(path: Path, image: Image) -> Path:
    """Write a grey image's voxels (original units, e.g. HU) as NIfTI with its affine (as dcm2niix would).

    int16/uint8 voxels are stored as they are, anything else as float32; sform/qform code 1.
    """

    if image.is_rgb:
        raise InputError("an RGB image cannot be written as a NIfTI volume by BoxSeg; convert label maps instead")
    v = image.voxels
    if v.dtype not in (np.uint8, np.int16, np.uint16, np.float32):
        v = v.astype(np.float32)
    out = _new_nifti(np.ascontiguousarray(np.transpose(v, (2, 1, 0))), image.affine)
    out.header["descrip"] = f"BoxSeg {image.modality} {image.units}".strip().encode()[:79]
    return _save(out, path)


def read_nifti_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI label map -> (labels uint8/uint16 (Z,Y,X), affine voxel->RAS).

    Refuses non-integer or negative values (not a label map) and 4D files.
    """
    path = Path(path)
    img = _load(path)
    data = _data_zyx(img, path.name)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            raise InputError(f"{path.name}: not a label map (non-integer voxel values)")
    if data.size and float(data.min()) < 0:
        raise InputError(f"{path.name}: not a label map (negative values)")
    return data.astype(label_dtype(data), copy=False), np.asarray(img.affine, np.float64)


__all__ = ["label_dtype", "read_nifti", "read_nifti_labels", "write_nifti_image",
           "write_nifti_labels"]
