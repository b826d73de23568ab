"""What the subcommands share: model options -> a SessionConfig, progress bars, opening an image, warnings."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from engine.data.image import Image
from engine.inference.precision import REQUESTS
from engine.inference.session import Session, SessionConfig

PRECISION_HELP = ("inference precision for non-INT8 layers (default auto: the rule for this CPU, which `boxseg models` "
                  "shows with its reason; f32 gives identical results on every CPU)")
from engine.io.dispatch import open_image


class Progress:
    """A dependency-free progress bar on stderr: done/total, rate and ETA."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label = max(total, 1), label
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._last = -1.0

    def update(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if not self.tty and done < self.total and now - self._last < 10:
            return  # logs (CI) get a line every 10 s, terminals a live bar
        self._last = now
        el = now - self.t0
        rate = done / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        width = 24
        fill = int(width * done / self.total)
        eta_s = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        line = f"{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total} {rate:5.2f}/s ETA {eta_s} {extra}"
        self.stream.write(("\r" + line[:150]) if self.tty else (line + "\n"))
        if self.tty and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (default: the manifest's default model); see `boxseg models`")
    p.add_argument("--threads", type=int, default=None, help="OpenVINO inference threads (default: OpenVINO's choice)")
    p.add_argument("--precision", choices=REQUESTS, default="auto", help=PRECISION_HELP)
    p.add_argument("--disk-cache", action="store_true",
                   help="also keep slice embeddings in the user cache folder (reused by later runs)")


def session_config(args) -> SessionConfig:
    """The model options of a command (``--model --threads --precision [--disk-cache]``) as a SessionConfig."""
    return SessionConfig(model=args.model, threads=args.threads, precision=args.precision,
                         disk_cache=bool(getattr(args, "disk_cache", False)))


def load_session(args) -> Session:
    return Session(session_config(args))


def read_progress(label: str):
    """A progress callback for reading a series: a bar per phase (scan, read), only where it helps
    (a terminal, or a large series), so that short runs print nothing but their result."""
    state = {"bar": None, "total": None}

    def cb(done: int, total: int) -> None:
        if state["total"] != total:
            state["total"] = total
            show = sys.stderr.isatty() or total >= 200
            state["bar"] = Progress(total, label) if show else None
        if state["bar"] is not None:
            state["bar"].update(done)

    return cb


def open_arg(path: str, series: str | None) -> Image:
    """Open a command's IMAGE argument, with progress bars for a large DICOM series."""
    return open_image(Path(path), series=series, progress=read_progress("read"))


def warn(lines) -> None:
    for w in lines:
        print(f"boxseg: warning: {w}", file=sys.stderr)


__all__ = ["PRECISION_HELP", "Progress", "add_model_args", "load_session", "open_arg", "read_progress", "session_config", "warn"]
