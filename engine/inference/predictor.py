"""Two-phase predictor over an engine :class:`Session` (like segment-anything's ``SamPredictor``).

1. ``set_image(slice)`` preprocesses the slice and runs the image encoder — or fetches the
   encoder outputs from the session's embedding cache.
2. ``predict(box, points)`` runs only the prompt encoder + mask decoder (a few tens of ms).

numpy in, numpy out. Boxes are XYXY in original pixels of the slice; points are (x, y) in
original pixels. All frame conversions live in :mod:`engine.inference.transforms`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.inference.cache import CacheKey, EmbeddingCache, content_hash, default_disk_dir
from engine.base.errors import Cancelled, PromptError
from engine.inference.families import get_family
from engine.inference.manifest import ModelEntry, Runtime, find_model
from engine.inference.transforms import (Geometry, as_rgb_u8, box_to_model, points_to_model, postprocess, preprocess,
                         validate_box)

#: canonical window string for slices that are already in the model's uint8 domain
WINDOW_U8 = "u8"

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


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


@dataclass
class Timings:
    """Last and cumulative timings of a session (milliseconds)."""

    encoder_ms: float = 0.0
    decoder_ms: float = 0.0
    #: the decoder prefix (image-only part of the decoder), once per selected slice
    prefix_ms: float = 0.0
    encoder_runs: int = 0
    decoder_runs: int = 0
    prefix_runs: int = 0


class Session:
    """An engine session: one model's runtime plus the embedding cache that belongs to it.

    model: a model name, a :class:`ModelEntry`, or None for the default model.
    threads: OpenVINO inference threads (None = OpenVINO's choice).
    precision: "f32" (default, same numbers on every CPU) or "bf16".
    cache: an :class:`EmbeddingCache` to use; by default a cache of ``cache_bytes`` in memory and,
    when ``disk_cache`` is True (or a folder), a disk tier in the user cache folder (or that folder)
    bounded by ``disk_cache_bytes``.
    """

    def __init__(self, model: str | ModelEntry | None = None, *, threads: int | None = None,
                 precision: str = "f32", cache: EmbeddingCache | None = None, cache_bytes: int = 1 << 30,
                 disk_cache: bool | Path = False, disk_cache_bytes: int = 4 << 30):
        self.entry = model if isinstance(model, ModelEntry) else find_model(model)
        self.family = get_family(self.entry.family)
        self.runtime = Runtime(self.entry, threads=threads, precision=precision)
        if cache is None:
            disk_dir = None
            if disk_cache:
                disk_dir = default_disk_dir() if disk_cache is True else Path(disk_cache)
            cache = EmbeddingCache(max_bytes=cache_bytes, disk_dir=disk_dir,
                                   disk_max_bytes=disk_cache_bytes if disk_dir else None)
        self.cache = cache
        self.timings = Timings()

    @property
    def model_id(self) -> str:
        return self.entry.model_id

    def key(self, slice_u8: np.ndarray, slice_index: int, window: str) -> CacheKey:
        return CacheKey(content_hash=content_hash(slice_u8), slice_index=int(slice_index), window=str(window),
                        model_sha256=self.model_id)

    def encode(self, image: np.ndarray, *, slice_index: int = -1, window: str = WINDOW_U8,
               should_stop: StopFn | None = None) -> tuple[dict[str, np.ndarray], Geometry, bool]:
        """Encoder outputs for one slice, from the cache when possible.

        image: uint8 (H,W) or (H,W,3) in the model domain. Returns (outputs, geometry, cache_hit);
        outputs are read-only float32 arrays, e.g. {"embedding": (1,256,64,64)}. should_stop: a
        running encoder is cancelled (raising :class:`Cancelled`) as soon as it returns True.
        """
        rgb = as_rgb_u8(image)
        key = self.key(rgb, slice_index, window)
        cached = self.cache.get(key)
        geom = Geometry(rgb.shape[0], rgb.shape[1])
        if cached is not None:
            return cached, geom, True
        x, geom = preprocess(rgb)
        t0 = time.perf_counter()
        outputs = self.runtime.infer("encoder", {"image": x}, should_stop=should_stop)
        self.timings.encoder_ms = (time.perf_counter() - t0) * 1000
        self.timings.encoder_runs += 1
        self.cache.put(key, outputs)
        return outputs, geom, False

    def precompute(self, volume: np.ndarray, slices: Iterable[int], *, window: str = WINDOW_U8,
                   progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> int:
        """Encode the given slices of a (D,H,W[,3]) uint8 volume into the cache.

        Calls ``progress(done, total)`` after each slice; raises :class:`Cancelled` as soon as
        ``should_stop()`` returns True. Returns the number of slices actually encoded (misses).
        """
        zs = list(slices)
        encoded = 0
        for i, z in enumerate(zs):
            if should_stop is not None and should_stop():
                raise Cancelled(f"precompute stopped after {i} of {len(zs)} slices")
            _, _, hit = self.encode(volume[z], slice_index=z, window=window)
            encoded += 0 if hit else 1
            if progress is not None:
                progress(i + 1, len(zs))
        return encoded

    def decoder_state(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encoder outputs plus the decoder prefix's outputs, when the model has a prefix graph.

        The prefix holds the decoder's projections of the image tokens that no prompt changes
        (float32 (1,4096,128) each) and the dense positional encoding (float32 (1,4096,256));
        computing the projections once per slice rather than once per prompt takes ~25 % off every
        decoder call. They are not cached (10 MiB per slice, ~10 ms to redo).
        """
        names = self.runtime.prefix_outputs
        if not names or all(n in outputs for n in names):
            return outputs
        t0 = time.perf_counter()
        pre = self.runtime.infer("decoder_prefix", {"embedding": outputs["embedding"]})
        self.timings.prefix_ms = (time.perf_counter() - t0) * 1000
        self.timings.prefix_runs += 1
        return {**outputs, **pre}

    def decode(self, outputs: dict[str, np.ndarray], box256: np.ndarray, points256: np.ndarray | None = None,
               labels: np.ndarray | None = None, network_input: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """Decoder only. box256 float32 (1,4) and points256 (1,N,2) in 256-space; labels (1,N) 1/0.

        outputs: encoder outputs, best passed through :meth:`decoder_state` once per slice (else
        the decoder prefix runs on every call).

        network_input: the slice's (1,3,256,256) preprocessed input; the Swin-LiteMedSAM family
        generates its box-based points and scribble from it. Returns (low-res logits float32
        (256,256), IoU estimate).
        """
        if points256 is None or not len(np.asarray(points256).reshape(-1, 2)):
            points256, labels = np.zeros((1, 0, 2), np.float32), np.zeros((1, 0), np.float32)
        outputs = self.decoder_state(outputs)
        feed = self.family.decoder_inputs(outputs, box256, points256, labels, network_input)
        feed.update({k: outputs[k] for k in self.runtime.prefix_outputs})
        t0 = time.perf_counter()
        res = self.runtime.infer("decoder", feed)
        self.timings.decoder_ms = (time.perf_counter() - t0) * 1000
        self.timings.decoder_runs += 1
        return res["logits"].reshape(256, 256), float(res["iou"].reshape(-1)[0])

    def predictor(self) -> "Predictor":
        return Predictor(self)


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

    def set_image(self, image: np.ndarray, *, slice_index: int = -1, window: str = WINDOW_U8) -> bool:
        """Select the slice (uint8 (H,W) or (H,W,3)); runs or fetches its embedding. Returns cache hit."""
        outputs, self._geom, self.last_hit = self.session.encode(image, slice_index=slice_index, window=window)
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


__all__ = ["Prediction", "Predictor", "Session", "Timings", "WINDOW_U8", "validate_box"]
