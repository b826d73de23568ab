"""The document of the desktop app: one image, its label map and objects, and the undo stack.

Knows nothing of widgets (only QtCore/QtGui: signals and ``QUndoStack``); the views observe it
through signals and change it through its methods, always on the GUI thread. Every change of a
mask is one :class:`QUndoCommand`, so undo/redo covers all of them; each committed change emits
:attr:`Document.committed`, which the autosaver listens to.

Label map: ``labels`` is a (Z,Y,X) uint8 array on the image's grid (same axes as
``engine.data.image.Image.voxels``): 0 = background, one value per object. Objects carry their name,
colour, visibility, lock, the model's IoU estimate, the prompt that made them (slice, box, points), which
refinement and propagation reuse, and what they are (SNOMED CT category/type/modifier codes of a named
structure, :mod:`engine.data.structures`; set by :meth:`Document.rename_object`).

Locks and overlap: every mask written into the label map (a box's object, a refinement, a propagation,
a brush stroke, a clean-up, an interpolation) goes through :func:`engine.data.labeledit.merge` with
:meth:`Document.edit_rules` — the locked objects' values and :attr:`Document.overlap_policy` — so a
locked object's voxels never change, and with ``never-overwrite`` no object takes another's voxels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.data.image import Image
from engine.data.labeledit import (NEVER_OVERWRITE, OVERWRITE_UNLOCKED, REPLACE, LabelEdit, changed_bounds, merge,
                                   mask_box, object_box, slices_of, union_box, write_mask)
from engine.data.labelmap import LabelMap, Segment, codes_for_name
from engine.data.palette import PALETTE, default_color
from engine.data.planes import PLANES, Plane
from engine.data.structures import GENERIC_CATEGORY, GENERIC_TYPE, Code, Structure, lookup


@dataclass
class SegObject:
    """One object: label ``value`` in the label map, display ``name``/``color``/``visible``, the
    model's IoU estimate of its last prediction, and its prompt: ``z`` the slice the box was drawn
    on, ``box`` [x0, y0, x1, y1] in voxel indices of that slice, ``points`` [(x, y, 1|0), ...].
    ``plane``: '' when the prompt was drawn on a stored slice ``voxels[z]`` (as above); 'axial', 'coronal'
    or 'sagittal' when it was drawn in a reformatted view (:mod:`engine.data.planes`): then ``z`` is the
    slice index along that plane's normal and ``box``/``points`` are in its screen pixels (x = column,
    y = row). ``locked``: its voxels are never changed by any edit (see the module docstring)."""

    value: int
    name: str
    color: tuple[int, int, int]
    visible: bool = True
    iou: float | None = None
    z: int | None = None
    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float, int]] = field(default_factory=list)
    propagated: bool = False
    #: per-slice model IoU estimates of its last propagation: ((z, iou), ...) (None: not propagated)
    slice_iou: tuple[tuple[int, float], ...] | None = None
    #: what it is (engine.data.structures): DICOM Segmented Property Category/Type and a type modifier
    #: (laterality); the generic "Tissue" codes for a free-text name
    category_code: Code = GENERIC_CATEGORY
    type_code: Code = GENERIC_TYPE
    type_modifier_code: Code | None = None
    #: the user picked the colour (Colour…): naming it a catalogue structure then keeps that colour
    color_chosen: bool = False
    locked: bool = False
    plane: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["color"] = list(self.color)
        d["box"] = list(self.box) if self.box is not None else None
        d["points"] = [list(p) for p in self.points]
        d["slice_iou"] = [[int(z), float(v)] for z, v in self.slice_iou] if self.slice_iou is not None else None
        d["category_code"] = self.category_code.to_json()
        d["type_code"] = self.type_code.to_json()
        d["type_modifier_code"] = self.type_modifier_code.to_json() if self.type_modifier_code else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SegObject":
        """Snapshots written before named structures have no codes: the codes the name means."""
        name = str(d["name"])
        category, kind, modifier = codes_for_name(name)
        if d.get("type_code") is not None:
            category = Code.from_json(d.get("category_code")) or GENERIC_CATEGORY
            kind = Code.from_json(d.get("type_code")) or GENERIC_TYPE
            modifier = Code.from_json(d.get("type_modifier_code"))
        return cls(value=int(d["value"]), name=name, color=tuple(int(c) for c in d["color"]),
                   visible=bool(d.get("visible", True)), iou=d.get("iou"), z=d.get("z"),
                   box=tuple(d["box"]) if d.get("box") is not None else None,
                   points=[(float(p[0]), float(p[1]), int(p[2])) for p in d.get("points", [])],
                   propagated=bool(d.get("propagated", False)),
                   slice_iou=(tuple((int(z), float(v)) for z, v in d["slice_iou"])
                              if d.get("slice_iou") is not None else None),
                   category_code=category, type_code=kind, type_modifier_code=modifier,
                   color_chosen=bool(d.get("color_chosen", False)),
                   locked=bool(d.get("locked", False)),
                   plane=str(d.get("plane") or "") if d.get("plane") in (None, "", *PLANES) else "")


@dataclass(frozen=True)
class Annotation:
    """A ruler or an ROI the user drew on slice ``z``: ``kind`` 'ruler' (a line p0 -> p1) or 'roi' (the
    ellipse inscribed in the box with corners p0, p1); ``points`` (x0, y0, x1, y1) continuous stored
    voxel indices of that slice (integers at pixel centres, :mod:`engine.data.roi`); ``id`` unique
    within the document."""

    id: int
    kind: str
    z: int
    points: tuple[float, float, float, float]

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "z": self.z, "points": list(self.points)}

    @classmethod
    def from_json(cls, d: dict) -> "Annotation":
        kind = str(d["kind"])
        if kind not in ("ruler", "roi"):
            raise ValueError(f"unknown annotation kind {kind!r}")
        return cls(int(d["id"]), kind, int(d["z"]), tuple(float(v) for v in d["points"]))


def _copy_objects(objs: list[SegObject]) -> list[SegObject]:
    return [replace(o, points=list(o.points)) for o in objs]


class _LabelEdit(QUndoCommand):
    """One change of the label map (a crop of changed voxels before/after) and of the objects."""

    def __init__(self, doc: "Document", text: str, new_labels_crop, where, objs_before, objs_after, select,
                 annotations_after=None, before=None):
        super().__init__(text)
        self.ann_before = tuple(doc.annotations)
        self.ann_after = self.ann_before if annotations_after is None else tuple(annotations_after)
        self.doc = doc
        self.where = where  # (z0, z1, y0, y1, x0, x1) or None when only objects change
        # before: given when the edit is already in the label map (a brush stroke painted live)
        self.before = before if before is not None else doc.labels[self._slices()].copy() if where is not None \
            else None
        self.after = new_labels_crop
        self.objs_before, self.objs_after = objs_before, objs_after
        self.select_after = select
        self.select_before = doc.current

    def _slices(self):
        z0, z1, y0, y1, x0, x1 = self.where
        return (slice(z0, z1), slice(y0, y1), slice(x0, x1))

    def _apply(self, crop, objs, select, annotations):
        if self.where is not None:
            self.doc.labels[self._slices()] = crop
        self.doc._objects = _copy_objects(objs)
        changed = tuple(self.doc.annotations) != annotations
        self.doc.annotations = list(annotations)
        self.doc._after_edit(self.where, select)
        if changed:
            self.doc.annotationsChanged.emit()

    def redo(self):
        self._apply(self.after, self.objs_after, self.select_after, self.ann_after)

    def undo(self):
        self._apply(self.before, self.objs_before, self.select_before, self.ann_before)


class Document(QObject):
    """An open image with its segmentation (see the module docstring). GUI thread only."""

    imageChanged = Signal()              # a new image (and label map) was set
    labelsChanged = Signal(int, int)     # slices z0..z1 (inclusive) of the label map changed
    objectsChanged = Signal()            # names/colours/visibility/list of objects changed
    currentChanged = Signal(int)         # selected object value (0 = none)
    committed = Signal()                 # a change the user made is complete (autosave point)
    dirtyChanged = Signal(bool)
    annotationsChanged = Signal()        # rulers / ROIs were added or removed

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image: Image | None = None
        self.labels: np.ndarray | None = None
        self._objects: list[SegObject] = []
        self.annotations: list[Annotation] = []
        self.current = 0
        self.overlap_policy = OVERWRITE_UNLOCKED  # engine.data.labeledit.POLICIES; set from the settings
        self.saved_path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirtyChanged.emit(not clean)

    # --- state --------------------------------------------------------------------------------
    @property
    def objects(self) -> list[SegObject]:
        return self._objects

    def object(self, value: int) -> SegObject | None:
        return next((o for o in self._objects if o.value == value), None)

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def set_image(self, image: Image, labels: np.ndarray | None = None, objects: list[SegObject] | None = None):
        """A new image (clears the undo stack); labels/objects to continue a segmentation."""
        self.image = image
        self.labels = np.zeros(image.shape, np.uint8) if labels is None else np.asarray(labels, np.uint8).copy()
        self._objects = _copy_objects(objects or [])
        self.annotations = []
        self.current = self._objects[-1].value if self._objects else 0
        self.saved_path = None
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.imageChanged.emit()
        self.objectsChanged.emit()
        self.currentChanged.emit(self.current)
        self.dirtyChanged.emit(False)
        self.annotationsChanged.emit()

    def set_current(self, value: int) -> None:
        value = int(value) if self.object(int(value)) is not None else 0
        if value != self.current:
            self.current = value
            self.currentChanged.emit(value)

    def next_value(self) -> int:
        used = {o.value for o in self._objects}
        v = 1
        while v in used:
            v += 1
        if v > 255:
            raise ValueError("at most 255 objects per image")
        return v

    def locked_values(self) -> set[int]:
        return {o.value for o in self._objects if o.locked}

    def edit_rules(self) -> dict:
        """The keyword arguments of every engine.data.labeledit write: locked values and the overlap policy."""
        return {"locked": self.locked_values(), "policy": self.overlap_policy}

    def _merged(self, value: int, z0: int, z1: int, mask: np.ndarray, mode: str = REPLACE, policy=None) -> np.ndarray:
        """Slices z0..z1-1 of the label map with object ``value``'s mask merged in by the rules (a new array)."""
        rules = self.edit_rules()
        if policy is not None:
            rules["policy"] = policy
        return merge(self.labels[z0:z1], value, mask, mode, **rules)

    def _merged_in_plane(self, value: int, plane: Plane, k: int, mask: np.ndarray, mode: str = REPLACE) -> np.ndarray:
        """A copy of the label map with object ``value``'s screen mask on slice k of a reformatted plane merged in
        by the rules; only the voxels of that plane slice can change."""
        new = self.labels.copy()
        plane.slice(new, k)[...] = merge(plane.slice(self.labels, k), value, np.asarray(mask, bool), mode,
                                         **self.edit_rules())
        return new

    def segments(self) -> list[Segment]:
        return [Segment(o.value, o.name, tuple(o.color), o.category_code, o.type_code, o.type_modifier_code)
                for o in self._objects]

    # --- edits (each one undo step) -----------------------------------------------------------
    def _push(self, text: str, new_labels: np.ndarray | None, objs_after: list[SegObject], select: int,
              annotations: list[Annotation] | None = None, z0: int = 0):
        """new_labels: the label map's slices from z0 on as they become (all of them, or a slab)."""
        where = None
        crop = None
        if new_labels is not None:
            where = changed_bounds(self.labels[z0:z0 + len(new_labels)], new_labels)
            if where is not None:
                a, b, y0, y1, x0, x1 = where
                crop = new_labels[a:b, y0:y1, x0:x1].copy()
                where = (a + z0, b + z0, y0, y1, x0, x1)
        self.undo_stack.push(_LabelEdit(self, text, crop, where, _copy_objects(self._objects),
                                        _copy_objects(objs_after), select, annotations))
        self.committed.emit()

    def _after_edit(self, where, select: int) -> None:
        if where is not None:
            self.labelsChanged.emit(where[0], where[1] - 1)
        self.objectsChanged.emit()
        self.current = select if self.object(select) is not None else 0
        self.currentChanged.emit(self.current)

    def add_object(self, z: int, mask: np.ndarray, *, iou: float | None, box, points=(), name: str | None = None,
                   plane: Plane | None = None) -> int:
        """A new object from a 2D mask on slice z (takes other objects' voxels as :meth:`edit_rules` allow).

        plane: None for a stored slice ``voxels[z]`` (mask (Y,X)); a reformatted :class:`Plane` for its slice z
        (mask (rows, cols) on its screen grid, box in its screen pixels)."""
        value = self.next_value()
        in_plane = plane is not None and not plane.is_stored
        obj = SegObject(value, name or f"Object {value}", default_color(value), iou=iou, z=int(z),
                        box=tuple(float(v) for v in box) if box is not None else None, points=list(points),
                        plane=plane.name if in_plane else "")
        if in_plane:
            new, z0 = self._merged_in_plane(value, plane, z, mask), 0
        else:
            new, z0 = self._merged(value, z, z + 1, np.asarray(mask, bool)[None]), z
        self._push(f"Add {obj.name}", new, self._objects + [obj], value, z0=z0)
        return value

    def set_object_slice(self, value: int, z: int, mask: np.ndarray, *, iou: float | None = None, box=None,
                         points=None, text: str = "Refine", plane: Plane | None = None) -> None:
        """Replace object ``value``'s mask on slice z (refinement); plane as :meth:`add_object`."""
        obj = self.object(value)
        if obj is None:
            return
        in_plane = plane is not None and not plane.is_stored
        if in_plane:
            new, z0 = self._merged_in_plane(value, plane, z, mask), 0
        else:
            new, z0 = self._merged(value, z, z + 1, np.asarray(mask, bool)[None]), z
        objs = _copy_objects(self._objects)
        o = next(o for o in objs if o.value == value)
        o.iou = iou if iou is not None else o.iou
        if box is not None:
            o.box, o.z, o.plane = tuple(float(v) for v in box), int(z), plane.name if in_plane else ""
        if points is not None:
            o.points = list(points)
        self._push(f"{text} {obj.name}", new, objs, value, z0=z0)

    def set_object_volume(self, value: int, mask: np.ndarray | None, *, text: str = "Propagate",
                          slice_iou: dict[int, float] | None = None, z_range: tuple[int, int] | None = None,
                          where: tuple | None = None) -> None:
        """Replace object ``value`` with a mask on slices ``z_range`` (inclusive; default all); other objects'
        voxels are kept. mask: bool (Z,Y,X) on the image's grid, or (with ``where`` = (z0, z1, y0, y1, x0, x1),
        half-open) the crop of it in that box, nothing set outside it (a propagation hands over its mask's
        bounding box only); None: the object is cleared on those slices. slice_iou: the model's IoU estimate
        of each slice it predicted (z -> iou); it replaces the object's estimates on those slices. A
        propagation never takes other objects' voxels, whatever the overlap policy (it runs unattended
        through the volume). Only the box of the new mask and the object's old voxels is read and copied."""
        obj = self.object(value)
        if obj is None:
            return
        z0, z1 = (0, self.labels.shape[0] - 1) if z_range is None else z_range
        if mask is not None and where is None:  # a whole-grid mask: its bounding box is what it writes
            where = mask_box(mask)
            mask = None if where is None else np.asarray(mask, bool)[slices_of(where)]
        # what can change: the new mask's box and the object's old voxels (cleared where the mask is not),
        # within the slices z_range
        box = union_box(where if mask is not None else None, object_box(self.labels, value))
        edit = None
        if box is not None:
            box = (max(box[0], z0), min(box[1], z1 + 1), *box[2:])
        if box is not None and box[1] > box[0]:
            m = np.zeros((box[1] - box[0], box[3] - box[2], box[5] - box[4]), bool)
            if mask is not None:  # the union holds where's rows and columns: only its slices can fall outside
                a, b = max(where[0], box[0]), min(where[1], box[1])
                if b > a:
                    m[a - box[0]:b - box[0], where[2] - box[2]:where[3] - box[2], where[4] - box[4]:where[5] - box[4]] = \
                        np.asarray(mask, bool)[a - where[0]:b - where[0]]
            edit = write_mask(self.labels, value, box, m, REPLACE, locked=self.locked_values(), policy=NEVER_OVERWRITE)
        objs = _copy_objects(self._objects)
        o = next(o for o in objs if o.value == value)
        o.propagated = True
        if slice_iou is not None:
            old = {z: v for z, v in (o.slice_iou or ()) if not (z0 <= z <= z1)}
            old.update({int(z): float(v) for z, v in slice_iou.items() if z0 <= z <= z1})
            o.slice_iou = tuple(sorted(old.items()))
        if edit is None:
            self._push(f"{text} {obj.name}", None, objs, value)
        else:
            self.apply_edit(f"{text} {obj.name}", edit, value, objects=objs)

    def apply_edit(self, text: str, edit: LabelEdit, value: int, *, new_object: SegObject | None = None,
                   before: np.ndarray | None = None, objects: list[SegObject] | None = None) -> None:
        """One undo step from an engine.data.labeledit edit of object ``value`` (computed with
        :meth:`edit_rules`): a brush stroke, a clean-up, an interpolation, a propagation. new_object: the
        object the edit creates (a first brush stroke with nothing selected). before: the crop's voxels before
        the edit when it is already in the label map (a stroke painted live), else they are read here.
        objects: the objects after the edit, when it changes them (default: as they are, plus new_object)."""
        objs = objects if objects is not None else \
            _copy_objects(self._objects) + ([new_object] if new_object is not None else [])
        self.undo_stack.push(_LabelEdit(self, text, edit.after.copy(), tuple(edit.where), _copy_objects(self._objects),
                                        objs, value, None, before))
        self.committed.emit()

    # --- rulers and ROIs (each add/delete one undo step) --------------------------------------
    def add_annotation(self, kind: str, z: int, points) -> Annotation:
        a = Annotation(max((a.id for a in self.annotations), default=0) + 1, kind, int(z),
                       tuple(float(v) for v in points))
        self._push(f"Add {'ruler' if kind == 'ruler' else 'ROI'}", None, self._objects, self.current,
                   self.annotations + [a])
        return a

    def delete_annotation(self, ann_id: int) -> None:
        a = next((a for a in self.annotations if a.id == ann_id), None)
        if a is None:
            return
        self._push(f"Delete {'ruler' if a.kind == 'ruler' else 'ROI'}", None, self._objects, self.current,
                   [b for b in self.annotations if b.id != ann_id])

    def delete_object(self, value: int) -> None:
        obj = self.object(value)
        if obj is None:
            return
        new = self.labels.copy()
        new[new == value] = 0
        objs = [o for o in _copy_objects(self._objects) if o.value != value]
        self._push(f"Delete {obj.name}", new, objs, objs[-1].value if objs else 0)

    def update_object(self, value: int, **changes) -> None:
        """Name/colour/visibility: recorded for undo too (no label change)."""
        obj = self.object(value)
        if obj is None:
            return
        objs = _copy_objects(self._objects)
        o = next(o for o in objs if o.value == value)
        for k, v in changes.items():
            setattr(o, k, v)
        what = {"visible": "Show/hide", "locked": "Lock/unlock"}.get(next(iter(changes)), "Edit") \
            if len(changes) == 1 else "Edit"
        self._push(f"{what} {obj.name}", None, objs, self.current or value)

    def rename_object(self, value: int, name: str, structure: Structure | None = None) -> None:
        """Name object ``value`` (one undo step). A catalogue structure (``structure``, else the entry the name
        means: :func:`engine.data.structures.lookup`) sets its codes and, unless the user picked the
        object's colour, its 3D Slicer colour where it has one; free text sets the generic codes."""
        obj = self.object(value)
        name = " ".join(str(name).split())
        if obj is None or not name:
            return
        s = structure if structure is not None else lookup(name)
        changes = {"name": name}
        if s is None:
            changes.update(category_code=GENERIC_CATEGORY, type_code=GENERIC_TYPE, type_modifier_code=None)
        else:
            changes.update(category_code=s.category, type_code=s.type, type_modifier_code=s.modifier)
            if s.color is not None and not obj.color_chosen:
                changes["color"] = tuple(s.color)
        if any(getattr(obj, k) != v for k, v in changes.items()):
            self.update_object(value, **changes)

    def load_labelmap(self, lm: LabelMap) -> None:
        """Continue from a saved label map: its values become objects (one undo step)."""
        labels = np.asarray(lm.labels)
        if labels.max(initial=0) > 255:
            values = [int(v) for v in np.unique(labels) if v]
            remap = np.zeros(int(labels.max()) + 1, np.uint8)
            for i, v in enumerate(values, 1):
                remap[v] = i
            labels = remap[labels]
            segs = {int(remap[s.value]): s for s in lm.segments}
        else:
            segs = {s.value: s for s in lm.segments}
        labels = labels.astype(np.uint8)
        objs = []
        for v in (int(v) for v in np.unique(labels) if v):
            s = segs.get(v)
            name = s.name if s is not None and s.name and not s.name.startswith("label ") else f"Object {v}"
            color = tuple(s.color) if s is not None else default_color(v)
            codes = (s.category_code, s.type_code, s.type_modifier_code) if s is not None else codes_for_name(name)
            objs.append(SegObject(v, name, color, category_code=codes[0], type_code=codes[1],
                                  type_modifier_code=codes[2]))
        self._push(f"Load {lm.source.name if lm.source else 'label map'}", labels, objs,
                   objs[-1].value if objs else 0)

    def mark_saved(self, path: Path) -> None:
        self.saved_path = Path(path)
        self.undo_stack.setClean()


__all__ = ["Annotation", "Document", "PALETTE", "SegObject"]
