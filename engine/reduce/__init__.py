"""Reducers: 2-D projections of a layer's activations, and the maps back.

Estimators in the scikit-learn style, on float32 arrays of shape (n, d) (one flattened activation per row):

* reducers: :class:`PCAReducer`, :class:`UMAPReducer`, :class:`TSNEReducer` --
  ``fit(X)``, ``transform(X)``, ``fit_transform(X)``, ``inverse_transform(Y)``, ``trust(Y)``;
* inverse maps: :class:`PCAInverse` (exact), :class:`MLPInverse` (NNInv), :class:`KNNInverse`,
  :class:`NativeInverse` -- ``fit(Y, X, reducer=None)``, ``transform(Y) -> X``; any reducer takes any of them
  as its ``inverse`` parameter;
* :class:`TrustModel` / :class:`Trust`: how far a decoded point is an extrapolation;
* :func:`quality_report` / :class:`QualityReport`: trustworthiness, continuity, round-trip errors;
* :class:`PrincipalDirections`: PCA, once, for every backend (the 2-D PCA reducer, the editor's directions);
* :func:`make_reducer`, :func:`make_inverse` and the name tables :data:`METHODS`, :data:`INVERSES`;
* :func:`embed`: every row of a dataset (a Zarr store: into another store, on the Dask workers);
* :func:`warm_up`: a reducer's libraries imported and its compiled code ready, for a server to call at start
  (:func:`import_libraries`: the imports alone).

The activations may be a NumPy array, a memory map, or a Dask array or Zarr store (:mod:`engine.backends`).
Names are imported on first use: ``import engine.reduce`` loads neither scikit-learn nor UMAP.

Example
-------
>>> from engine.reduce import make_reducer
>>> reducer = make_reducer("umap", random_state=0, cache_dir=".cache/projections")   # doctest: +SKIP
>>> embedding = reducer.fit_transform(activations)                                   # doctest: +SKIP
>>> decoded = reducer.inverse_transform([[1.5, -2.0]])                               # doctest: +SKIP
>>> reducer.trust([[1.5, -2.0]]).record(0)                                           # doctest: +SKIP
"""

from engine.lazy import lazy_exports
from engine.reduce.names import INVERSES, METHOD_PARAMS, METHODS

_EXPORTS = {
    "BackendUnavailableError": "engine.errors",
    "ReducerNotFittedError": "engine.errors",
    "ReducerValueError": "engine.errors",
    "BaseReducer": "engine.reduce.base",
    "ProjectionCache": "engine.reduce.cache",
    "KNNInverse": "engine.reduce.inverse",
    "MLPInverse": "engine.reduce.inverse",
    "NativeInverse": "engine.reduce.inverse",
    "PCAInverse": "engine.reduce.inverse",
    "make_inverse": "engine.reduce.inverse",
    "PCAReducer": "engine.reduce.pca",
    "PrincipalDirections": "engine.reduce.pca",
    "QualityReport": "engine.reduce.quality",
    "continuity": "engine.reduce.quality",
    "quality_report": "engine.reduce.quality",
    "Trust": "engine.reduce.trust",
    "TrustModel": "engine.reduce.trust",
    "TSNEReducer": "engine.reduce.tsne",
    "Tuning": "engine.reduce.tuning",
    "UMAPReducer": "engine.reduce.umap_",
    "embed": "engine.reduce.factory",
    "make_reducer": "engine.reduce.factory",
    "import_libraries": "engine.reduce.warmup",
    "warm_up": "engine.reduce.warmup",
}
__all__ = ["INVERSES", "METHODS", "METHOD_PARAMS", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
