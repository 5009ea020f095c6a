"""PyTorch models: load a ``torch.export`` program or a module with its weights, cut it at module boundaries.

This is the PyTorch implementation of the model interface of :mod:`engine.model` (:class:`engine.model.base.Framework`).
PyTorch is imported on first use.

**Files**, in order of preference:

* ``.pt2``, a program saved with ``torch.export.save``: loads without the user's Python classes (the file holds the
  graph of ATen operations and the weights). Export it with a dynamic batch dimension
  (``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``); a program exported for a fixed batch runs in chunks
  of that size.
* ``.pt``/``.pth`` holding a state dict (``torch.save(model.state_dict())``), read with ``weights_only=True`` (no code
  runs), into the ``torch.nn.Module`` that the project's ``hooks.py`` builds with ``build_model()``; the module is then
  exported with ``torch.export`` on an example batch (the hooks' ``example_input()``, else the project's first
  samples).
* ``.pt``/``.pth`` holding a whole pickled module (``torch.save(model)``): unpickling runs arbitrary code from the
  file, so it is refused unless the project sets ``trust_model = true``. A TorchScript archive (``torch.jit.save``)
  is refused: its graph is not an FX graph; export the model with ``torch.export`` instead.

**Cuts.** The exported graph is one flat graph of operations whose ``nn_module_stack`` metadata says which module
call each operation belongs to. A *layer* is a module call (``"stem"``, ``"block1"``, ``"block1.conv1"``; a module
called again is ``"act@1"``), a function called at the top level of ``forward`` (``"flatten"``), or the input. Its
output is the one value of the call that is used outside it. A layer is a valid cut when every path from the input
to the outputs passes through that value (the dominator rule of every framework here); the prefix and the suffix are
new FX graph modules copied from the graph's nodes on either side, sharing the weights. Shapes that depend on the
batch size (``x.view(x.size(0), -1)``) are recomputed from the suffix's own input.

Inference runs in ``torch.inference_mode()``; an exported program is in eval mode (BatchNorm's running statistics,
no Dropout) as it was exported. On a machine with CUDA the model runs there.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engine.errors import CutError, ModelError
from engine.model.base import Ascent, Features, Framework, LayerInfo, ModelObjects, Split, Term, nearby_cuts
from engine.model.torch_files import archive_members, load_program, load_weights_or_module, to_tensor, torch
from engine.model.torch_graph import (
    TorchModel,
    activation_of,
    analyse,
    channel_axis_of,
    find_layer,
    identity,
    layer_node,
    list_layers,
    node_tensor,
    op_name,
    owner_of,
    shape_of,
    subgraph,
    why_not_a_cut,
)

__all__ = ["FRAMEWORK", "PyTorch", "TorchModel", "TorchSplit", "device"]

SUFFIXES = (".pt2", ".pt", ".pth")


def device():
    """Where models run: ``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    t = torch()
    return t.device("cuda") if t.cuda.is_available() else t.device("cpu")


# -- loading -----------------------------------------------------------------------------------------------------------


def load(path, *, trust: bool = False, objects: ModelObjects | None = None) -> TorchModel:
    """Load a ``.pt2`` program, a ``.pt``/``.pth`` state dict (into the hooks' ``build_model()``) or, with
    ``trust``, a pickled module.

    Raises
    ------
    ModelError
        Missing or truncated file, a TorchScript archive, a pickle without ``trust``, a state dict without
        ``build_model``, weights that do not fit the module, or a module that ``torch.export`` cannot trace.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ModelError(f"{path}: not a PyTorch model file; expected one of {', '.join(SUFFIXES)}")
    if suffix == ".pt2":
        program, source = load_program(path), "export"
    else:
        members = archive_members(path)
        if any(item.filename.endswith("archive_format") for item in members):
            program, source = load_program(path), "export"
        else:
            program, source = load_weights_or_module(path, members, trust, objects)
    try:
        gm = program.module()
    except Exception as exc:
        raise ModelError(f"{path}: cannot build a module from the program ({type(exc).__name__}: {exc})") from exc
    gm = gm.to(device())
    model = TorchModel(gm=gm, program=program, source=source, latent_inspector_file=path.name)
    analyse(model)
    if model.input_node is None:
        raise ModelError(f"{path}: the program has no input")
    if not model.output_nodes:
        raise ModelError(f"{path}: the program has no tensor output")
    return model


# -- the split ---------------------------------------------------------------------------------------------------------


#: Bytes of the largest intermediate tensor of a chunk run on a CPU: the chunk's activations stay in the cache. A
#: batch of 2,048 MNIST digits through a 16-channel 28x28 convolution makes 100 MB intermediates and runs 4 times
#: slower per row than chunks of 128 (measured on the bundled mnist_torch, 2 cores).
CPU_CHUNK_BYTES = 8 * 2**20


def _cache_rows(module) -> int:
    """Rows per chunk on a CPU for a graph module: its largest per-sample intermediate in :data:`CPU_CHUNK_BYTES`
    (between 16 and 4,096)."""
    largest = 1
    for n in module.graph.nodes:
        val = node_tensor(n)
        if val is not None and val.dim() >= 1:
            per_sample = 1
            for d in val.shape[1:]:
                per_sample *= int(d) if isinstance(d, int) else 1
            largest = max(largest, per_sample * val.element_size())
    return int(min(4096, max(16, CPU_CHUNK_BYTES // largest)))


class TorchSplit(Split):
    """A PyTorch model cut at one layer: two graph modules over the same weights, run in inference mode on
    :func:`device`, in chunks of the exported batch size when the program was exported for a fixed one."""

    def __init__(self, model: TorchModel, layer: str):
        entry = find_layer(model, layer)
        FRAMEWORK.require_single_input(model)
        reason = why_not_a_cut(model, entry)
        if reason is not None:
            raise CutError(f"cannot cut model {model.latent_inspector_file!r} at {layer!r}: {reason}; "
                           f"{nearby_cuts(list_layers(model), layer)}")
        cut = entry.node
        self.framework = FRAMEWORK
        self.model = model
        self.layer = layer
        shape = shape_of(cut)
        if None in shape:
            raise CutError(f"cannot cut model {model.latent_inspector_file!r} at {layer!r}: its activations have a "
                           f"free dimension {shape}; a cut needs a fixed shape per sample")
        self.latent_shape = shape
        self.input_shape = shape_of(model.input_node)
        val = node_tensor(model.input_node)
        self.input_dtype = str(val.dtype).replace("torch.", "")
        outputs = list(model.output_nodes)
        self.output_names = tuple(owner_of(model, n) for n in outputs)
        self.output_shapes = tuple(shape_of(n) for n in outputs)
        with model.lock:
            self.prefix = (identity(model, cut) if cut is model.input_node
                           else subgraph(model, model.input_node, [cut], "x"))
            self.suffix = (identity(model, cut) if outputs == [cut]
                           else subgraph(model, cut, outputs, "z"))
        self.prefix.to(device())
        self.suffix.to(device())
        self._batch = model.static_batch
        self._rows = {id(self.prefix): _cache_rows(self.prefix), id(self.suffix): _cache_rows(self.suffix)}

    def _run(self, module, a: np.ndarray) -> list[np.ndarray]:
        t = torch()
        dev = device()
        fixed = self._batch
        step = fixed or (self._rows[id(module)] if dev.type == "cpu" else len(a)) or len(a)
        chunks = [a[i: i + step] for i in range(0, len(a), step)] if len(a) > step else [a]
        outs = []
        with t.inference_mode():
            for chunk in chunks:
                n = len(chunk)
                if fixed is not None and n < fixed:  # the last chunk, padded to the exported batch size
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
                result = module(to_tensor(t, chunk).to(dev))
                result = result if isinstance(result, (tuple, list)) else (result,)
                outs.append([r[:n].detach().float().cpu().numpy() for r in result])
        return [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*outs)]

    def _encode(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.empty((0, *self.latent_shape), np.float32)
        return self._run(self.prefix, x)[0]

    def _decode(self, z: np.ndarray) -> list[np.ndarray]:
        if len(z) == 0:
            return [np.empty((0, *s), np.float32) for s in self.output_shapes]
        return self._run(self.suffix, z)

    def parameters(self):
        """The suffix's trainable weights that the prefix does not use (what :meth:`PyTorch.train_suffix` trains)."""
        in_prefix = {n.target for n in self.prefix.graph.nodes if n.op == "get_attr"}
        return [(n, p) for n, p in self.suffix.named_parameters() if n not in in_prefix]


# -- any layer, gradients ------------------------------------------------------------------------------------------


class TorchFeatures(Features):
    """The outputs of any layers of a PyTorch model (a graph module from the input to their nodes)."""

    def __init__(self, model: TorchModel, layers: tuple):
        self.model, self.layers = model, tuple(layers)
        nodes = [layer_node(model, layer) for layer in self.layers]
        self.input_shape = shape_of(model.input_node)
        with model.lock:
            self.module = subgraph(model, model.input_node, nodes, "x").to(device())

    def _forward(self, x):
        out = self.module(x)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def __call__(self, x) -> list[np.ndarray]:
        t = torch()
        with t.inference_mode():
            outs = self._forward(to_tensor(t, self.conform(x)).to(device()))
            return [o.detach().float().cpu().numpy() for o in outs]

    def ascent(self, terms: tuple[Term, ...], spatial_axes: tuple) -> Ascent:
        return _TorchAscent(self, terms, spatial_axes)


class _TorchAscent(Ascent):
    def __init__(self, features: TorchFeatures, terms, spatial_axes):
        self.features, self.terms = features, tuple(terms)
        self.dims = tuple(a + 1 for a in spatial_axes)
        self.input_shape = tuple(int(d) for d in features.input_shape)

    def _value(self, x):
        total = 0.0
        outs = self.features._forward(x)
        for term in self.terms:
            a = outs[term.layer].float()
            if a.dim() > 2 and term.channel_axis == 0:
                a = a.movedim(1, -1)  # channels last, as units are addressed
            if term.kind == "square":
                v = (a * a).reshape(a.shape[0], -1).mean(dim=1)
            elif term.kind == "unit" and term.position is None:
                v = a[:, term.channel]
            elif term.kind == "unit":
                v = a[(slice(None), *term.position, term.channel)]
            else:
                v = a[..., term.channel].reshape(a.shape[0], -1).mean(dim=1)
            total = total + term.weight * v
        return total

    def value(self, x) -> np.ndarray:
        t = torch()
        x = to_tensor(t, np.asarray(x, np.float32).reshape((-1, *self.input_shape)))
        with t.inference_mode():
            return self._value(x.to(device())).detach().cpu().numpy()

    def step(self, x, shift, lr, l2, tv, low, high, center, scale, clip):
        t = torch()
        dev = device()

        def tensor(a):
            return t.as_tensor(np.asarray(a, np.float32), device=dev)

        x, low, high, center, scale = (tensor(a) for a in (x, low, high, center, scale))
        x = x.clone().requires_grad_(True)
        with t.enable_grad():
            seen = t.roll(x, tuple(int(s) for s in shift), dims=self.dims) if self.dims else x
            target = self._value(seen)[0]
            u = (x - center) / scale
            loss = target - float(l2) * (u * u).mean()
            if float(tv):
                for a in self.dims:
                    loss = loss - float(tv) * (u.narrow(a, 1, u.shape[a] - 1)
                                               - u.narrow(a, 0, u.shape[a] - 1)).abs().mean()
            (grad,) = t.autograd.grad(loss, x)
        with t.no_grad():
            if clip:
                pinned = ((x <= low) & (grad < 0)) | ((x >= high) & (grad > 0))
                grad = t.where(pinned, t.zeros_like(grad), grad)
            grad = grad / (grad.pow(2).mean().sqrt() + 1e-12)
            x = x + float(lr) * scale * grad
            if clip:
                x = t.minimum(t.maximum(x, low), high)
        return x.detach().cpu().numpy(), float(target.detach())


# -- the framework ------------------------------------------------------------------------------------------------


class PyTorch(Framework):
    """PyTorch models (``.pt2`` programs, ``.pt``/``.pth`` state dicts or, trusted, pickled modules)."""

    name = "pytorch"
    title = "PyTorch"
    suffixes = SUFFIXES
    requires = ("torch",)
    extra = "torch"
    version_suffix = ".pt2"

    def load(self, path, *, trust: bool = False, objects: ModelObjects | None = None) -> TorchModel:
        self.require(path)
        return load(path, trust=trust, objects=objects)

    def owns(self, model) -> bool:
        return isinstance(model, TorchModel)

    def label(self, model) -> str:
        return model.latent_inspector_file

    def list_layers(self, model) -> list[LayerInfo]:
        return list_layers(model)

    def input_specs(self, model):
        out = []
        for n in model.gm.graph.nodes:
            if n.op == "placeholder":
                val = node_tensor(n)
                out.append((n.name, shape_of(n), str(val.dtype).replace("torch.", "") if val is not None else "?"))
        return out

    def output_specs(self, model):
        return [(owner_of(model, n), shape_of(n), activation_of(n)) for n in model.output_nodes]

    def split(self, model, layer: str) -> TorchSplit:
        with model.lock:
            key = ("split", layer)
            if key not in model.built:
                model.built[key] = TorchSplit(model, layer)
            return model.built[key]

    def layer_shape(self, model, layer):
        if len(self.input_specs(model)) != 1:
            raise ModelError(f"model {model.latent_inspector_file!r} has several inputs; feature visualization "
                             "optimizes the input of a single-input model")
        return shape_of(layer_node(model, layer))

    def channel_axis(self, model, layer) -> int:
        return channel_axis_of(layer_node(model, layer))

    def features(self, model, layers) -> TorchFeatures:
        layers = tuple(layers)
        with model.lock:
            key = ("features", layers)
            if key not in model.built:
                model.built[key] = TorchFeatures(model, layers)
            return model.built[key]

    def train_suffix(self, split: TorchSplit, z, y, *, epochs: int, learning_rate: float, batch_size: int,
                     freeze_batchnorm: bool, seed: int = 0, progress=None) -> list[float]:
        """Adam on the cross-entropy of the suffix's first output (class probabilities; a final softmax is trained
        through its logits) for the class codes ``y``.
        The exported graph is in eval mode (BatchNorm's running statistics, no Dropout); with ``freeze_batchnorm``
        the BatchNorm scales and shifts stay as they are too."""
        from engine.progress import report

        t = torch()
        dev = device()
        model = split.model
        params = []
        for name, p in split.parameters():
            module_kind = _module_kind(model, name)
            if freeze_batchnorm and "BatchNorm" in module_kind:
                continue
            params.append(p)
        if not params:
            raise ModelError(f"model {model.latent_inspector_file!r}: the part after {split.layer!r} has no weights "
                             "to train")
        for p in params:
            p.requires_grad_(True)
        log_probs, exact = _log_prob_suffix(split)
        gen = t.Generator().manual_seed(int(seed))
        z_t = t.as_tensor(np.asarray(z, np.float32)).reshape((-1, *split.latent_shape))
        y_t = t.as_tensor(np.asarray(y, np.int64))
        optimizer = t.optim.Adam(params, lr=float(learning_rate))
        history = []
        for epoch in range(int(epochs)):
            order = t.randperm(len(z_t), generator=gen)
            total = 0.0
            for start in range(0, len(order), int(batch_size)):
                idx = order[start: start + int(batch_size)]
                with t.enable_grad():
                    out = log_probs(z_t[idx].to(dev))
                    out = (out[0] if isinstance(out, (tuple, list)) else out).float()
                    logp = out if exact else t.log(out.clamp_min(1e-7))
                    loss = t.nn.functional.nll_loss(logp, y_t[idx].to(dev))
                    optimizer.zero_grad()
                    loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            history.append(total / len(z_t))
            report(progress, "training", epoch + 1, epochs)
        for p in params:
            p.requires_grad_(False)
        return history

    def train_prefix(self, split: TorchSplit, x, z, weights, *, steps: int, learning_rate: float, batch_size: int,
                     last_layers: int | None = None, relative: bool = False, seed: int = 0, progress=None,
                     cancel=None) -> list[float]:
        """Adam on the weighted mean squared error between the prefix's activations of ``x`` and the targets ``z``,
        through the exported graph (eval mode: BatchNorm's running statistics, no Dropout); the modules holding
        weights are counted in the order the prefix uses them, BatchNorm left out, and the last ``last_layers`` of
        them trained (all when None)."""
        from engine.errors import Cancelled
        from engine.progress import report

        t = torch()
        dev = device()
        model = split.model
        named = dict(split.prefix.named_parameters())
        owners = []  # modules with weights, in the order the prefix reads them
        for n in split.prefix.graph.nodes:
            if n.op == "get_attr" and n.target in named:
                owner = n.target.rsplit(".", 1)[0]
                if owner not in owners and "BatchNorm" not in _module_kind(model, n.target):
                    owners.append(owner)
        if not owners:
            raise ModelError(f"model {model.latent_inspector_file!r}: no layer before {split.layer!r} has weights to "
                             "train")
        chosen = set(owners if last_layers is None else owners[-int(last_layers):])
        params = [p for name, p in named.items() if name.rsplit(".", 1)[0] in chosen]
        for p in params:
            p.requires_grad_(True)
        x_t = to_tensor(t, np.asarray(x, dtype=split.input_dtype)).reshape((-1, *split.input_shape))
        z_t = t.as_tensor(np.asarray(z, np.float32)).reshape((-1, *split.latent_shape))
        w_t = t.as_tensor(np.asarray(weights, np.float32)).reshape(-1)
        if relative:  # displacements from the activations now, by the training step's own forward pass
            with t.no_grad():
                now = split.prefix(x_t.to(dev))
                z_t = z_t + (now[0] if isinstance(now, (tuple, list)) else now).float().cpu()
        gen = t.Generator().manual_seed(int(seed))
        optimizer = t.optim.Adam(params, lr=float(learning_rate))
        history = []
        try:
            for i in range(int(steps)):
                if cancel is not None and cancel():
                    raise Cancelled(f"refining {model.latent_inspector_file!r} at {split.layer!r} was cancelled after "
                                    f"{i} of {steps} steps")
                idx = (t.arange(len(x_t)) if len(x_t) <= batch_size
                       else t.randperm(len(x_t), generator=gen)[: int(batch_size)])
                with t.enable_grad():
                    out = split.prefix(x_t[idx].to(dev))
                    out = (out[0] if isinstance(out, (tuple, list)) else out).float()
                    per_row = ((out - z_t[idx].to(dev)) ** 2).reshape(len(idx), -1).mean(dim=1)
                    wb = w_t[idx].to(dev)
                    loss = (wb * per_row).sum() / wb.sum().clamp_min(1e-12)
                    optimizer.zero_grad()
                    loss.backward()
                optimizer.step()
                history.append(float(loss.detach()))
                report(progress, "refining", i + 1, steps)
        finally:
            for p in params:
                p.requires_grad_(False)
        return history

    def save(self, model: TorchModel, path) -> None:
        """Write the program with the (fine-tuned) weights of ``model.gm`` as a ``.pt2``."""
        t = torch()
        program = model.program
        state = program.state_dict
        for name, p in model.gm.named_parameters():
            if name in state:
                state[name] = t.nn.Parameter(p.detach().to("cpu").clone(), requires_grad=state[name].requires_grad)
        buffer = io.BytesIO()
        t.export.save(program, buffer)
        Path(path).write_bytes(buffer.getvalue())


def _log_prob_suffix(split: TorchSplit):
    """The suffix computing log-probabilities, and whether they are exact: a final softmax is replaced by
    ``log_softmax`` of its input (the cross-entropy of saturated probabilities would have no gradient); otherwise the
    suffix itself (its probabilities are then clipped before the log)."""
    t = torch()
    graph = t.fx.Graph()
    out = graph.graph_copy(split.suffix.graph, {})
    first = out[0] if isinstance(out, (tuple, list)) else out
    if isinstance(first, t.fx.Node) and op_name(first) in ("softmax", "_softmax") and len(first.args) >= 2:
        with graph.inserting_after(first):
            logp = graph.call_function(t.ops.aten.log_softmax.int, (first.args[0], first.args[1]))
        graph.output((logp,))
        graph.eliminate_dead_code()
        return t.fx.GraphModule(split.suffix, graph), True
    return split.suffix, False


def _module_kind(model: TorchModel, param_name: str) -> str:
    """The class of the module a parameter (``"block1.bn1.weight"``) belongs to, from the graph's metadata."""
    owner = param_name.rsplit(".", 1)[0]
    for n in model.gm.graph.nodes:
        for fqn, kind in (n.meta.get("nn_module_stack") or {}).values():
            if fqn == owner:
                return str(kind)
    return ""


FRAMEWORK = PyTorch()
