"""Write ``manifest.json`` entries for exported IR files (the engine verifies them on load)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.inference import pins
from engine.inference.manifest import MANIFEST, MANIFEST_FORMAT, read_manifest, sha256_file


def file_record(root: Path, rel: str) -> dict:
    p = root / rel
    return {"path": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size}


def model_record(root: Path, *, name: str, family: str, precision: str, graphs: dict[str, str],
                 source_checkpoint: dict, default: bool = False, license: str = "Apache-2.0",
                 attribution: str = "", notes: str = "") -> dict:
    files = []
    for xml in graphs.values():
        files += [file_record(root, xml), file_record(root, xml[:-4] + ".bin")]
    rec = {"name": name, "family": family, "precision": precision, "input_size": 256, "default": default,
           "graphs": graphs, "files": files, "source_checkpoint": source_checkpoint,
           "license": license, "attribution": attribution}
    if notes:
        rec["notes"] = notes
    return rec


def write_manifest(root: Path, models: list[dict]) -> Path:
    path = root / MANIFEST
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, "models": models}, indent=2) + "\n", encoding="utf-8")
    return path


def write_pins(root: Path) -> Path:
    """Pin the models of ``root`` (the bundled assets/models just rebuilt) in engine/inference/pins.py, which
    the engine checks the bundled manifest against (a manifest cannot vouch for itself)."""
    ids = {e.name: e.model_id for e in read_manifest(root)}
    path = Path(pins.__file__)
    text = path.read_text(encoding="utf-8")
    head = text[:text.index("BUNDLED_MODEL_IDS = {")]
    body = "".join(f'    "{name}": "{mid}",\n' for name, mid in ids.items())
    path.write_text(head + "BUNDLED_MODEL_IDS = {\n" + body + "}\n", encoding="utf-8")
    return path
