"""Calibration data for NNCF: the challenge-format images in ``shared/data/calib``.

Each image goes through exactly the engine's online preprocessing (``engine.inference.transforms.preprocess``),
so the INT8 ranges are measured on what the encoder sees at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.inference.transforms import preprocess


def calibration_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no calibration .npz files in {folder}")
    return files


def calibration_inputs(folder: Path, limit: int | None = None) -> list[np.ndarray]:
    """float32 (1,3,256,256) encoder inputs, one per calibration image (sorted by file name)."""
    out = []
    for f in calibration_files(folder)[:limit]:
        with np.load(f) as z:
            img = z["imgs"]
        x, _ = preprocess(img if img.ndim == 3 else img)
        out.append(x)
    return out
