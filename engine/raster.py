"""2D raster files (PNG, JPEG, BMP, TIFF) in and out, through OpenCV.

Reading keeps the file's values: 8- or 16-bit (or float TIFF) grey -> ``Image.voxels`` (1,H,W),
colour -> (1,H,W,3) RGB (alpha dropped; OpenCV gives grey+alpha as four channels with equal
colour channels). There is no patient geometry: spacing 1 mm, the affine of an LPS identity (so
the image is displayed as stored, see :mod:`engine.image`). Writers: mask PNG (0/255), label PNG
(values as stored, 8/16-bit) and a quick-look overlay.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .image import Image, raster_affine

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_raster(path: Path) -> bool:
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def _imread(path: Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    # np.fromfile + imdecode: works with non-ASCII paths on Windows, where cv2.imread does not
    try:
        buf = np.fromfile(str(path), np.uint8)
    except OSError as e:
        raise InputError(f"{path.name}: cannot read ({e.strerror or e})") from e
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise InputError(f"{path.name}: cannot decode as a {path.suffix[1:].upper()} image (empty, truncated or "
                         "not an image)")
    return img


def read_raster(path: Path) -> Image:
    """A PNG/JPEG/BMP/TIFF file -> :class:`Image` with Z=1 (grey (1,H,W) or RGB (1,H,W,3))."""
    path = Path(path)
    img = _imread(path)
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 2:  # grey + alpha
            img = img[:, :, 0]
        else:
            img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2]):
        img = img[:, :, 0]  # grey stored as RGB(A)
    kind = "RGB" if img.ndim == 3 else "grey"
    h, w = img.shape[:2]
    return Image(voxels=np.ascontiguousarray(img[None]), affine=raster_affine(), modality="OT",
                 units="u8" if img.dtype == np.uint8 else "",
                 description=f"{path.suffix[1:].upper()} {w}x{h} {kind} {img.dtype}", source=path)


def _imwrite(path: Path, arr: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", arr)
    if not ok:
        raise InputError(f"cannot encode {path.name} as {path.suffix or '.png'}")
    try:
        buf.tofile(str(path))
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def write_mask_png(path: Path, mask: np.ndarray) -> Path:
    """bool (H,W) -> 8-bit PNG with 0/255."""
    return _imwrite(path, (np.asarray(mask) > 0).astype(np.uint8) * 255)


def write_label_png(path: Path, labels: np.ndarray) -> Path:
    """A label map (H,W) (or (1,H,W)) -> PNG holding the label values (8-bit, 16-bit above 255).

    A single object (labels 0/1) is written as 0/255 so that it is visible; :func:`read_png_labels`
    reads it back as 0/1.
    """
    a = np.asarray(labels)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"PNG holds one 2D slice; label map has shape {a.shape}")
    if a.size and int(a.max()) <= 1:
        return write_mask_png(path, a)
    hi = int(a.max()) if a.size else 0
    if int(a.min()) < 0 or hi > 65535:
        raise InputError(f"label values must be 0..65535 for PNG, got up to {hi}")
    return _imwrite(path, a.astype(np.uint8 if hi <= 255 else np.uint16))


def read_png_labels(path: Path) -> np.ndarray:
    """A label PNG/TIFF -> (1,H,W) uint8/uint16 labels; a 0/255 mask becomes 0/1."""
    img = _imread(Path(path))
    if img.ndim == 3:
        if not all(np.array_equal(img[:, :, 0], img[:, :, c]) for c in range(1, min(3, img.shape[2]))):
            raise InputError(f"{Path(path).name}: a colour image, not a label map")
        img = img[:, :, 0]
    if not np.issubdtype(img.dtype, np.integer):
        raise InputError(f"{Path(path).name}: not a label map ({img.dtype} values)")
    values = np.unique(img)
    if set(values.tolist()) <= {0, 255} and img.dtype == np.uint8:
        img = (img > 0).astype(np.uint8)
    return img[None]


def write_overlay_png(path: Path, image: np.ndarray, mask: np.ndarray, box) -> Path:
    """RGB/grey uint8 slice with the mask tinted and outlined and the box drawn (for a quick look)."""
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    out = rgb.astype(np.float32)
    m = np.asarray(mask) > 0
    out[m] = 0.6 * out[m] + 0.4 * np.array([255, 80, 40], np.float32)
    bgr = cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_RGB2BGR)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(bgr, contours, -1, (40, 80, 255), 1)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(bgr, (x0, y0), (x1, y1), (0, 220, 0), 1)
    return _imwrite(Path(path), bgr)


__all__ = ["RASTER_SUFFIXES", "is_raster", "read_png_labels", "read_raster", "write_label_png", "write_mask_png",
           "write_overlay_png"]
