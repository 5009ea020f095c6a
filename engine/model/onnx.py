"""ONNX models: load a ``.onnx`` file, list its tensors as layers, split the graph at one tensor, run with onnxruntime.

This is the ONNX implementation of the model interface of :mod:`engine.model.base`. ``onnx`` and ``onnxruntime`` are
imported on first use (the ``onnx`` extra installs them).

**Layers.** An ONNX graph is a list of nodes (operators) joined by named tensors. Each tensor that depends on the
model's input is a layer: a graph input is listed under its own name; a node with one output under the node's name
(the names PyTorch's exporters write, ``/layer1/conv1/Conv`` or ``node_conv2d``), or its output tensor's name when the
node is unnamed or the name is taken; a node with several outputs (an ``LSTM``'s ``Y``, ``Y_h``, ``Y_c``) gets one
layer per output, named by the tensor. Wherever a layer name is asked for, the tensor's own name works too. Nodes inside
the sub-graphs of ``If``, ``Loop`` and ``Scan`` nodes are listed just before their parent node, qualified by it
(``If_0/then_branch/Add``) when their own name is taken; they are never cuts. Constants and initializers are not
layers: they do not depend on the input.

**Cuts.** The rule is Keras': a tensor is a valid cut when every path from the graph's inputs to its outputs passes
through it, so that the sub-graph from the input to the tensor (the prefix) and the one from the tensor to the outputs
(the suffix) together compute exactly the model. A sub-graph reads the tensors of its enclosing graph by name, without
listing them as inputs of its node; those count as inputs of the ``If``/``Loop`` node, so a tensor an ``If`` branch
reads crosses every cut between its producer and the ``If``. The valid cuts are the dominators of the outputs in the
tensor graph, found in one pass in graph order; for any other layer the message names a tensor that crosses it (a
skip connection, or a shape computation the exporter left in the graph). A cut must also hold one row per sample: its
first axis the batch axis and no other free dimension; a sequence-first tensor inside an exported recurrent layer, or
a shape that is not fixed, is listed with the reason. Shapes are those ``onnx.shape_inference`` finds, completed where
it leaves the size of a ``Reshape`` to ``(batch, -1)`` free (the values per sample are the input's).

**Running.** The prefix and the suffix are sub-models cut out of the shape-inferred graph by tensor name (the nodes
the requested tensors need, and the initializers those nodes read, including through sub-graphs), each run by one
``onnxruntime.InferenceSession`` (CUDA first where onnxruntime has it, then the CPU), created on first use and shared
by threads. A model exported with a fixed batch size (often 1) runs any batch in chunks of that size, the last one
padded. ONNX files hold no gradients and no training support: activation maximization and fine-tuning are refused.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import CutError, ModelError, UnitError
from engine.model import base
from engine.model.archives import check_weight_count, file_limit
from engine.model.base import Features, Framework, LayerInfo, ModelObjects
from engine.model.onnx_graph import Graph, onnx_module, per_sample, show_shape, tensor_dims
from engine.settings import ONNX_MEMORY_ENV, max_params, onnx_memory

__all__ = ["FRAMEWORK", "Onnx", "OnnxFeatures", "OnnxModel", "OnnxSplit"]

_NO_TRAINING = ("ONNX files hold an inference graph without training support; fine-tune the model in the framework "
                "that exported it")


def _ort():
    import onnxruntime

    return onnxruntime


_arena_lock = threading.Lock()
_arena_limit: int | None = None


def _cpu_arena(ort) -> int:
    """Register, once per process, the CPU memory arena every ONNX session of the process shares, bounded by
    :func:`engine.settings.onnx_memory`: a graph that builds a tensor of more (an ``Expand`` or ``ConstantOfShape`` to
    a shape of billions, a file from the wild) gets an error from ONNX Runtime instead of the memory of a server
    every user shares. Returns the bound in bytes."""
    global _arena_limit
    with _arena_lock:
        if _arena_limit is None:
            limit = onnx_memory()
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({"max_mem": limit}))
            _arena_limit = limit
        return _arena_limit


# -- the loaded model ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class OnnxModel:
    """A loaded ONNX model: the shape-inferred ``ModelProto`` and what is built from it.

    Attributes
    ----------
    proto : onnx.ModelProto
        The model with the shapes ``onnx.shape_inference`` could infer recorded as ``value_info``.
    latent_inspector_file : str
        The file's name, as messages name the model.
    path : Path
    """

    proto: object
    latent_inspector_file: str
    path: Path
    _graph: Graph | None = field(default=None, repr=False)
    _built: dict = field(default_factory=dict, repr=False)  # splits and feature readers, by layer(s)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def graph(self) -> Graph:
        """The analysed main graph (layers, cuts), built on first use."""
        with self._lock:
            if self._graph is None:
                self._graph = Graph(self.proto, self.latent_inspector_file)
            return self._graph

    def built(self, key, build):
        """``build()``, once per ``key`` for this model."""
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _load(path: Path) -> OnnxModel:
    onnx = onnx_module()
    from google.protobuf.message import DecodeError

    size = path.stat().st_size
    if size > file_limit():
        raise ModelError(f"{path}: the file takes {size:,} bytes, more than a model of the {max_params():,} weights "
                         f"this server loads takes ({file_limit():,}; LATENT_INSPECTOR_MAX_PARAMS sets it): refused "
                         "before reading it")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: not a valid ONNX file; it does not parse as an ONNX model (is it truncated, or "
                         "another kind of file?)") from exc
    _check_weights(path, proto)
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
    except (onnx.checker.ValidationError, OSError, ValueError) as exc:  # external data missing or unreadable
        raise ModelError(f"{path}: cannot read the model's external data (weights stored in separate files next to "
                         f"it): {_one_line(exc)}") from exc
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{path}: not an ONNX model; the file holds no graph (is it empty, or another kind of file?)")
    try:
        if proto.ByteSize() < 2**31:
            onnx.checker.check_model(proto)
        else:  # a protobuf over 2 GB cannot be serialized: check the file, with its external data
            onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ModelError(f"{path}: not a valid ONNX model: {_one_line(exc)}") from exc
    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
        if _settle_reshapes(proto):  # and what follows them
            proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # a graph shape inference cannot follow: keep the shapes the file declares
        pass
    return OnnxModel(proto, path.name, path)


#: Bits per value of the ONNX data types whose values take whole bytes (the packed 2- and 4-bit types, and
#: strings, are counted but not compared with the bytes held).
_BITS = {"FLOAT": 32, "UINT8": 8, "INT8": 8, "UINT16": 16, "INT16": 16, "INT32": 32, "INT64": 64, "BOOL": 8,
         "FLOAT16": 16, "DOUBLE": 64, "UINT32": 32, "UINT64": 64, "COMPLEX64": 64, "COMPLEX128": 128,
         "BFLOAT16": 16, "FLOAT8E4M3FN": 8, "FLOAT8E4M3FNUZ": 8, "FLOAT8E5M2": 8, "FLOAT8E5M2FNUZ": 8,
         "FLOAT8E8M0": 8}


def _tensors(graph, where: str):
    """``(tensor, where it is)`` for every tensor a graph holds: its initializers, sparse initializers and the
    tensors of its nodes' attributes (``Constant`` values), in sub-graphs too."""
    for tensor in graph.initializer:
        yield tensor, f"initializer {tensor.name!r}"
    for sparse in graph.sparse_initializer:
        yield sparse.values, f"sparse initializer {sparse.values.name!r}"
        yield sparse.indices, f"indices of sparse initializer {sparse.values.name!r}"
    for node in graph.node:
        yield from _node_tensors(node, where)


def _node_tensors(node, where: str):
    for attr in node.attribute:
        what = f"attribute {attr.name!r} of node {node.name or node.op_type!r}{where}"
        if attr.HasField("t"):
            yield attr.t, what
        for tensor in attr.tensors:
            yield tensor, what
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values, what
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            yield from _tensors(sub, f" in {node.name or node.op_type!r}")


def _external_file(path: Path, tensor, what: str) -> tuple[Path, int, int | None]:
    """The file, offset and length of a tensor's external data, refused when it lies outside the model's folder."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    parts = location.replace("\\", "/").split("/")
    if not location or Path(location).is_absolute() or location.startswith(("/", "\\")) or ":" in parts[0] \
            or ".." in parts:
        raise ModelError(f"{path}: {what} keeps its values in {location!r}, which is not a file name inside the "
                         f"model's folder (an absolute path or one through '..'): refused")
    folder = path.parent.resolve()
    target = (folder / location).resolve()
    if not target.is_relative_to(folder):
        raise ModelError(f"{path}: {what} keeps its values in {location!r}, a link to {target}, outside the model's "
                         f"folder {folder}: refused")
    if not target.is_file():
        raise ModelError(f"{path}: cannot read the model's external data: {what} keeps its values in {location!r}, "
                         f"which is {'not a plain file' if target.exists() else 'missing'} in the model's folder "
                         f"{folder}")
    try:
        offset = int(info.get("offset") or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        raise ModelError(f"{path}: {what} gives its external data an offset or length that is not a whole number "
                         f"({info.get('offset')!r}, {info.get('length')!r})") from None
    return target, offset, length


def _check_weights(path: Path, proto) -> None:
    """Refuse, before any weight is read from an external file or handed to onnxruntime, a model whose tensors
    declare more values than ``LATENT_INSPECTOR_MAX_PARAMS``, or more bytes than the file (or their external file)
    holds for them, or whose external data lies outside the model's folder (an absolute path, ``..``, a symbolic
    link out of it) or would read more than the limit allows in all.

    Raises
    ------
    ModelError
        Naming the tensor, its declared shape, the bytes held or the file it points to.
    """
    onnx = onnx_module()
    declared, biggest, external = 0, (0, ""), 0
    found = list(_tensors(proto.graph, ""))
    for function in proto.functions:
        for node in function.node:
            found.extend(_node_tensors(node, f" in function {function.name!r}"))
    for tensor, what in found:
        dims = list(tensor.dims)
        if any(d < 0 for d in dims):
            raise ModelError(f"{path}: {what} declares the shape {tuple(dims)}, with a negative size")
        count = math.prod(dims)
        declared += count
        shape = " x ".join(f"{d:,}" for d in dims) or "one value"
        biggest = max(biggest, (count, f"{what}, {shape}"))
        dtype = onnx.TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in \
            onnx.TensorProto.DataType.values() else None
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            target, offset, length = _external_file(path, tensor, what)
            available = max(target.stat().st_size - offset, 0)
            held = available if length is None else min(length, available)
            if length is not None and length > available:
                raise ModelError(f"{path}: {what} reads {length:,} bytes at offset {offset:,} of {target.name}, "
                                 f"which holds {target.stat().st_size:,}: the external data is truncated")
            external += held
        elif tensor.HasField("raw_data"):
            held = len(tensor.raw_data)
        else:
            typed = (len(tensor.float_data) + len(tensor.int32_data) + len(tensor.int64_data)
                     + len(tensor.double_data) + len(tensor.uint64_data))
            if dtype in ("COMPLEX64", "COMPLEX128"):
                typed //= 2
            held = None if dtype == "STRING" else typed * _BITS.get(dtype, 8) // 8
        bits = _BITS.get(dtype)
        if bits is not None and held is not None and count * bits // 8 > held:
            raise ModelError(f"{path}: {what} declares {shape} {dtype} values ({count * bits // 8:,} bytes), and "
                             f"the file holds {held:,} bytes for it: the file does not match its own graph; refused "
                             "before reading its weights")
    check_weight_count(path, declared, biggest[1])
    total = path.stat().st_size + external
    if total > file_limit():
        raise ModelError(f"{path}: the model and its external data take {total:,} bytes, more than a model of the "
                         f"{max_params():,} weights this server loads takes ({file_limit():,}; "
                         "LATENT_INSPECTOR_MAX_PARAMS sets it): refused before reading them")


def _settle_reshapes(proto) -> bool:
    """Fill in the one free dimension shape inference leaves in the output of a ``Reshape`` to ``(batch, -1)``
    computed from the input's shape (``x.view(x.size(0), -1)`` as PyTorch's older exporter writes it): the values
    per sample are those of its input. Returns whether a shape changed."""
    infos = {v.name: v for v in (*proto.graph.value_info, *proto.graph.output)}
    infos.update((v.name, v) for v in proto.graph.input)
    changed = False
    for node in proto.graph.node:
        if node.op_type != "Reshape" or node.input[0] not in infos or node.output[0] not in infos:
            continue
        source, target = tensor_dims(infos[node.input[0]].type), infos[node.output[0]].type.tensor_type.shape.dim
        dims = tensor_dims(infos[node.output[0]].type)
        if not source or not dims or source[0] != dims[0] or not all(isinstance(d, int) for d in source[1:]):
            continue
        free = [k for k, d in enumerate(dims) if k > 0 and not isinstance(d, int)]
        known = int(np.prod([d for d in dims[1:] if isinstance(d, int)], dtype=np.int64))
        size = int(np.prod(source[1:], dtype=np.int64))
        if len(free) == 1 and known > 0 and size % known == 0:
            target[free[0]].Clear()
            target[free[0]].dim_value = size // known
            changed = True
    return changed


class _Session:
    """One onnxruntime session over a sub-model, created on first use (thread-safe), run in chunks of the model's
    fixed batch size when it has one."""

    def __init__(self, graph: Graph, inputs: list[str], outputs: list[str], what: str):
        self.graph, self.inputs, self.outputs, self.what = graph, inputs, outputs, what
        self._session = None
        self._lock = threading.Lock()
        self.limit = 0  # bytes ONNX Runtime may hold (the process's arena), once the session exists

    def _get(self):
        with self._lock:
            if self._session is None:
                ort = _ort()
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3  # errors only: no warnings about the graph on the console
                self.limit = _cpu_arena(ort)
                options.add_session_config_entry("session.use_env_allocators", "1")  # the bounded arena
                data = self.graph.extract(self.inputs, self.outputs).SerializeToString()
                providers = ["CPUExecutionProvider"]
                if "CUDAExecutionProvider" in ort.get_available_providers():
                    providers.insert(0, "CUDAExecutionProvider")
                try:
                    self._session = ort.InferenceSession(data, options, providers=providers)
                except Exception as exc:  # onnxruntime raises its own Fail, InvalidGraph, NotImplemented...
                    raise ModelError(f"model {self.graph.label!r}: onnxruntime cannot run {self.what}: "
                                     f"{_one_line(exc)}") from exc
            return self._session

    def _run(self, session, feed: dict) -> list[np.ndarray]:
        try:
            return session.run(None, feed)
        except Exception as exc:  # onnxruntime's own Fail; its message names the arena when memory ran out
            text = str(exc)
            if "Available memory of" not in text:
                raise
            wanted = text.split("requested bytes of ", 1)[1].split()[0] if "requested bytes of " in text else "?"
            wanted = f"{int(wanted):,}" if wanted.isdigit() else wanted
            raise ModelError(f"model {self.graph.label!r}: {self.what} needs a tensor of {wanted} bytes, more than "
                             f"ONNX Runtime may hold for this process ({self.limit:,} bytes; {ONNX_MEMORY_ENV} "
                             "sets it, in GiB): refused before allocating it") from None

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        session, feed, fixed = self._get(), self.inputs[0], self.graph.fixed_batch
        x, n = np.ascontiguousarray(x), len(x)
        if fixed is None and n > 0:
            return self._run(session, {feed: x})
        size = fixed or 1  # an empty batch runs one padded sample, so that the outputs have their shapes
        parts = []
        for start in range(0, max(n, 1), size):
            chunk = x[start:start + size]
            k = len(chunk)
            if k < size:
                chunk = np.concatenate([chunk, np.zeros((size - k, *x.shape[1:]), x.dtype)])
            parts.append([out[:k] for out in self._run(session, {feed: chunk})])
        return [np.concatenate(outs) for outs in zip(*parts)]


# -- splits and features ------------------------------------------------------------------------------------------


class OnnxSplit(base.Split):
    """An ONNX model cut at one tensor: the prefix is the sub-graph from the input to the tensor, the suffix the one
    from the tensor to the outputs (a cut at the input or at the output gives an identity graph).

    Parameters
    ----------
    model : OnnxModel
    layer : str
        A layer name from :meth:`Onnx.list_layers` (or a tensor name).

    Raises
    ------
    CutError
        No such layer, or a tensor that crosses the cut, or a cut that cannot hold one row per sample.
    """

    def __init__(self, model: OnnxModel, layer: str):
        graph = model.graph()
        FRAMEWORK.require_single_input(model)
        entry = graph.find(layer, CutError)
        reason = graph.why_not(entry)
        if reason is not None:
            raise CutError(f"cannot cut model {graph.label!r} at {layer!r}: {reason}; "
                           f"{graph.nearby_cuts(entry.name)}")
        self.framework, self.model, self.layer = FRAMEWORK, model, layer
        self.tensor = entry.tensor
        self.latent_shape = per_sample(entry.dims)
        source = graph.inputs[0]
        self.input_shape = per_sample(graph.input_dims(source))
        self.input_dtype = graph.dtype(source).name
        self.output_names = tuple(graph.tensor_name(t) for t in graph.outputs)
        self.output_shapes = tuple(per_sample(tensor_dims(graph.types.get(t))) for t in graph.outputs)
        self._latent_dtype = graph.dtype(entry.tensor)
        self._prefix = _Session(graph, [source], [entry.tensor], f"the prefix up to {layer!r}")
        self._suffix = _Session(graph, [entry.tensor], graph.outputs, f"the suffix after {layer!r}")

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self._prefix(x)[0]

    def _decode(self, z: np.ndarray) -> list[np.ndarray]:
        return self._suffix(z.astype(self._latent_dtype, copy=False))


class OnnxFeatures(Features):
    """The values of any tensors of the main graph (valid cuts or not) for a batch of inputs: one sub-model from the
    input to all of them."""

    def __init__(self, model: OnnxModel, layers: tuple):
        graph = model.graph()
        self.layers = layers
        self.tensors = [_tensor(model, layer)[1] for layer in layers]
        source = graph.inputs[0]
        self.input_shape = per_sample(graph.input_dims(source))
        self._dtype = graph.dtype(source)
        self._session = _Session(graph, [source], list(dict.fromkeys(self.tensors)), "the layers asked for")

    def __call__(self, x) -> list[np.ndarray]:
        values = dict(zip(self._session.outputs, self._session(self.conform(x).astype(self._dtype, copy=False))))
        return [np.asarray(values[t], dtype=np.float32) for t in self.tensors]

    def ascent(self, terms, spatial_axes):
        raise ModelError("activation maximization needs gradients, which ONNX models do not have; use top dataset "
                         "examples (which work), or load the PyTorch or Keras model the ONNX file was exported from")


def _tensor(model: OnnxModel, layer: str | None) -> tuple[Graph, str]:
    """The main-graph tensor of ``layer`` (``None``: the model's only output); :class:`UnitError` otherwise."""
    graph = model.graph()
    FRAMEWORK.require_single_input(model)
    if layer is None:
        if len(graph.outputs) != 1:
            raise UnitError(f"model {graph.label!r} has {len(graph.outputs)} outputs; name the layer to use")
        return graph, graph.outputs[0]
    entry = graph.find(layer, UnitError)
    if entry.inside is not None:
        raise UnitError(f"layer {layer!r} of model {graph.label!r} is inside {entry.inside}, whose values are not "
                        "visible outside it; choose a layer of the main graph")
    if entry.dims and not graph.batch_first(entry.dims):
        raise UnitError(f"layer {layer!r} of model {graph.label!r} has shape {show_shape(entry.dims)}, whose first "
                        "axis is not the batch axis; choose a layer with one row per sample")
    return graph, entry.tensor


# -- the framework --------------------------------------------------------------------------------------------------


class Onnx(Framework):
    """ONNX models (``.onnx``), run with onnxruntime; no gradients, no fine-tuning."""

    name = "onnx"
    title = "ONNX"
    suffixes = (".onnx",)
    requires = ("onnx", "onnxruntime")
    extra = "onnx"
    gradients = False
    trainable = False

    def load(self, path, *, trust: bool = False, objects: ModelObjects | None = None) -> OnnxModel:
        """Load a ``.onnx`` file (with its external data), check it and infer its shapes.

        ``trust`` and ``objects`` do not apply: an ONNX file holds no code.

        Raises
        ------
        ModelError
            The packages are missing (naming the extra), or the file is missing, not ``.onnx``, truncated or not
            ONNX, rejected by the ONNX checker, or its external data is missing; one line naming the file.
        """
        path = Path(path)
        self.require(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        if path.suffix.lower() not in self.suffixes:
            raise ModelError(f"{path}: not an ONNX model file; expected a file ending in .onnx")
        return _load(path)

    def owns(self, model) -> bool:
        return isinstance(model, OnnxModel)

    def list_layers(self, model: OnnxModel) -> list[LayerInfo]:
        """Every layer (graph input, node output, node of a sub-graph) in graph order, with its per-sample shape and
        whether it is a valid cut (see the module's documentation for the names and the rule)."""
        return list(model.graph().infos)

    def input_specs(self, model: OnnxModel) -> list[tuple[str, tuple, str]]:
        graph = model.graph()
        return [(graph.tensor_name(t), per_sample(graph.input_dims(t)), graph.dtype(t).name) for t in graph.inputs]

    def output_specs(self, model: OnnxModel) -> list[tuple[str, tuple, str | None]]:
        """``(name, per-sample shape, activation)`` of each output: the name of the layer that produces it, and its
        final activation (``"softmax"``, ``"sigmoid"``, ``"log_softmax"``, ``"linear"`` for a ``Gemm``...) looked for
        through shape-only operators, or None."""
        graph = model.graph()
        return [(graph.tensor_name(t), per_sample(tensor_dims(graph.types.get(t))), graph.activation(t))
                for t in graph.outputs]

    def split(self, model: OnnxModel, layer: str) -> OnnxSplit:
        """The :class:`OnnxSplit` at ``layer``, built once per model and layer."""
        return model.built(("split", layer), lambda: OnnxSplit(model, layer))

    def layer_shape(self, model: OnnxModel, layer: str | None) -> tuple:
        graph, tensor = _tensor(model, layer)
        return per_sample(tensor_dims(graph.types.get(tensor)))

    def channel_axis(self, model: OnnxModel, layer: str | None) -> int:
        graph, tensor = _tensor(model, layer)
        return graph.channel_axis(tensor)

    def features(self, model: OnnxModel, layers) -> OnnxFeatures:
        layers = tuple(layers)
        return model.built(("features", layers), lambda: OnnxFeatures(model, layers))

    def train_suffix(self, split, z, y, **kwargs) -> list[float]:
        raise ModelError(f"fine-tuning is not available for ONNX models: {_NO_TRAINING}")

    def train_prefix(self, split, x, z, weights, **kwargs) -> list[float]:
        raise ModelError(f"refining the layers before a cut is not available for ONNX models: {_NO_TRAINING}")

    def save(self, model, path) -> None:
        raise ModelError(f"saving a fine-tuned version is not available for ONNX models: {_NO_TRAINING}")


FRAMEWORK = Onnx()
