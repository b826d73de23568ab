"""Minimal 2D image reading/writing for the CLI (single images; full DICOM/NIfTI I/O comes later).

Supported: PNG/JPEG/BMP/TIFF (8/16-bit, grey/RGB/RGBA), single-frame DICOM (CT windowed from HU,
other modalities percentile-normalised, MONOCHROME1 inverted, RGB kept), 2D challenge .npz.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .window import CT_PRESETS, ct_window, minmax_u8, percentile_normalise, window_key

RASTER = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass
class Image2D:
    """pixels: uint8 (H,W) or (H,W,3) RGB in the model domain; window: its cache-key string."""

    pixels: np.ndarray
    window: str
    description: str


def _parse_window(window: str | None) -> tuple[float, float]:
    if window is None:
        return CT_PRESETS["soft-tissue"]
    if window in CT_PRESETS:
        return CT_PRESETS[window]
    try:
        level, width = (float(v) for v in window.split(","))
    except ValueError as e:
        raise InputError(f"window must be 'level,width' in HU or one of {', '.join(CT_PRESETS)}, got {window!r}") from e
    if width <= 0:
        raise InputError(f"window width must be positive, got {width:g}")
    return level, width


def read_2d(path: Path, window: str | None = None) -> Image2D:
    """Read one 2D image into the model's uint8 domain; raises InputError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from .challenge import load_case

        case = load_case(path, with_gt=False)
        if case.is_3d:
            raise InputError(f"{path.name}: a 3D case; `segment` takes a 2D image")
        return Image2D(case.imgs, "u8", "challenge 2D case")
    if suffix in RASTER:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError(f"{path.name}: cannot decode as an image")
        if img.ndim == 3:
            img = img[:, :, :3]
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)
        return Image2D(minmax_u8(img), "u8", f"{suffix[1:].upper()} {img.dtype}")
    return _read_dicom(path, window)


def _read_dicom(path: Path, window: str | None) -> Image2D:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as e:
        raise InputError(f"{path.name}: not a readable image (PNG/JPEG/BMP/TIFF, DICOM or .npz): {e}") from e
    if "PixelData" not in ds:
        raise InputError(f"{path.name}: DICOM file without pixel data")
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for missing codecs
        raise InputError(f"{path.name}: cannot decode pixel data ({ds.file_meta.TransferSyntaxUID.name}): {e}") from e
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise InputError(f"{path.name}: multi-frame DICOM; `segment` takes a single 2D frame")
    modality = str(getattr(ds, "Modality", "OT"))
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if arr.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        return Image2D(minmax_u8(arr), "u8", f"DICOM {modality} RGB")
    values = arr.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    if photometric == "MONOCHROME1":
        values = values.max() + values.min() - values
    if modality == "CT":
        level, width = _parse_window(window)
        return Image2D(ct_window(values, level, width), window_key("ct", level, width),
                       f"DICOM CT, window L{level:g}/W{width:g} HU")
    return Image2D(percentile_normalise(values), window_key("pct", 0.5, 99.5), f"DICOM {modality}, percentile 0.5-99.5")


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """bool (H,W) -> 8-bit PNG with 0/255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), (np.asarray(mask) > 0).astype(np.uint8) * 255):
        raise InputError(f"cannot write {path}")


def write_overlay_png(path: Path, image: np.ndarray, mask: np.ndarray, box) -> None:
    """RGB image with the mask tinted and outlined and the box drawn (for a quick look)."""
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    out = rgb.astype(np.float32)
    m = np.asarray(mask) > 0
    out[m] = 0.6 * out[m] + 0.4 * np.array([255, 80, 40], np.float32)
    bgr = cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_RGB2BGR)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(bgr, contours, -1, (40, 80, 255), 1)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(bgr, (x0, y0), (x1, y1), (0, 220, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), bgr):
        raise InputError(f"cannot write {path}")
