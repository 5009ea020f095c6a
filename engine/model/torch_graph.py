"""The graph of a PyTorch model as the cut rule sees it: the layers of an exported program's flat FX graph (module
calls, top-level functions, the input), which of them are valid cuts, the layout and activation of each value, and
the sub-graphs on either side of a cut.

:mod:`engine.model.torch` loads a file into a :class:`TorchModel`, has :func:`analyse` find its layers, and runs the
graph modules that :func:`subgraph` builds. How layers are named and what makes a valid cut is said in that
module's docstring.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from engine.errors import CutError, UnitError
from engine.model.base import LayerInfo
from engine.model.torch_files import torch

# ATen operations after which a tensor's channels are on axis 1 (per sample: 0), and those after which they are last.
_CHANNELS_FIRST = ("conv", "convolution", "max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool",
                   "batch_norm", "instance_norm", "group_norm", "upsample", "pixel_shuffle", "native_batch_norm",
                   "_native_batch_norm_legit_no_training")
_CHANNELS_LAST = ("linear", "matmul", "mm", "addmm", "bmm", "lstm", "gru", "rnn_tanh", "rnn_relu", "embedding",
                  "layer_norm", "permute", "transpose", "t", "scaled_dot_product_attention")
# Operations that keep the layout of their first input (walked through to find the layout, and the activation).
_ELEMENTWISE = ("relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "leaky_relu", "elu", "add", "sub",
                "mul", "div", "dropout", "clone", "contiguous", "hardswish", "mish", "softplus", "_to_copy", "to")
_SHAPE_ONLY = ("view", "reshape", "flatten", "dropout", "clone", "contiguous", "squeeze", "unsqueeze", "_to_copy",
               "to", "alias", "detach")
_ACTIVATIONS = {"softmax": "softmax", "_softmax": "softmax", "log_softmax": "log_softmax",
                "_log_softmax": "log_softmax", "sigmoid": "sigmoid", "relu": "relu", "tanh": "tanh",
                "linear": "linear", "addmm": "linear", "gelu": "gelu", "silu": "silu"}

# -- the loaded model -------------------------------------------------------------------------------------------------


@dataclass
class Layer:
    name: str
    class_name: str
    node: object  # the fx node holding the layer's output (None when the call returns several values)
    nodes: frozenset  # every node of the call (for a top-level function or the input, the node itself)
    outputs: tuple  # nodes of the call used outside it
    depth: int
    order: int


@dataclass(eq=False)
class TorchModel:
    """A PyTorch model as the engine holds it: the exported program's graph module (weights on :func:`device`) and
    the layers found in its graph.

    Attributes
    ----------
    gm : torch.fx.GraphModule
        ``ExportedProgram.module()``: the flat graph of ATen operations, weights as attributes.
    program : torch.export.ExportedProgram
        What was loaded or exported; fine-tuned weights are written back into it to save a new version.
    source : str
        ``"export"`` (a ``.pt2``), ``"state_dict"`` (weights into the hooks' ``build_model()``) or ``"pickle"``.
    latent_inspector_file : str
        The file's name, for messages.
    """

    gm: object
    program: object
    source: str
    latent_inspector_file: str
    layers: list = field(default_factory=list)
    by_name: dict = field(default_factory=dict)
    input_node: object = None
    output_nodes: tuple = ()
    static_batch: int | None = None
    lock: object = field(default_factory=threading.RLock)
    built: dict = field(default_factory=dict)

    def __hash__(self):
        return id(self)


def node_tensor(node):
    """The example tensor export recorded for a node's value (its ``meta["val"]``), or None for a size or a tuple."""
    val = node.meta.get("val") if hasattr(node, "meta") else None
    t = torch()
    return val if isinstance(val, t.Tensor) else None


def carries_tensors(node) -> bool:
    """The node's value is a tensor or holds tensors (a recurrent layer's ``(output, state)``, a split's pieces),
    rather than a size or nothing."""
    val = node.meta.get("val") if hasattr(node, "meta") else None
    t = torch()
    return any(isinstance(v, t.Tensor) for v in t.utils._pytree.tree_leaves(val))


def shape_of(node) -> tuple:
    """Per-sample shape of a node's tensor (``None`` for a symbolic dimension), batch axis excluded."""
    val = node_tensor(node)
    if val is None:
        return ()
    return tuple(int(d) if isinstance(d, int) else None for d in val.shape[1:])


def op_name(node) -> str:
    """The ATen operation a node calls, without its namespace and overload: ``aten.conv2d.default`` -> ``conv2d``."""
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    # "aten.conv2d.default" / "conv2d.default" -> "conv2d"
    name = str(getattr(target, "_overloadpacket", name))
    return name.split(".")[-1] if "." in name else name


def is_guard(node) -> bool:
    """The node is one of export's shape guards, not part of the computation."""
    return node.op == "call_module" and str(node.target).startswith("_guards")


def analyse(model: TorchModel) -> None:
    """Find the layers of ``model.gm``'s graph: module calls, top-level functions, the input."""
    graph = model.gm.graph
    nodes = [n for n in graph.nodes if n.op not in ("get_attr", "output") and not is_guard(n)]
    placeholders = [n for n in nodes if n.op == "placeholder"]
    output = next(n for n in graph.nodes if n.op == "output")
    t = torch()
    leaves = t.utils._pytree.tree_leaves(output.args[0])
    model.output_nodes = tuple(n for n in leaves if isinstance(n, t.fx.Node))
    model.input_node = placeholders[0] if placeholders else None
    position = {n: i for i, n in enumerate(graph.nodes)}

    calls: dict[str, dict] = {}
    top_level = []
    for n in nodes:
        if n.op == "placeholder":
            continue
        stack = n.meta.get("nn_module_stack") or {}
        inner = [(key, value) for key, value in stack.items() if value and value[0] != ""]
        if not inner:
            top_level.append(n)
        for depth, (key, (fqn, kind)) in enumerate(inner):
            call = calls.setdefault(key, {"fqn": fqn, "kind": kind, "nodes": [], "depth": depth})
            call["nodes"].append(n)

    layers = []
    for p in placeholders:
        layers.append(Layer(p.name, "Input", p, frozenset([p]), (p,), 0, position[p]))
    names_taken = {p.name for p in placeholders}
    for key, call in calls.items():
        members = frozenset(call["nodes"])
        outs = tuple(n for n in call["nodes"]
                     if node_tensor(n) is not None
                     and (n in model.output_nodes or any(u not in members for u in n.users)))
        if not outs:  # a call whose values are not used after it (export's own bookkeeping, a dead branch)
            continue
        suffix = key.rsplit("@", 1)[1] if "@" in key else None
        name = call["fqn"] if suffix is None else f"{call['fqn']}@{suffix}"
        kind = str(call["kind"]).rsplit(".", 1)[-1].strip("'>")
        last = max(position[n] for n in call["nodes"])
        layers.append(Layer(name, kind, outs[0] if len(outs) == 1 else None, members, outs, call["depth"] + 1,
                             last))
        names_taken.add(name)
    for n in top_level:
        if node_tensor(n) is None:
            continue  # a size or another scalar: not a layer
        name = n.name if n.name not in names_taken else f"{n.name}_"
        layers.append(Layer(name, op_name(n), n, frozenset([n]), (n,), 0, position[n]))
    # graph order; a module's inner layers before the module itself (as a nested Keras model's)
    layers.sort(key=lambda layer: (layer.order, -layer.depth))
    model.layers = layers
    model.by_name = {layer.name: layer for layer in layers}
    val = node_tensor(model.input_node) if model.input_node is not None else None
    if val is not None and isinstance(val.shape[0], int):
        model.static_batch = int(val.shape[0])

# -- cuts ---------------------------------------------------------------------------------------------------------


def find_layer(model: TorchModel, layer: str, error=CutError) -> Layer:
    """The layer named ``layer``; else ``error`` naming the layers that come close, or every layer."""
    found = model.by_name.get(layer)
    if found is None:
        names = [entry.name for entry in model.layers]
        close = [n for n in names if layer.lower() in n.lower()][:5]
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f"; layers are: {', '.join(names)}"
        raise error(f"model {model.latent_inspector_file!r} has no layer {layer!r}{hint}")
    return found


def owner_of(model: TorchModel, node) -> str:
    """The name of the innermost layer a node belongs to (for messages)."""
    best = None
    for entry in model.layers:
        if node in entry.nodes and (best is None or entry.depth > best.depth):
            best = entry
    return best.name if best is not None else node.name


def _tensor_users(node):
    return [u for u in node.users if not is_guard(u)]


def why_not_a_cut(model: TorchModel, entry: Layer) -> str | None:
    if entry.node is None:
        return f"it returns {len(entry.outputs)} tensors used after it; a cut must be a single tensor"
    cut = entry.node
    if model.input_node is None:
        return "the model has no input"
    # Everything that depends on the input without passing through the cut, through tuples of tensors too (sizes do
    # not count: the batch size is the same on both sides and is recomputed from the cut).
    before = set()
    queue = deque([model.input_node] if model.input_node is not cut else [])
    while queue:
        n = queue.popleft()
        if n in before:
            continue
        before.add(n)
        for u in _tensor_users(n):
            if u is not cut and u.op != "output" and carries_tensors(u):
                queue.append(u)
    leaking = [n for n in model.output_nodes if n in before]
    if not leaking:
        return None
    after = {cut}
    queue = deque([cut])
    while queue:
        for u in _tensor_users(queue.popleft()):
            if u not in after and u.op != "output":
                after.add(u)
                queue.append(u)
    for n in model.gm.graph.nodes:
        if n in after and n is not cut:
            for arg in n.all_input_nodes:
                if arg in before:
                    return f"a skip connection from {owner_of(model, arg)!r} to {owner_of(model, n)!r} crosses it"
    names = ", ".join(repr(owner_of(model, n)) for n in leaking)
    return f"the model output {names} does not depend on it"


def channel_axis_of(node, depth: int = 0) -> int:
    """The channel axis of a node's value per sample: 0 after a convolution or a pooling, -1 (last) otherwise;
    elementwise and shape-only operations are walked through to the operation that set the layout."""
    val = node_tensor(node)
    if val is None or val.dim() < 3:
        return -1
    if node.op == "placeholder":
        into_conv = any(op_name(u).startswith(("conv", "convolution")) for u in node.users)
        return 0 if into_conv or val.dim() >= 4 else -1
    op = op_name(node)
    if any(op.startswith(k) for k in _CHANNELS_FIRST):
        return 0
    if op in _CHANNELS_LAST:
        return -1
    if (op in _ELEMENTWISE or op in _SHAPE_ONLY) and node.all_input_nodes and depth < 16:
        if shape_of(node.all_input_nodes[0]) == shape_of(node):
            return channel_axis_of(node.all_input_nodes[0], depth + 1)
    return 0 if val.dim() >= 4 else -1


def activation_of(node, depth: int = 0) -> str | None:
    """The activation that makes a node's value (``"softmax"``, ``"relu"``, ...), through reshapes; None if unknown."""
    if node is None or node.op != "call_function" or depth > 8:
        return None
    op = op_name(node)
    if op in _ACTIVATIONS:
        return _ACTIVATIONS[op]
    if op in _SHAPE_ONLY and node.all_input_nodes:
        return activation_of(node.all_input_nodes[0], depth + 1)
    return None


def list_layers(model: TorchModel) -> list[LayerInfo]:
    """Every layer of the model in graph order (see the module's docstring), with whether it is a valid cut."""
    with model.lock:
        if "layers" not in model.built:
            infos = []
            for entry in model.layers:
                node = entry.node if entry.node is not None else entry.outputs[0] if entry.outputs else None
                shape = (None, *shape_of(node)) if node is not None else ()
                reason = why_not_a_cut(model, entry)
                axis = channel_axis_of(node) if node is not None else -1
                infos.append(LayerInfo(entry.name, entry.class_name, shape, reason is None, reason, axis))
            model.built["layers"] = infos
        return list(model.built["layers"])


# -- sub-graphs ----------------------------------------------------------------------------------------------------


def subgraph(model: TorchModel, start, outputs: list, start_name: str):
    """A new graph module computing ``outputs`` from the value of node ``start`` (given as its only argument); it
    shares the weights of ``model.gm``. A size of the batch computed before ``start`` is taken from the new input."""
    t = torch()
    fx = t.fx
    graph = fx.Graph()
    env = {}
    placeholder = graph.placeholder(start_name)
    placeholder.meta = dict(start.meta)
    env[start] = placeholder
    needed = set()
    queue = deque(outputs)
    while queue:
        n = queue.popleft()
        if n in needed or n in env:
            continue
        needed.add(n)
        if not reads_batch_size(n):  # the batch size is read from the new input instead
            queue.extend(n.all_input_nodes)
    for n in model.gm.graph.nodes:
        if n not in needed or n in env:
            continue
        if n.op == "placeholder":
            raise CutError(f"model {model.latent_inspector_file!r}: the part after the cut needs the model's input "
                           f"{n.name!r}")
        if reads_batch_size(n) and n.args[0] not in env:
            env[n] = graph.call_function(n.target, (placeholder, 0))  # the batch size, from the new input
            env[n].meta = dict(n.meta)
            continue
        if is_guard(n):
            continue
        env[n] = graph.node_copy(n, lambda a: env[a])
    result = [env[o] for o in outputs]
    graph.output(tuple(result))
    graph.eliminate_dead_code()
    return fx.GraphModule(model.gm, graph)


def reads_batch_size(node) -> bool:
    """The node reads the batch size of a tensor (``x.size(0)``, ``x.shape[0]``)."""
    return node.op == "call_function" and op_name(node) == "sym_size" and len(node.args) > 1 and node.args[1] == 0


def identity(model: TorchModel, node):
    t = torch()
    graph = t.fx.Graph()
    p = graph.placeholder("z")
    p.meta = dict(node.meta)
    graph.output((p,))
    return t.fx.GraphModule(t.nn.Module(), graph)


def layer_node(model: TorchModel, layer: str | None):
    """The node holding ``layer``'s value, or the model's output when ``layer`` is None; :class:`UnitError` for a
    layer that does not exist, a model of several outputs with no layer named, or a layer of several values."""
    if layer is None:
        if len(model.output_nodes) != 1:
            raise UnitError(f"model {model.latent_inspector_file!r} has {len(model.output_nodes)} outputs; name the "
                            "layer to use")
        return model.output_nodes[0]
    entry = find_layer(model, layer, UnitError)
    if entry.node is None:
        raise UnitError(f"layer {layer!r} returns {len(entry.outputs)} tensors; choose a layer with one output")
    return entry.node
