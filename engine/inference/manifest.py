"""Model manifests: which models are installed, where, and their files' sha256 (verified before use).

A model folder holds IR files and a ``manifest.json``::

    {"format": 1,
     "models": [{"name": "litemedsam-int8", "family": "litemedsam", "precision": "int8",
                 "input_size": 256, "default": true,
                 "graphs": {"encoder": "litemedsam/encoder_int8.xml", "decoder": "litemedsam/decoder_fp32.xml"},
                 "files": [{"path": "litemedsam/encoder_int8.xml", "sha256": "...", "bytes": 123}, ...],
                 "source_checkpoint": {"file": "lite_medsam.pth", "sha256": "...", "origin": "..."},
                 "license": "Apache-2.0", "attribution": "LICENSE-litemedsam.txt"}]}

Every file a model uses is checked against its sha256 before it is compiled, and what is compiled
is the very bytes that were hashed (:meth:`ModelEntry.read_graph`: read once into memory, hashed,
handed to OpenVINO from memory; nothing re-reads the files after the check). A mismatch or a missing
file raises :class:`~engine.base.errors.ModelError` naming the file.

Search path: ``$BOXSEG_MODEL_PATH`` (os.pathsep-separated folders), the user's model folder
(``platformdirs.user_data_dir("BoxSeg")/models``), the bundled ``assets/models``. A bundled model's
name belongs to it: a model elsewhere with the same name is ignored, with a warning that
``boxseg models`` prints (rename it in its manifest to use it). Among the other folders the first
one with a name wins, the later ones are ignored with a warning. A manifest that cannot be read is
skipped with a warning naming it; the other folders' models still load. The manifest of the bundled
folder cannot vouch for itself: its models must match the ids pinned in :mod:`engine.inference.pins`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.base.errors import ModelError
from engine.base.folders import assets_dir, user_data_dir
from engine.inference.pins import BUNDLED_MODEL_IDS

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1

log = logging.getLogger(__name__)


def bundled_models_dir() -> Path:
    """``assets/models`` of a source checkout, editable install or frozen (PyInstaller) bundle."""
    return assets_dir() / "models"


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def model_search_path() -> list[Path]:
    env = [Path(p) for p in os.environ.get("BOXSEG_MODEL_PATH", "").split(os.pathsep) if p]
    return env + [user_models_dir(), bundled_models_dir()]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelEntry:
    """One model of a manifest; paths are resolved against the manifest's folder."""

    name: str
    family: str
    precision: str
    input_size: int
    root: Path
    graphs: dict[str, str]
    files: tuple[dict, ...]
    default: bool = False
    license: str = ""
    attribution: str = ""
    source_checkpoint: dict = field(default_factory=dict)

    def path(self, graph: str) -> Path:
        if graph not in self.graphs:
            raise ModelError(f"model {self.name!r} has no {graph!r} graph")
        return self.root / self.graphs[graph]

    @property
    def version(self) -> str:
        """What a written segmentation records as the algorithm version (e.g. DICOM-SEG's
        AlgorithmVersion): the precision and the first 16 hex digits of :attr:`model_id`."""
        return f"{self.precision} sha256:{self.model_id[:16]}"

    @property
    def model_id(self) -> str:
        """sha256 over the digests of all files: the model part of embedding-cache keys."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f["path"]):
            h.update(f"{f['path']}={f['sha256']};".encode())
        return h.hexdigest()

    def check(self, skip=()) -> list[str]:
        """Problems with this model's files (empty list = all files present with matching sha256).

        skip: manifest paths not to check here (those :meth:`read_graph` verifies as it reads them)."""
        problems = []
        for f in self.files:
            if f["path"] in skip:
                continue
            p = self.root / f["path"]
            if not p.is_file():
                problems.append(f"missing file {p}")
            elif "bytes" in f and p.stat().st_size != f["bytes"]:
                problems.append(f"{p}: {p.stat().st_size} bytes, manifest says {f['bytes']}")
            elif sha256_file(p) != f["sha256"]:
                problems.append(f"{p}: sha256 does not match the manifest (file changed or corrupt)")
        return problems

    def verify(self, skip=()) -> None:
        problems = self.check(skip)
        if problems:
            raise ModelError(f"model {self.name!r} failed verification: {problems[0]}"
                             + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))

    def graph_files(self, graph: str) -> tuple[str, str]:
        """The manifest paths of ``graph``'s IR: (.xml, .bin)."""
        xml = self.graphs.get(graph)
        if xml is None:
            raise ModelError(f"model {self.name!r} has no {graph!r} graph")
        return xml, xml[:-4] + ".bin"

    def read_file(self, rel: str, *, verify: bool = True) -> bytearray:
        """The bytes of manifest file ``rel``, read once; with ``verify``, their size and sha256 are the
        manifest's (else :class:`ModelError` naming the file). The caller uses these bytes, never the file
        again, so a file changed after the check is never used."""
        spec = next((f for f in self.files if f["path"] == rel), None)
        if spec is None:
            raise ModelError(f"model {self.name!r}: {rel} is not listed in its manifest")
        p = self.root / rel
        try:
            with open(p, "rb") as f:
                data = bytearray(os.fstat(f.fileno()).st_size)
                n = f.readinto(data)
        except FileNotFoundError:
            raise ModelError(f"model {self.name!r} failed verification: missing file {p}") from None
        except OSError as e:
            raise ModelError(f"model {self.name!r}: cannot read {p}: {e.strerror or e}") from e
        if n != len(data):
            del data[n:]
        if verify:
            if "bytes" in spec and len(data) != spec["bytes"]:
                raise ModelError(f"model {self.name!r} failed verification: {p}: {len(data)} bytes, manifest says "
                                 f"{spec['bytes']}")
            if hashlib.sha256(data).hexdigest() != spec["sha256"]:
                raise ModelError(f"model {self.name!r} failed verification: {p}: sha256 does not match the manifest "
                                 "(file changed or corrupt)")
        return data

    def read_graph(self, graph: str, *, verify: bool = True) -> tuple[str, bytearray]:
        """``graph``'s IR from memory: (the .xml text, the .bin bytes), both checked by :meth:`read_file`."""
        xml, weights = self.graph_files(graph)
        try:
            text = self.read_file(xml, verify=verify).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelError(f"model {self.name!r}: {self.root / xml} is not UTF-8 XML") from e
        return text, self.read_file(weights, verify=verify)


def read_manifest(folder: Path) -> list[ModelEntry]:
    """Entries of ``folder/manifest.json``; raises ModelError for a malformed manifest."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read model manifest {path}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path}: unsupported manifest format {data.get('format') if isinstance(data, dict) else data!r}")
    out = []
    for m in data.get("models", []):
        try:
            # JSON gives any type: a list as a name passed here and broke list_models later (fuzzing)
            for key in ("name", "family", "precision"):
                if not isinstance(m[key], str) or not m[key]:
                    raise ValueError(f"{key!r} must be a non-empty string, not {type(m[key]).__name__}")
            graphs = dict(m["graphs"])
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in graphs.items()):
                raise ValueError("'graphs' must map graph names to file paths (strings)")
            if not all(isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
                       for f in m["files"]):
                raise ValueError("each of 'files' needs a 'path' and a 'sha256' string")
            files = tuple(dict(path=f["path"], sha256=f["sha256"], **({"bytes": f["bytes"]} if "bytes" in f else {}))
                          for f in m["files"])
            listed = {f["path"] for f in files}
            unlisted = [g for g in graphs.values() if g not in listed or g[:-4] + ".bin" not in listed]
            if unlisted:
                raise ModelError(f"{path}: model {m['name']!r} uses files without a sha256: {unlisted}")
            out.append(ModelEntry(
                name=m["name"], family=m["family"], precision=m["precision"], input_size=int(m["input_size"]),
                root=folder, graphs=graphs, files=files, default=bool(m.get("default", False)),
                license=m.get("license", ""), attribution=m.get("attribution", ""),
                source_checkpoint=dict(m.get("source_checkpoint", {}))))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{path}: malformed model entry ({type(e).__name__}: {e})") from e
    return out


@dataclass(frozen=True)
class ModelScan:
    """What the search path holds: the usable models (search-path order) and why others were left out."""

    models: list[ModelEntry]
    warnings: list[str]


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def scan_models(search_path: list[Path] | None = None) -> ModelScan:
    """The models on the search path (see the module's docstring for who wins a name) and warnings
    naming each manifest skipped and each model ignored."""
    bundled = bundled_models_dir()
    warnings: list[str] = []
    folders: list[tuple[Path, list[ModelEntry]]] = []
    for folder in search_path or model_search_path():
        try:
            folders.append((folder, read_manifest(folder)))
        except ModelError as e:
            warnings.append(f"skipped a model manifest: {e}")
    # the bundled folder's manifest cannot vouch for itself: its models must be the ones pinned in the code
    for i, (folder, entries) in enumerate(folders):
        if _same_folder(folder, bundled):
            kept = []
            for e in entries:
                pin = BUNDLED_MODEL_IDS.get(e.name)
                if pin == e.model_id:
                    kept.append(e)
                else:
                    warnings.append(f"ignored bundled model {e.name!r} in {folder / MANIFEST}: "
                                    + ("its files or manifest differ from the model this BoxSeg was built with"
                                       if pin else "not a model this BoxSeg was built with")
                                    + " (engine/inference/pins.py)")
            folders[i] = (folder, kept)
    # a bundled model's name is taken whatever comes earlier on the path: a folder on BOXSEG_MODEL_PATH
    # or in the user's data cannot swap in other weights under the name the user trusts
    taken = {e.name: e for folder, entries in folders if _same_folder(folder, bundled) for e in entries}
    seen: dict[str, ModelEntry] = {}
    for folder, entries in folders:
        for e in entries:
            owner = taken.get(e.name) or seen.get(e.name)
            if owner is not None and owner is not e and not _same_folder(owner.root, e.root):
                why = ("the bundled model of that name is used" if e.name in taken
                       else f"{owner.root / MANIFEST} has a model of that name earlier on the search path")
                warnings.append(f"ignored model {e.name!r} in {folder / MANIFEST}: {why}; rename it in its manifest "
                                "to use it")
                continue
            seen.setdefault(e.name, e)
    return ModelScan(list(seen.values()), warnings)


def list_models(search_path: list[Path] | None = None) -> list[ModelEntry]:
    """The usable models on the search path (:func:`scan_models`); its warnings go to the log."""
    scan = scan_models(search_path)
    for w in scan.warnings:
        log.warning("%s", w)
    return scan.models


def find_model(name: str | None = None, search_path: list[Path] | None = None) -> ModelEntry:
    """The model called ``name``, or the default model when ``name`` is None."""
    models = list_models(search_path)
    if not models:
        where = ", ".join(str(p) for p in (search_path or model_search_path()))
        raise ModelError(f"no models installed (looked in {where}); run `python -m quantization build`")
    if name is None:
        defaults = [m for m in models if m.default] or models
        return defaults[0]
    for m in models:
        if m.name == name:
            return m
    # a family name picks that family's default, else its INT8, else any of its models
    family = sorted((m for m in models if m.family == name),
                    key=lambda m: (not m.default, m.precision != "int8", m.name))
    if family:
        return family[0]
    hint = ""
    if name.startswith("swin"):
        hint = (" — Swin-LiteMedSAM's weights are not shipped with BoxSeg: download the official checkpoint "
                "(linked from github.com/RuochenGao/Swin_LiteMedSAM), then run `python -m quantization build "
                "--arch swin-litemedsam --checkpoint PATH` (needs the 'quantize' extra)")
    raise ModelError(f"model {name!r} not found; installed: {', '.join(m.name for m in models)}{hint}")


__all__ = ["MANIFEST", "MANIFEST_FORMAT", "ModelEntry", "ModelScan", "bundled_models_dir", "find_model", "list_models",
           "model_search_path", "read_manifest", "scan_models", "sha256_file", "user_models_dir"]
