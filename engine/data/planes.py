"""The axial, coronal and sagittal planes of a volume: exact voxel-grid slices, shown radiologically.

Which voxel axis is each plane's normal
---------------------------------------
Each plane is cut across one voxel axis of the stored grid, so a plane's slice is exactly the stored
voxels (no interpolation, no resampling): slice ``k`` of a plane is the voxels whose index along that
plane's **normal axis** (an array axis of the ``(Z, Y, X)`` voxels, see :mod:`engine.data.image`) is
``k``. The normal axis of a plane is the voxel axis closest to that patient axis (axial: S, coronal: A,
sagittal: R). For an oblique acquisition (a rotated affine) the planes are therefore the voxel grid's
planes closest to the anatomical ones, tilted with the acquisition, as ITK-SNAP shows them; they are
never resampled onto patient axes. The stored slice axis ``Z`` keeps the plane
:func:`engine.data.display.display_for` names (the one the app already shows ``voxels[z]`` as); the
other two voxel axes take the other two planes, whichever way they are closer.

How a plane's slice is put on the screen
----------------------------------------
As :mod:`engine.data.display` does it for the stored slices (radiological convention, as ITK-SNAP and
3D Slicer): rows run top to bottom Anterior -> Posterior (axial) or Superior -> Inferior (coronal,
sagittal); columns run patient Right -> Left (axial, coronal) or Anterior -> Posterior (sagittal),
i.e. the patient's right is on the screen's left. The screen arrays are numpy views (transposes and
reversed strides) of the voxels, so writing into them writes the voxels: :meth:`Plane.paint` and
:meth:`Plane.volume_from_screen` map a mask drawn on a plane back onto the ``(Z, Y, X)`` grid exactly.

Frames: *screen* pixel ``(row, col)`` of slice ``k`` of a plane; *voxel* ``(z, y, x)`` array indices;
*RAS* mm (``affine @ (x, y, z, 1)``). The square-pixel images the model gets are in
:mod:`engine.data.square`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.errors import PromptError
from engine.data.display import Display, display_for, display_in_plane

#: the three planes, in the order the views show them
PLANES = ("axial", "coronal", "sagittal")
#: RAS axis (0=R, 1=A, 2=S) along each plane's normal
_NORMAL_RAS = {"sagittal": 0, "coronal": 1, "axial": 2}


def _unit_columns(affine) -> np.ndarray:
    """(3,3): column c = RAS unit direction of voxel index c (c=0: x, 1: y, 2: z)."""
    m = np.asarray(affine, np.float64)[:3, :3]
    return m / np.maximum(np.linalg.norm(m, axis=0), 1e-12)


def normal_axes(affine) -> dict[str, int]:
    """plane name -> the array axis (0=Z, 1=Y, 2=X of the (Z,Y,X) voxels) along that plane's normal.

    Z keeps the plane :func:`~engine.data.display.display_for` gives it; Y and X take the other two
    planes in the pairing whose directions are closer to those planes' normals (largest sum of
    |cosines|). A permutation of (0, 1, 2) for every valid affine.
    """
    dirs = _unit_columns(affine)
    first = display_for(affine).plane
    p, q = (name for name in PLANES if name != first)
    wp, wq = _NORMAL_RAS[p], _NORMAL_RAS[q]
    dy, dx = dirs[:, 1], dirs[:, 0]  # array axis 1 (Y) is index y, array axis 2 (X) is index x
    if abs(dy[wp]) + abs(dx[wq]) >= abs(dy[wq]) + abs(dx[wp]):
        return {first: 0, p: 1, q: 2}
    return {first: 0, q: 1, p: 2}


def _letter(v: np.ndarray) -> str:
    i = int(np.argmax(np.abs(v)))
    return ("RAS" if v[i] > 0 else "LPI")[i]


@dataclass(frozen=True, eq=False)
class Plane:
    """One plane of a ``(Z, Y, X)`` voxel grid (see the module docstring for the conventions).

    name: 'axial', 'coronal' or 'sagittal'; normal_axis: the array axis its slices are cut across;
    shape: the grid's (Z, Y, X); affine: the grid's voxel (x, y, z, 1) -> RAS mm matrix; display: how
    its *stored slice* (the array ``volume`` indexed at ``k`` on ``normal_axis``, the other two axes
    kept in array order) is put on the screen.
    """

    name: str
    normal_axis: int
    shape: tuple[int, int, int]
    affine: np.ndarray
    display: Display

    # --- sizes ------------------------------------------------------------------------------
    @property
    def in_plane_axes(self) -> tuple[int, int]:
        """The array axes (a, b), a < b, of the stored slice's rows and columns."""
        a, b = (ax for ax in (0, 1, 2) if ax != self.normal_axis)
        return a, b

    @property
    def is_stored(self) -> bool:
        """True for the plane of the stored slices ``voxels[z]`` (its normal is Z)."""
        return self.normal_axis == 0

    @property
    def n_slices(self) -> int:
        return int(self.shape[self.normal_axis])

    @property
    def stored_shape(self) -> tuple[int, int]:
        a, b = self.in_plane_axes
        return int(self.shape[a]), int(self.shape[b])

    @property
    def slice_shape(self) -> tuple[int, int]:
        """(rows, cols) of a slice on the screen."""
        h, w = self.stored_shape
        return (w, h) if self.display.transpose else (h, w)

    @property
    def _axis_mm(self) -> np.ndarray:
        """(3,) voxel size in mm per array axis (Z, Y, X)."""
        return np.linalg.norm(np.asarray(self.affine, np.float64)[:3, :3], axis=0)[::-1]

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(row, col) pixel size in mm of a slice on the screen (row = distance between screen rows)."""
        a, b = self.in_plane_axes
        mm = self._axis_mm
        return (float(mm[b]), float(mm[a])) if self.display.transpose else (float(mm[a]), float(mm[b]))

    @property
    def slice_spacing(self) -> float:
        """Distance in mm between consecutive slices (along the normal axis)."""
        return float(self._axis_mm[self.normal_axis])

    def check_slice(self, k: int) -> int:
        """Validate a slice index of this plane; raises :class:`PromptError` naming the valid range."""
        if not (0 <= int(k) < self.n_slices):
            raise PromptError(f"{self.name} slice {k} is out of range: 0..{self.n_slices - 1}")
        return int(k)

    # --- pixels -----------------------------------------------------------------------------
    def _check_volume(self, volume: np.ndarray) -> None:
        if tuple(volume.shape[:3]) != tuple(self.shape):
            raise ValueError(f"volume of shape {volume.shape} is not on this plane's grid {self.shape}")

    def stored_slice(self, volume: np.ndarray, k: int) -> np.ndarray:
        """Slice ``k`` as stored: a view (shape[a], shape[b][, C]) of a (Z,Y,X[,C]) array on this grid."""
        self._check_volume(volume)
        index = [slice(None)] * volume.ndim
        index[self.normal_axis] = self.check_slice(k)
        return volume[tuple(index)]

    def screen_volume(self, volume: np.ndarray) -> np.ndarray:
        """All slices on the screen: a view (n_slices, rows, cols[, C]) of a (Z,Y,X[,C]) array.

        ``screen_volume(v)[k, row, col]`` is the voxel shown at that pixel of slice k; writing into
        the view writes ``v`` (the way masks drawn on a plane land on the voxel grid).
        """
        self._check_volume(volume)
        a, b = self.in_plane_axes
        rest = tuple(range(3, volume.ndim))
        stacked = np.transpose(volume, (self.normal_axis, a, b) + rest)  # (N, A, B[, C])
        # Display.to_screen orients the two leading axes and carries trailing ones along
        return np.moveaxis(self.display.to_screen(np.moveaxis(stacked, 0, 2)), 2, 0)

    def slice(self, volume: np.ndarray, k: int, *, copy: bool = False) -> np.ndarray:
        """Slice ``k`` as shown: (rows, cols[, C]) of a (Z,Y,X[,C]) array on this grid.

        A view (no copy, writes go to ``volume``) unless ``copy``: then one C-contiguous copy.
        """
        view = self.display.to_screen(self.stored_slice(volume, k))
        return np.array(view, order="C") if copy else view

    # --- coordinates ------------------------------------------------------------------------
    def to_voxel(self, k, row, col) -> np.ndarray:
        """Screen pixel (row, col) of slice k -> voxel indices, float64 (..., 3) as (z, y, x).

        k, row, col: numbers or arrays (broadcast together); fractional pixels give fractional voxels.
        """
        k, row, col = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (k, row, col)))
        xs, ys = self.display.screen_to_index(row, col, self.stored_shape)  # stored slice's (x=b, y=a)
        a, b = self.in_plane_axes
        out = np.empty(k.shape + (3,), np.float64)
        out[..., self.normal_axis], out[..., a], out[..., b] = k, ys, xs
        return out

    def from_voxel(self, zyx) -> np.ndarray:
        """Voxel indices (..., 3) as (z, y, x) -> float64 (..., 3) as (k, row, col) on this plane."""
        v = np.asarray(zyx, np.float64)
        a, b = self.in_plane_axes
        row, col = self.display.index_to_screen(v[..., b], v[..., a], self.stored_shape)
        return np.stack(np.broadcast_arrays(v[..., self.normal_axis], row, col), axis=-1)

    def to_ras(self, k, row, col) -> np.ndarray:
        """Screen pixel (row, col) of slice k -> RAS mm, float64 (..., 3) (``affine @ (x, y, z, 1)``)."""
        zyx = self.to_voxel(k, row, col)
        aff = np.asarray(self.affine, np.float64)
        return zyx[..., ::-1] @ aff[:3, :3].T + aff[:3, 3]

    def from_ras(self, ras) -> np.ndarray:
        """RAS mm (..., 3) -> float64 (..., 3) as (k, row, col) on this plane (fractional)."""
        inv = np.linalg.inv(np.asarray(self.affine, np.float64))
        xyz = np.asarray(ras, np.float64) @ inv[:3, :3].T + inv[:3, 3]
        return self.from_voxel(xyz[..., ::-1])

    @property
    def letters(self) -> dict[str, str]:
        """Orientation letters at the screen edges: {'left', 'right', 'top', 'bottom'} -> 'R'/'L'/'A'/'P'/'S'/'I'
        (the patient direction closest to that edge; e.g. axial: left 'R', top 'A')."""
        d = self.display
        a, b = self.in_plane_axes
        dirs = _unit_columns(self.affine)
        col_dir = dirs[:, 2 - (a if d.transpose else b)] * (-1 if d.flip_cols else 1)  # screen col grows
        row_dir = dirs[:, 2 - (b if d.transpose else a)] * (-1 if d.flip_rows else 1)  # screen row grows
        return {"left": _letter(-col_dir), "right": _letter(col_dir), "top": _letter(-row_dir),
                "bottom": _letter(row_dir)}

    # --- masks back onto the grid -----------------------------------------------------------
    def paint(self, labels: np.ndarray, k: int, mask: np.ndarray, value=1) -> int:
        """Write ``value`` into the (Z,Y,X) ``labels`` where the screen mask (rows, cols) of slice k is
        set; the same voxels the mask covers, nothing interpolated. Returns the number of voxels written."""
        mask = np.asarray(mask, bool)
        if mask.shape != self.slice_shape:
            raise ValueError(f"mask of shape {mask.shape} does not match the {self.name} slice {self.slice_shape}")
        self.slice(labels, k)[mask] = value
        return int(np.count_nonzero(mask))

    def volume_from_screen(self, stack: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """A (n_slices, rows, cols) stack of screen slices -> the same values on the (Z,Y,X) grid.

        out: the (Z,Y,X) array to write into (default: a new one of ``stack``'s dtype).
        """
        stack = np.asarray(stack)
        if stack.shape[:3] != (self.n_slices, *self.slice_shape):
            raise ValueError(f"stack of shape {stack.shape} is not the {self.name} plane's "
                             f"{(self.n_slices, *self.slice_shape)}")
        if out is None:
            out = np.empty(tuple(self.shape) + stack.shape[3:], stack.dtype)
        self.screen_volume(out)[...] = stack
        return out


def cross_section(src: Plane, k: int, mask: np.ndarray, dst: Plane, k_dst: int) -> np.ndarray:
    """Where a mask drawn on slice ``k`` of plane ``src`` crosses slice ``k_dst`` of plane ``dst``.

    mask: bool (rows, cols) on ``src``'s screen grid. Returns a new bool (rows, cols) on ``dst``'s screen
    grid: exactly the pixels of ``dst``'s slice whose voxels the mask covers (a line of pixels when the
    planes differ, the mask itself on the same plane and slice, nothing when the slices do not meet).
    Both planes must belong to one grid (:func:`planes_of`: each cuts across its own voxel axis).
    """
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"planes of different grids: {src.shape} and {dst.shape}")
    m = np.asarray(mask, bool)
    if m.shape != src.slice_shape:
        raise ValueError(f"mask of shape {m.shape} does not match the {src.name} slice {src.slice_shape}")
    out = np.zeros(dst.slice_shape, bool)
    if not (0 <= int(k_dst) < dst.n_slices):
        return out
    if src.normal_axis == dst.normal_axis:  # one grid: the same plane
        if int(k) == int(k_dst):
            out[...] = m
        return out
    rows, cols = np.nonzero(m)
    zyx = np.rint(src.to_voxel(k, rows, cols)).astype(np.int64)
    keep = zyx[:, dst.normal_axis] == int(k_dst)
    if keep.any():
        krc = np.rint(dst.from_voxel(zyx[keep])).astype(np.int64)
        out[krc[:, 1], krc[:, 2]] = True
    return out


def plane_of(affine, shape, name: str) -> Plane:
    """The :class:`Plane` ``name`` ('axial', 'coronal', 'sagittal') of a (Z,Y,X) grid with this affine."""
    if name not in _NORMAL_RAS:
        raise ValueError(f"unknown plane {name!r}: one of {', '.join(PLANES)}")
    affine = np.asarray(affine, np.float64).reshape(4, 4)
    n = normal_axes(affine)[name]
    a, b = (ax for ax in (0, 1, 2) if ax != n)
    dirs = _unit_columns(affine)
    # the stored slice's column index walks array axis b (affine column 2-b), its row index axis a
    display = display_in_plane(name, dirs[:, 2 - b], dirs[:, 2 - a])
    return Plane(name, n, tuple(int(s) for s in shape[:3]), affine, display)


def planes_of(affine, shape) -> dict[str, Plane]:
    """All three planes of a (Z,Y,X) grid: {'axial': Plane, 'coronal': Plane, 'sagittal': Plane}."""
    return {name: plane_of(affine, shape, name) for name in PLANES}


__all__ = ["PLANES", "Plane", "cross_section", "normal_axes", "plane_of", "planes_of"]
