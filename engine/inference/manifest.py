"""Model manifests (verified by sha256) and the OpenVINO runtime that runs them.

A model folder holds IR files and a ``manifest.json``::

    {"format": 1,
     "models": [{"name": "litemedsam-int8", "family": "litemedsam", "precision": "int8",
                 "input_size": 256, "default": true,
                 "graphs": {"encoder": "litemedsam/encoder_int8.xml", "decoder": "litemedsam/decoder_fp32.xml"},
                 "files": [{"path": "litemedsam/encoder_int8.xml", "sha256": "...", "bytes": 123}, ...],
                 "source_checkpoint": {"file": "lite_medsam.pth", "sha256": "...", "origin": "..."},
                 "license": "Apache-2.0", "attribution": "LICENSE-litemedsam.txt"}]}

Every file a model uses is checked against its sha256 before it is compiled; a mismatch or a
missing file raises :class:`~engine.base.errors.ModelError` naming the file.

Search path (first match of a name wins): ``$BOXSEG_MODEL_PATH`` (os.pathsep-separated folders),
the user's model folder (``platformdirs.user_data_dir("BoxSeg")/models``), the bundled
``assets/models``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import ModelError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
PRECISIONS = ("f32", "bf16")


def bundled_models_dir() -> Path:
    """``assets/models`` of a source checkout, editable install or frozen (PyInstaller) bundle."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))
    return base / "assets" / "models"


def user_models_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("BoxSeg", appauthor=False)) / "models"


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
    def model_id(self) -> str:
        """sha256 over the digests of all files: the model part of embedding-cache keys."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f["path"]):
            h.update(f"{f['path']}={f['sha256']};".encode())
        return h.hexdigest()

    def check(self) -> list[str]:
        """Problems with this model's files (empty list = all files present with matching sha256)."""
        problems = []
        for f in self.files:
            p = self.root / f["path"]
            if not p.is_file():
                problems.append(f"missing file {p}")
            elif "bytes" in f and p.stat().st_size != f["bytes"]:
                problems.append(f"{p}: {p.stat().st_size} bytes, manifest says {f['bytes']}")
            elif sha256_file(p) != f["sha256"]:
                problems.append(f"{p}: sha256 does not match the manifest (file changed or corrupt)")
        return problems

    def verify(self) -> None:
        problems = self.check()
        if problems:
            raise ModelError(f"model {self.name!r} failed verification: {problems[0]}"
                             + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))


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
            graphs = dict(m["graphs"])
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


def list_models(search_path: list[Path] | None = None) -> list[ModelEntry]:
    """All models on the search path; earlier folders shadow later ones with the same name."""
    seen: dict[str, ModelEntry] = {}
    for folder in search_path or model_search_path():
        for entry in read_manifest(folder):
            seen.setdefault(entry.name, entry)
    return list(seen.values())


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


def _available_cores() -> int:
    """Logical CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Runtime:
    """Compiled OpenVINO graphs of one model on the CPU.

    ``precision`` sets ``INFERENCE_PRECISION_HINT`` explicitly ("f32" or "bf16"): OpenVINO would
    otherwise run FP32 IR in BF16 on CPUs with AVX512_BF16/AMX and in f32 elsewhere, so results
    would depend on the machine. ``threads`` = None lets OpenVINO choose.

    Each graph has one infer request guarded by a lock; outputs are copied out of OpenVINO's
    reusable output buffers before they are returned.

    Optional graph ``decoder_prefix`` (embedding -> the decoder's image-only projections, see
    :attr:`prefix_outputs`): run once per slice by the session instead of once per prompt. A decoder
    whose ``points`` input has a dynamic length is compiled for 0 points (box-only prompts, the
    common case), which OpenVINO runs faster than the dynamic-shape graph; the dynamic graph is
    compiled when the first prompt with points arrives.
    """

    def __init__(self, entry: ModelEntry, threads: int | None = None, precision: str = "f32", verify: bool = True):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if verify:
            entry.verify()
        self.entry = entry
        self.core = ov.Core()
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
            if int(threads) < _available_cores():
                # OpenVINO pins a LATENCY stream's threads to the first cores: two 1-thread processes
                # (batch workers) would then share core 0 and run at half speed (measured: 1068 vs
                # 534 ms per encode on 2 cores). Unpinned, the OS spreads them.
                self.config["ENABLE_CPU_PINNING"] = False
        self._compiled: dict = {}
        self._requests: dict = {}
        # output names as the IR file gives them: compiling may fuse a tensor into its neighbours and
        # give the compiled port several names (get_any_name() could then be any of them)
        self._output_names: dict[str, list[str]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._compile_lock = threading.Lock()
        self.compile("encoder")
        #: outputs of the decoder prefix (fed to the decoder by name); empty without a prefix graph
        self.prefix_outputs: tuple[str, ...] = ()
        if "decoder_prefix" in entry.graphs:
            self.compile("decoder_prefix")
            self.prefix_outputs = tuple(self._output_names["decoder_prefix"])
        self._box_only = self._compile_box_only()
        if self._box_only is None:
            self.compile("decoder")
        # else the dynamic-shape decoder (prompts with points) is compiled on first use: ~0.5 s once,
        # and ~75 MiB less memory for sessions that only ever see boxes (batch, propagation)
        from engine.inference.families import get_family

        missing = set(get_family(entry.family).encoder_outputs) - set(self._output_names["encoder"])
        if missing:
            raise ModelError(f"model {entry.name!r}: encoder lacks outputs {sorted(missing)} of family {entry.family!r}")

    def compile(self, graph: str):
        compiled = self._compiled.get(graph)
        if compiled is not None:
            return compiled  # no lock: a compile running in the background must not hold up inference
        with self._compile_lock:
            if graph not in self._compiled:
                try:
                    self._add(graph, self.core.read_model(str(self.entry.path(graph))))
                except RuntimeError as e:
                    raise ModelError(f"OpenVINO cannot load {self.entry.path(graph)}: {str(e).splitlines()[0]}") from e
            return self._compiled[graph]

    def _add(self, key: str, model) -> None:
        """Compile ``model`` and register it as graph ``key`` (call with ``_compile_lock`` held)."""
        compiled = self.core.compile_model(model, "CPU", self.config)
        self._output_names[key] = [o.get_any_name() for o in model.outputs]
        self._requests[key] = compiled.create_infer_request()
        self._locks[key] = threading.Lock()
        self._compiled[key] = compiled  # last: compile()'s lock-free check reads this one

    def compile_in_background(self, graph: str = "decoder") -> threading.Thread:
        """Compile ``graph`` on a daemon thread (e.g. the dynamic-shape decoder, ~0.5 s, so that the
        first click on a point does not wait for it). Inference of other graphs goes on meanwhile;
        a request for ``graph`` itself waits for the compilation. Errors surface on that request."""
        def run():
            try:
                self.compile(graph)
            except ModelError:
                pass  # raised again, with its message, when the graph is first used

        t = threading.Thread(target=run, name=f"compile-{graph}", daemon=True)
        t.start()
        return t

    def _compile_box_only(self) -> str | None:
        """Compile ``decoder`` for zero points when its point count is dynamic; returns the graph key."""
        key = "decoder@box"
        try:
            model = self.core.read_model(str(self.entry.path("decoder")))
            names = {n for i in model.inputs for n in i.get_names()}
            if not {"points", "labels"} <= names or not model.input("points").get_partial_shape()[1].is_dynamic:
                return None
            model.reshape({"points": [1, 0, 2], "labels": [1, 0]})
            with self._compile_lock:
                self._add(key, model)
        except RuntimeError:
            return None  # the dynamic graph still serves box-only prompts
        return key

    @property
    def precision(self) -> str:
        """The inference precision OpenVINO actually uses for the encoder (e.g. 'f32')."""
        hint = str(self._compiled["encoder"].get_property("INFERENCE_PRECISION_HINT"))
        return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(hint.split("'")[1] if "'" in hint else hint, hint)

    @property
    def threads(self) -> int:
        return int(self._compiled["encoder"].get_property("INFERENCE_NUM_THREADS"))

    def infer(self, graph: str, inputs: dict[str, np.ndarray], should_stop=None) -> dict[str, np.ndarray]:
        """Run one graph; returns fresh copies of all outputs, keyed by output name.

        should_stop: optional callable polled every 10 ms while the graph runs; when it returns
        True the inference is cancelled (OpenVINO stops within milliseconds) and
        :class:`~engine.base.errors.Cancelled` is raised - how a background encode yields to the user.
        """
        if graph == "decoder" and self._box_only and inputs.get("points") is not None and inputs["points"].shape[1] == 0:
            graph = self._box_only
        compiled = self.compile(graph)
        req = self._requests[graph]
        with self._locks[graph]:
            # share_inputs: OpenVINO reads the numpy arrays in place instead of copying them (the decoder's
            # inputs are ~18 MiB: embedding, prefix outputs); they stay referenced and unchanged until
            # the request has finished, which is always awaited here
            if should_stop is None:
                req.infer(inputs, share_inputs=True)
            else:
                from engine.base.errors import Cancelled

                if should_stop():
                    raise Cancelled(f"{graph} not started")
                req.start_async(inputs, share_inputs=True)
                while not req.wait_for(10):
                    if should_stop():
                        req.cancel()
                        try:
                            req.wait()
                        except RuntimeError:
                            pass  # OpenVINO reports the cancellation as an error
                        raise Cancelled(f"{graph} inference cancelled")
            # copy: the request reuses its output buffers on the next call
            return {name: np.array(req.get_tensor(o).data, copy=True)
                    for name, o in zip(self._output_names[graph], compiled.outputs)}
