"""Square pixels for the model: a plane's anisotropic slice resampled, and masks and boxes mapped back exactly.

A coronal or sagittal slice of a CT has pixels of e.g. 0.7 mm x 5 mm (:mod:`engine.data.planes`); the
model expects square pixels, so such a slice is resampled along its coarser axis to the finer spacing
(:class:`SquareGrid`). Frames: *screen* pixels (row, col) of the plane's slice as shown
(:meth:`~engine.data.planes.Plane.slice`), and *square* pixels of the resampled image. Per axis the
square grid has ``n_out = round(n_in * coarse_mm / fine_mm) >= n_in`` pixels covering the same extent
(pixel edges aligned at both ends), so one screen pixel maps onto a run of whole square pixels:

* intensities: linear interpolation at the square pixel centres (half-pixel centres, edges clamped);
* masks: nearest neighbour both ways — square -> screen takes the square pixel under each screen
  pixel's centre, screen -> square the screen pixel under each square pixel's centre, so a screen mask
  goes to square and back unchanged, and a mask drawn on the square image and mapped back lands on the
  voxels it covers (mapping it to square and back again changes nothing);
* boxes (XYXY, inclusive pixel indices): a screen box -> the square pixels whose screen pixel lies in
  it, and back -> the screen pixels of its corners; points: the continuous map of pixel centres.

:class:`ModelFrame` is what the model gets for one plane: the stored slices ``voxels[z]`` as they are
(the path the app has always used, keys and all), every other plane as shown on the screen, resampled
to square pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.data.planes import Plane


class _Axis:
    """The maps between n_in screen pixels and n_out >= n_in square pixels along one axis."""

    def __init__(self, n_in: int, n_out: int):
        self.n_in, self.n_out = int(n_in), int(n_out)
        i = np.arange(self.n_out, dtype=np.int64)
        j = np.arange(self.n_in, dtype=np.int64)
        # exact integer floors of (i + 0.5) * n_in / n_out and (j + 0.5) * n_out / n_in
        self.src = (2 * i + 1) * self.n_in // (2 * self.n_out)   # square pixel -> screen pixel under its centre
        self.back = (2 * j + 1) * self.n_out // (2 * self.n_in)  # screen pixel -> square pixel under its centre
        pos = np.clip((i + 0.5) * (self.n_in / self.n_out) - 0.5, 0.0, self.n_in - 1)
        self.i0 = np.floor(pos).astype(np.int64)
        self.i1 = np.minimum(self.i0 + 1, self.n_in - 1)
        self.lam = (pos - self.i0).astype(np.float32)

    @property
    def identity(self) -> bool:
        return self.n_in == self.n_out

    def box_to_square(self, lo: float, hi: float) -> tuple[int, int]:
        lo, hi = (int(np.clip(round(float(v)), 0, self.n_in - 1)) for v in (lo, hi))
        return int(np.searchsorted(self.src, lo, "left")), int(np.searchsorted(self.src, hi, "right")) - 1

    def box_from_square(self, lo: float, hi: float) -> tuple[int, int]:
        lo, hi = (int(np.clip(round(float(v)), 0, self.n_out - 1)) for v in (lo, hi))
        return int(self.src[lo]), int(self.src[hi])

    def point_to_square(self, u):
        return (np.asarray(u, np.float64) + 0.5) * (self.n_out / self.n_in) - 0.5

    def point_from_square(self, u):
        return (np.asarray(u, np.float64) + 0.5) * (self.n_in / self.n_out) - 0.5


@dataclass(frozen=True)
class SquareGrid:
    """Between a slice of ``rows x cols`` pixels of ``row_mm x col_mm`` and square pixels of the finer size.

    See the module docstring for the maps; every method takes and returns numpy arrays in pixel indices
    (boxes XYXY: x = column, y = row).
    """

    rows: int
    cols: int
    row_mm: float
    col_mm: float

    @property
    def mm(self) -> float:
        """The square pixels' nominal size (the finer of the two spacings), mm."""
        return min(self.row_mm, self.col_mm)

    @cached_property
    def _axes(self) -> tuple[_Axis, _Axis]:
        fine = self.mm
        n = [max(n, int(round(n * s / fine))) for n, s in ((self.rows, self.row_mm), (self.cols, self.col_mm))]
        return _Axis(self.rows, n[0]), _Axis(self.cols, n[1])

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the square-pixel image."""
        return self._axes[0].n_out, self._axes[1].n_out

    @property
    def square_spacing(self) -> tuple[float, float]:
        """(row, col) mm of the square pixels (equal to :attr:`mm` up to the rounding of the pixel counts)."""
        r, c = self._axes
        return self.rows * self.row_mm / r.n_out, self.cols * self.col_mm / c.n_out

    @property
    def identity(self) -> bool:
        return self._axes[0].identity and self._axes[1].identity

    def _check(self, a: np.ndarray, shape) -> np.ndarray:
        a = np.asarray(a)
        if a.shape[:2] != tuple(shape):
            raise ValueError(f"array of shape {a.shape} does not match the grid's {tuple(shape)}")
        return a

    def resample(self, image: np.ndarray) -> np.ndarray:
        """Intensities (rows, cols[, C]) -> (shape[0], shape[1][, C]) by linear interpolation, same dtype
        (integers rounded). Axes already at the finer spacing are copied as they are."""
        a = self._check(image, (self.rows, self.cols))
        out = a.astype(np.float32)
        r, c = self._axes
        extra = (None,) * (a.ndim - 2)
        if not r.identity:
            lam = r.lam[(slice(None), None) + extra]
            out = out[r.i0] * (1 - lam) + out[r.i1] * lam
        if not c.identity:
            lam = c.lam[(None, slice(None)) + extra]
            out = out[:, c.i0] * (1 - lam) + out[:, c.i1] * lam
        if np.issubdtype(a.dtype, np.integer):
            out = np.rint(out)
        return np.ascontiguousarray(out.astype(a.dtype))

    def mask_to_square(self, mask: np.ndarray) -> np.ndarray:
        """A screen mask/label (rows, cols) -> the square grid, nearest neighbour."""
        m = self._check(mask, (self.rows, self.cols))
        r, c = self._axes
        return m[np.ix_(r.src, c.src)]

    def mask_from_square(self, mask: np.ndarray) -> np.ndarray:
        """A square-grid mask/label -> the screen grid (rows, cols), nearest neighbour."""
        m = self._check(mask, self.shape)
        r, c = self._axes
        return m[np.ix_(r.back, c.back)]

    def box_to_square(self, box) -> np.ndarray:
        """Screen box [x0, y0, x1, y1] (inclusive pixel indices; rounded, clipped to the slice) -> the
        square pixels whose nearest screen pixel lies in it, as an int64 (4,) XYXY box."""
        x0, y0, x1, y1 = np.asarray(box, np.float64).reshape(4)
        r, c = self._axes
        (xa, xb), (ya, yb) = c.box_to_square(x0, x1), r.box_to_square(y0, y1)
        return np.array([xa, ya, xb, yb], np.int64)

    def box_from_square(self, box) -> np.ndarray:
        """Square box [x0, y0, x1, y1] (inclusive pixel indices) -> the screen box of its corner pixels."""
        x0, y0, x1, y1 = np.asarray(box, np.float64).reshape(4)
        r, c = self._axes
        (xa, xb), (ya, yb) = c.box_from_square(x0, x1), r.box_from_square(y0, y1)
        return np.array([xa, ya, xb, yb], np.int64)

    def points_to_square(self, points) -> np.ndarray:
        """(N, 2) screen points (x=col, y=row; pixel centres at integers) -> (N, 2) square points."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        r, c = self._axes
        return np.stack([c.point_to_square(p[:, 0]), r.point_to_square(p[:, 1])], axis=1)

    def points_from_square(self, points) -> np.ndarray:
        p = np.asarray(points, np.float64).reshape(-1, 2)
        r, c = self._axes
        return np.stack([c.point_from_square(p[:, 0]), r.point_from_square(p[:, 1])], axis=1)


@dataclass(frozen=True, eq=False)
class ModelFrame:
    """What the model gets for the slices of one :class:`~engine.data.planes.Plane`, and the way back.

    plane.is_stored (the plane of ``voxels[z]``): the stored slice as it is — exactly the app's axial
    path, so embeddings are shared with it (cache plane ""). Any other plane: the slice as shown on the
    screen (radiological orientation, what the user sees) resampled to square pixels by
    :class:`SquareGrid` (cache plane = the plane's name), then turned by ``flip`` = (flip_rows,
    flip_cols) when that is set (the model, trained on axial slices, is orientation-sensitive on other
    planes: bench/eval_plane_input.py measures it; ``flip`` is ignored for the stored plane). Prompts come
    in and masks go out in the plane's *screen* frame; :meth:`pixels` and the model's masks are in the
    *model* frame.
    """

    plane: Plane
    grid: SquareGrid | None
    flip: tuple[bool, bool] = (False, False)

    @classmethod
    def for_plane(cls, plane: Plane, flip: tuple[bool, bool] = (False, False), square: bool = True) -> "ModelFrame":
        """square=False: the screen slice keeps its anisotropic pixels (an identity grid); measured better
        for propagation along a reformatted normal on the spleen CT (docs/planes.md)."""
        if plane.is_stored:
            return cls(plane, None)
        rows, cols = plane.slice_shape
        grid = SquareGrid(rows, cols, *plane.pixel_spacing) if square else SquareGrid(rows, cols, 1.0, 1.0)
        return cls(plane, grid, (bool(flip[0]), bool(flip[1])))

    @property
    def cache_plane(self) -> str:
        """The embedding cache key's plane (:class:`~engine.inference.cache.CacheKey`): "" for the stored
        plane, else the plane's name, plus ``:flipRC`` when flipped and ``:raw`` when not resampled."""
        if self.grid is None:
            return ""
        raw = self.grid.identity and self.plane.pixel_spacing[0] != self.plane.pixel_spacing[1]
        return (self.plane.name + ("" if not any(self.flip) else f":flip{int(self.flip[0])}{int(self.flip[1])}")
                + (":raw" if raw else ""))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the model-frame slices."""
        return self.plane.stored_shape if self.grid is None else self.grid.shape

    def _turn(self, a: np.ndarray) -> np.ndarray:
        """Square frame <-> model frame (the flips are their own inverse); a view."""
        fr, fc = self.flip
        return a[::-1 if fr else 1, ::-1 if fc else 1]

    def _turn_xy(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) points (x, y) square frame <-> model frame."""
        h, w = self.shape
        out = np.array(xy, np.float64).reshape(-1, 2)
        if self.flip[1]:
            out[:, 0] = w - 1 - out[:, 0]
        if self.flip[0]:
            out[:, 1] = h - 1 - out[:, 1]
        return out

    def _turn_box(self, box) -> np.ndarray:
        p = self._turn_xy(np.asarray(box, np.float64).reshape(2, 2))
        return np.concatenate([p.min(axis=0), p.max(axis=0)])

    def pixels(self, volume: np.ndarray, k: int) -> np.ndarray:
        """Slice k of a (Z,Y,X[,3]) volume on the plane's grid (usually the uint8 model volume,
        ``Image.model_volume``) in the model frame: C-contiguous (H, W[,3]) of the volume's dtype."""
        if self.grid is None:
            return np.ascontiguousarray(self.plane.stored_slice(volume, k))
        return np.ascontiguousarray(self._turn(self.grid.resample(self.plane.slice(volume, k))))

    def from_screen(self, screen: np.ndarray) -> np.ndarray:
        """A slice as shown on the screen (rows, cols[,3]) -> the model frame (H, W[,3]): C-contiguous, a new
        array of the same dtype (linear resampling to square pixels, then the flips; the stored layout
        for the stored plane). ``pixels(volume, k) == from_screen(plane.slice(volume, k))``."""
        s = np.asarray(screen)
        if s.shape[:2] != self.plane.slice_shape:
            raise ValueError(f"slice of shape {s.shape} does not match the {self.plane.name} slice "
                             f"{self.plane.slice_shape}")
        if self.grid is None:
            out = np.empty(self.plane.stored_shape + s.shape[2:], s.dtype)
            self.plane.display.to_screen(out)[...] = s  # to_screen is a view: this fills the stored frame
            return out
        return np.ascontiguousarray(self._turn(self.grid.resample(s)))

    def slice_pixels(self, image, k: int, window: str | None = None) -> tuple[np.ndarray, str]:
        """Slice k of an :class:`~engine.data.image.Image` on this plane, in the model's domain and frame:
        (uint8 (H, W[,3]), window key). Windows only that slice (the whole volume is never windowed here),
        then resamples it like :meth:`pixels` does the model volume's slice (window, then resample)."""
        m = image.intensity_map(window)
        return self.from_screen(m.apply(self.plane.slice(image.voxels, self.plane.check_slice(k)))), m.key

    def stack(self, volume: np.ndarray):
        """The model-frame slices of a (Z,Y,X) volume, indexable by slice like a (n_slices, H, W) array
        (``stack[k]`` is :meth:`pixels` (volume, k), computed when asked): what
        :func:`~engine.inference.propagate.propagate_box` and ``Session.precompute`` walk along the
        plane's normal. The stored plane's stack is ``volume`` itself."""
        return volume if self.grid is None else _Stack(self, volume)

    def box_to_model(self, box) -> np.ndarray:
        """Screen box [x0, y0, x1, y1] (pixel indices of the plane's slice) -> float64 (4,) model-frame box."""
        b = np.asarray(box, np.float64).reshape(4)
        if self.grid is not None:
            return self._turn_box(self.grid.box_to_square(b))
        pts = self.points_to_model([[b[0], b[1]], [b[2], b[3]]])
        return np.concatenate([pts.min(axis=0), pts.max(axis=0)])

    def box_to_screen(self, box) -> np.ndarray:
        """Model-frame box -> float64 (4,) screen box (the inverse of :meth:`box_to_model` on pixel boxes)."""
        b = np.asarray(box, np.float64).reshape(4)
        if self.grid is not None:
            return self.grid.box_from_square(self._turn_box(b)).astype(np.float64)
        d, shape = self.plane.display, self.plane.stored_shape
        corners = np.array([d.index_to_screen(x, y, shape) for x, y in ((b[0], b[1]), (b[2], b[3]))])  # (row, col)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        return np.array([lo[1], lo[0], hi[1], hi[0]], np.float64)

    def points_to_model(self, points) -> np.ndarray:
        """(N, 2) screen points (x=col, y=row) -> float64 (N, 2) model-frame points (x, y)."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        if self.grid is not None:
            return self._turn_xy(self.grid.points_to_square(p))
        xs, ys = self.plane.display.screen_to_index(p[:, 1], p[:, 0], self.plane.stored_shape)
        return np.stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)], axis=1)

    def mask_to_screen(self, mask: np.ndarray) -> np.ndarray:
        """A model-frame mask (H, W) -> the plane's screen frame (rows, cols), nearest neighbour; a new array."""
        m = np.asarray(mask)
        if self.grid is not None:
            return self.grid.mask_from_square(self._turn(m))
        if m.shape[:2] != self.plane.stored_shape:
            raise ValueError(f"mask of shape {m.shape} does not match the slice {self.plane.stored_shape}")
        return np.array(self.plane.display.to_screen(m), order="C")

    def mask_to_model(self, mask: np.ndarray) -> np.ndarray:
        """A screen mask (rows, cols) -> the model frame (H, W), nearest neighbour; a new array."""
        m = np.asarray(mask)
        if self.grid is not None:
            return np.ascontiguousarray(self._turn(self.grid.mask_to_square(m)))
        if m.shape[:2] != self.plane.slice_shape:
            raise ValueError(f"mask of shape {m.shape} does not match the slice {self.plane.slice_shape}")
        out = np.empty(self.plane.stored_shape + m.shape[2:], m.dtype)
        self.plane.display.to_screen(out)[...] = m  # to_screen is a view: this fills the stored frame
        return out


class _Stack:
    """(n_slices, H, W) model-frame slices of one plane, resampled on access (see :meth:`ModelFrame.stack`)."""

    def __init__(self, frame: ModelFrame, volume: np.ndarray):
        self._frame, self._volume = frame, volume
        self.shape = (frame.plane.n_slices, *frame.shape) + tuple(volume.shape[3:])
        self.ndim, self.dtype = len(self.shape), volume.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, k):
        return self._frame.pixels(self._volume, int(k))


__all__ = ["ModelFrame", "SquareGrid"]
