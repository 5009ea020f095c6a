"""Feature visualization: what drives a unit, from the data and by optimization.

Two classic answers to "what is this part of the network looking for?":

* **From the data** (:func:`top_examples`): the dataset samples that activate a unit most and least, with their
  inputs and labels, read from the cached activations (:func:`engine.propagate.activations`) one chunk at a time
  and ranked by a partial sort (:func:`top_k`), so that a memory-mapped cache of millions of rows is cheap.
* **By optimization** (:func:`maximize`): gradient ascent on the input, the network fixed, to drive a unit, a
  channel, an output, a weighted sum of several, or a whole layer (the DeepDream objective, the mean squared
  activation) as high as it goes, with optional regularizers (L2 decay, total variation, jitter, blur, clipping to
  the data's range). It runs as one compiled step function, reports its progress and can be cancelled.

A unit is addressed the same way for every layer (:class:`Unit`): for activations of shape ``(n, d)`` a unit is an
index in ``d``; for a convolutional layer, ``(n, H, W, C)`` or ``(n, T, C)``, it is a channel, either averaged over
space (``position=None``) or read at one spatial position. Optimization works for any layer of the model, not only
the layers where it can be cut: a feature extractor is built from the model's flattened graph
(:mod:`engine.split`), so the inner layers of nested sub-models and the layers inside a residual block are reachable
too.

Inputs are optimized **in the model's input space**: for a project with a ``preprocess`` hook that is the space
after the hook, and the optimized input is what the model sees, not a raw file sample. Steps and regularizers are
measured in units of the data's own spread (:class:`InputSpace`), so one learning rate suits MNIST's 0..255 grey
levels and standardized sensor series alike.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backend
from .errors import InspectorError, ModelError, UnitError  # noqa: F401 (UnitError: part of this module's API)

#: Rows read from a (memory-mapped) activation cache per chunk.
CHUNK_ROWS = 65_536
#: Rows per compiled call when a layer's activations are computed here (a layer that is not a valid cut).
BATCH = 1024


# -- addressing units ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One scalar of a layer, per sample.

    Parameters
    ----------
    layer : str or None
        A layer name as :func:`engine.split.list_layers` gives it; ``None`` is the model's final output.
    channel : int
        For activations of shape ``(d,)``: the unit's index. For ``(H, W, C)`` or ``(T, C)``: the channel (last
        axis).
    position : tuple of int, optional
        A spatial position (``(i, j)`` or ``(t,)``) of a convolutional layer; ``None`` averages the channel over
        space. Must be ``None`` for a flat layer.

    Example
    -------
    >>> Unit("bottleneck", 3), Unit("encoder_conv2", 5), Unit("encoder_conv2", 5, (3, 4))  # doctest: +SKIP
    """

    layer: str | None
    channel: int
    position: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "channel", int(self.channel))
        if self.position is not None:
            pos = (self.position,) if np.ndim(self.position) == 0 else self.position
            object.__setattr__(self, "position", tuple(int(p) for p in pos))

    @property
    def where(self) -> str:
        return "the model's output" if self.layer is None else f"layer {self.layer!r}"

    def describe(self, shape: tuple | None = None) -> str:
        """In words: ``"bottleneck unit 3"``, ``"encoder_conv2 channel 5 (mean over 7x7)"``..."""
        name = "output" if self.layer is None else self.layer
        if shape is not None and len(shape) == 1:
            return f"{name} unit {self.channel}"
        if self.position is not None:
            return f"{name} channel {self.channel} at ({', '.join(map(str, self.position))})"
        over = f" over {'x'.join(map(str, shape[:-1]))}" if shape is not None else " over space"
        return f"{name} channel {self.channel} (mean{over})"

    def check(self, shape: tuple) -> Unit:
        """This unit, checked against activations of ``shape`` (no batch axis); raises :class:`UnitError`."""
        shape = tuple(int(d) for d in shape)
        if not shape:
            raise UnitError(f"{self.where} yields one scalar per sample; it has no units to choose from")
        if len(shape) == 1:
            if self.position is not None:
                raise UnitError(f"{self.where} is flat (shape {shape}); a unit there has no spatial position, "
                                f"got position {self.position}")
            if not 0 <= self.channel < shape[0]:
                raise UnitError(f"{self.where} has {shape[0]} units (shape {shape}); unit {self.channel} is out "
                                f"of range 0..{shape[0] - 1}")
            return self
        if not 0 <= self.channel < shape[-1]:
            raise UnitError(f"{self.where} has {shape[-1]} channels (shape {shape}); channel {self.channel} is out "
                            f"of range 0..{shape[-1] - 1}")
        if self.position is not None:
            spatial = shape[:-1]
            if len(self.position) != len(spatial) or not all(0 <= p < d for p, d in zip(self.position, spatial)):
                ranges = ", ".join(f"0..{d - 1}" for d in spatial)
                raise UnitError(f"{self.where} has positions ({ranges}) (shape {shape}); position {self.position} "
                                "is outside")
        return self


@dataclass(frozen=True)
class DeepDream:
    """"Whatever this layer sees, more of it": the mean squared activation of ``layer`` (``None``: the output)."""

    layer: str | None

    @property
    def where(self) -> str:
        return "the model's output" if self.layer is None else f"layer {self.layer!r}"

    def describe(self, shape: tuple | None = None) -> str:
        return f"DeepDream on {'output' if self.layer is None else self.layer} (mean squared activation)"


def unit_at(layer: str | None, shape: tuple, index: int) -> Unit:
    """The unit at flat ``index`` of activations of ``shape`` (C order): a class index of a ``(K,)`` output, a pixel
    and channel of an image output.

    Example
    -------
    >>> unit_at(None, (28, 28, 1), 14 * 28 + 14)
    Unit(layer=None, channel=0, position=(14, 14))
    """
    shape = tuple(int(d) for d in shape)
    size = int(np.prod(shape))
    if not 0 <= int(index) < size:
        where = "the model's output" if layer is None else f"layer {layer!r}"
        raise UnitError(f"{where} has {size} values per sample (shape {shape}); index {index} is out of range "
                        f"0..{size - 1}")
    if len(shape) == 1:
        return Unit(layer, int(index))
    *pos, channel = np.unravel_index(int(index), shape)
    return Unit(layer, int(channel), tuple(int(p) for p in pos))


@dataclass(frozen=True)
class Objective:
    """What :func:`maximize` drives up: a weighted sum of units and DeepDream terms.

    Build one with :meth:`unit`, :meth:`output`, :meth:`deepdream` or :meth:`sum`.

    Attributes
    ----------
    terms : tuple of (float, Unit or DeepDream)
    """

    terms: tuple

    def __post_init__(self):
        terms = tuple((float(w), t) for w, t in self.terms)
        if not terms:
            raise UnitError("an objective needs at least one term")
        for _, t in terms:
            if not isinstance(t, (Unit, DeepDream)):
                raise UnitError(f"an objective's terms are Unit or DeepDream, got {type(t).__name__}")
        object.__setattr__(self, "terms", terms)

    @classmethod
    def unit(cls, layer: str | None, channel: int, position=None) -> Objective:
        """One unit, or one channel averaged over space (``position=None``), or one channel at a position."""
        return cls(((1.0, Unit(layer, channel, position)),))

    @classmethod
    def output(cls, channel: int, position=None) -> Objective:
        """One value of the model's final output: a class index of a classifier (see also :func:`unit_at`)."""
        return cls(((1.0, Unit(None, channel, position)),))

    @classmethod
    def deepdream(cls, layer: str | None) -> Objective:
        """The mean squared activation of ``layer``."""
        return cls(((1.0, DeepDream(layer)),))

    @classmethod
    def sum(cls, weighted) -> Objective:
        """``sum(w * target)`` over ``[(w, Unit or DeepDream), ...]``."""
        return cls(tuple(weighted))

    @property
    def kind(self) -> str:
        """``"unit"``, ``"channel"``, ``"output"``, ``"deepdream"`` or ``"sum"``."""
        if len(self.terms) > 1 or self.terms[0][0] != 1.0:
            return "sum"
        target = self.terms[0][1]
        if isinstance(target, DeepDream):
            return "deepdream"
        if target.layer is None:
            return "output"
        return "unit" if target.position is not None else "channel"

    @property
    def layers(self) -> tuple:
        """The layers the objective reads, each once, in order (``None``: the model's output)."""
        return tuple(dict.fromkeys(t.layer for _, t in self.terms))

    def describe(self, shapes: dict | None = None) -> str:
        shapes = shapes or {}
        out = ""
        for i, (w, t) in enumerate(self.terms):
            text = t.describe(shapes.get(t.layer))
            text = text if abs(w) == 1.0 else f"{abs(w):g} x {text}"
            out += (("- " if i == 0 else " - ") if w < 0 else ("" if i == 0 else " + ")) + text
        return out


# -- from the data ---------------------------------------------------------------------------------------------------


def _reduce(block: np.ndarray, target) -> np.ndarray:
    """Per-row value of ``target`` for a block of activations (rows first)."""
    if isinstance(target, DeepDream):
        flat = block.reshape(len(block), -1).astype(np.float64)
        return np.mean(flat * flat, axis=1)
    if block.ndim == 2:
        return block[:, target.channel]
    if target.position is not None:
        return block[(slice(None), *target.position, target.channel)]
    return block[..., target.channel].reshape(len(block), -1).mean(axis=1, dtype=np.float64)


def unit_activations(z, target, *, chunk: int = CHUNK_ROWS) -> np.ndarray:
    """Each sample's value of ``target`` from a layer's activations ``z``, read ``chunk`` rows at a time.

    Parameters
    ----------
    z : array-like, shape (n, *layer_shape)
        The layer's activations; may be a memory map (see :func:`engine.propagate.activations`).
    target : Unit or DeepDream
    chunk : int

    Returns
    -------
    numpy.ndarray of float32, shape (n,)

    Raises
    ------
    UnitError
        The unit does not exist in activations of this shape.

    Example
    -------
    >>> unit_activations(np.arange(12.0).reshape(2, 3, 2), Unit("conv", 1)).tolist()
    [3.0, 9.0]
    """
    if isinstance(target, Unit):
        target.check(tuple(z.shape[1:]))
    n = len(z)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, chunk):
        block = np.asarray(z[start : start + chunk])
        out[start : start + len(block)] = _reduce(block, target)
    return out


def top_k(values, k: int, *, largest: bool = True) -> np.ndarray:
    """Indices of the ``k`` largest (or smallest) ``values``, best first, by a partial sort.

    ``np.argpartition`` finds the k in linear time; only those k are then sorted (ties by index), so 1M values cost
    a few milliseconds rather than a full sort.

    Example
    -------
    >>> top_k(np.array([0.1, 0.9, 0.5, 0.7]), 2).tolist(), top_k(np.array([0.1, 0.9, 0.5]), 1, largest=False).tolist()
    ([1, 3], [0])
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"top_k ranks a 1-D array of values, got shape {values.shape}")
    n = len(values)
    k = max(0, min(int(k), n))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    keyed = values if largest else -values.astype(np.float64)
    if k == n:
        chosen = np.arange(n)
    else:
        part = np.argpartition(keyed, n - k)[n - k :]
        # Ties at the k-th value: keep the lowest indices, as a stable full sort would.
        kth = keyed[part].min()
        above = part[keyed[part] > kth]
        chosen = np.concatenate([above, np.flatnonzero(keyed == kth)[: k - len(above)]])
    order = np.lexsort((chosen, -keyed[chosen].astype(np.float64)))
    return chosen[order].astype(np.int64)


@dataclass(frozen=True)
class Examples:
    """Dataset samples ranked by a unit's activation.

    Attributes
    ----------
    indices : numpy.ndarray of int64
        Sample ids, most extreme first.
    activations : numpy.ndarray of float32
        The unit's value for each.
    labels : numpy.ndarray of int64 or None
    inputs : numpy.ndarray
        The samples as stored in the project (before any ``preprocess`` hook), for drawing.
    largest : bool
        True for the top examples, False for the bottom ones.
    """

    indices: np.ndarray
    activations: np.ndarray
    labels: np.ndarray | None
    inputs: np.ndarray
    largest: bool


@dataclass(frozen=True)
class UnitExamples:
    """The top-k and bottom-k dataset examples of one target, and the whole dataset's range of it.

    Attributes
    ----------
    target : Unit or DeepDream
    shape : tuple
        The layer's activation shape (no batch axis).
    top, bottom : Examples
    n : int
        Samples ranked.
    mean : float
        The target's mean over the dataset.
    seconds : float
        Time to read the activations and rank them.
    """

    target: object
    shape: tuple
    top: Examples
    bottom: Examples
    n: int
    mean: float
    seconds: float

    @property
    def constant(self) -> bool:
        """Every sample gives the same value (a dead unit, such as a ReLU channel that never fires)."""
        return bool(self.top.activations[0] == self.bottom.activations[0])

    @property
    def best(self) -> float:
        """The highest value any dataset sample reaches."""
        return float(self.top.activations[0])

    def describe(self) -> str:
        return self.target.describe(self.shape)


def dataset_values(project, target, *, cache_dir=None, progress=None) -> tuple[np.ndarray, tuple]:
    """Each sample's value of ``target`` (a Unit or DeepDream) over the project's dataset, and the layer's shape.

    A layer where the model can be cut is read from the activation cache (computed and cached on first use); any
    other layer (inside a residual block, say) is computed here through a feature extractor, batch by batch, and
    not cached.

    Raises
    ------
    UnitError
        Unknown layer, or a unit outside the layer.
    """
    from .propagate import activations
    from .split import list_layers

    model = project.model()
    layer = target.layer
    shape = layer_shape(model, layer)
    if isinstance(target, Unit):
        target.check(shape)
    info = None if layer is None else next((i for i in list_layers(model) if i.name == layer), None)
    if info is not None and info.valid_cut:
        z = activations(project, layer, cache_dir=cache_dir, progress=progress)
        return unit_activations(z, target), shape
    # Not a cut (or the output): run the dataset through a feature extractor, reducing each batch at once.
    extractor = feature_extractor(model, (layer,))
    tf = backend.tensorflow()
    x = project.inputs()
    preprocess = project.preprocess()
    dtype = extractor.inputs[0].dtype
    spec = tf.TensorSpec((None, *extractor.inputs[0].shape[1:]), dtype)
    run = tf.function(lambda b: extractor(b, training=False), input_signature=[spec])
    out = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), BATCH):
        batch = np.asarray(x[start : start + BATCH])
        if preprocess is not None:
            batch = np.asarray(preprocess(batch))
        batch = _conform(batch, extractor)
        out[start : start + len(batch)] = _reduce(np.asarray(run(batch)), target)
        if progress is not None:
            progress(min(start + BATCH, len(x)), len(x))
    return out, shape


def objective_values(project, objective: Objective, *, cache_dir=None, progress=None) -> np.ndarray:
    """Each sample's value of a whole :class:`Objective` (its weighted sum of terms), float32 of shape (n,)."""
    total = None
    for w, target in objective.terms:
        values, _ = dataset_values(project, target, cache_dir=cache_dir, progress=progress)
        total = w * values.astype(np.float64) if total is None else total + w * values
    return total.astype(np.float32)


def top_examples(project, target, k: int = 8, *, cache_dir=None, progress=None) -> UnitExamples:
    """The ``k`` dataset samples that drive ``target`` highest and the ``k`` that drive it lowest.

    Parameters
    ----------
    project : Project
    target : Unit, DeepDream or Objective
        An objective ranks by its weighted sum.
    k : int
    cache_dir : str or Path, optional
        Where the activation cache lives (default :func:`engine.cache_dir`).
    progress : callable(done, total), optional
        While the activations are computed (not on a cache hit).

    Returns
    -------
    UnitExamples

    Raises
    ------
    UnitError
        Unknown layer, or a unit outside the layer (the message names the layer and the valid range).

    Example
    -------
    >>> ex = top_examples(load_project("mnist"), Unit("bottleneck", 3), k=5)   # doctest: +SKIP
    >>> ex.top.indices, ex.top.activations, ex.top.labels                       # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if isinstance(target, Objective):
        values = objective_values(project, target, cache_dir=cache_dir, progress=progress)
        shape = layer_shape(project.model(), target.terms[0][1].layer) if len(target.terms) == 1 else ()
        if len(target.terms) == 1:
            target = target.terms[0][1]
    else:
        values, shape = dataset_values(project, target, cache_dir=cache_dir, progress=progress)
    labels = project.labels()
    inputs = project.inputs()

    def examples(largest: bool) -> Examples:
        idx = top_k(values, k, largest=largest)
        read = np.sort(idx)  # a memory map reads in order
        rows = np.asarray(inputs[read])[np.searchsorted(read, idx)]
        return Examples(idx, values[idx], None if labels is None else labels[idx], rows, largest)

    top, bottom = examples(True), examples(False)
    return UnitExamples(target, tuple(shape), top, bottom, len(values), float(values.mean(dtype=np.float64)),
                        time.perf_counter() - t0)


# -- the graph: any layer's output ----------------------------------------------------------------------------------


def _entry(model, layer: str | None):
    """The flattened graph's output tensor of ``layer`` (``None``: the model's output)."""
    from .split import find_entry, flat_graph

    graph = flat_graph(model)
    if len(graph.inputs) != 1:
        raise ModelError(f"model {model.name!r} has {len(graph.inputs)} inputs; feature visualization optimizes "
                         "the input of a single-input model")
    if layer is None:
        if len(graph.outputs) != 1:
            raise UnitError(f"model {model.name!r} has {len(graph.outputs)} outputs; name the layer to use")
        return graph, graph.outputs[0]
    entry = find_entry(graph, model, layer, UnitError)
    if len(entry.outputs) != 1:
        raise UnitError(f"layer {layer!r} returns {len(entry.outputs)} tensors; choose a layer with one output")
    return graph, entry.outputs[0]


def layer_shape(model, layer: str | None) -> tuple:
    """Activation shape of ``layer`` (no batch axis); ``None`` is the model's output. Raises :class:`UnitError`."""
    _, tensor = _entry(model, layer)
    return tuple(int(d) if d is not None else None for d in tensor.shape[1:])


_extractors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_maximizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.RLock()


def feature_extractor(model, layers) -> object:
    """``keras.Model(inputs, [output of each layer])`` over the flattened graph, for any layer (valid cut or not);
    built once per model and layer tuple in this process. ``None`` in ``layers`` is the model's output."""
    from .split import GRAPH_LOCK

    keras = backend.keras()
    layers = tuple(layers)
    with _cache_lock:
        per_model = _extractors.setdefault(model, {})
        hit = per_model.get(layers)
        if hit is not None:
            return hit
        tensors = []
        graph = None
        for layer in layers:
            graph, tensor = _entry(model, layer)
            tensors.append(tensor)
        with GRAPH_LOCK:
            extractor = keras.Model(graph.inputs[0], tensors if len(tensors) > 1 else tensors[0],
                                    name=f"features_{len(per_model)}")
        per_model[layers] = extractor
        return extractor


def _conform(batch: np.ndarray, extractor) -> np.ndarray:
    want = tuple(extractor.inputs[0].shape[1:])
    if tuple(batch.shape[1:]) != want and None not in want:
        if int(np.prod(batch.shape[1:])) != int(np.prod(want)):
            raise ModelError(f"the model expects inputs of shape (n, {', '.join(map(str, want))}); got "
                             f"{tuple(batch.shape)}")
        batch = batch.reshape((len(batch), *want))
    return batch.astype(np.float32, copy=False)


# -- by optimization -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regularizers:
    """Optional regularizers of :func:`maximize`, each with its own weight (0 turns it off).

    Parameters
    ----------
    l2 : float
        Weight of the L2 decay: the mean square of the input's distance from the data's mean, in units of the data's
        spread.
    tv : float
        Weight of the total variation (mean absolute difference between neighbours along each spatial axis: 2-D for
        images, along time for series), in the same units.
    jitter : int
        Each step, the input is rolled by a random shift of up to this many pixels (time steps) along each spatial
        axis before the gradient is taken (seeded).
    blur_every : int
        Every this many steps, a gaussian blur of ``blur_sigma`` pixels along the spatial axes.
    blur_sigma : float
    clip : bool
        Keep every value within the data's own range (per channel), see :class:`InputSpace`.
    """

    l2: float = 0.0
    tv: float = 0.0
    jitter: int = 0
    blur_every: int = 0
    blur_sigma: float = 0.5
    clip: bool = True

    def __post_init__(self):
        for name in ("l2", "tv", "blur_sigma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UnitError(f"regularizer {name} = {value!r}; expected a finite number >= 0")
        for name in ("jitter", "blur_every"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and value >= 0):
                raise UnitError(f"regularizer {name} = {value!r}; expected a whole number >= 0")


@dataclass(frozen=True)
class InputSpace:
    """The data's range and spread in the model's input space, per channel (the last axis), broadcast to one
    sample's shape: ``low``/``high`` bound clipping, ``center``/``scale`` set the units of steps and regularizers.

    Build one with :meth:`from_data` or :func:`input_space`.
    """

    low: np.ndarray
    high: np.ndarray
    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_data(cls, x, *, preprocess=None, chunk: int = CHUNK_ROWS) -> InputSpace:
        """Per-channel min, max, mean and standard deviation of ``x`` (n, *shape), read in chunks."""
        n = len(x)
        lo = hi = s1 = s2 = None
        count = 0
        for start in range(0, n, chunk):
            b = np.asarray(x[start : start + chunk])
            if preprocess is not None:
                b = np.asarray(preprocess(b))
            b = b.astype(np.float64)
            axes = tuple(range(b.ndim - 1)) if b.ndim > 2 else (0,)
            blo, bhi = b.min(axis=axes), b.max(axis=axes)
            lo = blo if lo is None else np.minimum(lo, blo)
            hi = bhi if hi is None else np.maximum(hi, bhi)
            s1 = b.sum(axis=axes) if s1 is None else s1 + b.sum(axis=axes)
            s2 = (b * b).sum(axis=axes) if s2 is None else s2 + (b * b).sum(axis=axes)
            count += int(np.prod([b.shape[a] for a in axes]))
            shape = b.shape[1:]
        mean = s1 / count
        std = np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))
        spread = float(np.sqrt(np.mean(std * std))) or 1.0
        std = np.where(std > 1e-6 * spread, std, spread)  # a constant channel steps like the others

        def full(v):
            return np.ascontiguousarray(np.broadcast_to(v.astype(np.float32), shape))

        return cls(full(lo), full(hi), full(mean), full(std))


_spaces: dict = {}


def input_space(project) -> InputSpace:
    """The project's :class:`InputSpace` (after its ``preprocess`` hook), computed once per data file and process."""
    key = (str(project.inputs_path), project.inputs_key, project.data_hash())
    with _cache_lock:
        hit = _spaces.get(key)
    if hit is None:
        hit = InputSpace.from_data(project.inputs(), preprocess=project.preprocess())
        with _cache_lock:
            _spaces[key] = hit
    return hit


def total_variation(x, spatial_axes) -> float:
    """Mean absolute difference between neighbours along each of ``spatial_axes`` of one sample ``x`` (summed over
    the axes): what the ``tv`` regularizer penalizes (there in units of the data's spread)."""
    x = np.asarray(x, dtype=np.float64)
    return float(sum(np.mean(np.abs(np.diff(x, axis=a))) for a in spatial_axes))


@dataclass
class Optimized:
    """The outcome of :func:`maximize`: the input reached and everything needed to reproduce it.

    Attributes
    ----------
    input : numpy.ndarray
        The optimized input, one sample in the model's input shape (model input space).
    activation : float
        The objective's value for :attr:`input` (no jitter, no regularizer terms).
    start_activation : float
        The objective's value for the starting input.
    start_input : numpy.ndarray
    trace : numpy.ndarray
        The objective's value at each step done (on the jittered input the step saw).
    steps_done : int
    cancelled : bool
        Stopped before ``steps`` (by the ``cancel`` event or a progress callback returning False).
    objective : Objective
    regularizers : Regularizers
    steps : int
    lr : float
    seed : int
    start : str
        ``"noise"``, ``"sample 12"`` or ``"given input"``.
    seconds : float
        Wall time of the steps.
    description : str
        The objective in words.
    """

    input: np.ndarray
    activation: float
    start_activation: float
    start_input: np.ndarray
    trace: np.ndarray
    steps_done: int
    cancelled: bool
    objective: Objective
    regularizers: Regularizers
    steps: int
    lr: float
    seed: int
    start: str
    seconds: float
    description: str = ""
    spatial_axes: tuple = field(default=())

    @property
    def steps_per_second(self) -> float:
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")

    def params(self) -> dict:
        """Every parameter of the run, as plain values (for a record or a caption)."""
        return {"objective": self.description, "objective_kind": self.objective.kind, "steps": self.steps,
                "steps_done": self.steps_done, "lr": self.lr, "seed": self.seed, "start": self.start,
                "cancelled": self.cancelled, **asdict(self.regularizers)}


class Maximizer:
    """Gradient ascent on the input of ``model`` for one :class:`Objective`: the compiled step and evaluation.

    Built once per model and objective (see :func:`maximizer`); :meth:`run` may then be called with any start,
    input space, steps, learning rate, seed and regularizer weights without retracing.

    Parameters
    ----------
    model : keras.Model
        A single-input model; any of its layers (nested ones too) may appear in the objective.
    objective : Objective
    spatial_axes : tuple of int, optional
        Axes of one sample (without the batch axis) along which jitter, blur and total variation act. Default: all
        but the last for inputs of rank >= 2 (``(H, W, C)`` -> (0, 1); ``(T, C)`` -> (0,)), none for flat inputs.

    Raises
    ------
    UnitError
        A layer or unit of the objective that the model does not have.
    """

    def __init__(self, model, objective: Objective, spatial_axes=None):
        tf = backend.tensorflow()
        self.model, self.objective = model, objective
        self.shapes = {layer: layer_shape(model, layer) for layer in objective.layers}
        for _, target in objective.terms:
            if isinstance(target, Unit):
                target.check(self.shapes[target.layer])
        self.extractor = feature_extractor(model, objective.layers)
        self.input_shape = tuple(int(d) for d in self.extractor.inputs[0].shape[1:])
        rank = len(self.input_shape)
        if spatial_axes is None:
            spatial_axes = tuple(range(rank - 1)) if rank >= 2 else ()
        self.spatial_axes = tuple(int(a) for a in spatial_axes)
        self.description = objective.describe(self.shapes)
        index = {layer: i for i, layer in enumerate(objective.layers)}
        terms = objective.terms
        batch_axes = [a + 1 for a in self.spatial_axes]
        extractor = self.extractor

        def value(x):
            outs = extractor(x, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            total = 0.0
            for w, t in terms:
                a = tf.cast(outs[index[t.layer]], tf.float32)
                if isinstance(t, DeepDream):
                    v = tf.reduce_mean(tf.reshape(a * a, (tf.shape(a)[0], -1)), axis=1)
                elif a.shape.rank == 2:
                    v = a[:, t.channel]
                elif t.position is not None:
                    v = a[(slice(None), *t.position, t.channel)]
                else:
                    v = tf.reduce_mean(tf.reshape(a[..., t.channel], (tf.shape(a)[0], -1)), axis=1)
                total = total + w * v
            return total

        def tv_of(u):
            total = tf.constant(0.0)
            for a in batch_axes:
                ahead = [slice(None)] * (len(self.input_shape) + 1)
                behind = list(ahead)
                ahead[a], behind[a] = slice(1, None), slice(None, -1)
                total = total + tf.reduce_mean(tf.abs(u[tuple(ahead)] - u[tuple(behind)]))
            return total

        sample = tf.TensorSpec((1, *self.input_shape), tf.float32)
        scalar = tf.TensorSpec((), tf.float32)

        @tf.function(input_signature=[sample, tf.TensorSpec((len(batch_axes),), tf.int32), scalar, scalar, scalar,
                                      sample, sample, sample, sample, tf.TensorSpec((), tf.bool)])
        def step(x, shift, lr, l2, tv, low, high, center, scale, clip):
            with tf.GradientTape() as tape:
                tape.watch(x)
                seen = tf.roll(x, shift, axis=batch_axes) if batch_axes else x
                target = value(seen)[0]
                u = (x - center) / scale
                loss = target - l2 * tf.reduce_mean(u * u) - tv * tv_of(u)
            grad = tape.gradient(loss, x)
            # A value held at a bound of the data's range cannot move further out: its gradient would only shrink
            # the normalized step of the values that can move (projected gradient ascent).
            pinned = tf.logical_and(clip, tf.logical_or(tf.logical_and(x <= low, grad < 0),
                                                        tf.logical_and(x >= high, grad > 0)))
            grad = tf.where(pinned, tf.zeros_like(grad), grad)
            grad = grad / (tf.sqrt(tf.reduce_mean(grad * grad)) + 1e-12)  # normalized ascent: lr sets the step
            x = x + lr * scale * grad
            x = tf.where(clip, tf.clip_by_value(x, low, high), x)
            return x, target

        self._step = step
        self._value = tf.function(value, input_signature=[tf.TensorSpec((None, *self.input_shape), tf.float32)])

    def value(self, x) -> np.ndarray:
        """The objective for a batch of inputs ``x`` (n, *input_shape), inference mode."""
        x = np.asarray(x, dtype=np.float32).reshape((-1, *self.input_shape))
        return np.asarray(self._value(x))

    def run(self, start, space: InputSpace, *, steps: int = 512, lr: float = 0.1, seed: int = 0,
            regularizers: Regularizers | None = None, progress=None, every: int = 8, cancel=None,
            start_name: str = "given input") -> Optimized:
        """Optimize from ``start`` (one sample in the model's input space); see :func:`maximize`."""
        tf = backend.tensorflow()
        reg = regularizers if regularizers is not None else Regularizers()
        if not (isinstance(steps, (int, np.integer)) and steps >= 0):
            raise UnitError(f"steps = {steps!r}; expected a whole number >= 0")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise UnitError(f"learning rate lr = {lr!r}; expected a finite number > 0")
        x0 = np.asarray(start, dtype=np.float32)
        if x0.size != int(np.prod(self.input_shape)):
            raise ModelError(f"the model expects one input of shape {self.input_shape}; the start has shape "
                             f"{x0.shape}")
        x0 = x0.reshape((1, *self.input_shape))
        rng = np.random.default_rng([int(seed), 1])  # the shifts' stream, apart from the noise start's
        consts = [tf.constant(a.reshape((1, *self.input_shape)), tf.float32)
                  for a in (space.low, space.high, space.center, space.scale)]
        lr_t, l2_t, tv_t = (tf.constant(float(v), tf.float32) for v in (lr, reg.l2, reg.tv))
        clip_t = tf.constant(bool(reg.clip))
        if reg.clip:
            x0 = np.clip(x0, space.low[None], space.high[None])
        start_activation = float(self.value(x0)[0])
        x = tf.constant(x0)
        trace = []
        cancelled = False
        sigma = [0.0] + [float(reg.blur_sigma) if a in self.spatial_axes else 0.0 for a in range(len(self.input_shape))]
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if reg.jitter and self.spatial_axes:
                shift = rng.integers(-reg.jitter, reg.jitter + 1, size=len(self.spatial_axes)).astype(np.int32)
            else:
                shift = np.zeros(len(self.spatial_axes), np.int32)
            x, target = self._step(x, tf.constant(shift), lr_t, l2_t, tv_t, *consts, clip_t)
            trace.append(float(target))
            if reg.blur_every and reg.blur_sigma > 0 and self.spatial_axes and i % reg.blur_every == 0:
                from scipy.ndimage import gaussian_filter

                blurred = gaussian_filter(np.asarray(x), sigma=sigma, mode="nearest")
                x = tf.constant(blurred.astype(np.float32))
            if progress is not None and (i % max(int(every), 1) == 0 or i == steps):
                if progress(i, steps, np.asarray(x)[0].copy(), trace[-1]) is False:
                    cancelled = i < steps
                    break
        seconds = time.perf_counter() - t0
        final = np.asarray(x)[0]
        return Optimized(
            input=final, activation=float(self.value(final[None])[0]), start_activation=start_activation,
            start_input=x0[0], trace=np.asarray(trace, dtype=np.float32), steps_done=len(trace), cancelled=cancelled,
            objective=self.objective, regularizers=reg, steps=int(steps), lr=float(lr), seed=int(seed),
            start=start_name, seconds=seconds, description=self.description, spatial_axes=self.spatial_axes,
        )


def maximizer(model, objective: Objective, spatial_axes=None) -> Maximizer:
    """The :class:`Maximizer` of ``model`` and ``objective``, built (and its step traced) once per process."""
    key = (objective, None if spatial_axes is None else tuple(spatial_axes))
    with _cache_lock:
        per_model = _maximizers.setdefault(model, {})
        hit = per_model.get(key)
        if hit is None:
            hit = per_model[key] = Maximizer(model, objective, spatial_axes)
        return hit


def _spatial_axes(project, input_shape: tuple):
    """The spatial axes of one input as the project's input view draws it: an image's rows and columns (also for a
    ``(28, 28)`` input without a channel axis), a series' time."""
    kind = getattr(project.input_view, "kind", None)
    rank = len(input_shape)
    if kind == "image" and rank == 2:
        return (0, 1)
    if kind == "image" and rank == 3:
        return (0, 1)
    if kind == "series" and rank == 2:
        return (0,)
    if kind in ("vector", "probabilities") and rank == 1:
        return ()
    return None


def noise_start(space: InputSpace, seed: int, amplitude: float = 0.1) -> np.ndarray:
    """A seeded noise input: the data's mean plus ``amplitude`` times its spread times standard normal noise."""
    rng = np.random.default_rng([int(seed), 0])
    return (space.center + amplitude * space.scale * rng.standard_normal(space.center.shape)).astype(np.float32)


def maximize(project, objective: Objective, *, start="noise", steps: int = 512, lr: float = 0.1, seed: int = 0,
             regularizers: Regularizers | None = None, progress=None, every: int = 8, cancel=None,
             space: InputSpace | None = None) -> Optimized:
    """Activation maximization: gradient ascent on the project model's input to drive ``objective`` up.

    The gradient is taken with respect to the input (``tf.GradientTape``), the network fixed, in inference mode;
    each step moves the input by ``lr`` times the data's spread along the normalized gradient of
    ``objective - l2 * L2 - tv * TV``, then clips it to the data's range. It works in the model's input space: for a
    project with a ``preprocess`` hook, after the hook (a start sample is preprocessed first).

    Parameters
    ----------
    project : Project
    objective : Objective
        A unit, a channel, an output, a weighted sum of several, or DeepDream on a layer (any layer of the model).
    start : "noise", int or array-like
        Seeded noise around the data's mean, a sample id of the project's dataset, or one input sample.
    steps : int
    lr : float
        Step size in units of the data's spread (per channel).
    seed : int
        Seeds the noise start and the jitter: identical arguments give identical results.
    regularizers : Regularizers, optional
        Default: clipping to the data's range only.
    progress : callable(step, steps, current_input, activation), optional
        Called every ``every`` steps and after the last one; returning ``False`` stops the run (cancelled).
    every : int
    cancel : threading.Event, optional
        Set it (from any thread) to stop the run after the current step; the result is marked cancelled.
    space : InputSpace, optional
        Default: :func:`input_space` of the project.

    Returns
    -------
    Optimized

    Raises
    ------
    UnitError
        Unknown layer, a unit outside its layer, a bad start sample or a bad parameter.

    Example
    -------
    >>> result = maximize(load_project("mnist"), Objective.unit("bottleneck", 3), steps=128, seed=0,
    ...                   regularizers=Regularizers(tv=0.5, jitter=1))             # doctest: +SKIP
    >>> result.activation > result.start_activation                                # doctest: +SKIP
    True
    """
    model = project.model()
    space = space if space is not None else input_space(project)
    shape = tuple(space.center.shape)
    opt = maximizer(model, objective, _spatial_axes(project, shape))
    if isinstance(start, str) and start == "noise":
        x0, name = noise_start(space, seed), "noise"
    elif isinstance(start, (int, np.integer)) and not isinstance(start, bool):
        x = project.inputs()
        if not 0 <= int(start) < len(x):
            raise UnitError(f"project {project.name!r} has samples 0..{len(x) - 1}; start sample {start} is out of "
                            "range")
        x0 = np.asarray(x[int(start) : int(start) + 1])
        preprocess = project.preprocess()
        if preprocess is not None:
            x0 = np.asarray(preprocess(x0))
        x0, name = x0[0], f"sample {int(start)}"
    else:
        if isinstance(start, str):
            raise UnitError(f"start = {start!r}; expected 'noise', a sample id or an input array")
        x0, name = np.asarray(start, dtype=np.float32), "given input"
    return opt.run(x0, space, steps=steps, lr=lr, seed=seed, regularizers=regularizers, progress=progress,
                   every=every, cancel=cancel, start_name=name)
