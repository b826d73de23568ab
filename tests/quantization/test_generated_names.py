"""``quantization.export.save`` numbers OpenVINO's generated node names by graph order, so one graph always gives
the same ``.xml`` bytes (and model id), whatever the process built before. A second build of a graph in one
process gets other counter values from OpenVINO; saved, both must be the same bytes, and the model must compute the
same and keep its input/output tensor names. Tiny graphs built with the opset API: well under a second."""

from __future__ import annotations

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
pytest.importorskip("torch")  # quantization.export imports torch

from openvino import opset13 as ops  # noqa: E402

from quantization.export import normalize_generated_names, save  # noqa: E402


def _graph() -> ov.Model:
    """x -> Add(arange) -> Multiply(2): three generated names (two Constants, the Multiply), the Add named after
    the first Constant as NNCF names what it inserts (``<generated>/<suffix>``), a generated model name."""
    x = ops.parameter([1, 4], np.float32, name="image")
    c = ops.constant(np.arange(4, dtype=np.float32)[None])
    a = ops.add(x, c)
    a.set_friendly_name(c.get_friendly_name() + "/fq_weights_1")
    y = ops.multiply(a, ops.constant(np.float32(2)))
    y.output(0).set_names({"embedding"})
    return ov.Model([y], [x])


def test_two_builds_of_one_graph_save_the_same_bytes(tmp_path):
    a, b = _graph(), _graph()
    generated = lambda m: sorted(op.get_friendly_name() for op in m.get_ops() if op.get_type_name() == "Constant")  # noqa: E731
    assert generated(a) != generated(b)  # OpenVINO's counter moved on: the failure this guards against
    save(a, tmp_path / "a" / "encoder.xml")
    save(b, tmp_path / "b" / "encoder.xml")
    for ext in (".xml", ".bin"):
        assert (tmp_path / "a" / f"encoder{ext}").read_bytes() == (tmp_path / "b" / f"encoder{ext}").read_bytes()
    m = ov.Core().read_model(tmp_path / "a" / "encoder.xml")
    names = {op.get_type_name(): [] for op in m.get_ops()}
    for op in m.get_ordered_ops():
        names[op.get_type_name()].append(op.get_friendly_name())
    assert names["Constant"] == ["Constant_1", "Constant_2"] and names["Add"] == ["Constant_1/fq_weights_1"]
    assert m.get_friendly_name() == "encoder"  # the file's stem, not Model<N>
    save(m, tmp_path / "again" / "encoder.xml")  # a saved model saves again to the same bytes
    assert (tmp_path / "again" / "encoder.xml").read_bytes() == (tmp_path / "a" / "encoder.xml").read_bytes()
    assert [p.get_any_name() for p in m.inputs] == ["image"] and m.outputs[0].get_names() == {"embedding"}
    x = np.ones((1, 4), np.float32)
    out = ov.Core().compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0]
    np.testing.assert_array_equal(out, (x + np.arange(4)) * 2)


def test_given_names_and_the_callers_model_are_left_alone():
    m = _graph()
    add = next(op for op in m.get_ops() if op.get_type_name() == "Add")
    add.set_friendly_name("__module.enc.layers.0/aten::add/Add")
    before = sorted(op.get_friendly_name() for op in m.get_ops())
    n = normalize_generated_names(m)
    assert sorted(op.get_friendly_name() for op in m.get_ops()) == before  # a copy was renamed
    names = {op.get_friendly_name() for op in n.get_ops()}
    assert "__module.enc.layers.0/aten::add/Add" in names and "image" in names
