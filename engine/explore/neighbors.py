"""Nearest samples of a point in the layer's full-dimensional space (not in the 2-D plane), as TensorBoard's
projector shows them.

Exact, brute-force search: distances to every sample are computed in float64 through ``|x|^2 - 2 x.q + |q|^2``
(Euclidean) or ``1 - x.q / (|x| |q|)`` (cosine), in chunks, with the per-sample norms precomputed once per
activation array (:func:`neighbor_index` caches them). The candidates close to the k-th distance are then
measured again directly and equal distances are ordered by sample id, so the answer does not depend on rounding.
For a few hundred thousand samples this costs one matrix-vector product per query; scikit-learn's
``NearestNeighbors`` would be no faster on dense layers and would not order ties.

A zero vector has no direction: its cosine distance to anything is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import EditError
from engine.memo import ObjectMemo

__all__ = ["METRICS", "NeighborIndex", "Neighbors", "nearest_samples", "neighbor_index", "neighbors_of"]

METRICS = ("euclidean", "cosine")


@dataclass(frozen=True)
class Neighbors:
    """The k nearest samples of a query, nearest first.

    Attributes
    ----------
    ids : ndarray of int64, shape (k,)
    distances : ndarray of float64, shape (k,)
        Euclidean distance, or cosine distance ``1 - cos`` (0 = same direction, 2 = opposite).
    metric : str
    labels : ndarray or None
        The neighbours' labels, when known (:func:`neighbors_of`).
    """

    ids: np.ndarray
    distances: np.ndarray
    metric: str
    labels: np.ndarray | None = None


class NeighborIndex:
    """Precomputed norms of an activation array, for exact nearest-sample queries under one metric.

    Parameters
    ----------
    activations : array of shape (n, d)
        Treated as immutable: the index keeps a reference, not a copy (a memmap stays on disk).
    metric : {"euclidean", "cosine"}
    chunk_size : int, optional
        Rows per matrix-vector block (default: about a million values per block).
    sq_norms : ndarray of shape (n,), optional
        The rows' squared norms, when already known (:func:`neighbor_index` passes its cached ones).

    Example
    -------
    >>> X = np.eye(3, dtype=np.float32)
    >>> NeighborIndex(X, "euclidean").query(np.array([1.0, 0.1, 0.0]), k=2).ids
    array([0, 1])
    """

    def __init__(self, activations, metric: str = "euclidean", chunk_size: int | None = None, *, sq_norms=None):
        if metric not in METRICS:
            raise EditError(f"neighbours: metric must be one of {', '.join(METRICS)}, got {metric!r}")
        X = activations if getattr(activations, "ndim", None) == 2 else np.asarray(activations)
        if X.ndim != 2 or len(X) == 0:
            raise EditError(f"neighbours: activations must have shape (samples, units), got {X.shape}")
        self.activations, self.metric = X, metric
        self.chunk_size = int(chunk_size) if chunk_size else max(256, (1 << 20) // max(X.shape[1], 1))
        self.sq_norms = _squared_norms(X, self.chunk_size) if sq_norms is None else sq_norms
        self.norms = np.sqrt(self.sq_norms)

    def _dots(self, q: np.ndarray) -> np.ndarray:
        out = np.empty(len(self.activations))
        for lo in range(0, len(out), self.chunk_size):
            out[lo : lo + self.chunk_size] = np.asarray(self.activations[lo : lo + self.chunk_size], np.float64) @ q
        return out

    def _exact(self, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        X = np.asarray(self.activations[rows], dtype=np.float64)
        if self.metric == "euclidean":
            return np.sqrt(((X - q) ** 2).sum(axis=1))
        nq, nx = np.linalg.norm(q), np.linalg.norm(X, axis=1)
        cos = np.zeros(len(rows))
        ok = (nx > 0) & (nq > 0)
        cos[ok] = (X[ok] @ q) / (nx[ok] * nq)
        return 1.0 - np.clip(cos, -1.0, 1.0)

    def query(self, query, k: int = 10, *, exclude=()) -> Neighbors:
        """The ``k`` nearest samples of one activation ``query`` (any shape holding ``d`` values).

        Parameters
        ----------
        query : array-like
        k : int, default=10
            Capped at the number of samples left after ``exclude``.
        exclude : iterable of int, optional
            Sample ids never returned (the query's own id, say).

        Returns
        -------
        Neighbors
            Sorted by distance, then by id.

        Raises
        ------
        EditError
            A query of the wrong size or a non-positive ``k``.

        Example
        -------
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]])
        >>> NeighborIndex(X, "cosine").query([3.0, 0.0], k=2).ids
        array([1, 2])
        """
        n, d = self.activations.shape
        q = np.asarray(query, dtype=np.float64).reshape(-1)
        if q.size != d:
            raise EditError(f"neighbours: the query holds {q.size} values; the layer has {d} per sample")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise EditError(f"neighbours: k must be a positive integer, got {k!r}")
        excluded = np.zeros(n, dtype=bool)
        ex = np.asarray(list(exclude), dtype=np.int64)
        excluded[ex[(ex >= 0) & (ex < n)]] = True
        k = int(min(k, n - int(excluded.sum())))
        if k <= 0:
            return Neighbors(np.empty(0, np.int64), np.empty(0), self.metric)
        dots = self._dots(q)
        qq = float(q @ q)
        if self.metric == "euclidean":
            approx = np.maximum(self.sq_norms - 2.0 * dots + qq, 0.0)  # squared distances
            tol = 1e-9 * (self.sq_norms.max() + qq) + 1e-300
        else:
            nq = np.sqrt(qq)
            denom = self.norms * nq
            approx = np.ones(n)
            ok = denom > 0
            approx[ok] = 1.0 - dots[ok] / denom[ok]
            tol = 1e-9
        approx[excluded] = np.inf
        kth = np.partition(approx, k - 1)[k - 1]
        candidates = np.flatnonzero(approx <= kth + tol)
        exact = self._exact(candidates, q)
        order = np.lexsort((candidates, exact))[:k]
        return Neighbors(candidates[order].astype(np.int64), exact[order], self.metric)


def _squared_norms(X, chunk_size: int) -> np.ndarray:
    sq = np.empty(len(X))
    for lo in range(0, len(X), chunk_size):
        block = np.asarray(X[lo : lo + chunk_size], dtype=np.float64)
        sq[lo : lo + chunk_size] = np.einsum("ij,ij->i", block, block)
    return sq


#: Squared row norms of each activation array queried, kept while the array lives (an inspection's own are kept by
#: the inspection: :meth:`engine.explore.inspection.Inspection.neighbor_index`).
_NORMS = ObjectMemo(max_items=1, name="squared row norms of activations")


def neighbor_index(activations, metric: str = "euclidean") -> NeighborIndex:
    """A :class:`NeighborIndex` of ``activations`` under ``metric``; the row norms are computed once per array.

    The memo holds the array weakly (its entry goes with the array) and identifies it by object: do not modify an
    array in place after querying it.

    Example
    -------
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> neighbor_index(X, "cosine").sq_norms is neighbor_index(X, "euclidean").sq_norms
    True
    """
    norms = _NORMS.get(activations, "norms", lambda: NeighborIndex(activations).sq_norms)
    return NeighborIndex(activations, metric, sq_norms=norms)


def nearest_samples(activations, query, k: int = 10, metric: str = "euclidean", *, exclude_self: bool = True,
                    exclude=(), index: NeighborIndex | None = None) -> Neighbors:
    """The ``k`` nearest samples of ``query`` in the layer's full-dimensional space.

    Parameters
    ----------
    activations : array of shape (n, d)
        Flattened activations (``Inspection.activations``).
    query : int or array-like
        A sample id, or an activation holding ``d`` values (a tap's decoded activation, an edited one).
    k : int, default=10
    metric : {"euclidean", "cosine"}
    exclude_self : bool, default=True
        With a sample id as query, leave the sample itself out.
    exclude : iterable of int, optional
        Further ids to leave out.
    index : NeighborIndex, optional
        The index of ``activations`` under ``metric`` to query (default :func:`neighbor_index`).

    Returns
    -------
    Neighbors
        Nearest first; equal distances in order of sample id.

    Raises
    ------
    EditError
        Unknown metric, id out of range, query of the wrong size.

    Example
    -------
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    >>> nearest_samples(X, 0, k=2).ids
    array([1, 2])
    """
    index = index if index is not None else neighbor_index(activations, metric)
    exclude = list(exclude)
    if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        i, n = int(query), len(index.activations)
        if not 0 <= i < n:
            raise EditError(f"neighbours: sample id {i} is outside 0..{n - 1}")
        if exclude_self:
            exclude.append(i)
        query = index.activations[i]
    return index.query(query, k, exclude=exclude)


def neighbors_of(inspection, point, k: int = 10, metric: str = "euclidean", *, exclude_self: bool = True) -> Neighbors:
    """Nearest samples of a sample id, a tap ``(x, y)`` or an activation, in an Inspection's layer; with labels.

    Parameters
    ----------
    inspection : Inspection
    point : int, Endpoint, (x, y) or array-like
        As :func:`engine.explore.interpolate.resolve_endpoint` reads it; a tap is mapped into the layer by the
        inverse map.
    k : int, default=10
    metric : {"euclidean", "cosine"}
    exclude_self : bool, default=True

    Returns
    -------
    Neighbors
        With ``labels`` set when the project has labels. The inputs to show are
        ``inspection.project.inputs()[neighbors.ids]``.

    Example
    -------
    >>> nb = neighbors_of(insp, (0.3, -1.2), k=8, metric="cosine"); nb.ids, nb.labels   # doctest: +SKIP
    """
    from engine.explore.interpolate import resolve_endpoint

    end = resolve_endpoint(inspection, point)
    query = end.sample if end.sample is not None else end.activation
    nb = nearest_samples(inspection.activations, query, k, metric, exclude_self=exclude_self,
                         index=inspection.neighbor_index(metric))
    labels = None if inspection.labels is None else np.asarray(inspection.labels)[nb.ids]
    return Neighbors(nb.ids, nb.distances, nb.metric, labels)
