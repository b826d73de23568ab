"""Label maps: what a segmentation is (values, names, colours, the grid it lies on).

A label map is a (Z,Y,X) uint8/uint16 array on an :class:`~engine.data.image.Image`'s grid (same
axes, see :mod:`engine.data.image`): 0 = background, one value per object. Files of every format
are read and written by :mod:`engine.io.dispatch`; reading one back onto an open image refuses a
grid that does not match (shape, and the voxel->RAS affine within
:data:`~engine.data.geometry.AFFINE_TOL_MM`: :func:`check_onto`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import InputError
from engine.data.geometry import AFFINE_TOL_MM, geometry_mismatch
from engine.data.image import Image
from engine.data.palette import default_color
from engine.data.structures import GENERIC_CATEGORY, GENERIC_TYPE, Code, lookup


@dataclass
class Segment:
    """One object of a label map: its value in the array, a display name, an RGB colour (0..255) and what it
    is as codes (:mod:`engine.data.structures`): DICOM's Segmented Property Category and Type, and a type
    modifier (laterality) or None. A free-text object has the generic codes (SCT 85756007 "Tissue")."""

    value: int
    name: str
    color: tuple[int, int, int]
    category_code: Code = GENERIC_CATEGORY
    type_code: Code = GENERIC_TYPE
    type_modifier_code: Code | None = None

    @property
    def coded(self) -> bool:
        """Whether the codes say more than the generic free-text ones."""
        return not (self.category_code.same(GENERIC_CATEGORY) and self.type_code.same(GENERIC_TYPE)
                    and self.type_modifier_code is None)


def codes_for_name(name: str) -> tuple[Code, Code, Code | None]:
    """(category, type, modifier) of an object called ``name``: the catalogue entry's codes when the name is
    one (:func:`engine.data.structures.lookup`), else the generic free-text codes."""
    s = lookup(name)
    if s is None:
        return GENERIC_CATEGORY, GENERIC_TYPE, None
    return s.category, s.type, s.modifier


@dataclass
class LabelMap:
    """labels: uint8/uint16 (Z,Y,X); affine: voxel (x,y,z) -> RAS mm of that grid; segments: the
    objects (value, name, colour); referenced_series_uid: the DICOM series it was drawn on, if known;
    warnings: notes for the user (e.g. overlapping DICOM-SEG segments flattened)."""

    labels: np.ndarray
    affine: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    source: Path | None = None
    referenced_series_uid: str | None = None
    warnings: list[str] = field(default_factory=list)


def label_values(labels: np.ndarray) -> list[int]:
    """The values present in a label map (any shape), ascending, 0 included when present.

    uint8/uint16 maps are counted one slice (first axis) at a time: ``np.unique`` would sort a copy of the
    whole map and make bool temporaries of its size (about 150 MiB for a 512x512x300 uint8 map)."""
    a = np.asarray(labels)
    if a.dtype not in (np.uint8, np.uint16) or a.ndim < 2:
        return [int(v) for v in np.unique(a)]
    n = 1 << (8 * a.dtype.itemsize)
    seen = np.zeros(n, bool)
    for part in a.reshape(a.shape[0], -1):
        seen |= np.bincount(part, minlength=n) > 0
    return [int(v) for v in np.flatnonzero(seen)]


def segments_for(labels: np.ndarray, names: dict[int, str] | None = None) -> list[Segment]:
    """A :class:`Segment` per non-zero value present in ``labels`` (default names 'label N')."""
    names = names or {}
    return [Segment(v, names.get(v, f"label {v}"), default_color(v)) for v in label_values(labels) if v != 0]


def with_defaults(labels: np.ndarray, segments: list[Segment] | None) -> list[Segment]:
    """``segments`` plus a default :class:`Segment` for each non-zero value present in ``labels`` that
    has none, in value order; a segment for value 0 (the background) is dropped.

    Segments whose value is absent from ``labels`` are kept (writers store them as empty segments).
    """
    by_value = {int(s.value): s for s in segments or [] if int(s.value) != 0}
    for s in segments_for(labels):
        by_value.setdefault(s.value, s)
    return [by_value[v] for v in sorted(by_value)]


def check_onto(image: Image, shape, affine, what: str, atol: float = AFFINE_TOL_MM) -> None:
    """Raise :class:`InputError` when a label grid (shape (Z,Y,X), affine) does not match ``image``."""
    why = geometry_mismatch(shape, affine, image.shape, image.affine, atol=atol)
    if why is not None:
        raise InputError(f"{what}: label map geometry does not match the image: {why}")


__all__ = ["LabelMap", "Segment", "check_onto", "codes_for_name", "label_values", "segments_for", "with_defaults"]
