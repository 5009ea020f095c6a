"""Explore one inspected layer: the :class:`Inspection` (propagate -> reduce -> decode any point), and what a user does
with it.

* :mod:`engine.explore.inspection`: an inspected layer; decode any 2-D point, with a trust measure;
* :mod:`engine.explore.probe`: a classifier of the layer's activations, refit with corrected labels;
* :mod:`engine.explore.edit`: edit an activation by hand along its principal directions and channels;
* :mod:`engine.explore.interpolate`: paths between two points of the layer, decoded and projected;
* :mod:`engine.explore.neighbors`: nearest samples in the layer's full space;
* :mod:`engine.explore.selection`: boxes, lassos and axis ranges; ids exported and linked across views;
* :mod:`engine.explore.compare`: two inspections of the same samples side by side;
* :mod:`engine.explore.featurevis`: what drives a unit, from the data and by optimization.
"""

from engine.lazy import lazy_exports

_EXPORTS = {
    "Decode": "engine.explore.inspection",
    "Inspection": "engine.explore.inspection",
    "Probe": "engine.explore.probe",
    "train_probe": "engine.explore.probe",
    "finetune_probe": "engine.explore.probe",
    "LatentEditor": "engine.explore.edit",
    "interpolation_path": "engine.explore.interpolate",
    "neighbors_of": "engine.explore.neighbors",
    "select_box": "engine.explore.selection",
    "select_lasso": "engine.explore.selection",
    "compare": "engine.explore.compare",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
