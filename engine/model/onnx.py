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

import bisect
import difflib
import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

import numpy as np

from engine.errors import CutError, ModelError, UnitError
from engine.model import base
from engine.model.archives import check_weight_count, file_limit
from engine.model.base import Features, Framework, LayerInfo, ModelObjects, nearby_cuts
from engine.settings import ONNX_MEMORY_ENV, max_params, onnx_memory

__all__ = ["FRAMEWORK", "Onnx", "OnnxFeatures", "OnnxModel", "OnnxSplit"]

#: Operators whose per-sample output of rank 2 or more holds channels on axis 0 (``(C, H, W)``, ``(C, L)``).
_CHANNEL_OPS = frozenset({
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "GlobalLpPool", "BatchNormalization", "InstanceNormalization", "LRN", "MaxUnpool",
})
#: Element-wise operators: their output keeps the layout of their (first non-constant) input.
_ELEMENTWISE = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus",
    "Softsign", "Gelu", "Mish", "Clip", "Identity", "Dropout", "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Cast",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
})
#: Operators that only move values: the activation of an output is looked for before them.
_SHAPE_ONLY = frozenset({"Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Transpose", "Dropout"})
_ACTIVATIONS = {
    "Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid", "Relu": "relu", "Tanh": "tanh",
    "Elu": "elu", "Selu": "selu", "LeakyRelu": "leaky_relu", "Softplus": "softplus", "HardSigmoid": "hard_sigmoid",
    "Gelu": "gelu", "Gemm": "linear", "MatMul": "linear", "Conv": "linear", "ConvTranspose": "linear",
}
_NO_TRAINING = ("ONNX files hold an inference graph without training support; fine-tune the model in the framework "
                "that exported it")
_SOURCE, _SINK = "\0inputs", "\0outputs"  # the virtual ends of the tensor graph, for the dominator pass


def _onnx():
    import onnx

    return onnx


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
    _graph: _Graph | None = field(default=None, repr=False)
    _built: dict = field(default_factory=dict, repr=False)  # splits and feature readers, by layer(s)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def graph(self) -> _Graph:
        """The analysed main graph (layers, cuts), built on first use."""
        with self._lock:
            if self._graph is None:
                self._graph = _Graph(self.proto, self.latent_inspector_file)
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
    onnx = _onnx()
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
    onnx = _onnx()
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
        source, target = _dims(infos[node.input[0]].type), infos[node.output[0]].type.tensor_type.shape.dim
        dims = _dims(infos[node.output[0]].type)
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


# -- the graph ------------------------------------------------------------------------------------------------------


def _dims(type_proto) -> tuple | None:
    """Dimensions of a tensor type: ints, a str for a named free dimension, None for an unnamed one; None when the
    rank is unknown."""
    if type_proto is None or not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in type_proto.tensor_type.shape.dim)


def _per_sample(dims: tuple | None) -> tuple:
    """Per-sample shape of a tensor (no batch axis), ``None`` for a free dimension."""
    if not dims:
        return ()
    return tuple(d if isinstance(d, int) else None for d in dims[1:])


def _show(dims: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + (",)" if len(dims) == 1 else ")")


def _subgraphs(node):
    """``(attribute name, GraphProto)`` of each sub-graph of a node (``If``, ``Loop``, ``Scan``)."""
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.name, attr.g
        for k, g in enumerate(attr.graphs):
            yield f"{attr.name}[{k}]", g


def _outer_names(node) -> set:
    """Tensors of the enclosing graph that a node's sub-graphs read by name (their implicit inputs)."""
    names = set()
    for _, g in _subgraphs(node):
        defined = {v.name for v in g.input} | {t.name for t in g.initializer}
        defined |= {t.values.name for t in g.sparse_initializer}
        used = {v.name for v in g.output}
        for n in g.node:
            used.update(t for t in n.input if t)
            used |= _outer_names(n)
            defined.update(n.output)
        names |= used - defined
    return names


@dataclass
class _Layer:
    name: str
    op_type: str
    tensor: str
    dims: tuple | None
    inside: str | None = None  # "the 'then_branch' sub-graph of node 'If_0'" for a node of a sub-graph


class _Graph:
    """The main graph of a model as the cut rule sees it: tensors, the nodes that produce and read them, the layers,
    and the valid cuts."""

    def __init__(self, proto, label: str):
        graph = proto.graph
        self.proto, self.label = proto, label
        inits = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
        self.types = {v.name: v.type for v in (*graph.value_info, *graph.input, *graph.output)}
        self.inputs = [v.name for v in graph.input if v.name not in inits]
        self.outputs = [v.name for v in graph.output]
        self.nodes = list(graph.node)
        # every name a node reads (its inputs, and what its sub-graphs read from outside); the data inputs leave out
        # the initializers, which are constants
        self.reads = [[*(t for t in n.input if t), *sorted(_outer_names(n))] for n in self.nodes]
        self.data = [list(dict.fromkeys(t for t in r if t not in inits)) for r in self.reads]
        self.outs = [[t for t in n.output if t] for n in self.nodes]
        self.producer = {t: -1 for t in self.inputs}
        self.consumers = defaultdict(list)
        for i in range(len(self.nodes)):
            self.producer.update((t, i) for t in self.outs[i])
            for t in self.data[i]:
                self.consumers[t].append(i)
        self.reached = self._spread(self.inputs)  # depends on the inputs
        self.data_reached = self._spread(self.inputs, through_shapes=False)  # ... through more than their shapes
        self.feeds_outputs = self._feeding(self.outputs)
        first = self.input_dims(self.inputs[0]) if len(self.inputs) == 1 else None
        #: The batch size the model was exported with, when fixed; None when free.
        self.fixed_batch = first[0] if first and isinstance(first[0], int) and first[0] > 0 else None
        self._dominators()
        self.layers = self._list()
        self.by_name = {layer.name: layer for layer in self.layers}
        self.by_tensor = {layer.tensor: layer for layer in self.layers if layer.inside is None}
        self.infos = [self._info(layer) for layer in self.layers]

    def input_dims(self, name):
        return _dims(self.types.get(name))

    def _spread(self, start, avoid=None, limit=None, through_shapes=True) -> set:
        """Tensors reachable from ``start`` not passing through ``avoid`` nor nodes after index ``limit``."""
        seen, queue = set(), deque(t for t in start if t != avoid)
        while queue:
            t = queue.popleft()
            if t in seen:
                continue
            seen.add(t)
            for i in self.consumers.get(t, ()):
                if (limit is None or i <= limit) and (through_shapes or self.nodes[i].op_type not in ("Shape", "Size")):
                    queue.extend(o for o in self.outs[i] if o != avoid)
        return seen

    def _feeding(self, targets) -> set:
        """Tensors from which one of ``targets`` is reachable."""
        seen, stack = set(), list(targets)
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            i = self.producer.get(t, -1)
            if i >= 0:
                stack.extend(self.data[i])
        return seen

    def _dominators(self) -> None:
        """The valid cuts: the tensors on every path from the inputs to the outputs, i.e. the dominators of a virtual
        sink fed by the outputs, with a virtual source feeding the inputs (one pass in graph order: ONNX graphs are
        topologically sorted)."""
        idom, depth = {_SOURCE: None}, {_SOURCE: 0}

        def common(a, b):
            while a != b:
                if depth[a] < depth[b]:
                    a, b = b, a
                a = idom[a]
            return a

        def enter(tensors, preds):
            preds = [p for p in preds if p in idom]
            if preds:
                d = reduce(common, preds)
                for t in tensors:
                    idom[t], depth[t] = d, depth[d] + 1

        enter(self.inputs, [_SOURCE])
        for i in range(len(self.nodes)):
            enter(self.outs[i], self.data[i])
        enter([_SINK], list(dict.fromkeys(self.outputs)))
        chain, t = [], idom.get(_SINK)
        while t is not None and t != _SOURCE:
            chain.append(t)
            t = idom[t]
        self.cuts = set(chain)
        #: the valid cuts in graph order, with their positions (the index of the producing node)
        self.chain = sorted(chain, key=self.position)
        self.chain_positions = [self.position(t) for t in self.chain]

    def position(self, tensor) -> int:
        return self.producer.get(tensor, -1)

    # -- layers

    def _list(self) -> list[_Layer]:
        layers, used = [], set()
        # a node's own name is kept for it: an unnamed node's tensor name, or a sub-graph's node, yields to it
        reserved = {n.name for i, n in enumerate(self.nodes) if n.name and len(self.outs[i]) == 1}

        def unique(name, own=False):
            stem, k = name, 1
            while name in used or (name in reserved and not (own and name == stem)):
                name, k = f"{stem}:{k}", k + 1
            used.add(name)
            return name

        for t in self.inputs:
            layers.append(_Layer(unique(t, own=True), "Input", t, self.input_dims(t)))
        for i, node in enumerate(self.nodes):
            if not any(t in self.reached for t in self.outs[i]):
                continue  # a constant
            own = node.name or (self.outs[i][0] if self.outs[i] else node.op_type)
            for attr, sub in _subgraphs(node):
                self._list_inner(sub, f"{own}/{attr}", f"the {attr!r} sub-graph of node {own!r}", layers, unique,
                                 lambda name: name in used or name in reserved)
            if len(self.outs[i]) == 1 and node.name:
                named = [(unique(node.name, own=True), self.outs[i][0])]
            else:
                named = [(unique(t), t) for t in self.outs[i]]
            layers.extend(_Layer(name, node.op_type, t, _dims(self.types.get(t))) for name, t in named)
        return layers

    def _list_inner(self, graph, prefix: str, inside: str, layers: list, unique, taken) -> None:
        """List the nodes of a sub-graph (never cuts), named by their own name unless it is ``taken``, then qualified
        by ``prefix``."""
        types = {v.name: v.type for v in (*graph.value_info, *graph.input, *graph.output)}
        for node in graph.node:
            if node.op_type == "Constant":
                continue
            outs = [t for t in node.output if t]
            own = node.name or (outs[0] if outs else node.op_type)
            for attr, sub in _subgraphs(node):
                self._list_inner(sub, f"{prefix}/{own}/{attr}", f"the {attr!r} sub-graph of node {own!r}", layers,
                                 unique, taken)
            for t in ([outs[0]] if len(outs) == 1 and node.name else outs):
                name = node.name if len(outs) == 1 and node.name else t
                name = unique(f"{prefix}/{name}" if taken(name) else name)
                layers.append(_Layer(name, node.op_type, t, _dims(types.get(t)), inside))

    def node_name(self, i: int) -> str:
        """How messages name node ``i``: by its (first) layer's name."""
        layer = self.by_tensor.get(self.outs[i][0]) if self.outs[i] else None
        return layer.name if layer else (self.nodes[i].name or self.nodes[i].op_type)

    def tensor_name(self, tensor) -> str:
        layer = self.by_tensor.get(tensor)
        return layer.name if layer else tensor

    def _info(self, layer: _Layer) -> LayerInfo:
        reason = self.why_not(layer)
        shape = (None, *_per_sample(layer.dims)) if layer.dims else (None,)
        return LayerInfo(layer.name, layer.op_type, shape, reason is None, reason,
                         self.channel_axis(layer.tensor) if layer.inside is None else -1)

    # -- the cut rule

    def why_not(self, layer: _Layer) -> str | None:
        """Why ``layer`` is not a valid cut (None when it is)."""
        if layer.inside is not None:
            return f"it is inside {layer.inside}; a cut must be a tensor of the main graph"
        t = layer.tensor
        if t not in self.cuts:
            return self._crossing(t)
        return self.shape_problem(layer.dims)

    def shape_problem(self, dims) -> str | None:
        """Why a tensor of dimensions ``dims`` cannot hold one row of activations per sample (None when it can)."""
        if dims is None:
            return "its shape cannot be inferred from the graph; a cut needs a known shape"
        if not dims:
            return "it is a scalar, with no batch axis"
        if not self.batch_first(dims):
            return (f"its first axis is not the batch axis (shape {_show(dims)}); a cut must hold one row per sample, "
                    "as after the recurrent layer of an exported RNN rather than inside it")
        if any(not isinstance(d, int) for d in dims[1:]):
            return (f"its shape {_show(dims)} has a free dimension besides the batch; a cut needs a fixed size per "
                    "sample (export the model with fixed sizes for every axis but the batch)")
        return None

    def batch_first(self, dims: tuple) -> bool:
        """The first of ``dims`` is the batch axis: free when the model's batch size is, that size when fixed."""
        return dims[0] == self.fixed_batch if self.fixed_batch is not None else not isinstance(dims[0], int)

    def _crossing(self, t) -> str:
        """Name the tensor that crosses the cut at ``t``, which is not a dominator of the outputs."""
        if t not in self.feeds_outputs:
            leaking = ", ".join(repr(self.tensor_name(o)) for o in self.outputs)
            return f"the model output {leaking} does not depend on it"
        # t lies between two consecutive valid cuts (lo dominates it, hi post-dominates it): search between them
        pos = self.position(t)
        k = bisect.bisect_left(self.chain_positions, pos)
        lo = self.chain[k - 1] if k > 0 else None
        hi_at = bisect.bisect_right(self.chain_positions, pos)
        limit = self.chain_positions[hi_at] if hi_at < len(self.chain) else None
        before = self._spread([lo] if lo is not None else self.inputs, avoid=t, limit=limit)
        after = self._spread([t], limit=limit)
        start = self.position(lo) + 1 if lo is not None else 0
        stop = limit + 1 if limit is not None else len(self.nodes)
        for i in range(start, stop):
            if not any(x in after for x in self.data[i]):
                continue
            src = next((x for x in self.data[i] if x in before and x not in after), None)
            if src is not None:
                what = "a skip connection" if src in self.data_reached else "a shape computation"
                return f"{what} from {self.tensor_name(src)!r} to {self.node_name(i)!r} crosses it"
        leaking = ", ".join(repr(self.tensor_name(o)) for o in self.outputs if o in before)
        return f"the model output {leaking} does not depend on it"

    def channel_axis(self, tensor) -> int:
        """0 for a convolution's ``(C, ...)`` activations (through element-wise operators after it, or the input of
        one), else -1."""
        dims = _dims(self.types.get(tensor))
        if dims is None or len(dims) < 3:
            return -1
        if any(self.nodes[i].op_type in _CHANNEL_OPS and self.nodes[i].input[0] == tensor
               for i in self.consumers.get(tensor, ())):
            return 0
        t = tensor
        for _ in range(32):
            i = self.position(t)
            if i < 0:
                return -1
            op = self.nodes[i].op_type
            if op in _CHANNEL_OPS:
                return 0
            ranked = [x for x in self.data[i] if len(_dims(self.types.get(x)) or ()) == len(dims)]
            if op not in _ELEMENTWISE or not ranked:
                return -1
            t = ranked[0]
        return -1

    def activation(self, tensor) -> str | None:
        """The final activation of an output: the operator producing it, looked for through shape-only ones."""
        for _ in range(16):
            i = self.position(tensor)
            if i < 0:
                return None
            node = self.nodes[i]
            if node.op_type in _ACTIVATIONS:
                return _ACTIVATIONS[node.op_type]
            if node.op_type == "Add" and len(self.data[i]) == 1:  # MatMul + bias: a linear layer
                src = self.position(self.data[i][0])
                return "linear" if src >= 0 and self.nodes[src].op_type in ("MatMul", "Gemm") else None
            if node.op_type not in _SHAPE_ONLY or not self.data[i]:
                return None
            tensor = self.data[i][0]
        return None

    def find(self, layer: str, error: type[Exception]) -> _Layer:
        """The layer named ``layer`` (or whose tensor is), else ``error`` naming close names."""
        found = self.by_name.get(layer) or self.by_tensor.get(layer)
        if found is not None:
            return found
        names = [x.name for x in self.layers]
        close = [n for n in names if layer.lower() in n.lower()]
        close = list(dict.fromkeys(close + difflib.get_close_matches(layer, names, n=5, cutoff=0.5)))[:5]
        hint = (f"; did you mean {', '.join(map(repr, close))}?" if close else
                f"; layers are: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
        raise error(f"model {self.label!r} has no layer {layer!r}{hint}")

    def nearby_cuts(self, layer: str) -> str:
        """Advice for a refused cut: the closest valid cuts before and after ``layer`` in graph order."""
        return nearby_cuts(self.infos, layer)

    # -- sub-models

    def extract(self, inputs: list[str], outputs: list[str]):
        """The sub-model computing ``outputs`` from ``inputs``: the nodes they need, in graph order, and the
        initializers those read (sub-graphs included)."""
        onnx = _onnx()
        stop, keep, stack = set(inputs), set(), list(outputs)
        while stack:
            t = stack.pop()
            i = self.producer.get(t, -1)
            if t in stop or i < 0 or i in keep:
                continue
            keep.add(i)
            stack.extend(self.reads[i])
        nodes = [self.nodes[i] for i in sorted(keep)]
        names = {t for i in keep for t in self.reads[i]} | {t for i in keep for t in self.outs[i]}
        graph = self.proto.graph

        def info(t):
            return onnx.helper.make_value_info(t, self.types[t]) if t in self.types else \
                onnx.helper.make_empty_tensor_value_info(t)

        sub = onnx.helper.make_graph(
            nodes, f"{graph.name or 'graph'}[{','.join(inputs)} -> {','.join(outputs)}]",
            [info(t) for t in inputs], [info(t) for t in outputs],
            initializer=[t for t in graph.initializer if t.name in names and t.name not in stop],
            sparse_initializer=[t for t in graph.sparse_initializer if t.values.name in names],
            value_info=[v for v in graph.value_info if v.name in names and v.name not in stop
                        and v.name not in outputs])
        return onnx.helper.make_model(sub, ir_version=self.proto.ir_version, opset_imports=self.proto.opset_import,
                                      functions=self.proto.functions)

    def dtype(self, tensor) -> np.dtype:
        type_proto = self.types.get(tensor)
        elem = type_proto.tensor_type.elem_type if type_proto is not None else 0
        return np.dtype(_onnx().helper.tensor_dtype_to_np_dtype(elem)) if elem else np.dtype(np.float32)


class _Session:
    """One onnxruntime session over a sub-model, created on first use (thread-safe), run in chunks of the model's
    fixed batch size when it has one."""

    def __init__(self, graph: _Graph, inputs: list[str], outputs: list[str], what: str):
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
        self.latent_shape = _per_sample(entry.dims)
        source = graph.inputs[0]
        self.input_shape = _per_sample(graph.input_dims(source))
        self.input_dtype = graph.dtype(source).name
        self.output_names = tuple(graph.tensor_name(t) for t in graph.outputs)
        self.output_shapes = tuple(_per_sample(_dims(graph.types.get(t))) for t in graph.outputs)
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
        self.input_shape = _per_sample(graph.input_dims(source))
        self._dtype = graph.dtype(source)
        self._session = _Session(graph, [source], list(dict.fromkeys(self.tensors)), "the layers asked for")

    def __call__(self, x) -> list[np.ndarray]:
        values = dict(zip(self._session.outputs, self._session(self.conform(x).astype(self._dtype, copy=False))))
        return [np.asarray(values[t], dtype=np.float32) for t in self.tensors]

    def ascent(self, terms, spatial_axes):
        raise ModelError("activation maximization needs gradients, which ONNX models do not have; use top dataset "
                         "examples (which work), or load the PyTorch or Keras model the ONNX file was exported from")


def _tensor(model: OnnxModel, layer: str | None) -> tuple[_Graph, str]:
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
        raise UnitError(f"layer {layer!r} of model {graph.label!r} has shape {_show(entry.dims)}, whose first axis "
                        "is not the batch axis; choose a layer with one row per sample")
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
        return [(graph.tensor_name(t), _per_sample(graph.input_dims(t)), graph.dtype(t).name) for t in graph.inputs]

    def output_specs(self, model: OnnxModel) -> list[tuple[str, tuple, str | None]]:
        """``(name, per-sample shape, activation)`` of each output: the name of the layer that produces it, and its
        final activation (``"softmax"``, ``"sigmoid"``, ``"log_softmax"``, ``"linear"`` for a ``Gemm``...) looked for
        through shape-only operators, or None."""
        graph = model.graph()
        return [(graph.tensor_name(t), _per_sample(_dims(graph.types.get(t))), graph.activation(t))
                for t in graph.outputs]

    def split(self, model: OnnxModel, layer: str) -> OnnxSplit:
        """The :class:`OnnxSplit` at ``layer``, built once per model and layer."""
        return model.built(("split", layer), lambda: OnnxSplit(model, layer))

    def layer_shape(self, model: OnnxModel, layer: str | None) -> tuple:
        graph, tensor = _tensor(model, layer)
        return _per_sample(_dims(graph.types.get(tensor)))

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
