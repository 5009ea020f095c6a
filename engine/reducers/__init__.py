"""Reducers: 2-D projections of a layer's activations, and the maps back.

Estimators in the scikit-learn style, on float32 arrays of shape (n, d) (one flattened activation per row):

* reducers: :class:`PCAReducer`, :class:`UMAPReducer`, :class:`TSNEReducer` --
  ``fit(X)``, ``transform(X)``, ``fit_transform(X)``, ``inverse_transform(Y)``, ``trust(Y)``;
* inverse maps: :class:`PCAInverse` (exact), :class:`MLPInverse` (NNInv), :class:`KNNInverse`,
  :class:`NativeInverse` -- ``fit(Y, X, reducer=None)``, ``transform(Y) -> X``; any reducer takes any of them
  as its ``inverse`` parameter;
* :class:`TrustModel` / :class:`Trust`: how far a decoded point is an extrapolation;
* :func:`quality_report` / :class:`QualityReport`: trustworthiness, continuity, round-trip errors.

Example
-------
>>> from engine.reducers import make_reducer
>>> reducer = make_reducer("umap", random_state=0, cache_dir=".cache/projections")   # doctest: +SKIP
>>> embedding = reducer.fit_transform(activations)                                   # doctest: +SKIP
>>> decoded = reducer.inverse_transform([[1.5, -2.0]])                               # doctest: +SKIP
>>> reducer.trust([[1.5, -2.0]]).record(0)                                           # doctest: +SKIP
"""

from engine.reducers.backend import gpu_available, resolve_backend
from engine.reducers.base import BaseReducer
from engine.reducers.cache import ProjectionCache, activations_hash
from engine.reducers.inverse import (
    INVERSE_KINDS,
    KNNInverse,
    MLPInverse,
    NativeInverse,
    PCAInverse,
    make_inverse,
)
from engine.reducers.pca import PCAReducer
from engine.reducers.quality import QualityReport, continuity, quality_report
from engine.reducers.trust import Trust, TrustModel
from engine.reducers.tsne import TSNEReducer
from engine.reducers.tuning import Tuning
from engine.reducers.umap_ import UMAPReducer
from engine.reducers.validation import BackendUnavailableError, ReducerNotFittedError, ReducerValueError

__all__ = [
    "BackendUnavailableError",
    "BaseReducer",
    "INVERSE_KINDS",
    "KNNInverse",
    "METHODS",
    "MLPInverse",
    "NativeInverse",
    "PCAInverse",
    "PCAReducer",
    "ProjectionCache",
    "QualityReport",
    "ReducerNotFittedError",
    "ReducerValueError",
    "TSNEReducer",
    "Trust",
    "TrustModel",
    "Tuning",
    "UMAPReducer",
    "activations_hash",
    "continuity",
    "gpu_available",
    "make_inverse",
    "make_reducer",
    "quality_report",
    "resolve_backend",
]

METHODS = {"pca": PCAReducer, "umap": UMAPReducer, "tsne": TSNEReducer}


def make_reducer(method: str, **params) -> BaseReducer:
    """Build an unfitted reducer by name.

    Parameters
    ----------
    method : {"pca", "umap", "tsne"}
    **params
        Parameters of that reducer class (e.g. ``inverse="knn"``, ``random_state=0``, ``cache_dir=...``).

    Returns
    -------
    PCAReducer, UMAPReducer or TSNEReducer

    Raises
    ------
    ReducerValueError
        For an unknown method or parameter.

    Examples
    --------
    >>> make_reducer("pca", random_state=0)
    PCAReducer(random_state=0)
    """
    key = str(method).lower().replace("-", "")
    if key not in METHODS:
        raise ReducerValueError(f"method must be one of {sorted(METHODS)}, got {method!r}.")
    cls = METHODS[key]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ReducerValueError(f"{cls.__name__}: {exc}. Its parameters: {sorted(cls().get_params())}.") from None
