"""Models: load a trained model file, list its layers, split it at one layer into a prefix and a suffix.

This subpackage is where a model framework plugs in. A framework module (today :mod:`engine.model.keras`) loads its
files, describes each layer (:class:`LayerInfo`: output shape, whether it is a valid cut and why not) and builds
the :class:`Split` of a model at a layer, whose ``encode`` runs the prefix and ``decode`` the suffix, each one
compiled call per batch. Everything above (propagation, the reducers' decoding, the dashboard) uses only these.

Example
-------
>>> from engine.model import load_model, list_layers, split
>>> model = load_model("projects/mnist/autoencoder.h5")                        # doctest: +SKIP
>>> [layer.name for layer in list_layers(model) if layer.valid_cut][:3]       # doctest: +SKIP
>>> z = split(model, "bottleneck").encode(x)                                   # doctest: +SKIP
"""

from engine.data.files import file_hash
from engine.model.base import LayerInfo
from engine.model.keras import (
    MODEL_SUFFIXES,
    Split,
    feature_extractor,
    input_specs,
    layer_shape,
    list_layers,
    load_model,
    load_model_cached,
    model_label,
    output_specs,
    require_single_input,
    split,
)

__all__ = [
    "MODEL_SUFFIXES",
    "LayerInfo",
    "Split",
    "feature_extractor",
    "input_specs",
    "layer_shape",
    "list_layers",
    "load_model",
    "load_model_cached",
    "model_hash",
    "model_label",
    "output_specs",
    "require_single_input",
    "split",
]


def model_hash(path) -> str:
    """Content hash of a model file: the key of every cache derived from it."""
    return file_hash(path)
