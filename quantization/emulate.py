"""Exact INT8 arithmetic on any CPU, for measuring: what an INT8 IR computes on a VNNI/AMX CPU.

CPUs without VNNI saturate in their int8 kernels (``engine.inference.int8_arithmetic`` says how and how much);
the engine runs INT8 graphs folded there. Offline the same folding serves two purposes:

* calibration statistics measured through an INT8 model (``quantize.widen_heavy_tailed_ranges``) do not
  depend on the CPU that quantizes;
* ``python -m quantization validate`` can score a candidate as exact INT8 arithmetic (:func:`write_exact_folder`)
  and, with the unfolded folder, as this CPU's int8 kernels run it.

NNCF's own remedy for the overflow, ``OverflowFix.ENABLE`` (7-bit weights in every layer, so that two
products fit in int16), is a recipe choice (``quantize.variant_kwargs``, suffix ``-of``), measured like
any other (docs/quantization.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import openvino as ov

from engine.inference.int8_arithmetic import exact_f32


def exact_int8(model: ov.Model) -> tuple[ov.Model, int]:
    """A clone of the INT8 ``model`` as exact INT8 arithmetic in f32 (:func:`engine.inference.int8_arithmetic.exact_f32`,
    which the engine applies itself on CPUs whose int8 kernels overflow): int8 weights folded to f32 constants,
    activation FakeQuantizes written out as f32 operations; inputs, outputs and FakeQuantize names unchanged.
    Returns (clone, number of weights and FakeQuantizes rewritten); an FP32 model comes back unchanged with 0."""
    return exact_f32(model.clone())


def write_exact_folder(src: Path, dst: Path, suffix: str = "-exact") -> Path:
    """Copy the model folder ``src`` (a manifest and its IR files) to ``dst`` with each INT8 model's graphs
    folded by :func:`exact_int8` and ``suffix`` added to its name, for ``python -m quantization validate``
    (the folder gets its own model ids, so its cached results never mix with the real INT8 model's).
    Graphs without quantized activations (FP32, weight-only) are copied unchanged, as the engine leaves them.
    Returns ``dst``."""
    import json

    from engine.inference.manifest import MANIFEST

    from .export import save
    from .manifest import file_record, write_manifest

    core = ov.Core()
    raw = json.loads((Path(src) / MANIFEST).read_text(encoding="utf-8"))
    done: dict[str, int] = {}  # graph path -> ops rewritten (graphs may be shared between models)
    records = []
    for rec in raw["models"]:
        for rel in rec["graphs"].values():
            if rel in done:
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            model, done[rel] = exact_int8(core.read_model(str(src / rel)))
            if done[rel]:
                save(model, dst / rel)
            else:
                for ext in (".xml", ".bin"):
                    shutil.copy2(src / (rel[:-4] + ext), dst / (rel[:-4] + ext))
        rec = dict(rec)
        if any(done[rel] for rel in rec["graphs"].values()):
            rec["name"] += suffix
            rec["notes"] = "; ".join(filter(None, [rec.get("notes"), "INT8 layers rewritten in f32 "
                                                   "(quantization.emulate.exact_int8): exact INT8 arithmetic"]))
        rec["files"] = [file_record(dst, f["path"]) for f in rec["files"]]
        if rec.get("attribution") and (src / rec["attribution"]).is_file():
            shutil.copy2(src / rec["attribution"], dst / rec["attribution"])
        records.append(rec)
    write_manifest(dst, records)
    return dst
