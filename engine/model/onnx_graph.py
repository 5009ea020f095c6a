"""The graph of an ONNX model as the cut rule sees it: its tensors, the nodes that make and read them (sub-graphs of
``If``, ``Loop`` and ``Scan`` included), its layers, which of them are valid cuts (a dominator pass between the
graph's inputs and outputs), the layout and activation of each tensor, and the per-sample shapes.

:mod:`engine.model.onnx` loads a file, builds a :class:`Graph` of it, and runs the sub-graphs it cuts with
onnxruntime.
"""

from __future__ import annotations

import bisect
import difflib
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import reduce

import numpy as np

from engine.model.base import LayerInfo, nearby_cuts

__all__ = ["Graph", "onnx_module", "per_sample", "show_shape", "tensor_dims"]

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
_SOURCE, _SINK = "\0inputs", "\0outputs"  # the virtual ends of the tensor graph, for the dominator pass


def onnx_module():
    import onnx

    return onnx


# -- the graph ------------------------------------------------------------------------------------------------------


def tensor_dims(type_proto) -> tuple | None:
    """Dimensions of a tensor type: ints, a str for a named free dimension, None for an unnamed one; None when the
    rank is unknown."""
    if type_proto is None or not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in type_proto.tensor_type.shape.dim)


def per_sample(dims: tuple | None) -> tuple:
    """Per-sample shape of a tensor (no batch axis), ``None`` for a free dimension."""
    if not dims:
        return ()
    return tuple(d if isinstance(d, int) else None for d in dims[1:])


def show_shape(dims: tuple) -> str:
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


class Graph:
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
        return tensor_dims(self.types.get(name))

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
            layers.extend(_Layer(name, node.op_type, t, tensor_dims(self.types.get(t))) for name, t in named)
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
                layers.append(_Layer(name, node.op_type, t, tensor_dims(types.get(t)), inside))

    def node_name(self, i: int) -> str:
        """How messages name node ``i``: by its (first) layer's name."""
        layer = self.by_tensor.get(self.outs[i][0]) if self.outs[i] else None
        return layer.name if layer else (self.nodes[i].name or self.nodes[i].op_type)

    def tensor_name(self, tensor) -> str:
        layer = self.by_tensor.get(tensor)
        return layer.name if layer else tensor

    def _info(self, layer: _Layer) -> LayerInfo:
        reason = self.why_not(layer)
        shape = (None, *per_sample(layer.dims)) if layer.dims else (None,)
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
            return (f"its first axis is not the batch axis (shape {show_shape(dims)}); a cut must hold one row per "
                    "sample, as after the recurrent layer of an exported RNN rather than inside it")
        if any(not isinstance(d, int) for d in dims[1:]):
            return (f"its shape {show_shape(dims)} has a free dimension besides the batch; a cut needs a fixed size "
                    "per sample (export the model with fixed sizes for every axis but the batch)")
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
        dims = tensor_dims(self.types.get(tensor))
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
            ranked = [x for x in self.data[i] if len(tensor_dims(self.types.get(x)) or ()) == len(dims)]
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
        onnx = onnx_module()
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
        return np.dtype(onnx_module().helper.tensor_dtype_to_np_dtype(elem)) if elem else np.dtype(np.float32)
