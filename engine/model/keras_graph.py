"""The flat graph of a Keras model: every layer call, nested sub-models descended into, and which layers are valid
cuts.

The model is re-traced into one flat functional graph with the library's own graph runner
(``Function._run_through_graph``), descending into nested sub-models so that their inner layers become selectable.
This also sidesteps a pitfall of ``.h5`` files: a Sequential model loaded from one carries several inbound nodes per
layer, and ``layer.output`` (node 0) is not connected to the model's inputs. A layer is a valid cut when every path
from the model's inputs to its outputs passes through its output tensor (:func:`why_not_a_cut` names the tensor that
crosses it otherwise). The graph, and what :mod:`engine.model.keras` builds from it, is kept while the model object
lives (:data:`BUILT`).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from engine.errors import CutError, ModelError
from engine.memo import ObjectMemo
from engine.model.base import LayerInfo
from engine.model.keras_files import keras, model_label

__all__ = ["BUILT", "GRAPH_LOCK", "Entry", "Graph", "find_entry", "flat_graph", "input_specs", "list_layers",
           "output_specs", "require_single_input", "why_not_a_cut"]


@dataclass
class Entry:
    """One layer call of the flat graph (or a nested model's output, ``alias``), with its input and output tensors
    and the names of the nested models around it."""

    name: str
    layer: object
    class_name: str
    inputs: list  # input KerasTensors
    outputs: list  # output KerasTensors
    alias: bool = False  # a nested model's output, recorded after its inner layers
    path: tuple = ()  # names of the nested models around the layer


@dataclass
class Graph:
    """A model as one flat functional graph: its input and output tensors and one :class:`Entry` per layer call."""

    inputs: list
    outputs: list
    entries: list = field(default_factory=list)

    def consumers(self):
        """``{id(tensor): [entries that take it]}``, nested models' aliases left out."""
        out = defaultdict(list)
        for e in self.entries:
            if not e.alias:
                for t in e.inputs:
                    out[id(t)].append(e)
        return out


#: Held while Keras models are built over the flat graph's tensors (Keras' graph building is not thread-safe).
GRAPH_LOCK = threading.RLock()
#: What is built from a model object (its flat graph, splits, feature extractors), kept while the object lives.
BUILT = ObjectMemo(max_items=64, name="graphs, splits and extractors of a Keras model")


def _is_nested(op) -> bool:
    return isinstance(op, keras().Model) and (
        getattr(op, "_functional", None) is not None or hasattr(op, "_nodes_by_depth")
    )


def _flatten(tensors):
    tree = keras().tree

    return [t for t in tree.flatten(tensors) if hasattr(t, "shape") and hasattr(t, "_keras_history")]


def _trace(model, inputs, path: tuple, entries: list):
    """Run ``model`` on symbolic ``inputs``, descending into nested models; record every layer call."""
    graph_model = model
    if isinstance(model, keras().Sequential):
        graph_model = getattr(model, "_functional", None)
        if graph_model is None:  # a Sequential that was never built with an Input: its layers run in order
            x = inputs
            for layer in model.layers:
                x = _call(layer, (x,), {}, path + (model.name,), entries)
            return x

    def operation_fn(op):
        return lambda *args, **kwargs: _call(op, args, kwargs, path + (model.name,), entries)

    return graph_model._run_through_graph(inputs, operation_fn=operation_fn)


def _call(op, args, kwargs, path, entries):
    if _is_nested(op):
        sub_inputs = args[0] if len(args) == 1 else list(args)
        out = _trace(op, sub_inputs, path, entries)
        entries.append(Entry(op.name, op, type(op).__name__, _flatten(sub_inputs), _flatten(out), True, path[1:]))
        return out
    out = op(*args, **kwargs)
    # path[0] is the top model's own name, which does not qualify anything
    entries.append(Entry(op.name, op, type(op).__name__, _flatten((args, kwargs)), _flatten(out), False, path[1:]))
    return out


def flat_graph(model) -> Graph:
    """The model as one flat functional graph (cached per model object): its ``inputs``, ``outputs`` and
    ``entries`` (one per layer call, nested sub-models descended into, names made unique). Build Keras models over
    its tensors while holding :data:`GRAPH_LOCK`."""
    with GRAPH_LOCK:
        return BUILT.get(model, "graph", lambda: _build_graph(model))


def _build_graph(model) -> Graph:
    K = keras()
    if not getattr(model, "inputs", None):
        raise ModelError(f"model {model_label(model)!r} has no defined inputs; save it as a Functional or Sequential "
                         "model")
    inputs = [
        K.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t._keras_history[0].name)
        for t in model.inputs
    ]
    entries = [
        Entry(t._keras_history[0].name, t._keras_history[0], "InputLayer", [], [t]) for t in inputs
    ]
    try:
        outputs = _trace(model, inputs if len(inputs) > 1 else inputs[0], (), entries)
    except Exception as exc:
        raise ModelError(f"model {model_label(model)!r}: cannot trace its graph ({type(exc).__name__}: {exc})") from exc
    graph = Graph(inputs, _flatten(outputs), entries)
    _disambiguate(graph)
    return graph


def _disambiguate(graph: Graph) -> None:
    """Qualify colliding names ("decoder/dense"), and rename the layer objects so Keras accepts the flat graph."""
    by_name = defaultdict(set)
    for e in graph.entries:
        by_name[e.name].add(id(e.layer))
    for e in graph.entries:
        if len(by_name[e.name]) > 1 and e.path:
            qualified = "/".join(e.path + (e.name,))
            e.layer.name = qualified.replace("/", "__")  # Keras forbids "/" in layer names
            e.name = qualified


def find_entry(graph: Graph, model, layer: str, error: type[Exception] = CutError) -> Entry:
    """The flat graph's (last) entry named ``layer``; ``error`` naming the model, the layer and the closest names
    (or every name) when there is none."""
    matches = [e for e in graph.entries if e.name == layer]
    if not matches:
        names = [e.name for e in graph.entries]
        close = [n for n in names if layer.lower() in n.lower()][:5]
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f"; layers are: {', '.join(names)}"
        raise error(f"model {model_label(model)!r} has no layer {layer!r}{hint}")
    return matches[-1]


def list_layers(model) -> list[LayerInfo]:
    """Every layer of the model, flattened, in graph order, with its output shape and whether it is a valid cut.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of LayerInfo

    Example
    -------
    >>> [l.name for l in list_layers(model) if l.valid_cut]  # doctest: +SKIP
    ['input', 'conv1', 'conv2', 'flatten', 'bottleneck', ...]
    """
    graph = flat_graph(model)
    calls = Counter(id(e.layer) for e in graph.entries if not e.alias)
    consumers = graph.consumers()
    infos = []
    for e in graph.entries:
        shape = tuple(e.outputs[0].shape) if len(e.outputs) == 1 else tuple(tuple(t.shape) for t in e.outputs)
        reason = why_not_a_cut(graph, e, calls, consumers)
        infos.append(LayerInfo(e.name, e.class_name, shape, reason is None, reason))
    return infos


def why_not_a_cut(graph: Graph, entry: Entry, calls: Counter, consumers) -> str | None:
    if len(entry.outputs) != 1:
        return f"it returns {len(entry.outputs)} tensors; a cut must be a single tensor"
    if not entry.alias and calls[id(entry.layer)] > 1:
        return f"it is shared (called {calls[id(entry.layer)]} times); a cut must be a layer called once"
    cut = id(entry.outputs[0])
    # Everything reachable from the inputs without passing through the cut.
    before = set()
    queue = deque(id(t) for t in graph.inputs if id(t) != cut)
    while queue:
        tid = queue.popleft()
        if tid in before:
            continue
        before.add(tid)
        for e in consumers.get(tid, ()):
            queue.extend(id(t) for t in e.outputs if id(t) != cut)
    leaking = [t for t in graph.outputs if id(t) in before]
    if not leaking:
        return None
    # Name the tensor that crosses: computed before the cut, consumed by a layer after it.
    after = {cut}
    queue = deque([cut])
    while queue:
        for e in consumers.get(queue.popleft(), ()):
            for t in e.outputs:
                if id(t) not in after:
                    after.add(id(t))
                    queue.append(id(t))
    producer = {id(t): e for e in graph.entries if not e.alias for t in e.outputs}
    for e in graph.entries:
        if e.alias or not any(id(t) in after for t in e.inputs):
            continue
        for t in e.inputs:
            if id(t) in before:
                src = producer.get(id(t))
                src_name = src.name if src else "an input"
                return f"a skip connection from {src_name!r} to {e.name!r} crosses it"
    names = ", ".join(repr(producer[id(t)].name) if id(t) in producer else "an input" for t in leaking)
    return f"the model output {names} does not depend on it"


def input_specs(model) -> list[tuple[str, tuple, str]]:
    """``(name, per-sample shape, dtype)`` of each input of the model (``None`` for a free dimension)."""
    graph = flat_graph(model)
    return [(t._keras_history[0].name, tuple(int(d) if d is not None else None for d in t.shape[1:]), str(t.dtype))
            for t in graph.inputs]


def output_specs(model) -> list[tuple[str, tuple, str | None]]:
    """``(name, per-sample shape, final activation)`` of each output of the model; the activation is the name of
    the function the producing layer applies (``"softmax"``, ``"sigmoid"``, ``"linear"``...), or None when the
    layer has none of its own (an ``Add``, a ``Reshape``: then the layer before it is looked at, through shape-only
    layers)."""
    graph = flat_graph(model)
    producer = {id(t): e for e in graph.entries if not e.alias for t in e.outputs}
    specs = []
    for t in graph.outputs:
        entry = producer.get(id(t))
        specs.append((entry.name if entry else t.name, tuple(int(d) if d is not None else None for d in t.shape[1:]),
                      _activation(entry, producer)))
    return specs


_SHAPE_ONLY = ("Reshape", "Flatten", "Permute", "Dropout", "GaussianNoise", "Cropping1D", "Cropping2D")


def _activation(entry, producer, depth: int = 0) -> str | None:
    if entry is None or depth > 8:
        return None
    class_name = entry.class_name
    if class_name == "Softmax":
        return "softmax"
    fn = getattr(entry.layer, "activation", None)
    if fn is not None:
        name = getattr(fn, "__name__", None) or str(fn)
        return "softmax" if "softmax" in name else name
    if class_name in _SHAPE_ONLY and len(entry.inputs) == 1:
        return _activation(producer.get(id(entry.inputs[0])), producer, depth + 1)
    return None


def require_single_input(model) -> None:
    """Raise :class:`ModelError` for a model with several inputs, in one line saying what to do instead."""
    specs = input_specs(model)
    if len(specs) == 1:
        return
    names = ", ".join(f"{n!r} {shape}" for n, shape, _ in specs)
    nested = [e.name for e in flat_graph(model).entries if e.alias and len(e.inputs) == 1]
    if nested:
        hint = (f"; its nested model {nested[0]!r} has one input: save it as its own file "
                f"(model.get_layer({nested[0]!r}).save('{nested[0]}.keras')) and inspect that")
    else:
        hint = "; build a single-input model over the part to inspect, save it, and inspect that"
    raise ModelError(f"model {model_label(model)!r} has {len(specs)} inputs ({names}); Latent Inspector feeds one "
                     f"input array to a model, so models with several inputs are not supported{hint}")
