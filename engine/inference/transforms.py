"""All coordinate maths between the original image frame and the model's 256-space (SPEC A.4/A.5).

Frames:
* original frame: pixel indices of the 2D slice as given to the engine, x = column (axis 1),
  y = row (axis 0); boxes are XYXY ``[x_min, y_min, x_max, y_max]`` in these pixels.
* 256-space: the padded 256x256 network input. The image is resized so that its longest side is
  256 (aspect ratio kept) and zero-padded at the bottom/right.

Nothing else in the engine converts between these frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.errors import InputError, PromptError
from engine.inference.imgproc import resize_area

MODEL_SIZE = 256
#: enlargement (256-space pixels) of the box derived from the previous slice's mask (SPEC A.8)
PROPAGATION_MARGIN = 3


@dataclass(frozen=True)
class Geometry:
    """How one slice of (h, w) original pixels maps into 256-space.

    ``new_h``/``new_w`` is the size of the resized image inside the padded 256x256 input;
    ``scale`` = 256 / max(h, w) multiplies original coordinates into 256-space.
    """

    h: int
    w: int

    @property
    def scale(self) -> float:
        return MODEL_SIZE / max(self.h, self.w)

    @property
    def new_h(self) -> int:
        return int(self.h * self.scale + 0.5)

    @property
    def new_w(self) -> int:
        return int(self.w * self.scale + 0.5)


def as_rgb_u8(image: np.ndarray) -> np.ndarray:
    """A slice in the model's input domain: uint8 (H,W) or (H,W,3) -> C-contiguous uint8 (H,W,3).

    Grey slices are replicated into three channels, as the challenge scripts do.
    Raises :class:`InputError` for any other dtype or shape.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InputError(f"image must be a uint8 array (H,W) or (H,W,3), got dtype {dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise InputError(f"image must have shape (H,W) or (H,W,3), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"image is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


def resize_longest(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """uint8 (H,W) or (H,W,3) -> uint8 (new_h, new_w[,3]): OpenCV's INTER_AREA resize, bit for bit
    (:func:`engine.inference.imgproc.resize_area`, numpy only)."""
    return resize_area(image, geom.new_h, geom.new_w)


def preprocess(image: np.ndarray) -> tuple[np.ndarray, Geometry]:
    """Slice -> network input (SPEC A.4, online steps).

    image: uint8 (H,W) or (H,W,3). Returns (float32 (1,3,256,256) in [0,1], geometry).
    Min-max uses the global min/max of the resized image over all channels; a constant image
    becomes all zeros (the 1e-8 floor avoids a division by zero, as in the reference).
    """
    rgb = as_rgb_u8(image)
    geom = Geometry(rgb.shape[0], rgb.shape[1])
    small = resize_longest(rgb, geom).astype(np.float32)
    lo, hi = float(small.min()), float(small.max())
    small = (small - lo) / max(hi - lo, 1e-8)
    out = np.zeros((1, 3, MODEL_SIZE, MODEL_SIZE), np.float32)
    out[0, :, : geom.new_h, : geom.new_w] = small.transpose(2, 0, 1)
    return out, geom


def validate_box(box, geom: Geometry) -> np.ndarray:
    """Check an XYXY box in original pixels; returns it as float64 (4,).

    The box must have positive width and height and overlap the image; it may extend past the
    border (it is used as a prompt, not a crop).
    """
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        raise PromptError(f"box must be 4 finite numbers [x_min, y_min, x_max, y_max], got {box!r}")
    x0, y0, x1, y1 = b
    if x1 <= x0 or y1 <= y0:
        raise PromptError(f"box {b.tolist()} has zero or negative area (need x_max > x_min and y_max > y_min)")
    if x1 < 0 or y1 < 0 or x0 > geom.w - 1 or y0 > geom.h - 1:
        raise PromptError(f"box {b.tolist()} lies outside the image of {geom.w}x{geom.h} pixels")
    return b


def box_to_model(box, geom: Geometry) -> np.ndarray:
    """XYXY box in original pixels -> float32 (1,4) in 256-space, truncated to int (SPEC A.4)."""
    b = validate_box(box, geom)
    return np.trunc(b * geom.scale).astype(np.float32).reshape(1, 4)


def points_to_model(points, geom: Geometry) -> np.ndarray:
    """Points (N,2) as (x, y) in original pixels -> float32 (1,N,2) in 256-space (not truncated)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(p)):
        raise PromptError("points must be finite (x, y) pairs")
    return (p * geom.scale).astype(np.float32)[None]


def _bilinear_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of PyTorch's bilinear resize (align_corners=False, no antialias)."""
    # float32 throughout, as PyTorch's CPU kernel computes it, so that weights match to the bit
    scale = np.float32(n_in / n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0.astype(np.float32)
    return i0, i1, lam


def upscale_logits(low_res: np.ndarray, geom: Geometry) -> np.ndarray:
    """Low-res logits (1,1,256,256) or (256,256) -> float32 (H,W) logits in the original frame.

    Crop to the valid (new_h, new_w) region, then bilinear resize with half-pixel centres
    exactly as ``F.interpolate(mode="bilinear", align_corners=False)`` (SPEC A.5).
    """
    lr = np.asarray(low_res, dtype=np.float32).reshape(MODEL_SIZE, MODEL_SIZE)[: geom.new_h, : geom.new_w]
    r0, r1, rl = _bilinear_weights(geom.new_h, geom.h)
    c0, c1, cl = _bilinear_weights(geom.new_w, geom.w)
    rows = lr[r0] * (1 - rl)[:, None] + lr[r1] * rl[:, None]
    return rows[:, c0] * (1 - cl)[None, :] + rows[:, c1] * cl[None, :]


def postprocess(low_res: np.ndarray, geom: Geometry) -> np.ndarray:
    """Low-res logits -> bool (H,W) mask: logit > 0, i.e. sigmoid > 0.5 (SPEC A.5)."""
    return upscale_logits(low_res, geom) > 0


def box_from_previous_mask(prev_mask: np.ndarray, label_value: int, geom: Geometry) -> np.ndarray | None:
    """256-space box for the next slice from the previous slice's mask (SPEC A.8 step 4).

    prev_mask: bool or integer (H,W) mask of the previous slice in the propagation direction.
    The reference resizes the uint8 label map holding 0/k with INTER_AREA, so the label value k
    decides which boundary pixels survive the averaging; pass the same k for parity.
    Returns float32 (1,4) = tight box of the resized mask enlarged by 3 px, mins clipped at 0 and
    maxes at 256, or None when the resized mask is empty.
    """
    lab = np.where(np.asarray(prev_mask) > 0, np.uint8(min(label_value, 255)), np.uint8(0))
    small = resize_longest(lab, geom)
    ys, xs = np.nonzero(small > 0)
    if ys.size == 0:
        return None
    m = PROPAGATION_MARGIN
    box = [max(xs.min() - m, 0), max(ys.min() - m, 0), min(xs.max() + m, MODEL_SIZE), min(ys.max() + m, MODEL_SIZE)]
    return np.asarray(box, np.float32).reshape(1, 4)
