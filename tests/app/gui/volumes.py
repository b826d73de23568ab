"""Small generated volumes for the desktop-app tests (no shared data needed)."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def write_volume(path, seed=0):
    """A 6-slice CT-like NIfTI with a bright block in slices 2..4 (something for a box to find)."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(0, 20, (96, 96, 6)).astype(np.int16)  # nibabel order: x, y, z
    vol[30:60, 35:65, 2:5] += 300
    nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.8, 3.0, 1.0])), str(path))
    return path
