"""The CVPR 2024 "MedSAM on Laptop" challenge .npz format: cases in, ``segs`` out (SPEC A.6).

A case file holds ``imgs`` (uint8 (H,W,3) for 2D, (D,H,W) for 3D) and ``boxes`` ((N,4) XYXY or
(N,6) [x_min, y_min, z_min, x_max, y_max, z_max], original pixels / slice indices); evaluation
files also hold ``gts`` (labels 1..N) and, for 3D, ``spacing`` (x, y, z order, mm). A case is 3D
iff its file name starts with ``3D``. Outputs hold ``segs`` (uint16, the case's spatial shape). The
challenge's inference flows are :func:`engine.pipeline.segment_case`.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.atomic import writing
from engine.base.errors import InputError
from engine.data.geometry import LPS_TO_RAS
from engine.data.image import Image
from engine.io.gate import check_data_present, check_size, check_spacing


@dataclass
class Case:
    """One challenge case. imgs uint8; boxes int/float (N,4|6); gts (same spatial shape) or None."""

    name: str
    imgs: np.ndarray
    boxes: np.ndarray
    is_3d: bool
    gts: np.ndarray | None = None
    spacing: np.ndarray | None = None

    @property
    def modality(self) -> str:
        """Modality token of ``{2D,3D}Box_{Modality}_...`` names ('X-Ray' -> 'XRay', 'Microscope' -> 'Microscopy')."""
        parts = self.name.split("_")
        mod = parts[1] if len(parts) > 2 else "unknown"
        return {"X-Ray": "XRay", "Microscope": "Microscopy"}.get(mod, mod)


def load_case(path: Path, *, with_gt: bool = True) -> Case:
    """Read and validate a challenge .npz; raises :class:`InputError` with a one-line reason."""
    path = Path(path)
    name = path.name[:-4] if path.name.endswith(".npz") else path.name
    is_3d = name.startswith("3D")
    _gate(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("imgs", "boxes") if k not in z.files]
            if missing:
                raise InputError(f"{path.name}: missing key(s) {', '.join(missing)} (a challenge .npz needs 'imgs' and 'boxes')")
            imgs, boxes = z["imgs"], z["boxes"]
            gts = z["gts"] if with_gt and "gts" in z.files else None
            spacing = z["spacing"] if "spacing" in z.files else None
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError, KeyError, struct.error) as e:
        # RuntimeError: zipfile's encrypted members and unsupported methods (NotImplementedError)
        raise InputError(f"{path.name}: cannot read as .npz ({_first_line(e)})") from e
    if imgs.dtype != np.uint8:
        if np.issubdtype(imgs.dtype, np.integer) and imgs.size and imgs.min() >= 0 and imgs.max() <= 255:
            imgs = imgs.astype(np.uint8)
        else:
            raise InputError(f"{path.name}: 'imgs' must be uint8 (values 0..255), got {imgs.dtype}")
    want_img, want_box = ((3, 6) if is_3d else (3, 4))
    if imgs.ndim != want_img or (not is_3d and imgs.shape[2] != 3):
        shape = "(D,H,W)" if is_3d else "(H,W,3)"
        raise InputError(f"{path.name}: 'imgs' must have shape {shape}, got {imgs.shape}")
    boxes = np.asarray(boxes)
    if boxes.ndim == 1 and boxes.size == want_box:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != want_box or not np.issubdtype(boxes.dtype, np.number):
        raise InputError(f"{path.name}: 'boxes' must have shape (N,{want_box}), got {boxes.shape}")
    if gts is not None and gts.shape != (imgs.shape if is_3d else imgs.shape[:2]):
        raise InputError(f"{path.name}: 'gts' shape {gts.shape} does not match 'imgs' {imgs.shape}")
    if is_3d and spacing is not None:
        spacing = np.asarray(check_spacing(path.name, spacing, 3, what="'spacing' (x, y, z)"))
    return Case(name=name, imgs=imgs, boxes=boxes, is_3d=is_3d, gts=gts, spacing=spacing)


def _gate(path: Path) -> None:
    """Each array's .npy header (shape, dtype) checked against the memory budget and against the bytes
    its zip member holds, before numpy allocates it (:mod:`engine.io.gate`)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    header_end = f.tell()
                key = info.filename[:-4]
                nbytes = check_size(path.name, shape or (1,), dtype.itemsize, what=f"'{key}'")
                check_data_present(path.name, nbytes, info.file_size - header_end, what=f"'{key}'")
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError, struct.error) as e:
        raise InputError(f"{path.name}: cannot read as .npz ({_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__


def read_challenge_npz(path: Path) -> Image:
    """A challenge ``.npz`` -> :class:`Image` with ``units == 'u8'`` (its ``boxes`` are not used here).

    2D ``imgs`` (H,W,3) -> voxels (1,H,W,3); 3D ``imgs`` (D,H,W) -> voxels as they are, spacing from
    ``spacing`` (x, y, z order in the file), affine of an LPS-aligned grid (no direction is stored).
    """
    case = load_case(Path(path), with_gt=False)
    if case.is_3d:
        sx, sy, sz = (float(v) for v in (case.spacing if case.spacing is not None else (1.0, 1.0, 1.0)))
        voxels = case.imgs
        affine = LPS_TO_RAS @ np.diag([sx, sy, sz, 1.0])
    else:
        voxels = case.imgs[None]
        affine = LPS_TO_RAS.copy()
    return Image(voxels=voxels, affine=affine, modality=case.modality, units="u8",
                 spacing_known=case.is_3d and case.spacing is not None,
                 description=f"challenge {'3D' if case.is_3d else '2D'} case ({case.modality})", source=Path(path))


def write_segs(path: Path, segs: np.ndarray) -> Path:
    """Write a challenge output ``.npz`` holding ``segs`` (compressed, atomically); returns ``path``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, segs=segs)
    with writing(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return Path(path)


__all__ = ["Case", "load_case", "read_challenge_npz", "write_segs"]
