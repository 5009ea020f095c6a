"""Reducers and inverse maps by name, and every row of a dataset embedded by a fitted reducer."""

from __future__ import annotations

from engine.errors import ReducerValueError
from engine.reduce.base import BaseReducer
from engine.reduce.names import method_key
from engine.reduce.pca import PCAReducer
from engine.reduce.tsne import TSNEReducer
from engine.reduce.umap_ import UMAPReducer

__all__ = ["embed", "make_reducer"]

_CLASSES = {"pca": PCAReducer, "umap": UMAPReducer, "tsne": TSNEReducer}


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
    cls = _CLASSES[method_key(method)]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ReducerValueError(f"{cls.__name__}: {exc}. Its parameters: {sorted(cls().get_params())}.") from None


def embed(reducer, X, out=None, *, progress=None):
    """Every row of ``X`` embedded by a fitted reducer: in memory, or written to a Zarr store at ``out``.

    Parameters
    ----------
    reducer : fitted reducer
    X : array-like, np.memmap, dask.array.Array or Stored of shape (n, d)
    out : str or Path, optional
        For a Dask array or store: the Zarr store each worker writes its chunks' embedding to
        (:func:`engine.backends.dask.embed`). Without it, the embedding is returned as an array.
    progress : callable(stage, done, total), optional

    Returns
    -------
    numpy.ndarray of shape (n, n_components), or Stored

    Example
    -------
    >>> emb = embed(PCAReducer().fit(acts), acts, "embedding.zarr")     # doctest: +SKIP
    """
    from engine import backends

    if out is not None:
        if not backends.is_chunked(X):
            raise ReducerValueError("embed: out= writes a Zarr store from a Dask array or store; an array in memory "
                                    "is embedded with reducer.transform(X)")
        from engine.backends.dask import embed as embed_on_dask

        return embed_on_dask(reducer, X, out, progress=progress)
    return reducer.transform(X)
