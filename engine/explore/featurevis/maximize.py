"""What drives a unit, by optimization: gradient ascent on the input, the network fixed, to drive a unit, a channel,
an output, a weighted sum of several, or a whole layer (the DeepDream objective, the mean squared activation) as
high as it goes, with optional regularizers (L2 decay, total variation, jitter, blur, clipping to the data's range).
It runs as one compiled step function, streams its progress and can be cancelled.

Inputs are optimized **in the model's input space**: for a project with a ``preprocess`` hook that is the space
after the hook, and the optimized input is what the model sees, not a raw file sample. Steps and regularizers are
measured in units of the data's own spread (:class:`InputSpace`), so one learning rate suits MNIST's 0..255 grey
levels and standardized sensor series alike. Optimization works for any layer of the model, not only the layers
where it can be cut (:func:`engine.model.features`), in every framework with gradients (Keras, PyTorch; an ONNX
model is refused in one line).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from engine.errors import ModelError, UnitError
from engine.explore.featurevis.units import CHUNK_ROWS, DeepDream, Objective, Unit, unit_shape
from engine.memo import Memo, ObjectMemo
from engine.model import Term, channel_axis, features, framework_of, input_specs
from engine.progress import ProgressFn, report

__all__ = [
    "InputSpace",
    "Maximizer",
    "Optimized",
    "Regularizers",
    "input_space",
    "maximize",
    "maximizer",
    "noise_start",
    "total_variation",
]

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


#: Input spaces of the data files seen by this process (one read of a whole file each).
INPUT_SPACES = Memo(max_items=8, name="input spaces of data files")
#: Maximizers of a model (each traces a compiled step), kept while the model object lives.
_MAXIMIZERS = ObjectMemo(max_items=16, name="activation maximizers of a model")


def input_space(project) -> InputSpace:
    """The project's :class:`InputSpace` (after its ``preprocess`` hook), computed once per data file and process."""
    key = (str(project.inputs_path), project.inputs_key, project.data_hash())
    return INPUT_SPACES.get(key, lambda: InputSpace.from_data(project.inputs(), preprocess=project.preprocess()))


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
        Stopped before ``steps`` (by the ``cancel`` event or an ``on_step`` callback returning False).
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
        but the channel axis for inputs of rank >= 2 (``(H, W, C)`` -> (0, 1); ``(T, C)`` -> (0,); a PyTorch
        ``(C, H, W)`` -> (1, 2)), none for flat inputs.

    Raises
    ------
    UnitError
        A layer or unit of the objective that the model does not have.
    """

    def __init__(self, model, objective: Objective, spatial_axes=None):
        framework = framework_of(model)
        if not framework.gradients:
            raise ModelError(f"activation maximization needs gradients with respect to the input, which "
                             f"{framework.title} models do not have here; the top dataset examples of a unit work, "
                             "or load the model the file was exported from")
        self.model, self.objective = model, objective
        self.shapes = {layer: unit_shape(model, layer) for layer in objective.layers}
        for _, target in objective.terms:
            if isinstance(target, Unit):
                target.check(self.shapes[target.layer])
        self.features = features(model, objective.layers)
        self.input_shape = tuple(int(d) for d in self.features.input_shape)
        rank = len(self.input_shape)
        if spatial_axes is None:  # all but the channel axis
            first = channel_axis(model, input_specs(model)[0][0]) == 0
            spatial_axes = tuple(range(1, rank) if first else range(rank - 1)) if rank >= 2 else ()
        self.spatial_axes = tuple(int(a) for a in spatial_axes)
        self.description = objective.describe(self.shapes)
        index = {layer: i for i, layer in enumerate(objective.layers)}
        terms = []
        for w, t in objective.terms:
            axis = channel_axis(model, t.layer)
            if isinstance(t, DeepDream):
                terms.append(Term(w, index[t.layer], "square", channel_axis=axis))
            elif len(self.shapes[t.layer]) == 1 or t.position is not None:
                terms.append(Term(w, index[t.layer], "unit", t.channel, t.position, axis))
            else:
                terms.append(Term(w, index[t.layer], "channel", t.channel, None, axis))
        self._ascent = self.features.ascent(tuple(terms), self.spatial_axes)

    def value(self, x) -> np.ndarray:
        """The objective for a batch of inputs ``x`` (n, *input_shape), inference mode."""
        x = np.asarray(x, dtype=np.float32).reshape((-1, *self.input_shape))
        return np.asarray(self._ascent.value(x))

    def run(self, start, space: InputSpace, *, steps: int = 512, lr: float = 0.1, seed: int = 0,
            regularizers: Regularizers | None = None, progress: ProgressFn | None = None, on_step=None,
            every: int = 8, cancel=None, start_name: str = "given input") -> Optimized:
        """Optimize from ``start`` (one sample in the model's input space); see :func:`maximize`."""
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
        consts = [np.asarray(a, np.float32).reshape((1, *self.input_shape))
                  for a in (space.low, space.high, space.center, space.scale)]
        if reg.clip:  # the bounds in the model's input shape (the data's (28, 28, 1) into a (1, 28, 28) model)
            x0 = np.clip(x0, consts[0], consts[1])
        start_activation = float(self.value(x0)[0])
        x = x0
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
            x, target = self._ascent.step(x, shift, lr, reg.l2, reg.tv, *consts, bool(reg.clip))
            trace.append(float(target))
            if reg.blur_every and reg.blur_sigma > 0 and self.spatial_axes and i % reg.blur_every == 0:
                from scipy.ndimage import gaussian_filter

                blurred = gaussian_filter(np.asarray(x), sigma=sigma, mode="nearest")
                x = blurred.astype(np.float32)
            if i % max(int(every), 1) == 0 or i == steps:
                report(progress, "optimize", i, steps)
                if on_step is not None and on_step(i, steps, np.asarray(x)[0].copy(), trace[-1]) is False:
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
    return _MAXIMIZERS.get(model, key, lambda: Maximizer(model, objective, spatial_axes))


def _spatial_axes(project, model):
    """The spatial axes of one model input as the project's input view draws it: an image's rows and columns (also for
    a ``(28, 28)`` input without a channel axis; ``(1, 2)`` of a PyTorch ``(C, H, W)``), a series' time."""
    name, shape, _ = input_specs(model)[0]
    first = channel_axis(model, name) == 0
    kind = getattr(project.input_view, "kind", None)
    rank = len(shape)
    if kind == "image" and rank == 2:
        return (0, 1)
    if kind == "image" and rank == 3:
        return (1, 2) if first else (0, 1)
    if kind == "series" and rank == 2:
        return (1,) if first else (0,)
    if kind in ("vector", "probabilities") and rank == 1:
        return ()
    return None


def noise_start(space: InputSpace, seed: int, amplitude: float = 0.1) -> np.ndarray:
    """A seeded noise input: the data's mean plus ``amplitude`` times its spread times standard normal noise."""
    rng = np.random.default_rng([int(seed), 0])
    return (space.center + amplitude * space.scale * rng.standard_normal(space.center.shape)).astype(np.float32)


def maximize(project, objective: Objective, *, start="noise", steps: int = 512, lr: float = 0.1, seed: int = 0,
             regularizers: Regularizers | None = None, progress: ProgressFn | None = None, on_step=None,
             every: int = 8, cancel=None, space: InputSpace | None = None) -> Optimized:
    """Activation maximization: gradient ascent on the project model's input to drive ``objective`` up.

    The gradient is taken with respect to the input (``tf.GradientTape``, ``torch.autograd``), the network fixed,
    in inference mode; each step moves the input by ``lr`` times the data's spread along the normalized gradient of
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
    progress : callable(stage, done, total), optional
        Stage ``"optimize"``, steps done: every ``every`` steps and after the last one.
    on_step : callable(step, steps, current_input, activation), optional
        The run as it goes, at the same steps (the current input, to show it); returning ``False`` stops the run
        (cancelled).
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
    opt = maximizer(model, objective, _spatial_axes(project, model))
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
                   on_step=on_step, every=every, cancel=cancel, start_name=name)
