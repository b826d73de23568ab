"""Two-phase predictor over an engine :class:`~engine.inference.session.Session` (like
segment-anything's ``SamPredictor``).

1. ``set_image(slice)`` preprocesses the slice and runs the image encoder — or fetches the
   encoder outputs from the session's embedding cache.
2. ``predict(box, points)`` runs only the prompt encoder + mask decoder (a few tens of ms).

numpy in, numpy out. Boxes are XYXY in original pixels of the slice; points are (x, y) in
original pixels. All frame conversions live in :mod:`engine.inference.transforms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.base.errors import PromptError
from engine.data.window import WINDOW_U8
from engine.inference.transforms import Geometry, box_to_model, points_to_model, postprocess, preprocess

if TYPE_CHECKING:  # the session module builds predictors, so it imports this one
    from engine.inference.session import Session


@dataclass
class Prediction:
    """One decoder result.

    mask: bool (H,W) in the slice's original frame; iou: the model's IoU estimate (unitless,
    not calibrated); low_res: float32 (256,256) logits in 256-space; box256: float32 (4,) prompt
    box in 256-space.
    """

    mask: np.ndarray
    iou: float
    low_res: np.ndarray
    box256: np.ndarray


class Predictor:
    """Set a slice once, then predict masks for any number of prompts on it."""

    def __init__(self, session: Session):
        self.session = session
        self._outputs: dict[str, np.ndarray] | None = None
        self._geom: Geometry | None = None
        self._image: np.ndarray | None = None
        self._network_input: np.ndarray | None = None
        self.last_hit = False

    @property
    def geometry(self) -> Geometry:
        if self._geom is None:
            raise RuntimeError("call set_image() before predict()")
        return self._geom

    def set_image(self, image: np.ndarray, *, slice_index: int = -1, window: str = WINDOW_U8, plane: str = "") -> bool:
        """Select the slice (uint8 (H,W) or (H,W,3)); runs or fetches its embedding. Returns cache hit.

        plane: the reformatted plane the slice comes from, for the cache key ("" = a stored slice;
        :class:`~engine.data.square.ModelFrame` gives a plane's slices and key)."""
        outputs, self._geom, self.last_hit = self.session.encode(image, slice_index=slice_index, window=window,
                                                                 plane=plane)
        self._outputs = self.session.decoder_state(outputs)
        self._image, self._network_input = image, None
        return self.last_hit

    @property
    def network_input(self) -> np.ndarray:
        """The slice's preprocessed (1,3,256,256) float32 input (recomputed lazily: ~1 ms)."""
        if self._network_input is None:
            if self._image is None:
                raise RuntimeError("call set_image() before predict()")
            self._network_input, _ = preprocess(self._image)
        return self._network_input

    def predict(self, box, points=None, point_labels=None) -> Prediction:
        """Mask for a box (XYXY, original pixels) and optional points ((N,2) x,y + labels 1/0)."""
        geom = self.geometry
        box256 = box_to_model(box, geom)
        pts = lab = None
        if points is not None and len(np.asarray(points).reshape(-1, 2)):
            pts = points_to_model(points, geom)
            lab = np.asarray(point_labels if point_labels is not None else np.ones(pts.shape[1]), np.float32)
            if lab.reshape(-1).shape[0] != pts.shape[1] or not np.isin(lab, (0, 1)).all():
                raise PromptError("point_labels must hold one label (1 positive, 0 negative) per point")
        return self.predict_256(box256, pts, lab)

    def predict_256(self, box256: np.ndarray, points256=None, labels=None) -> Prediction:
        """As :meth:`predict` with the box already in 256-space (used by 3D propagation)."""
        if self._outputs is None:
            raise RuntimeError("call set_image() before predict()")
        net_in = self.network_input if self.session.family.box_prompts else None
        low, iou = self.session.decode(self._outputs, box256, points256, labels, network_input=net_in)
        return Prediction(mask=postprocess(low, self.geometry), iou=iou, low_res=low,
                          box256=np.asarray(box256, np.float32).reshape(4))


__all__ = ["Prediction", "Predictor"]
