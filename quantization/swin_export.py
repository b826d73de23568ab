"""Export Swin-LiteMedSAM to OpenVINO IR (FP32), partitioned as SPEC E recommends.

* ``encoder``: image (1,3,256,256) float32 in [0,1] -> ``embedding`` (1,256,64,64), ``f0``
  (1,128,128,128) and ``n64`` (1,256,64,64) = the decoder's skip neck applied to concat(f1,f2,f3).
  The skip neck does not depend on the prompt, so it runs once per image instead of once per
  prompt (6.5 GFLOPs), and the per-image cache holds 16 MiB (fp32) instead of 24.5 MiB.
* ``decoder``: ``embedding``, ``f0``, ``n64``, ``points`` (1,N,2) float32 in 256-space, ``labels``
  (1,N) float32 (1 positive, 0 negative), N >= 0 dynamic (the 4 generated box-based points plus any
  user clicks), ``box`` (1,4) float32 XYXY in 256-space, ``scribble`` (1,1,256,256) float32 0/1
  -> ``logits`` (1,1,256,256) + ``iou`` (1,1). A box is always given, so no padding point; the
  scribble always goes through ``mask_downscaling`` (pass zeros for "no scribble"), as in the
  official inference. Dense PE is a constant.

The shift masks' −inf entries are replaced by −1e4 in the exported copy (identical float32 results,
see :func:`~quantization.swin_litemedsam.finite_shift_masks`); the torch model is not modified.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import openvino as ov
import torch
from torch import nn

from .export import _name_io, compile_f32, run, save  # noqa: F401 - re-exported for callers
from .swin_litemedsam import SwinLiteMedSAM, finite_shift_masks

ENCODER_INPUTS = ["image"]
ENCODER_OUTPUTS = ["embedding", "f0", "n64"]
DECODER_INPUTS = ["embedding", "f0", "n64", "points", "labels", "box", "scribble"]
DECODER_OUTPUTS = ["logits", "iou"]


class SwinEncoderWrapper(nn.Module):
    """image -> (embedding, f0, n64): Swin encoder + the decoder's hoisted skip neck."""

    def __init__(self, model: SwinLiteMedSAM):
        super().__init__()
        self.enc = finite_shift_masks(copy.deepcopy(model.image_encoder))
        self.neck = copy.deepcopy(model.mask_decoder.neck)

    def forward(self, image):
        emb, (f0, f1, f2, f3) = self.enc(image)
        return emb, f0, self.neck(torch.cat([f1, f2, f3], dim=1))


class SwinDecoderWrapper(nn.Module):
    """Prompt encoder + skip mask decoder on the hoisted features; multimask off, mask token 0 only."""

    def __init__(self, model: SwinLiteMedSAM):
        super().__init__()
        self.pe = model.prompt_encoder
        self.dec = model.mask_decoder
        with torch.no_grad():
            self.register_buffer("dense_pe", self.pe.get_dense_pe().clone())

    def forward(self, embedding, f0, n64, points, labels, box, scribble):
        sparse = torch.cat([self.pe.embed_points(points, labels, pad=False), self.pe.embed_boxes(box)], dim=1)
        dense = self.pe.mask_downscaling(scribble)
        return self.dec(embedding, self.dense_pe, sparse, dense, features=(f0, n64), only_first=True)


def convert_encoder(model: SwinLiteMedSAM) -> ov.Model:
    ex = torch.rand(1, 3, 256, 256)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks fold to constants
        ovm = ov.convert_model(SwinEncoderWrapper(model).eval(), example_input=ex, input=[(1, 3, 256, 256)])
    return _name_io(ovm, ENCODER_INPUTS, ENCODER_OUTPUTS)


def convert_decoder(model: SwinLiteMedSAM) -> ov.Model:
    ex = (torch.randn(1, 256, 64, 64), torch.randn(1, 128, 128, 128), torch.randn(1, 256, 64, 64),
          torch.tensor([[[95.0, 105.0], [100.0, 160.0], [145.0, 170.0], [150.0, 100.0], [120.0, 90.0]]]),
          torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]]),
          torch.tensor([[60.0, 70.0, 180.0, 190.0]]),
          torch.zeros(1, 1, 256, 256))
    shapes = [(1, 256, 64, 64), (1, 128, 128, 128), (1, 256, 64, 64), (1, -1, 2), (1, -1), (1, 4),
              (1, 1, 256, 256)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks fold to constants
        ovm = ov.convert_model(SwinDecoderWrapper(model).eval(), example_input=ex, input=shapes)
    return _name_io(ovm, DECODER_INPUTS, DECODER_OUTPUTS)


def export_fp32(model: SwinLiteMedSAM, out_dir: Path) -> tuple[Path, Path]:
    """Write ``swin_encoder_fp32.xml`` and ``swin_decoder_fp32.xml`` (+ .bin) into ``out_dir``."""
    out_dir = Path(out_dir)
    enc = save(convert_encoder(model), out_dir / "swin_encoder_fp32.xml")
    dec = save(convert_decoder(model), out_dir / "swin_decoder_fp32.xml")
    return enc, dec
