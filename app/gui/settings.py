"""The app's persistent settings (QSettings "BoxSeg"): which model runs and how, as the engine's SessionConfig."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings

from engine.data.labeledit import OVERWRITE_UNLOCKED, POLICIES
from engine.inference.precision import REQUESTS
from engine.inference.session import SessionConfig


def _precision(value) -> str:
    """A stored precision, or "auto" for anything unknown (an older BoxSeg stored only f32/bf16)."""
    return str(value) if str(value) in REQUESTS else "auto"


@dataclass
class Settings:
    """model name ('' = the default model), precision, threads (0 = OpenVINO's choice), embedding cache
    size in MiB (0 = automatic: a share of the machine's RAM, smaller with the disk tier on:
    engine.inference.cache.default_max_bytes),
    disk_cache: embeddings also kept in the user cache folder (float16 files, at most
    SessionConfig.disk_cache_bytes), so that slices evicted from memory or encoded in an earlier session are
    read back in ms instead of encoded again. :meth:`session_config` is what the app loads. overlap: what a new mask does to other
    objects' voxels (engine.data.labeledit.POLICIES: 'overwrite-unlocked' or 'never-overwrite').
    brush_mm: the brush radius in mm."""

    model: str = ""
    precision: str = "auto"
    threads: int = 0
    cache_mb: int = 0
    overlap: str = OVERWRITE_UNLOCKED
    brush_mm: float = 5.0
    disk_cache: bool = True

    @classmethod
    def load(cls) -> "Settings":
        q = QSettings("BoxSeg", "BoxSeg")
        d = cls()
        try:
            overlap = str(q.value("overlap", d.overlap))
            return cls(model=str(q.value("model", d.model) or ""), precision=_precision(q.value("precision", d.precision)),
                       threads=int(q.value("threads", d.threads)), cache_mb=int(q.value("cache_mb", d.cache_mb)),
                       overlap=overlap if overlap in POLICIES else d.overlap,
                       brush_mm=float(q.value("brush_mm", d.brush_mm)),
                       disk_cache=str(q.value("disk_cache", d.disk_cache)).lower() in ("true", "1"))
        except (TypeError, ValueError):
            return d

    def save(self) -> None:
        q = QSettings("BoxSeg", "BoxSeg")
        for k in ("model", "precision", "threads", "cache_mb", "overlap", "brush_mm", "disk_cache"):
            q.setValue(k, getattr(self, k))
        q.sync()

    def session_config(self) -> SessionConfig:
        return SessionConfig(model=self.model or None, threads=self.threads or None, precision=self.precision,
                             cache_bytes=(self.cache_mb << 20) if self.cache_mb > 0 else None,
                             disk_cache=self.disk_cache)


__all__ = ["Settings"]
