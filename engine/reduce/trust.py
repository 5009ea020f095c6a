"""How far to trust the inverse map at a 2-D point.

A click far from every embedded sample still decodes to *something*: every inverse map extrapolates. The trust
measure says how much that something is an extrapolation:

``distance``
    2-D distance from the query to the nearest embedded point, and ``relative_distance``, the same divided by
    the typical nearest-neighbour spacing of the embedding (median distance from a point to its nearest
    neighbour). Inside a cluster it is about 1; far away it is in the hundreds.
``outside_hull`` / ``outside_support`` / ``out_of_bounds``
    Outside the convex hull of the embedding; outside its density support (the distance to the k-th nearest
    embedded point exceeds what the ``support_quantile`` of embedded points see); either of the two.
``error`` / ``relative_error``
    Estimated round-trip error of the inverse map at the query, in layer space: the held-out reconstruction
    error of the map at the nearest held-out embedded points (inverse-distance weighted), multiplied by
    ``1 + (distance / support_radius)**2`` so that it grows with the distance from the data. ``relative_error``
    divides by the activations' mean per-feature variance: 1.0 means "no better than predicting the mean".

Everything is vectorised over many queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, cKDTree
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from engine.backends.cupy import to_numpy
from engine.errors import ReducerValueError
from engine.reduce.validation import check_fitted, check_int, check_query

__all__ = ["Trust", "TrustModel"]


@dataclass
class Trust:
    """Trust measures of k decoded points (every field is an array of length k).

    Attributes
    ----------
    distance : ndarray of float
        2-D distance to the nearest embedded point.
    relative_distance : ndarray of float
        ``distance`` over the typical nearest-neighbour spacing of the embedding.
    outside_hull : ndarray of bool
    outside_support : ndarray of bool
    out_of_bounds : ndarray of bool
        ``outside_hull | outside_support``.
    error : ndarray of float
        Estimated mean squared round-trip error per layer feature (NaN if the map reported no held-out errors).
    relative_error : ndarray of float
        ``error`` over the activations' mean per-feature variance.
    """

    distance: np.ndarray
    relative_distance: np.ndarray
    outside_hull: np.ndarray
    outside_support: np.ndarray
    out_of_bounds: np.ndarray
    error: np.ndarray
    relative_error: np.ndarray

    def __len__(self) -> int:
        return len(self.distance)

    def __getitem__(self, i) -> Trust:
        """Trust of a subset of the points (``trust[0]`` keeps length-1 arrays; see :meth:`record`)."""
        i = np.atleast_1d(np.arange(len(self))[i])
        return Trust(**{name: value[i] for name, value in self.__dict__.items()})

    def record(self, i: int = 0) -> dict:
        """Plain-Python values of point ``i``: what a dashboard label or a JSON answer needs."""
        return {name: value[i].item() for name, value in self.__dict__.items()}

    def to_dict(self) -> dict:
        """Column lists of plain Python values (JSON-ready)."""
        return {name: value.tolist() for name, value in self.__dict__.items()}


class TrustModel(BaseEstimator):
    """Fitted on an embedding (and the inverse map's held-out errors), evaluates :class:`Trust` at queries.

    Parameters
    ----------
    n_neighbors : int, default=10
        k of the density-support test (distance to the k-th nearest embedded point) and of the error
        interpolation.
    support_quantile : float, default=0.99
        A query is outside the density support when its k-th-neighbour distance exceeds this quantile of the
        embedded points' own k-th-neighbour distances.
    max_reference : int, default=20_000
        Embedded points used to estimate the spacing and the support radius (all points are used for the
        distance itself, up to ``max_points``).
    max_points : int, default=2_000_000
        Above this many embedded points, the distances are measured to a seeded random sample of this many
        (``tree_rows_``), with the spacing and support radius measured within the same sample, so the relative
        distance and the support test keep their meaning; the hull and bounds still come from every point, read
        in chunks. A k-d tree of 100 million points would hold 2.4 GiB and take minutes to build.
    random_state : int, RandomState or None, default=0

    Attributes
    ----------
    tree_ : scipy.spatial.cKDTree
        The embedded points the distances are measured to.
    tree_rows_ : ndarray of int or None
        Their rows in the embedding, when a sample (None: every row, in order).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(500, 2))
    >>> t = TrustModel().fit(E).evaluate(np.array([[0.0, 0.0], [50.0, 50.0]]))
    >>> t.out_of_bounds.tolist()
    [False, True]
    """

    def __init__(self, n_neighbors=10, support_quantile=0.99, max_reference=20_000, max_points=2_000_000,
                 random_state=0):
        self.n_neighbors = n_neighbors
        self.support_quantile = support_quantile
        self.max_reference = max_reference
        self.max_points = max_points
        self.random_state = random_state

    def fit(self, embedding, error_points=None, errors=None, variance=None):
        """Learn the spacing, support radius and hull of ``embedding``.

        Parameters
        ----------
        embedding : array of shape (n, 2)
        error_points : array of shape (m, 2), optional
            Embedded positions of the samples whose held-out round-trip error is known.
        errors : array of shape (m,), optional
            Those errors (mean squared error per layer feature).
        variance : float, optional
            Mean per-feature variance of the activations, to express errors relative to it.

        Returns
        -------
        self
        """
        k = check_int(self.n_neighbors, "n_neighbors", owner="TrustModel")
        if not 0.0 < self.support_quantile <= 1.0:
            raise ReducerValueError(f"TrustModel: support_quantile must be in (0, 1], got {self.support_quantile}.")
        limit = check_int(self.max_points, "max_points", minimum=2, owner="TrustModel")
        shape = tuple(getattr(embedding, "shape", None) or np.shape(embedding))
        if len(shape) != 2 or shape[0] < 2:
            raise ReducerValueError(f"TrustModel needs an (n >= 2, 2) embedding, got shape {tuple(shape)}.")
        n = int(shape[0])
        self.n_features_in_ = int(shape[1])
        if n > limit:  # distances to a sample; hull and bounds of every point, chunk by chunk
            self.tree_rows_ = np.sort(np.random.default_rng(_seed(self.random_state)).choice(n, limit, replace=False))
            E = np.asarray(to_numpy(embedding[self.tree_rows_]), dtype=np.float64)
            self.bounds_, hull_points = _extent(embedding, n)
        else:
            self.tree_rows_ = None
            E = np.asarray(to_numpy(embedding), dtype=np.float64)
            self.bounds_, hull_points = np.stack([E.min(axis=0), E.max(axis=0)]), E
        self.tree_ = cKDTree(E)
        rng = check_random_state(self.random_state)
        ref = E if len(E) <= self.max_reference else E[rng.choice(len(E), self.max_reference, replace=False)]
        self.k_ = min(k, len(E) - 1)
        d, _ = self.tree_.query(ref, k=self.k_ + 1)
        scale = float(np.ptp(self.bounds_, axis=0).max()) or 1.0
        positive = d[:, 1][d[:, 1] > 0]
        self.spacing_ = float(np.median(positive)) if len(positive) else 1e-6 * scale
        self.support_radius_ = max(float(np.quantile(d[:, -1], self.support_quantile)), self.spacing_)
        try:
            self.hull_equations_ = ConvexHull(hull_points).equations
        except Exception:  # degenerate (collinear / duplicate) embeddings have no 2-D hull: use the bounding box
            lo, hi = self.bounds_
            eye = np.eye(self.n_features_in_)
            self.hull_equations_ = np.vstack([np.c_[eye, -hi], np.c_[-eye, lo]])
        self.hull_tol_ = 1e-9 * scale
        if errors is not None:
            P = np.asarray(to_numpy(error_points), dtype=np.float64)
            err = np.asarray(to_numpy(errors), dtype=np.float64).ravel()
            if P.shape != (len(err), self.n_features_in_):
                raise ReducerValueError(
                    f"TrustModel: error_points must have shape ({len(err)}, {self.n_features_in_}), got {P.shape}."
                )
            self.error_tree_ = cKDTree(P)
            self.errors_ = err
        else:
            self.error_tree_ = None
            self.errors_ = None
        self.variance_ = float(variance) if variance else float("nan")
        return self

    def evaluate(self, xy) -> Trust:
        """Trust of each query point.

        Parameters
        ----------
        xy : array of shape (k, 2)
            NumPy or CuPy; evaluated on the host (k-d tree queries).

        Returns
        -------
        Trust
        """
        check_fitted(self, "tree_")
        q = np.asarray(to_numpy(check_query(xy, self.n_features_in_, "TrustModel")), dtype=np.float64)
        d, _ = self.tree_.query(q, k=self.k_)
        d = d.reshape(len(q), -1)
        distance = d[:, 0]
        outside_hull = (q @ self.hull_equations_[:, :-1].T + self.hull_equations_[:, -1]).max(axis=1) > self.hull_tol_
        outside_support = d[:, -1] > self.support_radius_
        if self.error_tree_ is not None:
            m = min(self.k_, len(self.errors_))
            ed, ei = self.error_tree_.query(q, k=m)
            ed, ei = ed.reshape(len(q), -1), ei.reshape(len(q), -1)
            w = 1.0 / (ed + self.spacing_) ** 2
            local = (w * self.errors_[ei]).sum(axis=1) / w.sum(axis=1)
            error = local * (1.0 + (distance / self.support_radius_) ** 2)
        else:
            error = np.full(len(q), np.nan)
        return Trust(
            distance=distance,
            relative_distance=distance / self.spacing_,
            outside_hull=outside_hull,
            outside_support=outside_support,
            out_of_bounds=outside_hull | outside_support,
            error=error,
            relative_error=error / self.variance_,
        )


#: Rows of the embedding read at once where the trust model reads every point (its hull and bounds).
CHUNK = 1_000_000


def _seed(random_state) -> int | None:
    """An integer seed for NumPy's Generator from a scikit-learn ``random_state``."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return random_state
    return int(check_random_state(random_state).randint(2**31 - 1))


def _extent(embedding, n: int):
    """Bounds ``[[min...], [max...]]`` of every finite row of ``embedding`` and the vertices of its convex hull,
    read ``CHUNK`` rows at a time: the hull of the hulls of the chunks is the hull of the whole."""
    lo = hi = None
    vertices = []
    for start in range(0, n, CHUNK):
        part = np.asarray(to_numpy(embedding[start : start + CHUNK]), dtype=np.float64)
        part = part[np.isfinite(part).all(axis=1)]
        if not len(part):
            continue
        lo = part.min(axis=0) if lo is None else np.minimum(lo, part.min(axis=0))
        hi = part.max(axis=0) if hi is None else np.maximum(hi, part.max(axis=0))
        try:
            vertices.append(part[ConvexHull(part).vertices])
        except Exception:  # a degenerate chunk (collinear points): its extremes along each axis bound it
            vertices.append(part[np.unique(np.r_[part.argmin(axis=0), part.argmax(axis=0)])])
    if lo is None:
        raise ReducerValueError("TrustModel: the embedding has no finite point.")
    return np.stack([lo, hi]), np.concatenate(vertices)
