"""An engine session: one model's OpenVINO runtime, its embedding cache and its timings.

:class:`SessionConfig` is the one description of what to load; :class:`Session` encodes slices
(through the cache) and decodes prompts; :meth:`Session.predictor` gives the two-phase
:class:`~engine.inference.predictor.Predictor` over it. numpy in, numpy out.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import Cancelled, ModelError
from engine.data.window import WINDOW_U8
from engine.inference.cache import CacheKey, EmbeddingCache, content_hash, default_disk_dir
from engine.inference.families import get_family
from engine.inference.manifest import ModelEntry, find_model, list_models
from engine.inference.precision import REQUESTS, PrecisionChoice, resolve
from engine.inference.predictor import Predictor
from engine.inference.runtime import Runtime
from engine.inference.transforms import Geometry, as_rgb_u8, preprocess

@dataclass(frozen=True)
class SessionConfig:
    """Everything that decides which model runs and how: the one shape of a model configuration
    (command line options, the app's settings and a batch's workers all make one of these).

    model: a model name or family (see :func:`~engine.inference.manifest.find_model`); None = the
    default model. threads: OpenVINO inference threads (None = OpenVINO's choice). precision: "auto"
    (default: the row of :data:`engine.inference.precision.AUTO_RULES` for this CPU's capability, which
    may also pick the model when none is named), "f32" or "bf16" for the layers that are not INT8.
    cache_bytes: memory budget of the embedding cache (None: from the machine's RAM,
    :func:`~engine.inference.cache.default_max_bytes`). cache_storage: how it keeps embeddings, "f16"
    (default: float16, half the memory and disk; the model gets float32 back) or "f32" (exact).
    disk_cache: False, True (the user cache folder) or a folder, for a disk tier of at most
    ``disk_cache_bytes``. model_id: the sha256 the
    model's files must have (:attr:`~engine.inference.manifest.ModelEntry.model_id`; a batch pins
    the model it was planned with so that every worker runs the same one); None = what is installed.
    int8: how INT8 layers run, "auto" (default: as exact f32 arithmetic where this CPU's int8 kernels
    saturate, :func:`~engine.inference.precision.int8_mode`), "native" or "exact".
    Frozen and hashable: :func:`engine.inference.registry.shared_session` keys on it.
    """

    model: str | None = None
    threads: int | None = None
    precision: str = "auto"
    cache_bytes: int | None = None
    cache_storage: str = "f16"
    disk_cache: bool | Path = False
    disk_cache_bytes: int = 4 << 30
    model_id: str | None = None
    int8: str = "auto"


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


def configured_model(config: SessionConfig) -> ModelEntry:
    """The model ``config`` names, or else the default model, or, where the precision rule prefers
    another precision, the default's family model of that precision (if installed)."""
    entry = find_model(config.model)
    if config.model is None and config.precision in REQUESTS:
        want = resolve(config.precision).model_precision
        if want and entry.precision != want:
            entry = next((m for m in list_models() if m.family == entry.family and m.precision == want), entry)
    return entry


class Session:
    """An engine session: one model's runtime plus the embedding cache that belongs to it.

    config: what to load (:class:`SessionConfig`; default: the default model, OpenVINO's threads,
    precision "auto"). entry: a model found outside the search path (e.g. a freshly built manifest), used
    instead of ``config.model``. cache: an :class:`EmbeddingCache` to use instead of the one the
    config describes.
    """

    def __init__(self, config: SessionConfig | None = None, *, entry: ModelEntry | None = None,
                 cache: EmbeddingCache | None = None):
        self.config = config = config or SessionConfig()
        self.entry = entry if entry is not None else configured_model(config)
        if config.model_id is not None and self.entry.model_id != config.model_id:
            raise ModelError(f"{socket.gethostname()}: model {self.entry.name!r} has sha256 {self.entry.model_id[:16]}..., "
                             f"expected {config.model_id[:16]}... (install the same model files on every machine)")
        self.family = get_family(self.entry.family)
        self.runtime = Runtime(self.entry, threads=config.threads, precision=config.precision, int8=config.int8)
        if cache is None:
            disk_dir = None
            if config.disk_cache:
                disk_dir = default_disk_dir() if config.disk_cache is True else Path(config.disk_cache)
            cache = EmbeddingCache(max_bytes=config.cache_bytes, disk_dir=disk_dir,
                                   disk_max_bytes=config.disk_cache_bytes if disk_dir else None,
                                   storage=config.cache_storage)
        self.cache = cache
        self.timings = Timings()

    @property
    def model_id(self) -> str:
        return self.entry.model_id

    @property
    def precision_choice(self) -> PrecisionChoice:
        """What ``config.precision`` resolved to on this CPU and why (:mod:`engine.inference.precision`)."""
        return self.runtime.choice

    def key(self, slice_u8: np.ndarray, slice_index: int, window: str, plane: str = "") -> CacheKey:
        return CacheKey(content_hash=content_hash(slice_u8), slice_index=int(slice_index), window=str(window),
                        model_sha256=self.model_id, plane=plane)

    def encode(self, image: np.ndarray, *, slice_index: int = -1, window: str = WINDOW_U8,
               should_stop: StopFn | None = None, plane: str = "") -> tuple[dict[str, np.ndarray], Geometry, bool]:
        """Encoder outputs for one slice, from the cache when possible.

        image: uint8 (H,W) or (H,W,3) in the model domain. Returns (outputs, geometry, cache_hit);
        outputs are read-only float32 arrays, e.g. {"embedding": (1,256,64,64)}, as the cache gives them
        back (rounded to float16 with the default ``cache_storage``) whether encoded now or not, so a
        slice's masks never depend on whether its embedding was a hit. should_stop: a
        running encoder is cancelled (raising :class:`Cancelled`) as soon as it returns True.
        plane: the cache key's plane (:class:`~engine.inference.cache.CacheKey`; "" = a stored slice).
        """
        rgb = as_rgb_u8(image)
        key = self.key(rgb, slice_index, window, plane)
        cached = self.cache.get(key)
        geom = Geometry(rgb.shape[0], rgb.shape[1])
        if cached is not None:
            return cached, geom, True
        x, geom = preprocess(rgb)
        t0 = time.perf_counter()
        outputs = self.runtime.infer("encoder", {"image": x}, should_stop=should_stop)
        self.timings.encoder_ms = (time.perf_counter() - t0) * 1000
        self.timings.encoder_runs += 1
        return self.cache.put(key, outputs), geom, False

    def precompute(self, volume: np.ndarray, slices: Iterable[int], *, window: str = WINDOW_U8,
                   progress: ProgressFn | None = None, should_stop: StopFn | None = None, plane: str = "") -> int:
        """Encode the given slices of a (D,H,W[,3]) uint8 volume into the cache.

        volume: anything indexable by slice like that (a reformatted plane's
        :meth:`~engine.data.square.ModelFrame.stack`, whose ``plane`` key is then passed too).
        Calls ``progress(done, total)`` after each slice; raises :class:`Cancelled` as soon as
        ``should_stop()`` returns True. Returns the number of slices actually encoded (misses).
        """
        zs = list(slices)
        encoded = 0
        for i, z in enumerate(zs):
            if should_stop is not None and should_stop():
                raise Cancelled(f"precompute stopped after {i} of {len(zs)} slices")
            _, _, hit = self.encode(volume[z], slice_index=z, window=window, plane=plane)
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

    def predictor(self):
        """A new :class:`~engine.inference.predictor.Predictor` over this session (the hook the flows
        use: :func:`engine.pipeline.segment_case` and propagation take their predictor from here)."""
        return Predictor(self)


__all__ = ["Session", "SessionConfig", "Timings", "configured_model"]
