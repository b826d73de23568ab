"""The redistributable sample scans bundled with BoxSeg (``assets/sample``, see its README): File ▸ Open sample."""

from __future__ import annotations

from pathlib import Path

from engine.base.folders import assets_dir

#: key -> (file name in assets/sample, menu text, licence file)
SAMPLES = {
    "volume": ("mni_icbm152_t1_2009a.nii.gz", "Brain MR volume (MNI ICBM152)", "LICENSE-ICBM152.txt"),
    "ct": ("CT_small.dcm", "CT slice (pydicom)", "LICENSE-pydicom.txt"),
}


def sample_path(which: str = "volume") -> Path:
    """A bundled sample: ``"volume"`` (the MNI ICBM152 T1 brain template, a 3D MR volume; the default)
    or ``"ct"`` (pydicom's one-slice CT)."""
    return assets_dir() / "sample" / SAMPLES[which][0]


__all__ = ["SAMPLES", "sample_path"]
