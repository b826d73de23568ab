"""Evaluation of ground-truth challenge cases: segment with the challenge flow, score DSC and NSD (SPEC C)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.callbacks import ProgressFn
from engine.base.errors import InputError
from engine.eval.metrics import compute_case_metrics
from engine.inference.session import Session
from engine.io.challenge_npz import load_case
from engine.pipeline import segment_case


@dataclass
class CaseResult:
    """One scored case: name, modality token, '2D'/'3D', DSC and NSD (SPEC C), seconds, number of boxes."""

    case: str
    modality: str
    dim: str
    dsc: float
    nsd: float
    seconds: float
    n_objects: int


def evaluate_case(session: Session, path: Path, *, early_stop: int | None = None,
                  progress: ProgressFn | None = None) -> tuple[CaseResult, np.ndarray]:
    """Segment one ground-truth case and score it with the challenge's DSC/NSD (SPEC C)."""
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


__all__ = ["CaseResult", "evaluate_case"]
