"""Segmenting a study from boxes: the one flow behind ``boxseg segment``, ``boxseg batch``, ``boxseg
eval``/``infer`` and the desktop app's propagation.

* A study is an :class:`~engine.data.image.Image` and its objects (:class:`StudyObject`): a box
  ``x0,y0,x1,y1`` on one slice (voxel indices, see :mod:`engine.data.image`), or a 3D box
  ``x0,y0,z0,x1,y1,z1`` propagated through slices ``z0..z1`` from its middle slice (the challenge's
  3D flow, SPEC A.8/B.6). :func:`segment_object` gives one object's mask, :func:`segment_study`
  the label map of all of them (labels 1..N in order, later objects win where they overlap).
* A challenge case (:class:`~engine.io.challenge_npz.Case`) is segmented exactly as the challenge's
  reference does it (:func:`segment_case`, SPEC A.6-A.8): it is what ``eval`` scores.
* :func:`propagate_object` runs one box through an image's volume (windowed for the model); the app
  calls it for Propagate with its own start slice and early stop. :func:`segment_in_plane` and
  :func:`propagate_in_plane` do the same for a box drawn on a coronal, sagittal or axial plane
  (:mod:`engine.data.planes`), propagating along that plane's normal.

:func:`parse_box` reads a box from a command line or a manifest cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import BoxSegError, Cancelled, InputError, PromptError
from engine.data.image import Image
from engine.data.labelmap import Segment, codes_for_name
from engine.data.palette import default_color
from engine.data.planes import Plane
from engine.data.square import ModelFrame
from engine.inference.propagate import Box3D, propagate_box
from engine.inference.session import Session
from engine.inference.transforms import Geometry, validate_box
from engine.io.challenge_npz import Case


def parse_box(value, sizes: tuple[int, ...] = (4, 6)) -> tuple[float, ...]:
    """``"x0,y0,x1,y1"`` / ``"x0 y0 z0 x1 y1 z1"`` / ``"[...]"`` / a list -> 4 or 6 floats (z as integers).

    A list may hold numbers or strings of numbers (command-line words such as ``["72,0", "110", "28"]``).
    sizes: the numbers of values accepted (``(4,)``: a 2D box only). Raises :class:`PromptError`.
    """
    if isinstance(value, (list, tuple)):
        parts = [p for v in value for p in (re.split(r"[\s,;]+", v.strip()) if isinstance(v, str) else [v]) if p != ""]
    else:
        parts = [p for p in re.split(r"[\s,;]+", str(value or "").strip().strip("[]()")) if p]
    try:
        box = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        box = ()
    if len(box) not in sizes or not all(np.isfinite(box)):
        forms = "x0,y0,x1,y1 (on a slice)" + (" or x0,y0,z0,x1,y1,z1 (3D)" if 6 in sizes else "")
        raise PromptError(f"box must be {forms}, got {value!r}")
    if len(box) == 6:
        if box[2] != int(box[2]) or box[5] != int(box[5]):
            raise PromptError(f"3D box z0/z1 must be slice indices (integers), got {value!r}")
        if box[5] < box[2]:
            raise PromptError(f"3D box z range {int(box[2])}..{int(box[5])} is reversed")
    return box


@dataclass(frozen=True)
class StudyObject:
    """One object to segment: ``box`` has 4 numbers (x0,y0,x1,y1 on ``slice``) or 6 (x0,y0,z0,x1,y1,z1).

    window: the model window (:func:`~engine.data.window.parse_window`; None = the image's
    default); source: where the object came from, for error messages (e.g. ``row 3`` of a manifest).
    """

    name: str
    box: tuple[float, ...]
    slice: int | None = None
    window: str | None = None
    source: str = ""


@dataclass
class ObjectMask:
    """One object's result: mask bool (Z,Y,X) on the image's grid; z: the slice the box was on (the
    middle slice of a 3D box); iou: the model's IoU estimate (2D boxes only); window_key: the model
    window used (its cache key)."""

    mask: np.ndarray
    z: int
    iou: float | None
    window_key: str


def check_object(image: Image, obj: StudyObject) -> None:
    """Refuse an object that cannot be segmented on ``image`` (before any model work); :class:`PromptError`."""
    geom = Geometry(image.shape[1], image.shape[2])
    if len(obj.box) == 6:
        if image.is_rgb:
            raise PromptError("a 3D box propagates through grey volumes; this image is RGB")
        b3 = Box3D.from_array(obj.box)
        validate_box(b3.box2d, geom)
        if not (0 <= b3.z_min <= b3.z_max < image.depth):
            raise PromptError(f"z range {b3.z_min}..{b3.z_max} is outside the image's {image.depth} slice(s) "
                              f"(0..{image.depth - 1})")
        return
    if obj.slice is None and image.depth > 1:
        raise PromptError(f"a 2D box on a volume of {image.depth} slices needs a slice "
                          f"(0..{image.depth - 1}), or give a 3D box x0,y0,z0,x1,y1,z1")
    image.check_slice(obj.slice if obj.slice is not None else 0)
    validate_box(obj.box, geom)


def propagate_object(session: Session, image: Image, box: Box3D, *, window: str | None = None,
                     volume: tuple[np.ndarray, str] | None = None, label_value: int = 1,
                     early_stop: int | None = None, start: int | None = None, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None, start_mask: np.ndarray | None = None,
                     ious: dict | None = None) -> np.ndarray:
    """One box through the slices of ``box``'s z range; returns bool (Z,Y,X).

    volume: the image already in the model's domain (``image.model_volume(window)``: uint8 (Z,Y,X),
    window key), when the caller has it; otherwise it is computed here (cancellable). label_value,
    early_stop, start, start_mask, ious: as :func:`~engine.inference.propagate.propagate_box`.
    """
    if volume is None:
        volume = image.model_volume(window, should_stop=should_stop)
    vol, key = volume
    return propagate_box(session, vol, box, label_value=label_value, window=key, early_stop=early_stop,
                         progress=progress, should_stop=should_stop, start=start, start_mask=start_mask, ious=ious)


def segment_in_plane(session: Session, image: Image, plane: Plane, k: int, box, *, points=None,
                     point_labels=None, window: str | None = None,
                     volume: tuple[np.ndarray, str] | None = None,
                     flip: tuple[bool, bool] = (False, False), square: bool = True) -> tuple[np.ndarray, float]:
    """One box (and optional points) on slice k of a plane -> (bool (rows, cols) mask on that slice's
    screen grid, the model's IoU estimate).

    box: [x0, y0, x1, y1] in the plane's screen pixels (x = column); points: (N,2) screen (x, y) with
    point_labels 1/0. The slice goes to the model through the plane's
    :class:`~engine.data.square.ModelFrame` (square pixels; embeddings cached per plane, slice and
    window); :meth:`~engine.data.planes.Plane.paint` puts the mask on the voxels.
    volume: ``image.model_volume(window)`` when the caller has it (else only this slice is windowed
    when the plane is the stored one, the whole volume otherwise). flip, square: the model frame
    (:meth:`~engine.data.square.ModelFrame.for_plane`).
    """
    frame = ModelFrame.for_plane(plane, flip, square)
    k = plane.check_slice(k)
    if volume is None and plane.is_stored:
        slice_u8, key = image.model_slice(k, window)
        pixels = slice_u8
    else:
        vol, key = volume if volume is not None else image.model_volume(window)
        pixels = frame.pixels(vol, k)
    pred = session.predictor()
    pred.set_image(pixels, slice_index=k, window=key, plane=frame.cache_plane)
    pts = frame.points_to_model(points) if points is not None and len(np.asarray(points).reshape(-1, 2)) else None
    res = pred.predict(frame.box_to_model(box), pts, point_labels)
    return frame.mask_to_screen(res.mask).astype(bool), float(res.iou)


def propagate_in_plane(session: Session, image: Image, plane: Plane, box, k_min: int, k_max: int, *,
                       start: int | None = None, window: str | None = None,
                       volume: tuple[np.ndarray, str] | None = None, label_value: int = 1,
                       early_stop: int | None = None, progress: ProgressFn | None = None,
                       should_stop: StopFn | None = None, start_mask: np.ndarray | None = None,
                       ious: dict | None = None, flip: tuple[bool, bool] = (False, False),
                       square: bool = True) -> np.ndarray:
    """One box propagated along a plane's normal through its slices k_min..k_max; returns bool (Z,Y,X).

    box: [x0, y0, x1, y1] in the screen pixels of the plane's slice ``start`` (default the middle of the
    range); start_mask: bool (rows, cols) on that slice's screen grid. The unchanged
    :func:`~engine.inference.propagate.propagate_box` walks the plane's model-frame slices
    (:meth:`~engine.data.square.ModelFrame.stack`: square pixels, resampled one slice at a time), and
    each slice's mask is mapped back onto the voxels exactly (nearest neighbour). For the stored plane
    this is :func:`propagate_object`. ious: receives k -> IoU estimate. Memory: the model-frame masks of
    the slices visited, (H, W) bool each. flip, square: the model frame
    (:meth:`~engine.data.square.ModelFrame.for_plane`; on the spleen CT, square=False propagated far better
    along the sagittal normal: docs/planes.md).
    """
    frame = ModelFrame.for_plane(plane, flip, square)
    if volume is None:
        volume = image.model_volume(window, should_stop=should_stop)
    vol, key = volume
    b = frame.box_to_model(box)
    box3 = Box3D(float(b[0]), float(b[1]), int(k_min), float(b[2]), float(b[3]), int(k_max))
    if not (0 <= box3.z_min <= box3.z_max < plane.n_slices):
        raise PromptError(f"{plane.name} slice range {k_min}..{k_max} is outside 0..{plane.n_slices - 1}")
    sm = frame.mask_to_model(np.asarray(start_mask, bool)) if start_mask is not None else None
    res = propagate_box(session, frame.stack(vol), box3, label_value=label_value, window=key,
                        early_stop=early_stop, progress=progress, should_stop=should_stop, start=start,
                        start_mask=sm, ious=ious, plane=frame.cache_plane)
    if plane.is_stored:
        return res
    out = np.zeros(image.shape, bool)
    screen = plane.screen_volume(out)
    for k in range(box3.z_min, box3.z_max + 1):  # propagate_box writes nowhere else
        if res[k].any():
            screen[k] = frame.mask_to_screen(res[k])
    return out


def segment_object(session: Session, image: Image, obj: StudyObject, *, label_value: int = 1,
                   volumes: dict | None = None, progress: ProgressFn | None = None,
                   should_stop: StopFn | None = None) -> ObjectMask:
    """Segment one object (see :class:`StudyObject`); raises :class:`PromptError` for a box that does not fit.

    volumes: a dict kept by the caller across the objects of one study, so that the volume is
    windowed once per window (window -> (uint8 volume, key)). progress: slices of a 3D box.
    """
    check_object(image, obj)
    if len(obj.box) == 6:
        b3 = Box3D.from_array(obj.box)
        volumes = {} if volumes is None else volumes
        if obj.window not in volumes:
            volumes[obj.window] = image.model_volume(obj.window, should_stop=should_stop)
        mask = propagate_object(session, image, b3, volume=volumes[obj.window], label_value=label_value,
                                progress=progress, should_stop=should_stop)
        return ObjectMask(mask, b3.z_mid, None, volumes[obj.window][1])
    z = obj.slice if obj.slice is not None else 0
    slice_u8, key = image.model_slice(z, obj.window)
    pred = session.predictor()
    pred.set_image(slice_u8, slice_index=z, window=key)
    result = pred.predict(list(obj.box))
    mask = np.zeros(image.shape, bool)
    mask[z] = result.mask
    return ObjectMask(mask, z, float(result.iou), key)


def segment_study(session: Session, image: Image, objects: list[StudyObject], *,
                  should_stop: StopFn | None = None) -> tuple[np.ndarray, list[Segment]]:
    """All objects of a study -> (labels uint8 (uint16 from 256 objects) (Z,Y,X), their segments).

    Label k is object k (1-based, in order); later objects win where they overlap. An object's
    error is re-raised with its source and name (``row 3 (liver): ...``).
    """
    labels = np.zeros(image.shape, np.uint8 if len(objects) < 256 else np.uint16)
    volumes: dict = {}
    for k, obj in enumerate(objects, start=1):
        try:
            res = segment_object(session, image, obj, label_value=k, volumes=volumes, should_stop=should_stop)
        except Cancelled:
            raise
        except BoxSegError as e:
            where = f"{obj.source} ({obj.name})" if obj.source else obj.name
            raise type(e)(f"{where}: {e}") from e
        labels[res.mask] = k
    # a catalogue name ("liver", "Kidney, left") carries its SNOMED CT codes into every format
    return labels, [Segment(k, o.name, default_color(k), *codes_for_name(o.name))
                    for k, o in enumerate(objects, start=1)]


def validate_case_boxes(case: Case) -> None:
    """Every box must have positive area and overlap the image (3D: z range inside the volume)."""
    h, w = case.imgs.shape[1:3] if case.is_3d else case.imgs.shape[:2]
    geom = Geometry(h, w)
    for k, b in enumerate(case.boxes, start=1):
        try:
            if case.is_3d:
                b3 = Box3D.from_array(b)
                validate_box(b3.box2d, geom)
                if b3.z_max < b3.z_min or b3.z_mid < 0 or b3.z_mid >= case.imgs.shape[0]:
                    raise InputError(f"z range {b3.z_min}..{b3.z_max} outside the volume's {case.imgs.shape[0]} slices")
            else:
                validate_box(b, geom)
        except Exception as e:  # noqa: BLE001 - re-raised with the box number
            raise InputError(f"{case.name}: box {k}: {e}") from e


def segment_case(session: Session, case: Case, *, early_stop: int | None = None,
                 progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> np.ndarray:
    """Run the challenge flow of one case; returns ``segs`` uint16 with label k for box k.

    Later boxes overwrite earlier ones where they overlap (as the reference does). uint16 avoids
    the reference's uint8 overflow above 255 targets.
    """
    validate_case_boxes(case)
    n = len(case.boxes)
    if not case.is_3d:
        segs = np.zeros(case.imgs.shape[:2], np.uint16)
        pred = session.predictor()
        pred.set_image(case.imgs)
        for k, b in enumerate(case.boxes, start=1):
            if should_stop is not None and should_stop():
                raise Cancelled(f"{case.name}: stopped after {k - 1} of {n} boxes")
            segs[pred.predict(b).mask] = k
            if progress is not None:
                progress(k, n)
        return segs
    segs = np.zeros(case.imgs.shape, np.uint16)
    for k, b in enumerate(case.boxes, start=1):
        def sub_progress(done, total, k=k):
            if progress is not None:
                progress((k - 1) * total + done, n * total)
        mask = propagate_box(session, case.imgs, Box3D.from_array(b), label_value=k, early_stop=early_stop,
                             progress=sub_progress, should_stop=should_stop)
        segs[mask] = k
    return segs


__all__ = ["ObjectMask", "StudyObject", "check_object", "parse_box", "propagate_in_plane", "propagate_object",
           "segment_case", "segment_in_plane", "segment_object", "segment_study", "validate_case_boxes"]
