"""Models: load a trained model file, list its layers, split it at one layer into a prefix and a suffix.

This subpackage is where a model framework plugs in. The interface the engine needs is defined once, in
:mod:`engine.model.base` (:class:`Framework`, :class:`Split`, :class:`Features`, :class:`LayerInfo`); each framework
is one module implementing it:

========================  ==========================================  =================================
module                    files                                       extra
========================  ==========================================  =================================
:mod:`engine.model.keras` ``.keras``, ``.h5`` (Keras 3, Keras 2 files) ``cpu`` (TensorFlow) or ``gpu``
:mod:`engine.model.torch` ``.pt2`` (``torch.export``), ``.pt``/``.pth`` ``torch``
:mod:`engine.model.onnx`  ``.onnx``                                    ``onnx``
========================  ==========================================  =================================

The functions here dispatch to the framework that owns a file (by its suffix) or a loaded model object; everything
above (propagation, the reducers' decoding, inspection, the dashboard, feature visualization, fine-tuning, the Dask
workers) calls only these. Adding a framework means adding one module and one line in :data:`FRAMEWORKS`.

Example
-------
>>> from engine.model import load_model, list_layers, split
>>> model = load_model("projects/mnist/autoencoder.h5")                        # doctest: +SKIP
>>> [layer.name for layer in list_layers(model) if layer.valid_cut][:3]       # doctest: +SKIP
>>> z = split(model, "bottleneck").encode(x)                                   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from engine.data.files import file_hash
from engine.errors import ModelError
from engine.memo import Memo
from engine.model import keras as _keras
from engine.model import onnx as _onnx
from engine.model import torch as _torch
from engine.model.base import Features, Framework, LayerInfo, ModelObjects, Split, Term

__all__ = [
    "FRAMEWORKS",
    "MODEL_SUFFIXES",
    "Features",
    "Framework",
    "LayerInfo",
    "ModelObjects",
    "Split",
    "Term",
    "channel_axis",
    "features",
    "framework_for",
    "framework_of",
    "input_specs",
    "layer_shape",
    "list_layers",
    "load_model",
    "load_model_cached",
    "model_hash",
    "model_in_memory",
    "model_label",
    "output_specs",
    "require_single_input",
    "split",
]

#: The frameworks, by name.
FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (_keras.FRAMEWORK, _torch.FRAMEWORK, _onnx.FRAMEWORK)}
#: Every model file suffix a framework reads.
MODEL_SUFFIXES: tuple[str, ...] = tuple(s for f in FRAMEWORKS.values() for s in f.suffixes)


def framework_for(path) -> Framework:
    """The framework that reads the model file ``path`` (by its suffix); :class:`ModelError` for another suffix."""
    suffix = Path(path).suffix.lower()
    for framework in FRAMEWORKS.values():
        if suffix in framework.suffixes:
            return framework
    kinds = "; ".join(f"{f.title} {', '.join(f.suffixes)}" for f in FRAMEWORKS.values())
    raise ModelError(f"{path}: not a model file this tool reads; expected one of: {kinds}")


def framework_of(model) -> Framework:
    """The framework a loaded model object belongs to."""
    for framework in FRAMEWORKS.values():
        if framework.owns(model):
            return framework
    raise ModelError(f"a {type(model).__module__}.{type(model).__name__} is not a model this tool loaded; load it with "
                     "engine.model.load_model")


def load_model(path, *, trust: bool = False, objects: ModelObjects | None = None):
    """Load a model file for inference, with the framework its suffix names.

    Parameters
    ----------
    path : str or Path
    trust : bool
        Allow what runs code from the file (a Keras Lambda's bytecode, a pickled PyTorch module). Never set it for a
        file you did not write or check.
    objects : ModelObjects, optional
        What the project's ``hooks.py`` supplies (Keras custom objects and Lambda replacements, PyTorch
        ``build_model`` and ``example_input``).

    Raises
    ------
    ModelError
        Unknown suffix, the framework not installed (naming the extra), or a file that cannot be loaded (the message
        names the file and what was expected).
    """
    path = Path(path)
    framework = framework_for(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    framework.require(path)
    return framework.load(path, trust=trust, objects=objects)


#: Models loaded by :func:`load_model_cached`, by file, content, trust setting and the project's objects: the
#: process-wide memo of model files (a long-running server sees several projects and fine-tuned versions).
LOADED_MODELS = Memo(max_items=8, name="loaded models")


def _loaded_key(path: Path, trust: bool, objects: ModelObjects | None) -> tuple:
    stat = path.stat() if path.exists() else None
    return (str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None, trust,
            objects.key if objects else None)


def load_model_cached(path, *, trust: bool = False, objects: ModelObjects | None = None):
    """:func:`load_model`, once per process for a given file content, trust setting and project objects (the 8
    most recent kept)."""
    path = Path(path).resolve()
    return LOADED_MODELS.get(_loaded_key(path, trust, objects), lambda: load_model(path, trust=trust, objects=objects))


def model_in_memory(path, *, trust: bool = False, objects: ModelObjects | None = None) -> bool:
    """True when :func:`load_model_cached` holds the model of ``path`` (the file as it is now), so that asking for
    it reads nothing."""
    return _loaded_key(Path(path).resolve(), trust, objects) in LOADED_MODELS


def model_hash(path) -> str:
    """Content hash of a model file: the key of every cache derived from it."""
    return file_hash(path)


def model_label(model) -> str:
    """How messages name a model: its file (``'ae.keras'``)."""
    return framework_of(model).label(model)


def list_layers(model) -> list[LayerInfo]:
    """Every layer of the model in graph order, with its output shape and whether it is a valid cut (and why not)."""
    return framework_of(model).list_layers(model)


def input_specs(model) -> list[tuple[str, tuple, str]]:
    """``(name, per-sample shape, dtype)`` of each input of the model (``None`` for a free dimension)."""
    return framework_of(model).input_specs(model)


def output_specs(model) -> list[tuple[str, tuple, str | None]]:
    """``(name, per-sample shape, final activation)`` of each output of the model (the activation's name, such as
    ``"softmax"`` or ``"sigmoid"``, or None when it cannot be told)."""
    return framework_of(model).output_specs(model)


def require_single_input(model) -> None:
    """Raise :class:`ModelError` for a model with several inputs, in one line saying what to do instead."""
    framework_of(model).require_single_input(model)


def split(model, layer: str) -> Split:
    """The :class:`Split` of ``model`` at ``layer`` (built once per model and layer while the model object lives).

    Raises
    ------
    CutError
        No such layer, or a tensor that crosses the cut (named in the message, with the nearest valid cuts).
    """
    return framework_of(model).split(model, layer)


def layer_shape(model, layer: str | None) -> tuple:
    """Per-sample activation shape of ``layer``; ``None`` is the model's output. Raises :class:`UnitError`."""
    return framework_of(model).layer_shape(model, layer)


def channel_axis(model, layer: str | None) -> int:
    """The axis of ``layer``'s per-sample activations that holds its channels (``-1``: last, as Keras; ``0``: a
    PyTorch or ONNX convolution's ``(C, H, W)``)."""
    return framework_of(model).channel_axis(model, layer)


def features(model, layers) -> Features:
    """The outputs of any ``layers`` (valid cuts or not; ``None`` is the output) for a batch of inputs, and gradients
    through them where the framework has them (:meth:`Features.ascent`)."""
    return framework_of(model).features(model, tuple(layers))
