"""The size and sanity gate every reader passes before it allocates pixels (issue 18).

A file's header declares what the reader will allocate; a crafted or corrupt header can declare
terabytes with a few bytes of data, NaN or singular geometry, or zero spacing. Each reader calls
these checks with what the header says, before any pixel array exists, and each check raises one
:class:`~engine.base.errors.InputError` naming the file (the name the user sees, relative to what was
opened) and the reason; the CLI prints it as one line and exits 2.

* :func:`check_size`: the voxels the reader will hold (shape x bytes per voxel) against
  :func:`engine.base.sysinfo.memory_budget_bytes` (a quarter of the RAM).
* :func:`check_data_present`: the bytes the file actually holds for the pixels against what the
  header declares (a 30000x30000 header with 128 bytes of data is refused before decoding).
* :func:`check_geometry`: a finite, non-singular voxel->RAS affine
  (:func:`engine.data.geometry.affine_problem`, which :class:`~engine.data.image.Image` also applies).
* :func:`check_spacing`: ``n`` finite spacings > 0 mm.
"""

from __future__ import annotations

import math

import numpy as np

from engine.base.errors import InputError
from engine.base.sysinfo import memory_budget_bytes
from engine.data.geometry import affine_problem


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**28 else f"{n / 2**20:.3g} MiB"


def check_size(name: str, shape, bytes_per_voxel: float, *, what: str = "image") -> int:
    """Refuse a declared array that cannot be (positive whole dimensions) or that would not fit the budget.

    shape: the dimensions the header declares (any order; channels and frames included);
    bytes_per_voxel: what the reader stores per element (e.g. 4 for float32 HU). Returns the bytes.
    """
    dims = []
    for d in shape:
        try:
            f = float(d)
        except (TypeError, ValueError):
            f = math.nan
        if not math.isfinite(f) or f != int(f):
            raise InputError(f"{name}: {what} dimension {d!r} is not a whole number")
        v = int(f)
        if v < 1:
            raise InputError(f"{name}: {what} of {'x'.join(str(x) for x in shape)} voxels is empty or negative")
        dims.append(v)
    nbytes = math.prod(dims) * float(bytes_per_voxel)
    budget = memory_budget_bytes()
    if nbytes > budget:
        raise InputError(f"{name}: {what} of {'x'.join(str(x) for x in dims)} voxels would need {_gib(nbytes)}, "
                         f"more than this machine allows for one image ({_gib(budget)}; a corrupt header?)")
    return int(nbytes)


def check_data_present(name: str, declared: int, present: int, *, what: str = "pixel data") -> None:
    """Refuse a file that holds fewer bytes of ``what`` than its header declares (truncated or crafted)."""
    if present < declared:
        raise InputError(f"{name}: {what} is truncated: the header declares {declared} bytes, the file holds "
                         f"{present}")


def check_geometry(name: str, affine) -> np.ndarray:
    """Refuse a NaN/infinite or singular voxel->RAS affine; returns it as a float64 (4,4) array."""
    why = affine_problem(affine)
    if why is not None:
        raise InputError(f"{name}: {why}")
    return np.asarray(affine, np.float64)


def check_spacing(name: str, spacing, n: int = 3, *, what: str = "spacing") -> tuple[float, ...]:
    """``n`` finite voxel spacings > 0 (mm) as floats, or an InputError saying what is wrong."""
    try:
        a = np.asarray(spacing, np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{name}: {what} {spacing!r} is not numeric") from None
    if a.shape != (n,):
        raise InputError(f"{name}: {what} has {a.size} value(s); {n} are needed")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InputError(f"{name}: {what} {', '.join(f'{v:g}' for v in a)} must be finite and > 0 mm")
    return tuple(float(v) for v in a)


__all__ = ["check_data_present", "check_geometry", "check_size", "check_spacing"]
