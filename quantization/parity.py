"""``python -m quantization parity``: run a model on explicit prompts and write its outputs.

Runs Swin-LiteMedSAM from a checkpoint on the explicit inputs of an ``inputs.npz`` laid out like
``shared/swin_parity/inputs.npz`` (no generated prompts) and writes ``logits`` (1,1,256,256) and
``iou`` (1,1) float32 to an .npz, through either the PyTorch model or the exported OpenVINO IR run by
the engine's :class:`~engine.inference.runtime.Runtime` at f32 inference precision.

Inputs (all in 256-space): ``image_float`` (1,3,256,256) float32 in [0,1] (or ``image`` uint8
(256,256,3), normalised as SPEC A.4), ``box`` (4,), optional ``points`` (N,2) (x, y) with
``point_labels`` (N,) (1 positive, 0 negative), optional ``scribble`` (256,256) 0/1 (zeros if absent).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

ARCHS = ("swin-litemedsam",)
BACKENDS = ("torch", "openvino")


def load_inputs(path: Path) -> dict[str, np.ndarray]:
    """Model-ready float32 arrays: image (1,3,256,256), box (1,4), points (1,N,2), labels (1,N),
    scribble (1,1,256,256)."""
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    if "image_float" in d:
        image = np.asarray(d["image_float"], np.float32).reshape(1, 3, 256, 256)
    elif "image" in d:
        img = np.asarray(d["image"]).astype(np.float64)
        if img.shape != (256, 256, 3):
            raise ValueError(f"{path}: 'image' must be (256,256,3), got {img.shape}")
        norm = (img - img.min()) / np.clip(img.max() - img.min(), 1e-8, None)
        image = np.ascontiguousarray(norm.astype(np.float32).transpose(2, 0, 1)[None])
    else:
        raise ValueError(f"{path}: needs 'image_float' (1,3,256,256) or 'image' (256,256,3)")
    if "box" not in d:
        raise ValueError(f"{path}: needs 'box' (4,) in 256-space")
    box = np.asarray(d["box"], np.float32).reshape(1, 4)
    points = np.asarray(d.get("points", np.zeros((0, 2))), np.float32).reshape(1, -1, 2)
    labels = np.asarray(d.get("point_labels", np.ones(points.shape[1])), np.float32).reshape(1, -1)
    if labels.shape[1] != points.shape[1]:
        raise ValueError(f"{path}: {points.shape[1]} points but {labels.shape[1]} point_labels")
    scribble = np.asarray(d.get("scribble", np.zeros((256, 256))), np.float32).reshape(1, 1, 256, 256)
    return dict(image=image, box=box, points=points, labels=labels, scribble=scribble)


def run_torch(model, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    t = {k: torch.from_numpy(v) for k, v in x.items()}
    with torch.no_grad():
        emb, feats = model.encode(t["image"])
        logits, iou = model.decode(emb, feats, t["box"], (t["points"], t["labels"]), t["scribble"])
    return {"logits": logits.numpy().astype(np.float32), "iou": iou.numpy().astype(np.float32)}


def export_for_engine(model, out_dir: Path, checkpoint: Path | None = None):
    """Export FP32 IR into ``out_dir`` with a manifest; returns the engine's ModelEntry."""
    from engine.inference.manifest import read_manifest

    from .manifest import model_record, write_manifest
    from .swin_export import export_fp32

    out_dir = Path(out_dir)
    export_fp32(model, out_dir)
    rec = model_record(out_dir, name="swin-litemedsam-fp32", family="swin-litemedsam", precision="fp32",
                       graphs={"encoder": "swin_encoder_fp32.xml", "decoder": "swin_decoder_fp32.xml"},
                       source_checkpoint={"file": checkpoint.name if checkpoint else ""})
    write_manifest(out_dir, [rec])
    (entry,) = read_manifest(out_dir)
    return entry


def run_openvino(entry, x: dict[str, np.ndarray], threads: int | None = None) -> dict[str, np.ndarray]:
    from engine.inference.runtime import Runtime

    rt = Runtime(entry, threads=threads, precision="f32")
    enc = rt.infer("encoder", {"image": x["image"]})
    dec = rt.infer("decoder", {"embedding": enc["embedding"], "f0": enc["f0"], "n64": enc["n64"],
                               "points": x["points"], "labels": x["labels"], "box": x["box"],
                               "scribble": x["scribble"]})
    return {"logits": dec["logits"].astype(np.float32), "iou": dec["iou"].reshape(1, 1).astype(np.float32)}


def run_parity(arch: str, checkpoint: Path, inputs: Path, backend: str, out: Path,
               ir_dir: Path | None = None, threads: int | None = None) -> dict[str, np.ndarray]:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    import torch

    from .swin_litemedsam import load_swin_litemedsam

    if threads:
        torch.set_num_threads(int(threads))
    model = load_swin_litemedsam(Path(checkpoint))
    x = load_inputs(Path(inputs))
    if backend == "torch":
        res = run_torch(model, x)
    elif ir_dir is not None:
        res = run_openvino(export_for_engine(model, Path(ir_dir), Path(checkpoint)), x, threads)
    else:
        with tempfile.TemporaryDirectory(prefix="boxseg-parity-") as tmp:
            res = run_openvino(export_for_engine(model, Path(tmp), Path(checkpoint)), x, threads)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **res)
    return res
