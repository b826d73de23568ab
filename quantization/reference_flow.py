"""The challenge's own inference flow in PyTorch (SPEC A.7/A.8), as the speed/accuracy baseline.

Same pre/post-processing as the engine (``engine.inference.transforms``) but the official control flow:
the encoder is re-run for every slice of every 3D box, nothing is cached, no early stop.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.io.challenge_npz import Case
from engine.inference.propagate import Box3D, propagation_order
from engine.inference.transforms import Geometry, box_from_previous_mask, box_to_model, postprocess, preprocess


@torch.no_grad()
def _decode(model, emb, box256):
    logits, _ = model.decode(emb, torch.from_numpy(np.asarray(box256, np.float32).reshape(1, 4)))
    return logits.numpy()


@torch.no_grad()
def segment_case_torch(model, case: Case) -> np.ndarray:
    """``segs`` uint16 for one case with the official flow on a PyTorch LiteMedSAM."""
    if not case.is_3d:
        segs = np.zeros(case.imgs.shape[:2], np.uint16)
        x, geom = preprocess(case.imgs)
        emb = model.image_encoder(torch.from_numpy(x))
        for k, b in enumerate(case.boxes, start=1):
            segs[postprocess(_decode(model, emb, box_to_model(b, geom)), geom)] = k
        return segs
    depth, h, w = case.imgs.shape
    geom = Geometry(h, w)
    segs = np.zeros(case.imgs.shape, np.uint16)
    for k, b in enumerate(case.boxes, start=1):
        box = Box3D.from_array(b)
        mid = box_to_model(box.box2d, geom)
        tmp = np.zeros(case.imgs.shape, bool)
        for z, prev in propagation_order(box, depth):
            box256 = mid
            if prev != -1:
                derived = box_from_previous_mask(tmp[prev], k, geom)
                box256 = mid if derived is None else derived
            x, _ = preprocess(case.imgs[z])
            emb = model.image_encoder(torch.from_numpy(x))  # re-encoded for every box, as the reference does
            tmp[z] = postprocess(_decode(model, emb, box256), geom)
        segs[tmp] = k
    return segs
