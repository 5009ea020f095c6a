"""Latent Inspector's engine: split a trained model at any layer, propagate a dataset, reduce it to 2-D, decode any
point of the plane back through the rest of the model.

The engine computes and knows no screen: it never imports Panel, Bokeh or HoloViews. Its subpackages are the
stages of the pipeline, in order::

    engine.data       files, projects, chunked stores, generated datasets
    engine.model      load a model, list its layers, split it (where a model framework plugs in)
    engine.propagate  the dataset through the prefix, in batches, cached
    engine.reduce     2-D reducers (PCA, UMAP, t-SNE), inverse maps, trust and quality
    engine.render     datashader pictures of an embedding, parallel coordinates, samples as pixels
    engine.explore    an Inspection of one layer, and what a user does with it (probe, edit, neighbours, ...)
    engine.backends   where a compute backend plugs in (Dask, CuPy) and the Dask cluster

The names below are the public API; importing ``engine`` loads none of TensorFlow, scikit-learn or numba (each name
is imported on first use).

Example
-------
>>> from engine import load_project, Inspection
>>> inspection = Inspection(load_project("mnist"), "bottleneck", method="pca")   # doctest: +SKIP
>>> inspection.decode(0.5, -1.0).output.shape                                      # doctest: +SKIP
(28, 28, 1)
"""

import os

from engine.settings import cache_dir

__version__ = "0.1.0"

# numba (UMAP, pynndescent, datashader) compiles on first use; caching the machine code inside the project lets
# every later process, test run and dashboard reuse it. Must happen before anything imports numba.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
# TensorFlow's C++ start-up chatter is noise for a CLI user; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from engine.lazy import lazy_exports  # noqa: E402

_EXPORTS = {
    # data
    "load_project": "engine.data.project",
    "list_projects": "engine.data.project",
    "Project": "engine.data.project",
    "open_chunked": "engine.data.chunked",
    "open_store": "engine.data.store",
    # model
    "load_model": "engine.model",
    "list_layers": "engine.model",
    "split": "engine.model",
    "LayerInfo": "engine.model",
    # propagate
    "propagate": "engine.propagate",
    "activations": "engine.propagate",
    # reduce
    "make_reducer": "engine.reduce",
    "make_inverse": "engine.reduce",
    "METHODS": "engine.reduce",
    "INVERSES": "engine.reduce",
    "quality_report": "engine.reduce",
    # render
    "latent_image": "engine.render",
    "write_png": "engine.render",
    # explore
    "Inspection": "engine.explore.inspection",
    "Decode": "engine.explore.inspection",
    # backends
    "connect": "engine.backends.cluster",
    # errors
    "InspectorError": "engine.errors",
    "DataError": "engine.errors",
    "ProjectError": "engine.errors",
    "ModelError": "engine.errors",
    "CutError": "engine.errors",
    "ReducerError": "engine.errors",
    "RenderError": "engine.errors",
    "SelectionError": "engine.errors",
    "EditError": "engine.errors",
    "ProbeUnavailable": "engine.errors",
    "UnitError": "engine.errors",
    "ClusterError": "engine.errors",
}
__all__ = ["__version__", "cache_dir", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
