"""Feature visualization: what drives a unit, from the data and by optimization.

Two classic answers to "what is this part of the network looking for?":

* **From the data** (:mod:`engine.explore.featurevis.units`): the dataset samples that activate a unit most and
  least, with their inputs and labels (:func:`top_examples`).
* **By optimization** (:mod:`engine.explore.featurevis.maximize`): gradient ascent on the input to drive a unit, a
  channel, an output, a weighted sum of several, or DeepDream on a layer as high as it goes (:func:`maximize`).

Example
-------
>>> from engine.explore import featurevis as fv
>>> ex = fv.top_examples(load_project("mnist"), fv.Unit("bottleneck", 3), k=5)              # doctest: +SKIP
>>> result = fv.maximize(load_project("mnist"), fv.Objective.unit("bottleneck", 3))      # doctest: +SKIP
"""

from engine.errors import UnitError
from engine.explore.featurevis.maximize import (
    InputSpace,
    Maximizer,
    Optimized,
    Regularizers,
    input_space,
    maximize,
    maximizer,
    noise_start,
    total_variation,
)
from engine.explore.featurevis.units import (
    BATCH,
    CHUNK_ROWS,
    DeepDream,
    Examples,
    Objective,
    Unit,
    UnitExamples,
    dataset_values,
    objective_values,
    top_examples,
    top_k,
    unit_activations,
    unit_at,
    unit_shape,
)

__all__ = [
    "BATCH",
    "CHUNK_ROWS",
    "DeepDream",
    "Examples",
    "InputSpace",
    "Maximizer",
    "Objective",
    "Optimized",
    "Regularizers",
    "Unit",
    "UnitError",
    "UnitExamples",
    "dataset_values",
    "input_space",
    "maximize",
    "maximizer",
    "noise_start",
    "objective_values",
    "top_examples",
    "top_k",
    "total_variation",
    "unit_activations",
    "unit_shape",
    "unit_at",
]
