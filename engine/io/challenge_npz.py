"""The CVPR 2024 "MedSAM on Laptop" challenge .npz format and its 2D/3D inference flows (SPEC A.6-A.8).

A case file holds ``imgs`` (uint8 (H,W,3) for 2D, (D,H,W) for 3D) and ``boxes`` ((N,4) XYXY or
(N,6) [x_min, y_min, z_min, x_max, y_max, z_max], original pixels / slice indices); evaluation
files also hold ``gts`` (labels 1..N) and, for 3D, ``spacing`` (x, y, z order, mm). A case is 3D
iff its file name starts with ``3D``.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.errors import InputError
from engine.inference.predictor import Session
from engine.inference.propagate import Box3D, propagate_box
from engine.inference.transforms import Geometry, validate_box


@dataclass
class Case:
    """One challenge case. imgs uint8; boxes int/float (N,4|6); gts (same spatial shape) or None."""

    name: str
    imgs: np.ndarray
    boxes: np.ndarray
    is_3d: bool
    gts: np.ndarray | None = None
    spacing: np.ndarray | None = None

    @property
    def modality(self) -> str:
        """Modality token of ``{2D,3D}Box_{Modality}_...`` names ('X-Ray' -> 'XRay', 'Microscope' -> 'Microscopy')."""
        parts = self.name.split("_")
        mod = parts[1] if len(parts) > 2 else "unknown"
        return {"X-Ray": "XRay", "Microscope": "Microscopy"}.get(mod, mod)


def load_case(path: Path, *, with_gt: bool = True) -> Case:
    """Read and validate a challenge .npz; raises :class:`InputError` with a one-line reason."""
    path = Path(path)
    name = path.name[:-4] if path.name.endswith(".npz") else path.name
    is_3d = name.startswith("3D")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("imgs", "boxes") if k not in z.files]
            if missing:
                raise InputError(f"{path.name}: missing key(s) {', '.join(missing)} (a challenge .npz needs 'imgs' and 'boxes')")
            imgs, boxes = z["imgs"], z["boxes"]
            gts = z["gts"] if with_gt and "gts" in z.files else None
            spacing = z["spacing"] if "spacing" in z.files else None
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path.name}: cannot read as .npz ({e})") from e
    if imgs.dtype != np.uint8:
        if np.issubdtype(imgs.dtype, np.integer) and imgs.size and imgs.min() >= 0 and imgs.max() <= 255:
            imgs = imgs.astype(np.uint8)
        else:
            raise InputError(f"{path.name}: 'imgs' must be uint8 (values 0..255), got {imgs.dtype}")
    want_img, want_box = ((3, 6) if is_3d else (3, 4))
    if imgs.ndim != want_img or (not is_3d and imgs.shape[2] != 3):
        shape = "(D,H,W)" if is_3d else "(H,W,3)"
        raise InputError(f"{path.name}: 'imgs' must have shape {shape}, got {imgs.shape}")
    boxes = np.asarray(boxes)
    if boxes.ndim == 1 and boxes.size == want_box:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != want_box or not np.issubdtype(boxes.dtype, np.number):
        raise InputError(f"{path.name}: 'boxes' must have shape (N,{want_box}), got {boxes.shape}")
    if gts is not None and gts.shape != (imgs.shape if is_3d else imgs.shape[:2]):
        raise InputError(f"{path.name}: 'gts' shape {gts.shape} does not match 'imgs' {imgs.shape}")
    return Case(name=name, imgs=imgs, boxes=boxes, is_3d=is_3d, gts=gts, spacing=spacing)


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
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> np.ndarray:
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
                from engine.base.errors import Cancelled
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


@dataclass
class CaseResult:
    case: str
    modality: str
    dim: str
    dsc: float
    nsd: float
    seconds: float
    n_objects: int


def evaluate_case(session: Session, path: Path, *, early_stop: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> tuple[CaseResult, np.ndarray]:
    """Segment one ground-truth case and score it with the challenge's DSC/NSD (SPEC C)."""
    from engine.eval.metrics import compute_case_metrics

    t0 = time.perf_counter()
    case = load_case(path)
    if case.gts is None:
        raise InputError(f"{Path(path).name}: no 'gts' (ground truth) to evaluate against")
    segs = segment_case(session, case, early_stop=early_stop, progress=progress)
    seconds = time.perf_counter() - t0
    spacing = case.spacing if case.is_3d else None
    if case.is_3d and spacing is None:
        raise InputError(f"{case.name}: a 3D ground-truth case needs 'spacing'")
    dsc, nsd = compute_case_metrics(case.gts, segs, spacing=spacing, is_3d=case.is_3d)
    return CaseResult(case.name, case.modality, "3D" if case.is_3d else "2D", dsc, nsd, seconds,
                      len(case.boxes)), segs
