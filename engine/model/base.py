"""What the engine needs to know of a model, whatever its framework: its layers, and where it can be cut.

A framework module (:mod:`engine.model.keras`) describes every layer of a model it loaded with a :class:`LayerInfo`;
everything above the model subpackage (propagation, the dashboard's layer list, the CLI's ``info``) reads these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LayerInfo"]


@dataclass(frozen=True)
class LayerInfo:
    """One selectable layer of a (flattened) model.

    Attributes
    ----------
    name : str
        Name to pass to :func:`engine.model.split`. Inner layers of nested models keep their own name unless it
        collides with another layer's, in which case it is qualified as ``"outer/inner"``.
    class_name : str
        The framework's class of the layer (``Dense``, ``Conv2D``, ``Functional`` for a nested model's output...).
    output_shape : tuple
        Output shape with ``None`` for the batch dimension.
    valid_cut : bool
        Every path from the model's inputs to its outputs passes through this layer's output.
    reason : str or None
        Why the layer is not a valid cut.
    """

    name: str
    class_name: str
    output_shape: tuple
    valid_cut: bool
    reason: str | None = None

    @property
    def units(self) -> int:
        """Number of scalar activations per sample at this layer."""
        return int(np.prod([d for d in self.output_shape[1:] if d is not None], dtype=np.int64))
