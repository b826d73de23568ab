"""Help ▸ About: version, models and the licences of the model weights and the bundled samples."""

from __future__ import annotations

import html

from app.gui.samples import SAMPLES
from app.gui.settings import Settings
from engine import __version__
from engine.base.folders import assets_dir
from engine.inference.manifest import list_models
from engine.inference.precision import resolve
from engine.inference.session import SessionConfig, configured_model


def precision_html(precision: str = "auto") -> str:
    """What ``precision`` (the app's setting) chose on this CPU, and why (engine.inference.precision.AUTO_RULES)."""
    try:
        entry = configured_model(SessionConfig(precision=precision))
    except Exception:  # noqa: BLE001 - About must open even without models
        entry = None
    try:
        first, why = resolve(precision).explain(entry)
    except ValueError:
        return ""
    return f"<p><b>Precision:</b> {html.escape(first)}.<br>{html.escape(why)}</p>"


def about_text(precision: str | None = None) -> str:
    """The About box; ``precision``: whose choice on this CPU is shown (default: the app's stored setting)."""
    if precision is None:
        precision = Settings.load().precision
    lic = assets_dir() / "models" / "LICENSE-litemedsam.txt"
    sample_dir = assets_dir() / "sample"
    try:
        models = ", ".join(f"{m.name} ({m.precision})" for m in list_models()) or "none installed"
    except Exception:  # noqa: BLE001
        models = "?"
    return (f"<h3>BoxSeg {__version__}</h3>"
            "<p>Box-prompted segmentation of CT/MR scans and 2D medical images on the CPU. "
            "Not a medical device: for research and education.</p>"
            f"<p><b>Models:</b> {models}</p>"
            f"{precision_html(precision)}"
            "<p><b>LiteMedSAM</b> (Bo Wang lab, MedSAM: <i>Segment anything in medical images</i>, Ma et al., "
            "Nature Communications 2024; LiteMedSAM for the CVPR 2024 MedSAM on Laptop challenge), weights under "
            f"the Apache License 2.0 — see <code>{lic}</code>. Inference with OpenVINO (Apache-2.0), INT8 by NNCF.</p>"
            "<p><b>Sample images</b> (File ▸ Open sample, see <code>assets/sample/README.md</code>): "
            "the brain MR volume is the MNI ICBM152 2009a T1 template (from the nilearn wheel), Copyright © "
            "1993–2004 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill "
            "University, redistributed under its permissive licence (use, copy, modify and distribute with the "
            "copyright notice; no warranty) — see "
            f"<code>{sample_dir / SAMPLES['volume'][2]}</code>. The CT slice is <code>CT_small.dcm</code> from "
            "pydicom's test files (MIT licence; downsized from the NEMA DICOM WG04 sample images) — see "
            f"<code>{sample_dir / SAMPLES['ct'][2]}</code>.</p>"
            "<p>BoxSeg is Apache-2.0. Qt for Python (PySide6) is LGPLv3.</p>")


__all__ = ["about_text", "precision_html"]
