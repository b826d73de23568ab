"""2D raster files (PNG, JPEG, BMP, TIFF) in and out, through Pillow.

Reading keeps the file's values: 8- or 16-bit (or float TIFF) grey -> ``Image.voxels`` (1,H,W),
colour -> (1,H,W,3) RGB (alpha dropped; grey+alpha is grey; palette images are expanded to their
RGB colours; colour stored with equal channels is grey). Pillow reads 16-bit-per-channel colour
(48/64-bit RGB(A) PNG/TIFF) as 8 bits per channel. There is no patient geometry: spacing 1 mm, the
affine of an LPS identity (so the image is displayed as stored, see :mod:`engine.data.image`). Writers:
mask PNG (0/255), label PNG (values as stored, 8/16-bit) and a quick-look overlay.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engine.base.atomic import writing
from engine.base.errors import InputError
from engine.data.geometry import raster_affine
from engine.data.image import Image
from engine.data.outline import mask_outline


# Pillow modes whose pixels numpy gives as (H,W) values as stored
_GREY_MODES = ("L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;32", "I;32L", "I;32B", "I;32S")


def _pil_to_array(im) -> np.ndarray:
    """A loaded Pillow image -> (H,W) grey values as stored or (H,W,3) uint8 RGB (alpha dropped)."""
    mode = im.mode
    if mode in _GREY_MODES:
        a = np.asarray(im)
        return a.astype(a.dtype.newbyteorder("="), copy=False)  # I;16B etc. -> native byte order
    if mode == "1":
        return np.asarray(im.convert("L"))  # bilevel -> 0/255
    if mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))[:, :, 0]  # grey + alpha -> grey
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "RGBX"):
        return np.asarray(im)[:, :, :3]
    # palette (with or without transparency), premultiplied alpha, CMYK, YCbCr, LAB, HSV
    return np.asarray(im.convert("RGBA"))[:, :, :3]


def _imread(path: Path) -> np.ndarray:
    """Decode a raster file: (H,W) grey (uint8/uint16/int32/float32) or (H,W,3) uint8 RGB."""
    from PIL import Image as PILImage

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    # read the bytes ourselves: any path (non-ASCII included) on every platform, file closed at once
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path.name}: cannot read ({e.strerror or e})") from e
    undecodable = InputError(f"{path.name}: cannot decode as a {path.suffix[1:].upper()} image (empty, truncated "
                             "or not an image)")
    if not data:
        raise undecodable
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            if im.format == "PNG":
                # chunk CRCs and the IEND chunk, as libpng checks them (Pillow would otherwise accept a
                # PNG cut off after its last image row)
                with PILImage.open(io.BytesIO(data)) as check:
                    check.verify()
            im.load()  # the first frame of a multi-page TIFF
            img = _pil_to_array(im)
    except PILImage.DecompressionBombError as e:
        raise InputError(f"{path.name}: image too large to open ({e})") from e
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds of error for corrupt data
        raise undecodable from e
    return np.ascontiguousarray(img)


def read_raster(path: Path) -> Image:
    """A PNG/JPEG/BMP/TIFF file -> :class:`Image` with Z=1 (grey (1,H,W) or RGB (1,H,W,3))."""
    path = Path(path)
    img = _imread(path)
    if img.ndim == 3 and np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2]):
        img = img[:, :, 0]  # grey stored as RGB(A)
    kind = "RGB" if img.ndim == 3 else "grey"
    h, w = img.shape[:2]
    return Image(voxels=np.ascontiguousarray(img[None]), affine=raster_affine(), modality="OT", spacing_known=False,
                 units="u8" if img.dtype == np.uint8 else "",
                 description=f"{path.suffix[1:].upper()} {w}x{h} {kind} {img.dtype}", source=path)


def _imwrite(path: Path, arr: np.ndarray) -> Path:
    """Write uint8 (H,W) / uint16 (H,W) / uint8 RGB (H,W,3) in the format of the suffix (PNG if none)."""
    from PIL import Image as PILImage

    path = Path(path)
    suffix = path.suffix.lower() or ".png"
    fmt = PILImage.registered_extensions().get(suffix)
    options = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 95}}.get(fmt, {})  # OpenCV's defaults
    buf = io.BytesIO()
    try:
        if fmt is None:
            raise ValueError(f"unknown image format {suffix!r}")
        PILImage.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt, **options)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"cannot encode {path.name} as {suffix} ({e})") from e
    with writing(path) as tmp:
        tmp.write_bytes(buf.getvalue())
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
        if not all(np.array_equal(img[:, :, 0], img[:, :, c]) for c in range(1, img.shape[2])):
            raise InputError(f"{Path(path).name}: a colour image, not a label map")
        img = img[:, :, 0]
    if not np.issubdtype(img.dtype, np.integer):
        raise InputError(f"{Path(path).name}: not a label map ({img.dtype} values)")
    values = np.unique(img)
    if set(values.tolist()) <= {0, 255} and img.dtype == np.uint8:
        img = (img > 0).astype(np.uint8)
    return img[None]


def _draw_rectangle(rgb: np.ndarray, box, color) -> None:
    """A 1-pixel rectangle through the corners (x0, y0), (x1, y1) (rounded), clipped to the image."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    xa, xb, ya, yb = max(x0, 0), min(x1, w - 1), max(y0, 0), min(y1, h - 1)
    if xa > xb or ya > yb:
        return
    for y in {y0, y1}:
        if 0 <= y < h:
            rgb[y, xa:xb + 1] = color
    for x in {x0, x1}:
        if 0 <= x < w:
            rgb[ya:yb + 1, x] = color


def write_overlay_png(path: Path, image: np.ndarray, mask: np.ndarray, box) -> Path:
    """RGB/grey uint8 slice with the mask tinted and outlined and the box drawn (for a quick look)."""
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    out = rgb.astype(np.float32)
    m = np.asarray(mask) > 0
    out[m] = 0.6 * out[m] + 0.4 * np.array([255, 80, 40], np.float32)
    out = out.astype(np.uint8)
    out[mask_outline(m)] = (255, 80, 40)
    _draw_rectangle(out, box, (0, 220, 0))
    return _imwrite(Path(path), out)


__all__ = ["read_png_labels", "read_raster", "write_label_png", "write_mask_png",
           "write_overlay_png"]
