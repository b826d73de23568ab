"""Model families: what a family's encoder emits and how its decoder is prompted.

* ``litemedsam`` (SPEC A): encoder -> ``embedding``; decoder(embedding, box, points, labels).
  3D propagation follows SPEC A.8.
* ``swin-litemedsam`` (SPEC B): encoder -> ``embedding``, ``f0``, ``n64`` (the hoisted skip neck);
  decoder(embedding, f0, n64, points, labels, box, scribble), prompted with the box plus four
  box-based points and a box-based scribble generated from the box and the slice
  (:mod:`engine.inference.prompts`); user clicks are appended to the generated points.
  3D propagation follows SPEC B.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.errors import ModelError
from engine.inference.prompts import box_prompts


@dataclass(frozen=True)
class Family:
    name: str
    encoder_outputs: tuple[str, ...]
    #: the decoder is prompted with generated box-based points + scribble (Swin-LiteMedSAM)
    box_prompts: bool
    #: 3D propagation rule: "A.8" (LiteMedSAM challenge flow) or "B.6" (Swin-LiteMedSAM infer.py)
    propagation: str

    def decoder_inputs(self, outputs: dict[str, np.ndarray], box256: np.ndarray, points256: np.ndarray,
                       labels: np.ndarray, network_input: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Decoder feed for one prompt.

        box256 (1,4), points256 (1,N,2), labels (1,N) float32 in 256-space (N may be 0);
        network_input: the slice's preprocessed (1,3,256,256) input, needed when ``box_prompts``.
        """
        feed = {k: outputs[k] for k in self.encoder_outputs}
        feed["box"] = np.asarray(box256, np.float32).reshape(1, 4)
        if self.box_prompts:
            gen = box_prompts(network_input, feed["box"][0])
            gp, gl, scribble = gen.model_inputs()
            points256 = np.concatenate([gp, np.asarray(points256, np.float32).reshape(1, -1, 2)], axis=1)
            labels = np.concatenate([gl, np.asarray(labels, np.float32).reshape(1, -1)], axis=1)
            feed["scribble"] = scribble
        feed["points"] = np.asarray(points256, np.float32).reshape(1, -1, 2)
        feed["labels"] = np.asarray(labels, np.float32).reshape(1, -1)
        return feed


FAMILIES = {
    "litemedsam": Family("litemedsam", ("embedding",), box_prompts=False, propagation="A.8"),
    "swin-litemedsam": Family("swin-litemedsam", ("embedding", "f0", "n64"), box_prompts=True, propagation="B.6"),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None
