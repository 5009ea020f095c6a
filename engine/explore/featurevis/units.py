"""What drives a unit, from the data: units and objectives, and the dataset samples that drive them highest and
lowest.

A unit is addressed the same way for every layer (:class:`Unit`): for activations of shape ``(n, d)`` a unit is an
index in ``d``; for a convolutional layer, ``(n, H, W, C)`` or ``(n, T, C)``, it is a channel, either averaged over
space (``position=None``) or read at one spatial position. :func:`top_examples` reads the cached activations
(:func:`engine.propagate.activations`) one chunk at a time and ranks them by a partial sort (:func:`top_k`), so that a
memory-mapped cache of millions of rows is cheap; a layer where the model cannot be cut (inside a residual block, a
nested model's inner layer) is computed through a feature extractor over the model's flattened graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.errors import UnitError
from engine.model import channel_axis, features, layer_shape
from engine.progress import ProgressFn, report

__all__ = [
    "BATCH",
    "CHUNK_ROWS",
    "DeepDream",
    "Examples",
    "Objective",
    "Unit",
    "UnitExamples",
    "dataset_values",
    "objective_values",
    "top_examples",
    "top_k",
    "unit_activations",
    "unit_at",
    "unit_shape",
]

#: Rows read from a (memory-mapped) activation cache per chunk.
CHUNK_ROWS = 65_536
#: Rows per compiled call when a layer's activations are computed here (a layer that is not a valid cut).
BATCH = 1024


def unit_shape(model, layer: str | None) -> tuple:
    """Per-sample shape of ``layer`` as units address it: channels last, whatever the framework (a PyTorch or ONNX
    convolution's ``(C, H, W)`` reads ``(H, W, C)``). ``None`` is the model's output. Raises :class:`UnitError`."""
    return _channels_last(layer_shape(model, layer), channel_axis(model, layer))


def _channels_last(shape: tuple, axis: int) -> tuple:
    shape = tuple(shape)
    if axis == -1 or len(shape) < 2:
        return shape
    return shape[:axis] + shape[axis + 1:] + (shape[axis],)


def _as_channels_last(block: np.ndarray, axis: int) -> np.ndarray:
    """A block of activations (rows first) with the per-sample channel ``axis`` moved last (a view)."""
    return block if axis == -1 or block.ndim < 3 else np.moveaxis(block, axis + 1, -1)


# -- addressing units ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One scalar of a layer, per sample.

    Parameters
    ----------
    layer : str or None
        A layer name as :func:`engine.model.list_layers` gives it; ``None`` is the model's final output.
    channel : int
        For activations of shape ``(d,)``: the unit's index. For ``(H, W, C)`` or ``(T, C)``: the channel (last
        axis; a PyTorch or ONNX convolution's ``(C, H, W)`` is addressed as ``(H, W, C)``, see :func:`unit_shape`).
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


def unit_activations(z, target, *, chunk: int = CHUNK_ROWS, channel_axis: int = -1) -> np.ndarray:
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
        target.check(_channels_last(tuple(z.shape[1:]), channel_axis))
    n = len(z)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, chunk):
        block = _as_channels_last(np.asarray(z[start : start + chunk]), channel_axis)
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


def dataset_values(project, target, *, cache_dir=None, progress: ProgressFn | None = None) -> tuple[np.ndarray, tuple]:
    """Each sample's value of ``target`` (a Unit or DeepDream) over the project's dataset, and the layer's shape.

    A layer where the model can be cut is read from the activation cache (computed and cached on first use); any
    other layer (inside a residual block, say) is computed here through a feature extractor, batch by batch, and
    not cached.

    Raises
    ------
    UnitError
        Unknown layer, or a unit outside the layer.
    """
    from engine.model import list_layers
    from engine.propagate import activations

    model = project.model()
    layer = target.layer
    shape = unit_shape(model, layer)
    axis = channel_axis(model, layer)
    if isinstance(target, Unit):
        target.check(shape)
    info = None if layer is None else next((i for i in list_layers(model) if i.name == layer), None)
    if info is not None and info.valid_cut:
        z = activations(project, layer, cache_dir=cache_dir, progress=progress)
        return unit_activations(z, target, channel_axis=axis), shape
    # Not a cut (or the output): run the dataset through the layer's features, reducing each batch at once.
    read = features(model, (layer,))
    x = project.inputs()
    preprocess = project.preprocess()
    out = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), BATCH):
        batch = np.asarray(x[start : start + BATCH])
        if preprocess is not None:
            batch = np.asarray(preprocess(batch))
        out[start : start + len(batch)] = _reduce(_as_channels_last(read(batch)[0], axis), target)
        report(progress, "activations", min(start + BATCH, len(x)), len(x))
    return out, shape


def objective_values(project, objective: Objective, *, cache_dir=None,
                     progress: ProgressFn | None = None) -> np.ndarray:
    """Each sample's value of a whole :class:`Objective` (its weighted sum of terms), float32 of shape (n,)."""
    total = None
    for w, target in objective.terms:
        values, _ = dataset_values(project, target, cache_dir=cache_dir, progress=progress)
        total = w * values.astype(np.float64) if total is None else total + w * values
    return total.astype(np.float32)


def top_examples(project, target, k: int = 8, *, cache_dir=None, progress: ProgressFn | None = None) -> UnitExamples:
    """The ``k`` dataset samples that drive ``target`` highest and the ``k`` that drive it lowest.

    Parameters
    ----------
    project : Project
    target : Unit, DeepDream or Objective
        An objective ranks by its weighted sum.
    k : int
    cache_dir : str or Path, optional
        Where the activation cache lives (default :func:`engine.cache_dir`).
    progress : callable(stage, done, total), optional
        While the activations are computed (not on a cache hit): stage ``"propagate"`` or ``"activations"``.

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
        shape = unit_shape(project.model(), target.terms[0][1].layer) if len(target.terms) == 1 else ()
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
