"""The model interface: what the engine needs of a model, whatever its framework.

A framework plugs in with one module that defines a :class:`Framework` (loading its files, describing every layer
with a :class:`LayerInfo`, splitting a model at a layer into a :class:`Split`, reading any layer with
:class:`Features`, gradients for activation maximization, training a suffix for fine-tuning) and registers it in
:mod:`engine.model`. Everything above the model subpackage (propagation, the reducers' decoding, inspection, the
dashboard, feature visualization, fine-tuning, the Dask workers) uses only these.

Arrays cross the interface as NumPy: a framework converts at its edge, so the caches, reducers and the dashboard never
see a framework tensor.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from engine.errors import ModelError

__all__ = ["Ascent", "Features", "Framework", "LayerInfo", "ModelObjects", "Split", "Term", "nearby_cuts"]


@dataclass(frozen=True)
class LayerInfo:
    """One selectable layer of a (flattened) model.

    Attributes
    ----------
    name : str
        Name to pass to :func:`engine.model.split`. Inner layers of nested models keep their own name unless it
        collides with another layer's, in which case it is qualified as ``"outer/inner"``; a PyTorch module is named
        by its path in the model (``"layer1.0"``), an ONNX node by its name.
    class_name : str
        The framework's class of the layer (``Dense``, ``Conv2d``, ``Functional`` for a nested model's output, an ONNX
        operator type...).
    output_shape : tuple
        Output shape with ``None`` for the batch dimension (and any other free dimension).
    valid_cut : bool
        Every path from the model's inputs to its outputs passes through this layer's output.
    reason : str or None
        Why the layer is not a valid cut.
    channel_axis : int
        Axis of one sample's activations (no batch axis) that holds the channels: ``-1`` for Keras (channels last),
        ``0`` for a PyTorch or ONNX convolution's ``(C, H, W)``; a flat layer's is ``-1``.
    """

    name: str
    class_name: str
    output_shape: tuple
    valid_cut: bool
    reason: str | None = None
    channel_axis: int = -1

    @property
    def units(self) -> int:
        """Number of scalar activations per sample at this layer."""
        return int(np.prod([d for d in self.output_shape[1:] if d is not None], dtype=np.int64))


def nearby_cuts(infos: list[LayerInfo], layer: str) -> str:
    """Advice for a refused cut at ``layer``: the closest valid cuts before and after it in ``infos``' order (the
    last layer of that name), for every framework's :class:`~engine.errors.CutError`."""
    at = max(i for i, info in enumerate(infos) if info.name == layer)
    before = next((info.name for info in reversed(infos[:at]) if info.valid_cut), None)
    after = next((info.name for info in infos[at + 1:] if info.valid_cut), None)
    near = " or ".join(repr(n) for n in (before, after) if n is not None)
    return ("cut at a layer that every path from the inputs to the outputs passes through"
            + (f", such as {near}" if near else ""))


@dataclass(frozen=True)
class ModelObjects:
    """What a project's ``hooks.py`` supplies to load its model.

    Attributes
    ----------
    custom_objects : mapping of str to class or function
        Keras: classes and functions the model uses (custom layers, activations, functions a Lambda names).
    lambdas : mapping of str to function
        Keras: a replacement for the Python function of a ``Lambda`` layer, by layer name.
    build_model : callable, optional
        PyTorch: ``build_model() -> torch.nn.Module``, the architecture into which a ``.pt``/``.pth`` state dict is
        loaded.
    example_input : callable, optional
        ``example_input() -> array`` of a batch of inputs as the model takes them, used to trace a PyTorch module;
        the project's first samples (after ``preprocess``) when the hooks define none.
    origin : str
        The ``hooks.py`` they come from, for messages.
    key : str
        A hash of that file, for caches.
    """

    custom_objects: Mapping[str, object] = field(default_factory=dict)
    lambdas: Mapping[str, Callable] = field(default_factory=dict)
    build_model: Callable | None = None
    example_input: Callable | None = None
    origin: str = "hooks.py"
    key: str = ""

    def __bool__(self) -> bool:
        return bool(self.custom_objects or self.lambdas or self.build_model or self.example_input)


class Term(NamedTuple):
    """One term of an activation-maximization objective, in the terms a framework computes it in.

    ``kind`` is ``"square"`` (mean squared activation of the layer), ``"unit"`` (one value: ``channel`` of a flat
    layer, or ``channel`` at ``position``) or ``"channel"`` (``channel`` averaged over the spatial positions);
    ``layer`` indexes :attr:`Features.layers`; ``channel_axis`` is the layer's (see :class:`LayerInfo`).
    """

    weight: float
    layer: int
    kind: str
    channel: int = 0
    position: tuple | None = None
    channel_axis: int = -1


class Ascent:
    """One compiled step of gradient ascent on a model's input for a fixed objective (see
    :class:`engine.explore.featurevis.Maximizer`, which drives it).

    ``step(x, shift, lr, l2, tv, low, high, center, scale, clip)`` takes one sample ``x`` of shape ``(1, *input)``
    and returns ``(x_next, objective)``: the input rolled by ``shift`` along the spatial axes, the objective minus
    ``l2`` times the mean squared normalized input minus ``tv`` times its total variation, differentiated with
    respect to the input, values pinned at a bound of ``low``/``high`` given no gradient, the gradient normalized to
    unit RMS, ``x + lr * scale * grad``, then clipped when ``clip``. ``value(x)`` is the objective of a batch.
    """

    def step(self, x, shift, lr, l2, tv, low, high, center, scale, clip):
        raise NotImplementedError

    def value(self, x) -> np.ndarray:
        raise NotImplementedError


class Split:
    """A model cut at one layer: ``suffix(prefix(x)) == model(x)`` (:func:`engine.model.split` builds one).

    A framework subclasses it and defines :meth:`_encode` and :meth:`_decode` (NumPy in, NumPy out, one compiled call
    per batch where the framework compiles); the shape checks and the multi-output convention live here.

    Attributes
    ----------
    framework : Framework
    model : object
        The loaded model.
    layer : str
    latent_shape : tuple
        Per-sample shape of the activations at the cut.
    input_shape : tuple
        Per-sample shape of the model's input (``None`` for a free dimension).
    input_dtype : str
    output_names : tuple of str
        One name per output of the model, in the model's order.
    output_shapes : tuple of tuple
        Per-sample shape of each output.
    """

    framework: Framework
    model: object
    layer: str
    latent_shape: tuple
    input_shape: tuple
    input_dtype: str = "float32"
    output_names: tuple = ()
    output_shapes: tuple = ()

    @property
    def output_shape(self) -> tuple:
        return self.output_shapes[0]

    @property
    def latent_size(self) -> int:
        return int(np.prod(self.latent_shape, dtype=np.int64))

    def _encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _decode(self, z: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def encode(self, x) -> np.ndarray:
        """Activations at the cut for a batch of inputs (inference mode), float32."""
        x = np.asarray(x)
        want = self.input_shape
        if x.shape[1:] != want and None not in want:
            if _same_but_unit_axes(x.shape[1:], want):
                x = x.reshape((len(x), *want))  # (n, 28, 28, 1) into a (n, 1, 28, 28) model: the same values
            else:
                raise ModelError(
                    f"model {self.framework.label(self.model)!r} expects samples of shape {want}, got samples of "
                    f"shape {x.shape[1:]} ({len(x):,} in this batch)"
                )
        return np.asarray(self._encode(x.astype(self.input_dtype, copy=False)), dtype=np.float32)

    def decode(self, z):
        """Model outputs for a batch of activations at the cut (inference mode); one compiled call.

        Returns
        -------
        numpy.ndarray, or list of numpy.ndarray
            The output; for a model with several outputs, one array per output in :attr:`output_names` order.
            :meth:`decode_heads` always returns the list.
        """
        heads = self.decode_heads(z)
        return heads[0] if len(heads) == 1 else heads

    def decode_heads(self, z) -> list[np.ndarray]:
        """Every output of the model for a batch of activations at the cut, one array per output."""
        z = np.asarray(z, dtype=np.float32)
        if z.shape[1:] != self.latent_shape:
            if z.ndim == 2 and z.shape[1] == self.latent_size:
                z = z.reshape((len(z), *self.latent_shape))
            else:
                raise ModelError(
                    f"layer {self.layer!r} has activations of shape {self.latent_shape} per sample, got {z.shape[1:]}"
                )
        return [np.asarray(h) for h in self._decode(np.ascontiguousarray(z))]


def _same_but_unit_axes(a: tuple, b: tuple) -> bool:
    """A batch of per-sample shape ``a`` reshapes to ``b`` keeping each value where it means the same: the shapes
    differ only by axes of length 1 (``(28, 28, 1)`` and ``(1, 28, 28)``), or one is flat and the sizes agree."""
    if int(np.prod(a)) != int(np.prod(b)):
        return False
    return len(a) == 1 or len(b) == 1 or tuple(d for d in a if d != 1) == tuple(d for d in b if d != 1)


class Features:
    """The outputs of any layers of a model (valid cuts or not) for a batch of inputs.

    Attributes
    ----------
    layers : tuple
        Layer names (``None``: the model's only output).
    input_shape : tuple
        Per-sample input shape.
    """

    layers: tuple = ()
    input_shape: tuple = ()

    def __call__(self, x) -> list[np.ndarray]:
        """One float32 array per layer, for the batch ``x`` (inference mode)."""
        raise NotImplementedError

    def conform(self, batch) -> np.ndarray:
        """``batch`` reshaped to the model's input shape when the sizes agree, as float32."""
        batch = np.asarray(batch)
        want = tuple(self.input_shape)
        if tuple(batch.shape[1:]) != want and None not in want:
            if not _same_but_unit_axes(tuple(batch.shape[1:]), want):
                raise ModelError(f"the model expects inputs of shape (n, {', '.join(map(str, want))}); got "
                                 f"{tuple(batch.shape)}")
            batch = batch.reshape((len(batch), *want))
        return batch.astype(np.float32, copy=False)

    def ascent(self, terms: tuple[Term, ...], spatial_axes: tuple) -> Ascent:
        """The compiled gradient-ascent step of ``terms`` (see :class:`Ascent`); raises :class:`ModelError` for a
        framework without gradients."""
        raise NotImplementedError


class Framework:
    """One model framework. Subclasses fill in the class attributes and the methods; :mod:`engine.model` holds the
    registry and dispatches to the framework that owns a file (by suffix) or a model object (:meth:`owns`).

    Attributes
    ----------
    name : str
        ``"keras"``, ``"pytorch"``, ``"onnx"``.
    title : str
        As messages write it.
    suffixes : tuple of str
        Model file suffixes, lower case.
    requires : tuple of str
        Modules that must be importable.
    extra : str
        The ``pyproject.toml`` extra that installs them.
    gradients : bool
        Activation maximization works (gradients with respect to the input).
    trainable : bool
        Fine-tuning works (the suffix can be trained and saved as a new version).
    version_suffix : str
        Suffix of the new versions fine-tuning saves.
    """

    name = ""
    title = ""
    suffixes: tuple = ()
    requires: tuple = ()
    extra = ""
    gradients = True
    trainable = True
    version_suffix = ""

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def require(self, path=None) -> None:
        """Raise :class:`ModelError` naming the extra to install when the framework's packages are missing."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            where = f"{path}: " if path is not None else ""
            raise ModelError(f"{where}{self.title} models need {', '.join(missing)}, which is not installed here; "
                             f"install the extra: pip install -e '.[{self.extra}]'")

    # -- loading and describing
    def load(self, path, *, trust: bool = False, objects: ModelObjects | None = None):
        raise NotImplementedError

    def owns(self, model) -> bool:
        raise NotImplementedError

    def label(self, model) -> str:
        """How messages name the model: its file name."""
        return getattr(model, "latent_inspector_file", None) or type(model).__name__

    def list_layers(self, model) -> list[LayerInfo]:
        raise NotImplementedError

    def input_specs(self, model) -> list[tuple[str, tuple, str]]:
        """``(name, per-sample shape, dtype)`` of each input."""
        raise NotImplementedError

    def output_specs(self, model) -> list[tuple[str, tuple, str | None]]:
        """``(name, per-sample shape, final activation or None)`` of each output."""
        raise NotImplementedError

    def require_single_input(self, model) -> None:
        specs = self.input_specs(model)
        if len(specs) == 1:
            return
        names = ", ".join(f"{n!r} {shape}" for n, shape, _ in specs)
        raise ModelError(f"model {self.label(model)!r} has {len(specs)} inputs ({names}); Latent Inspector feeds one "
                         "input array to a model, so models with several inputs are not supported; build a "
                         "single-input model over the part to inspect, save it, and inspect that")

    # -- cutting and running
    def split(self, model, layer: str) -> Split:
        raise NotImplementedError

    def layer_shape(self, model, layer: str | None) -> tuple:
        """Per-sample shape of ``layer``'s output (``None``: the model's output); raises :class:`UnitError`."""
        raise NotImplementedError

    def channel_axis(self, model, layer: str | None) -> int:
        """The channel axis of ``layer``'s per-sample activations (see :class:`LayerInfo`)."""
        return -1

    def features(self, model, layers) -> Features:
        raise NotImplementedError

    # -- training
    def train_suffix(self, split: Split, z: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float,
                     batch_size: int, freeze_batchnorm: bool, seed: int = 0, progress=None) -> list[float]:
        """Train the suffix of ``split`` (a copy of the model the caller owns) on activations ``z`` and class codes
        ``y`` with cross-entropy on its probabilities; the prefix stays as it was. Returns each epoch's loss."""
        raise ModelError(f"fine-tuning is not available for {self.title} models")

    def train_prefix(self, split: Split, x: np.ndarray, z: np.ndarray, weights: np.ndarray, *, steps: int,
                     learning_rate: float, batch_size: int, last_layers: int | None = None,
                     relative: bool = False, seed: int = 0, progress=None, cancel=None) -> list[float]:
        """Train the prefix of ``split`` (a copy of the model the caller owns) so that its activations of the inputs
        ``x`` approach the targets ``z``: Adam on the mean squared error of each row, weighted by ``weights``, in
        inference mode (Dropout off, BatchNorm statistics kept), for ``steps`` minibatches of ``batch_size`` rows.
        Only the last ``last_layers`` layers of the prefix that hold weights are trained (all of them when None);
        the suffix's own weights stay as they were. With ``relative``, ``z`` holds displacements from the prefix's
        activations of ``x`` before training, computed by the training step's own forward pass (a zero displacement
        is then an exact no-op: activations read from a cache, computed in other batches, can differ in the last
        bits, and Adam scales any gradient up to a full step). ``progress("refining", step, steps)`` after each step;
        ``cancel()`` returning true stops between steps with :class:`~engine.errors.Cancelled`. Returns each step's
        loss (see :mod:`engine.explore.refine`)."""
        raise ModelError(f"refining the layers before a cut is not available for {self.title} models")

    def save(self, model, path) -> None:
        """Write ``model`` (trained by :meth:`train_suffix`) to ``path`` (ending in :attr:`version_suffix`)."""
        raise ModelError(f"saving is not available for {self.title} models")
