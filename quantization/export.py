"""Export the PyTorch models to OpenVINO IR (FP32).

LiteMedSAM is split as SPEC E recommends:

* ``encoder``: image (1,3,256,256) float32 in [0,1] -> embedding (1,256,64,64).
* ``decoder``: embedding (1,256,64,64) + box (1,4) float32 XYXY in 256-space + points (1,N,2)
  float32 in 256-space + labels (1,N) float32 (1 positive, 0 negative), N >= 0 dynamic
  -> low-res logits (1,1,256,256) + IoU (1,1). Dense PE and the no-mask embedding are constants.
  With N = 0 there are no point tokens at all, which is exactly SAM's box-only prompt (a padding
  point would change the result), so one graph serves boxes and box + clicks.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from torch import nn

ENCODER_INPUT = "image"


class EncoderWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        from .litemedsam import regroup_qkv_for_export

        self.enc = regroup_qkv_for_export(copy.deepcopy(model.image_encoder))

    def forward(self, image):
        return self.enc(image)


#: outputs of the decoder prefix = extra inputs of the split decoder: three (1, 4096, 128) projections
#: and the dense positional encoding as tokens (1, 4096, 256), a constant that the split decoder then
#: does not have to carry as well (4 MB less in its file)
PREFIX_OUTPUTS = ["t2i_k", "t2i_v", "i2t_q", "key_pe"]


class DecoderWrapper(nn.Module):
    """Prompt encoder + mask decoder, multimask off, only mask token 0 computed.

    ``forward(embedding, box, points, labels)``; :class:`SplitDecoderWrapper` takes the outputs of
    :class:`DecoderPrefixWrapper` as well (``pre`` / ``image_pe`` here).
    """

    def __init__(self, model):
        super().__init__()
        self.pe = model.prompt_encoder
        self.dec = model.mask_decoder
        with torch.no_grad():
            self.register_buffer("dense_pe", self.pe.get_dense_pe().clone())
            # (1,256,1,1): broadcast in the decoder instead of a 4 MiB constant
            self.register_buffer("no_mask", self.pe.no_mask_embed.weight.reshape(1, -1, 1, 1).clone())

    def forward(self, embedding, box, points, labels, pre=None, image_pe=None):
        sparse = torch.cat([self.pe.embed_points(points, labels, pad=False), self.pe.embed_boxes(box)], dim=1)
        image_pe = self.dense_pe if image_pe is None else image_pe
        logits, iou = self.dec(embedding, image_pe, sparse, self.no_mask, only_first=True, pre=pre)
        return logits, iou


class SplitDecoderWrapper(DecoderWrapper):
    """The decoder taking the prefix's outputs as inputs (same maths as :class:`DecoderWrapper`)."""

    def forward(self, embedding, t2i_k, t2i_v, i2t_q, key_pe, box, points, labels):
        b, n, c = key_pe.shape
        image_pe = key_pe.transpose(1, 2).reshape(b, c, 64, 64)  # the transformer flattens it back
        return super().forward(embedding, box, points, labels, pre=(t2i_k, t2i_v, i2t_q), image_pe=image_pe)


class DecoderPrefixWrapper(DecoderWrapper):
    """embedding (1,256,64,64) -> the first block's image-only projections, 3 x (1,4096,128), and
    the dense positional encoding as tokens (1,4096,256).

    They depend on the image alone (the dense prompt is the constant no-mask embedding), so the
    engine runs this once per slice and the decoder once per prompt.
    """

    def forward(self, embedding):
        # one key_pe tensor feeds the projections and the output, so the IR holds one constant
        keys = (embedding + self.no_mask).flatten(2).permute(0, 2, 1)
        key_pe = self.dense_pe.flatten(2).permute(0, 2, 1)
        k, v, q = self.dec.transformer.layers[0].prompt_free(keys, key_pe)
        return k, v, q, key_pe


def _name_io(model: ov.Model, inputs: list[str], outputs: list[str]) -> ov.Model:
    for port, name in zip(model.inputs, inputs):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, outputs):
        port.get_tensor().set_names({name})
    return model


def convert_encoder(model) -> ov.Model:
    ex = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        ovm = ov.convert_model(EncoderWrapper(model).eval(), example_input=ex, input=[(1, 3, 256, 256)])
    return _name_io(ovm, [ENCODER_INPUT], ["embedding"])


def convert_decoder(model, split: bool = False) -> ov.Model:
    """Decoder IR; ``split`` = the variant fed by :func:`convert_decoder_prefix` (what ships)."""
    emb = torch.randn(1, 256, 64, 64)
    box = torch.tensor([[60.0, 60.0, 180.0, 180.0]])
    pts = torch.tensor([[[100.0, 100.0], [120.0, 90.0]]])
    lab = torch.tensor([[1.0, 0.0]])
    shapes = [(1, 256, 64, 64), (1, 4), (1, -1, 2), (1, -1)]
    names = ["embedding", "box", "points", "labels"]
    if split:
        wrapper = SplitDecoderWrapper(model).eval()
        with torch.no_grad():
            pre = DecoderPrefixWrapper(model).eval()(emb)
        example = (emb, *pre, box, pts, lab)
        shapes = shapes[:1] + [tuple(p.shape) for p in pre] + shapes[1:]
        names = names[:1] + PREFIX_OUTPUTS + names[1:]
    else:
        wrapper, example = DecoderWrapper(model).eval(), (emb, box, pts, lab)
    with torch.no_grad():
        ovm = ov.convert_model(wrapper, example_input=example, input=shapes)
    return _name_io(ovm, names, ["logits", "iou"])


def convert_decoder_prefix(model) -> ov.Model:
    emb = torch.randn(1, 256, 64, 64)
    with torch.no_grad():
        ovm = ov.convert_model(DecoderPrefixWrapper(model).eval(), example_input=(emb,), input=[(1, 256, 64, 64)])
    return _name_io(ovm, ["embedding"], PREFIX_OUTPUTS)


#: a name OpenVINO (or NNCF) made up: ``<Type>_<process-wide counter>``, e.g. ``Constant_388801``, ``Multiply_1234``
#: (a BatchNorm-folded convolution), ``Result_8017``; also as the first part of a node's name
#: (``GatherAssign_26191/Reshape_1``, nodes a transformation made from one node) and as the model's name (``Model6``)
_GENERATED_NAME = re.compile(r"[A-Z][A-Za-z0-9]*_\d+")
_GENERATED_MODEL_NAME = re.compile(r"Model\d+")


def normalize_generated_names(model: ov.Model, model_name: str = "") -> ov.Model:
    """A copy of ``model`` whose generated names are numbered by graph order, not by a process-wide counter.

    OpenVINO names the nodes (and models) it creates ``<Type>_<N>`` with a counter shared by everything the process
    built before, so the same graph saved by two processes (or after other conversions in one process) gets other
    ``.xml`` bytes and so another model id (sha256 of its files), although weights and ops are the same. Each
    generated name, or generated first part of a name, becomes ``<Type>_<k>``, k counting that type's generated
    names in ``get_ordered_ops`` order (deterministic for a given graph; one old name always maps to one new name,
    so nodes that shared a prefix still do). A generated model name (``Model<N>``) becomes ``model_name``. Names
    given by the PyTorch module path and tensor names (the model's inputs and outputs are addressed by those) are
    unchanged. Written here because OpenVINO has no option for it."""
    m = model.clone()
    if model_name and _GENERATED_MODEL_NAME.fullmatch(m.get_friendly_name()):
        m.set_friendly_name(model_name)
    counters: dict[str, int] = {}
    renamed: dict[str, str] = {}
    for op in m.get_ordered_ops():
        head, sep, tail = op.get_friendly_name().partition("/")
        if not _GENERATED_NAME.fullmatch(head):
            continue
        if head not in renamed:
            prefix = head.rsplit("_", 1)[0]
            counters[prefix] = counters.get(prefix, 0) + 1
            renamed[head] = f"{prefix}_{counters[prefix]}"
        op.set_friendly_name(renamed[head] + sep + tail)
    return m


def save(model: ov.Model, path: Path) -> Path:
    """Save as ``path`` (.xml + .bin) with FP32 weights (no FP16 compression) and generated node names numbered
    by graph order (:func:`normalize_generated_names`), so one graph always gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(normalize_generated_names(model, Path(path).stem), str(path), compress_to_fp16=False)
    return path


def compile_f32(path_or_model, threads: int | None = None) -> ov.CompiledModel:
    """Compile on CPU with f32 inference precision (no silent BF16 on AMX/AVX512_BF16 CPUs)."""
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(path_or_model if not isinstance(path_or_model, Path) else str(path_or_model),
                                   "CPU", cfg)


def run(compiled: ov.CompiledModel, *arrays: np.ndarray) -> list[np.ndarray]:
    res = compiled(list(arrays))
    return [np.array(res[o], copy=True) for o in compiled.outputs]
