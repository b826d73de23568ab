"""The OpenVINO runtime of one model on the CPU: compiled graphs, one infer request each, cancellable."""

from __future__ import annotations

import threading

import numpy as np

from engine.base.errors import Cancelled, ModelError
from engine.base.sysinfo import available_cores
from engine.inference.families import get_family
from engine.inference.int8_arithmetic import exact_f32
from engine.inference.manifest import ModelEntry
from engine.inference.precision import REQUESTS, resolve

#: inference precision hints OpenVINO is given for the layers that are not INT8
PRECISIONS = ("f32", "bf16")


class Runtime:
    """Compiled OpenVINO graphs of one model on the CPU.

    ``precision`` ("auto", "f32" or "bf16"; :func:`engine.inference.precision.resolve`, kept as
    :attr:`choice`) always becomes an explicit ``INFERENCE_PRECISION_HINT``: OpenVINO would otherwise
    run FP32 IR in BF16 on CPUs with AVX512_BF16/AMX and in f32 elsewhere, so results would depend on
    the machine without anyone having chosen it. ``threads`` = None lets OpenVINO choose. ``int8``
    ("auto", "native", "exact"; :func:`engine.inference.precision.int8_mode`): how INT8 layers run;
    "auto" runs them as exact f32 arithmetic on CPUs whose int8 kernels saturate.

    Each graph has one infer request guarded by a lock; outputs are copied out of OpenVINO's
    reusable output buffers before they are returned.

    Optional graph ``decoder_prefix`` (embedding -> the decoder's image-only projections, see
    :attr:`prefix_outputs`): run once per slice by the session instead of once per prompt. A decoder
    whose ``points`` input has a dynamic length is compiled for 0 points (box-only prompts, the
    common case), which OpenVINO runs faster than the dynamic-shape graph; the dynamic graph is
    compiled when the first prompt with points arrives.
    """

    def __init__(self, entry: ModelEntry, threads: int | None = None, precision: str = "f32", verify: bool = True,
                 int8: str = "auto"):
        import openvino as ov

        if precision not in REQUESTS:
            raise ModelError(f"precision must be one of {REQUESTS}, got {precision!r}")
        #: what ``precision`` means on this CPU, and why (shown by ``boxseg models`` and the app's About)
        self.choice = resolve(precision, int8=int8)
        self.entry = entry
        self._verify = verify
        #: each graph's IR as read (and, with ``verify``, checked against the manifest) once: (xml text,
        #: weights tensor over those bytes). OpenVINO builds every model from these, never from the files,
        #: so a file replaced after the check (e.g. before the point decoder is compiled) is never used.
        #: Kept for the runtime's life: compiled models may share the weights' memory.
        self._ir: dict[str, tuple] = {}
        graph_files = {f for g in entry.graphs for f in entry.graph_files(g)}
        if verify:
            entry.verify(skip=graph_files)  # any other listed file; the graphs are checked as they are read
        for graph in entry.graphs:
            self._read(graph)
        self.core = ov.Core()
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.choice.hint}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
            if int(threads) < available_cores():
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
                    self._add(graph, self._model(graph))
                except RuntimeError as e:
                    raise ModelError(f"OpenVINO cannot load {self.entry.path(graph)}: {str(e).splitlines()[0]}") from e
            return self._compiled[graph]

    def _read(self, graph: str) -> tuple:
        """``graph``'s verified IR in memory (read on first use, then kept)."""
        import openvino as ov

        ir = self._ir.get(graph)
        if ir is None:
            xml, weights = self.entry.read_graph(graph, verify=self._verify)
            # shared_memory: the tensor uses the verified bytearray itself (no second copy to trust)
            ir = (xml, ov.Tensor(np.frombuffer(weights, np.uint8), shared_memory=True), weights)
            self._ir[graph] = ir
        return ir

    def _model(self, graph: str):
        """An OpenVINO model of ``graph`` built from the verified bytes in memory; a graph with quantized
        activations is rewritten as exact f32 arithmetic where :attr:`choice` says so
        (:func:`engine.inference.int8_arithmetic.exact_f32`)."""
        xml, tensor, _ = self._read(graph)
        model = self.core.read_model(xml, tensor)
        if self.choice.int8 == "exact":
            model, _ = exact_f32(model)
        return model

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
            model = self._model("decoder")
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


__all__ = ["PRECISIONS", "Runtime"]
