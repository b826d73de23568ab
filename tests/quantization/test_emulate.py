"""Exact INT8 arithmetic offline (quantization.emulate): the shipped INT8 encoder folded, and a model folder for
``python -m quantization validate``. The overflow it avoids and the folding's exactness are tested in
tests/engine/inference/test_int8_arithmetic.py. Seconds.
"""

from __future__ import annotations

import json

import pytest

from engine.inference.manifest import bundled_models_dir, read_manifest

ov = pytest.importorskip("openvino")
pytest.importorskip("torch")  # quantization.export (used to save folded graphs) imports torch

from quantization.emulate import exact_int8, write_exact_folder  # noqa: E402


def test_shipped_int8_encoder_becomes_f32_arithmetic_with_the_same_layers():
    path = bundled_models_dir() / "litemedsam" / "encoder_int8.xml"
    if not path.is_file():
        pytest.skip(f"no INT8 encoder IR at {path}")
    model = ov.Core().read_model(str(path))
    int8 = [op for op in model.get_ops() if op.get_type_name() == "Constant"
            and op.get_element_type().get_type_name() == "i8"]
    fqs = [op for op in model.get_ops() if op.get_type_name() == "FakeQuantize"]
    folded, n = exact_int8(model)
    assert n == len(int8) + len(fqs) and len(int8) > 0 and len(fqs) > 0
    layers = ("MatMul", "Convolution", "GroupConvolution", "ScaledDotProductAttention", "MVN", "Gelu")
    count = lambda m: sorted(op.get_type_name() for op in m.get_ops() if op.get_type_name() in layers)  # noqa: E731
    assert count(folded) == count(model)
    assert not [op for op in folded.get_ops() if op.get_type_name() == "FakeQuantize"
                or (op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8")]
    assert [o.get_any_name() for o in folded.outputs] == [o.get_any_name() for o in model.outputs]
    assert exact_int8(folded)[1] == 0  # nothing left to rewrite


def test_exact_folder_gets_its_own_ids_and_leaves_float_models_alone(tmp_path):
    src = bundled_models_dir()
    if not (src / "manifest.json").is_file():
        pytest.skip(f"no bundled models at {src}")
    write_exact_folder(src, tmp_path)
    before = {e.name: e for e in read_manifest(src)}
    after = {e.name: e for e in read_manifest(tmp_path)}  # verifies every file's sha256 and size
    int8 = [n for n, e in before.items() if e.precision == "int8"]
    assert int8 and all(f"{n}-exact" in after and after[f"{n}-exact"].model_id != before[n].model_id for n in int8)
    for n, e in before.items():
        if e.precision != "int8":
            assert after[n].model_id == e.model_id
    # graphs without quantized activations (the 8-bit-weight decoder, its prefix) are copied as they are
    for n in int8:
        for graph in ("decoder", "decoder_prefix"):
            bin_ = before[n].graphs[graph][:-4] + ".bin"
            assert (tmp_path / bin_).read_bytes() == (src / bin_).read_bytes(), bin_
    notes = {m["name"]: m.get("notes", "") for m in json.loads((tmp_path / "manifest.json").read_text())["models"]}
    assert all("exact INT8 arithmetic" in notes[f"{n}-exact"] for n in int8)
