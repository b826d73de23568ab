"""Image operations the engine needs from OpenCV/scipy, in numpy: INTER_AREA resize, labelling.

:func:`resize_area` is OpenCV's ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` for uint8 images.
The model's preprocessing contract (SPEC A.4) is OpenCV's INTER_AREA resize, so this module
reproduces it bit for bit (checked against opencv-python-headless 5.0.0 by tests/test_imgproc.py)
without carrying OpenCV at run time. It follows ``modules/imgproc/src/resize.cpp``, which has three
code paths for 8-bit images, all reproduced here with the same arithmetic:

* integer downscale factors (``resizeAreaFast_``): block sums; 2x2 blocks of 1/3/4-channel images
  are rounded as ``(sum + 2) >> 2``, other blocks as ``cvRound(float(sum) * (1.f / area))``
  (round half to even in float32);
* other downscales (``resizeArea_``): separable box filter with float32 weights from
  ``computeResizeAreaTab``; each row is accumulated horizontally in the table's order, then the
  rows vertically (``sum = beta*buf`` then ``sum += beta*buf``), all in float32, and rounded half
  to even. The float accumulation order is kept, since reordering it changes the rounding;
* upscales, i.e. a scale factor below 1 on either axis (``resizeGeneric_`` in "area mode"):
  linear interpolation with area-specific coefficients in 11-bit fixed point. The horizontal
  pass is exact in int32; the vertical pass uses OpenCV's 8-bit formula
  ``(((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2``, which its SIMD and scalar
  code share (so there is no tail that rounds differently).

:func:`label_components` numbers the 4- or 8-connected components of a binary image like
``scipy.ndimage.label`` (raster order of each component's first pixel).

Only numpy. No Python loop runs over image pixels: the loops run over the few filter taps, and over
the output columns/rows when the (cached) filter tables are built.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from engine.data.components import label

_DBL_EPSILON = np.finfo(np.float64).eps
_COEF_BITS = 11                  # INTER_RESIZE_COEF_BITS
_COEF_SCALE = 1 << _COEF_BITS    # INTER_RESIZE_COEF_SCALE


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """INTER_AREA resize of ``image`` to ``height`` x ``width`` pixels, bit-identical to OpenCV.

    image: uint8 (H,W) or (H,W,C) with C in 1..4, any strides. Returns a new C-contiguous uint8
    array (height,width) or (height,width,C) (the number of dimensions is kept, also for C == 1).
    A target size equal to the input size returns a copy. Raises ValueError for other dtypes or
    shapes and for an empty input or target.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"resize_area needs a uint8 image, got dtype {a.dtype}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and not 1 <= a.shape[2] <= 4):
        raise ValueError(f"resize_area needs an (H,W) or (H,W,C<=4) image, got shape {a.shape}")
    height, width = int(height), int(width)
    if a.shape[0] < 1 or a.shape[1] < 1 or height < 1 or width < 1:
        raise ValueError(f"cannot resize an image of shape {a.shape} to {height}x{width}")
    flat = a.ndim == 2
    src = a[:, :, None] if flat else a
    h, w = src.shape[:2]
    if (height, width) == (h, w):
        out = np.array(src, order="C")
    else:
        out = _resize(src, height, width)
    return out[:, :, 0] if flat else out


def _resize(src: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H,W,C) uint8 -> (height,width,C) uint8; the dispatch of ``cv::hal::resize``."""
    h, w = src.shape[:2]
    inv_x, inv_y = width / w, height / h            # cv::resize: dsize / ssize, in double
    scale_x, scale_y = 1.0 / inv_x, 1.0 / inv_y
    ix, iy = round(scale_x), round(scale_y)          # saturate_cast<int>: round half to even
    if scale_x >= 1 and scale_y >= 1:
        if abs(scale_x - ix) < _DBL_EPSILON and abs(scale_y - iy) < _DBL_EPSILON:
            return _area_fast(src, ix, iy)
        return _area(src, height, width)
    return _linear_area(src, height, width)


# --------------------------------------------------------------------------------------------
# integer factors: resizeAreaFast_
# --------------------------------------------------------------------------------------------


def _area_fast(src: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """Mean of kx x ky blocks; the image size is an exact multiple of the block size here."""
    h, w, cn = src.shape
    oh, ow = h // ky, w // kx
    acc_t = np.uint16 if kx * ky * 255 <= np.iinfo(np.uint16).max else np.uint32
    rows = src.reshape(oh, ky, w * cn)
    if ky == 1:
        acc = rows[:, 0].astype(acc_t)
    else:
        acc = np.add(rows[:, 0], rows[:, 1], dtype=acc_t)
        for i in range(2, ky):
            acc += rows[:, i]
    # horizontal block sums, one strided slice per (channel, offset): long inner loops for numpy
    total = np.empty((oh, ow * cn), acc_t)
    step = kx * cn
    for c in range(cn):
        dst = total[:, c::cn]
        if kx == 1:
            dst[...] = acc[:, c::step]
        else:
            np.add(acc[:, c::step], acc[:, cn + c::step], out=dst)
            for j in range(2, kx):
                dst += acc[:, j * cn + c::step]
    total = total.reshape(oh, ow, cn)
    if kx == 2 and ky == 2 and cn in (1, 3, 4):
        # ResizeAreaFastVec fast mode (SIMD and scalar alike): (sum + 2) >> 2
        total += 2
        total >>= 2
        return total.astype(np.uint8)
    # saturate_cast<uchar>(sum * (1.f / area)): float32 product, rounded half to even
    scale = np.float32(1.0) / np.float32(kx * ky)
    val = total.astype(np.float32)
    val *= scale
    return _round_u8(val)


# --------------------------------------------------------------------------------------------
# other downscales: resizeArea_ with computeResizeAreaTab
# --------------------------------------------------------------------------------------------


def _area_tab(ssize: int, dsize: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``computeResizeAreaTab`` as taps: (src index (T,dsize) intp, weight (T,dsize) float32).

    Tap t of output pixel d is the t-th entry of d in OpenCV's table (same order); pixels with
    fewer entries get zero-weight taps, which leave the float32 sums unchanged.
    """
    entries: list[list[tuple[int, float]]] = []
    for dx in range(dsize):
        fsx1 = dx * scale
        fsx2 = fsx1 + scale
        cell = min(scale, ssize - fsx1)
        sx1, sx2 = math.ceil(fsx1), math.floor(fsx2)
        sx2 = min(sx2, ssize - 1)
        sx1 = min(sx1, sx2)
        e = []
        if sx1 - fsx1 > 1e-3:
            e.append((sx1 - 1, (sx1 - fsx1) / cell))
        e.extend((sx, 1.0 / cell) for sx in range(sx1, sx2))
        if fsx2 - sx2 > 1e-3:
            e.append((sx2, min(min(fsx2 - sx2, 1.0), cell) / cell))
        entries.append(e)
    taps = max(len(e) for e in entries)
    idx = np.zeros((taps, dsize), np.intp)
    wgt = np.zeros((taps, dsize), np.float64)
    for dx, e in enumerate(entries):
        for t, (si, alpha) in enumerate(e):
            idx[t, dx], wgt[t, dx] = si, alpha
    return idx, wgt.astype(np.float32)  # (float)(double weight), as OpenCV stores it


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False
    return arrays


@lru_cache(maxsize=32)
def _area_plan(h: int, w: int, height: int, width: int, cn: int):
    """Cached (all slices of a volume share a size) taps of :func:`_area`: for each horizontal tap
    (flat column index, weight) over the (H, W*cn) layout, for each vertical tap (row, weight)."""
    ch = np.arange(cn)
    xi, xw = _area_tab(w, width, 1.0 / (width / w))
    yi, yw = _area_tab(h, height, 1.0 / (height / h))
    x_taps = tuple(_frozen((xi[t][:, None] * cn + ch).ravel(), np.repeat(xw[t], cn)) for t in range(len(xi)))
    y_taps = tuple(_frozen(yi[t].copy(), yw[t][:, None].copy()) for t in range(len(yi)))
    return x_taps, y_taps


def _area(src: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w, cn = src.shape
    x_taps, y_taps = _area_plan(h, w, height, width, cn)
    # horizontal pass over every source row: buf[y, dx] = sum_t S[y, xi[t, dx]] * xw[t, dx], in order
    flat = src.reshape(h, w * cn)
    buf = np.zeros((h, width * cn), np.float32)
    prod = np.empty_like(buf)
    gathered = np.empty((h, width * cn), np.uint8)
    for cols, weights in x_taps:
        np.take(flat, cols, axis=1, out=gathered, mode="clip")
        np.multiply(gathered, weights, out=prod, dtype=np.float32)
        buf += prod
    # vertical pass: sum[dy] = sum_t yw[t, dy] * buf[yi[t, dy]], in order
    acc = np.zeros((height, width * cn), np.float32)
    for rows, weights in y_taps:
        acc += weights * buf[rows]
    return _round_u8(acc).reshape(height, width, cn)


# --------------------------------------------------------------------------------------------
# upscales: resizeGeneric_ with HResizeLinear / VResizeLinear in area mode (fixed point)
# --------------------------------------------------------------------------------------------


def _linear_coeffs(dsize: int, ssize: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index, and the two 11-bit coefficients, of each output pixel (area mode)."""
    inv_scale = dsize / ssize
    scale = 1.0 / inv_scale
    d = np.arange(dsize, dtype=np.float64)
    s = np.floor(d * scale).astype(np.int64)
    f = ((d + 1) - (s + 1) * inv_scale).astype(np.float32)          # (float)(double expression)
    f = np.where(f <= 0, np.float32(0), f - np.floor(f)).astype(np.float32)
    if clamp:  # horizontal only: past the last source pixel, take it with weight 1
        last = s >= ssize - 1
        s = np.where(last, ssize - 1, s)
        f = np.where(last, np.float32(0), f).astype(np.float32)
    c0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int32)  # saturate_cast<short>
    c1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    return s, c0, c1


@lru_cache(maxsize=32)
def _linear_plan(h: int, w: int, height: int, width: int, cn: int):
    """Cached indices and coefficients of :func:`_linear_area` (see :func:`_area_plan`)."""
    sx, a0, a1 = _linear_coeffs(width, w, clamp=True)
    sy, b0, b1 = _linear_coeffs(height, h, clamp=False)
    ch = np.arange(cn)
    ix0 = (sx[:, None] * cn + ch).ravel()
    ix1 = (np.minimum(sx + 1, w - 1)[:, None] * cn + ch).ravel()
    # vertical source rows: clip(sy, 0, h) and clip(sy + 1, 0, h) as in resizeGeneric_Invoker
    r0, r1 = np.minimum(sy, h - 1), np.minimum(sy + 1, h - 1)
    rows = np.unique(np.concatenate([r0, r1]))
    if rows.size == h:
        rows = None                                   # every source row is used (upscales)
    else:
        pos = np.searchsorted(rows, np.arange(h))     # source row -> index in `rows`
        r0, r1 = pos[r0], pos[r1]
        _frozen(rows)
    return (rows, *_frozen(ix0, ix1, np.repeat(a0, cn), np.repeat(a1, cn), r0, r1, b0[:, None].copy(),
                           b1[:, None].copy()))


def _linear_area(src: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w, cn = src.shape
    rows, ix0, ix1, a0, a1, r0, r1, b0, b1 = _linear_plan(h, w, height, width, cn)
    flat = (src if rows is None else src[rows]).reshape(-1, w * cn)
    # horizontal pass, exact in int32: S = src[sx] * a0 + src[sx + 1] * a1; then S >> 4
    hor = np.multiply(flat[:, ix0], a0, dtype=np.int32)
    hor += np.multiply(flat[:, ix1], a1, dtype=np.int32)
    hor >>= 4
    # vertical pass: (((b0 * S0) >> 16) + ((b1 * S1) >> 16) + 2) >> 2. With a0 + a1 and b0 + b1 at most
    # 2049 this is at most (1020 + 2) >> 2 = 255, so no saturation is needed (OpenCV's SIMD packs
    # with saturation, its scalar code casts; both agree for these values)
    out = hor[r0]
    out *= b0
    out >>= 16
    t1 = hor[r1]
    t1 *= b1
    t1 >>= 16
    out += t1
    out += 2
    out >>= 2
    return out.astype(np.uint8).reshape(height, width, cn)


def _round_u8(val: np.ndarray) -> np.ndarray:
    """saturate_cast<uchar>(float): round half to even, then clip to 0..255."""
    np.rint(val, out=val)
    np.clip(val, 0, 255, out=val)
    return val.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# connected components
# --------------------------------------------------------------------------------------------


def label_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of a 2D binary image: (labels int32 (H,W), number of components n).

    mask: bool or integer (H,W), non-zero = foreground. ``connectivity`` 8 (diagonal neighbours
    connect) or 4. Background is 0 and the components are 1..n, numbered in raster order of their
    first pixel, which is what ``scipy.ndimage.label`` gives (with a 3x3 structure of ones for 8).
    The 2D case of :func:`engine.data.components.label` (runs and vectorised union-find).
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    m = np.asarray(mask) != 0
    if m.ndim != 2:
        raise ValueError(f"label_components needs a 2D image, got shape {m.shape}")
    return label(m, connectivity)


__all__ = ["label_components", "resize_area"]
