"""PCA, once: the principal directions of activations, from every row or a sample, in memory or chunk by chunk, and
the 2-D PCA reducer built on them.

:class:`PrincipalDirections` is the one place PCA is computed, for every backend of the data
(:mod:`engine.backends`):

* ``method="exact"`` (layers of up to ``exact_up_to`` = 2,048 units): each chunk of rows is reduced to its count, mean
  and scatter matrix, the chunks' moments are added up pairwise (Chan, Golub and LeVeque's update: in this process
  chunk after chunk, or as a tree of tasks on Dask's workers) and the eigenvectors of the covariance are taken: exact
  PCA over every row, with scikit-learn's ``covariance_eigh`` sign convention, whatever the number of rows;
* ``method="incremental"`` (wider layers out of memory): :class:`~sklearn.decomposition.IncrementalPCA` over the
  chunks in order, keeping ``keep`` directions between chunks (every unit up to ``exact_up_to``: then exact too);
* ``method="svd"`` (wider layers in memory): scikit-learn's :class:`~sklearn.decomposition.PCA`;
* ``method="gpu"``: cuML's PCA on CuPy arrays.

Coordinates are always ``(x - mean_) @ components_.T`` computed in float64 (:func:`project`), so a row's coordinates
do not depend on which rows share its BLAS block, or on the backend that computed them.

:class:`PCAReducer` is the 2-D reducer of the pipeline (embedding, exact inverse, trust, cache); the latent editor
and parallel coordinates take the top 16 directions from :class:`PrincipalDirections` directly.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state

from engine import backends
from engine.backends.cupy import import_cuml, to_numpy
from engine.errors import ReducerValueError
from engine.progress import report
from engine.reduce.base import BaseReducer, seed_of
from engine.reduce.validation import check_fitted, check_int

__all__ = ["PCAReducer", "PrincipalDirections", "project"]

#: Layers up to this many units get exact PCA from the moments (a scatter matrix of at most 32 MiB).
EXACT_UP_TO = 2048
PCA_METHODS = ("auto", "exact", "incremental", "svd", "gpu")


def project(X, mean, components, scale=None) -> np.ndarray:
    """Coordinates of the rows of ``X`` along ``components`` around ``mean``, in float64, returned as float32:
    ``(X - mean) @ components.T`` (divided by ``scale`` per component when whitening)."""
    Y = (np.asarray(X, dtype=np.float64).reshape(len(X), -1) - mean) @ np.asarray(components, np.float64).T
    if scale is not None:
        Y /= scale
    return Y.astype(np.float32)


def _moments(rows):
    """``(count, mean, scatter)`` of a chunk of rows, in float64."""
    X = rows.astype(np.float64)
    mean = X.mean(axis=0)
    X -= mean
    return len(X), mean, X.T @ X


def _combine_moments(a, b):
    """The moments of two sets of rows together (Chan, Golub and LeVeque's pairwise update)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + np.outer(delta, delta) * (na * nb / n)


def _from_moments(n: int, mean, scatter, k: int):
    """Exact PCA from the moments of all rows: the eigenvectors of the covariance, as scikit-learn's
    ``covariance_eigh`` solver finds them, with its sign convention."""
    from sklearn.utils.extmath import svd_flip

    variance, vectors = np.linalg.eigh(np.asarray(scatter, np.float64) / (n - 1))
    order = np.argsort(variance)[::-1]
    variance, vectors = np.clip(variance[order], 0, None), vectors[:, order]
    _, components = svd_flip(None, vectors.T, u_based_decision=False)
    total = float(np.trace(scatter)) / (n - 1)
    ratio = variance[:k] / total if total > 0 else np.zeros(k)
    return components[:k], np.asarray(mean, np.float64), variance[:k], ratio


class _Incremental:
    """One step of an incremental PCA over chunks: a picklable callable ``state = step(state, rows)``."""

    def __init__(self, keep: int):
        self.keep = keep

    def __call__(self, state, rows):
        from sklearn.decomposition import IncrementalPCA

        state = IncrementalPCA(n_components=self.keep) if state is None else state
        return state.partial_fit(rows.astype(np.float64))


class PrincipalDirections(TransformerMixin, BaseEstimator):
    """Top principal directions of activations ``X`` (n, d): from every row, or a seeded sample of ``fit_sample``.

    A large layer (a conv feature map of thousands of units) cannot get one slider or one axis per unit. Its top
    ``k`` principal directions can: the latent editor and the parallel coordinates use them, and the 2-D
    :class:`PCAReducer` is the top two. ``X`` may be a NumPy array, a memory map (read chunk by chunk, never copied
    whole), a Dask array or a Zarr store of the engine (its chunks computed on the Dask scheduler).

    Parameters
    ----------
    n_components : int, default=16
        Directions to keep; capped at ``min(d, rows fitted)`` for a sample in memory.
    fit_sample : int or None, default=20_000
        Fit on this many seeded random rows (``None``: every row). Every row is still projected by ``transform``.
    method : {"auto", "exact", "incremental", "svd", "gpu"}, default="auto"
        See the module. ``"auto"``: exact for layers of up to ``exact_up_to`` units, else ``"svd"`` in memory and
        ``"incremental"`` chunk by chunk.
    keep : int or None, default=None
        ``"incremental"``: directions kept between chunks; ``None``: every unit when the layer has at most
        ``exact_up_to`` (exact), else ``max(64, 4 * n_components)`` (IncrementalPCA's approximation). Never more
        than the first chunk's rows.
    exact_up_to : int, default=2048
    chunk_size : int, default=4096
        Rows per chunk of an in-memory array or memory map (a Dask array keeps its own chunks).
    in_chunks : bool, default=False
        Read an in-memory array or memory map chunk by chunk as if it did not fit in memory (``"auto"`` then picks
        ``"incremental"`` for wide layers).
    random_state : int, default=0
    progress : callable(stage, done, total) or None, default=None
        Stage ``"PCA"``, rows read.

    Attributes
    ----------
    mean_ : ndarray of shape (d,), float64
    components_ : ndarray of shape (k, d), float64
        Orthonormal rows, by decreasing explained variance.
    explained_variance_ : ndarray of shape (k,)
    explained_variance_ratio_ : ndarray of shape (k,)
        Of the total variance of the rows fitted.
    n_samples_seen_ : int
    method_ : str
        The method used.
    keep_ : int
        Directions the fit kept between chunks (``d`` for an exact fit).
    n_features_in_ : int

    Example
    -------
    >>> X = np.random.default_rng(0).normal(size=(200, 40)).astype(np.float32)
    >>> PrincipalDirections(n_components=4).fit(X).transform(X).shape
    (200, 4)
    """

    def __init__(self, n_components=16, *, fit_sample=20_000, method="auto", keep=None, exact_up_to=EXACT_UP_TO,
                 chunk_size=4096, in_chunks=False, random_state=0, progress=None):
        self.n_components = n_components
        self.fit_sample = fit_sample
        self.method = method
        self.keep = keep
        self.exact_up_to = exact_up_to
        self.chunk_size = chunk_size
        self.in_chunks = in_chunks
        self.random_state = random_state
        self.progress = progress

    def _rows(self, X):
        """The rows to fit (a sample in memory, or ``X`` itself), and whether they are read chunk by chunk."""
        n = backends.n_rows(X)
        if self.fit_sample is not None and n > self.fit_sample:
            index = np.sort(check_random_state(self.random_state).choice(n, size=int(self.fit_sample), replace=False))
            return backends.take_rows(X, index), False
        chunked = backends.is_chunked(X) or bool(self.in_chunks)
        return (X if chunked or getattr(X, "ndim", 2) == 2 else np.asarray(X).reshape(n, -1)), chunked

    def fit(self, X, y=None):
        """Fit the directions on ``X`` (n, d); returns ``self``.

        Raises
        ------
        ReducerValueError
            ``X`` is not (samples >= 2, units), or ``n_components`` is not an integer in ``1..units``.
        """
        if not hasattr(X, "shape"):
            X = np.asarray(X)
        if len(X.shape) < 2 or X.shape[0] < 2:
            raise ReducerValueError(
                f"principal directions need activations of shape (samples >= 2, units), got shape {tuple(X.shape)}"
            )
        if self.method not in PCA_METHODS:
            raise ReducerValueError(f"PCA: method must be one of {', '.join(PCA_METHODS)}, got {self.method!r}")
        d = int(np.prod(X.shape[1:], dtype=np.int64))
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
            raise ReducerValueError(f"PCA: n_components must be an integer in 1..{d} (the layer's size), got {k!r}")
        rows, chunked = self._rows(X)
        n = backends.n_rows(rows)
        method = self.method
        if method == "auto":
            method = "exact" if d <= self.exact_up_to else ("incremental" if chunked else "svd")
        if method in ("svd", "gpu") and not chunked:
            k = int(min(k, n))
        if method == "exact":
            count, mean, scatter = backends.reduce_chunks(_moments, _combine_moments, rows, self.chunk_size,
                                                          self.progress, "PCA")
            components, mean, variance, ratio = _from_moments(count, mean, scatter, int(k))
            keep = d
        elif method == "incremental":
            components, mean, variance, ratio, keep, count = self._incremental(rows, d, int(k))
        elif method == "gpu":
            import cupy

            model = import_cuml().PCA(n_components=int(k)).fit(cupy.asarray(backends.take_rows(rows, np.arange(n))))
            components, mean = to_numpy(model.components_), to_numpy(model.mean_)
            variance, ratio = to_numpy(model.explained_variance_), to_numpy(model.explained_variance_ratio_)
            keep, count = d, n
        else:
            from sklearn.decomposition import PCA

            data = backends.take_rows(rows, np.arange(n)) if chunked else rows
            model = PCA(n_components=int(k), random_state=self.random_state).fit(np.asarray(data, dtype=np.float64))
            components, mean = model.components_, model.mean_
            variance, ratio = model.explained_variance_, model.explained_variance_ratio_
            keep, count = d, n
            report(self.progress, "PCA", n, n)
        self.components_ = np.asarray(components, dtype=np.float64)
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.explained_variance_ = np.asarray(variance, dtype=np.float64)
        self.explained_variance_ratio_ = np.asarray(ratio, dtype=np.float64)
        self.n_samples_seen_ = int(count)
        self.keep_ = int(keep)
        self.method_ = method
        self.n_features_in_ = d
        return self

    def _incremental(self, rows, d: int, k: int):
        keep = self.keep if self.keep is not None else (d if d <= self.exact_up_to else max(64, 4 * k))
        first = backends.chunk_bounds(rows, self.chunk_size)[0]
        keep = int(min(max(keep, k), d, first[1] - first[0]))
        if keep < k:
            raise ReducerValueError(f"incremental PCA: the first chunk has {first[1] - first[0]} rows; it needs at "
                                    f"least {k}")
        step = _Incremental(keep)
        if backends.is_chunked(rows):
            from engine.backends.dask import fold_chunks

            model = fold_chunks(step, rows, progress=self.progress, stage="PCA", minimum_rows=keep)
        else:
            bounds = backends.chunk_bounds(rows, self.chunk_size)
            if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < keep:  # a last chunk too short joins the previous
                bounds = bounds[:-2] + [(bounds[-2][0], bounds[-1][1])]
            model = None
            for lo, hi in bounds:
                model = step(model, np.asarray(rows[lo:hi]).reshape(hi - lo, -1))
                report(self.progress, "PCA", hi, bounds[-1][1])
        return (model.components_[:k], model.mean_, model.explained_variance_[:k],
                model.explained_variance_ratio_[:k], keep, int(model.n_samples_seen_))

    def transform(self, X) -> np.ndarray:
        """Coordinates of each row of ``X`` (n, d) along the directions: (n, k) float32, computed in chunks."""
        check_fitted(self, "components_")
        if not hasattr(X, "shape"):
            X = np.asarray(X)
        if int(np.prod(X.shape[1:], dtype=np.int64)) != self.n_features_in_:
            raise ReducerValueError(
                f"principal directions were fitted on {self.n_features_in_} units, got rows of "
                f"{int(np.prod(X.shape[1:], dtype=np.int64))}"
            )
        if X.ndim == 1:
            X = X.reshape(1, -1)
        parts = backends.map_chunks(lambda rows: project(rows, self.mean_, self.components_), X,
                                    max(1, int(self.chunk_size)))
        return np.concatenate(parts) if parts else np.empty((0, len(self.components_)), np.float32)

    def inverse_transform(self, C) -> np.ndarray:
        """Rows back in the layer's flattened space: ``mean_ + C @ components_`` (n, d) float64.

        Example
        -------
        >>> pd_ = PrincipalDirections(n_components=3).fit(np.eye(4))
        >>> pd_.inverse_transform(np.zeros(3)).round(2)
        array([[0.25, 0.25, 0.25, 0.25]])
        """
        check_fitted(self, "components_")
        C = np.asarray(C, dtype=np.float64).reshape(-1, len(self.components_))
        return self.mean_ + C @ self.components_

    def describe(self) -> str:
        """How the fit was made, in words (recorded with an embedding store)."""
        check_fitted(self, "components_")
        how = "exact" if self.keep_ == self.n_features_in_ else f"keeping {self.keep_}"
        return f"over all {self.n_samples_seen_} rows, {how}" if self.fit_sample is None else \
            f"{self.method_} on {self.n_samples_seen_} rows"


class PCAReducer(BaseReducer):
    """Principal component analysis of the activations, with an exact inverse.

    Parameters
    ----------
    n_components : int, default=2
    whiten : bool, default=False
        Scale the components to unit variance.
    incremental : {"auto", True, False}, default="auto"
        Read the rows chunk by chunk rather than as one array (exact PCA from the chunks' moments, or an incremental
        PCA for layers wider than 2,048 units). ``"auto"`` does so for memory-mapped inputs larger than
        ``incremental_bytes``, and always for a Dask array or Zarr store.
    incremental_bytes : int, default=1 GiB
    inverse : str, inverse estimator or None, default="auto"
        ``"auto"`` and ``"exact"``: the exact linear inverse; or ``"mlp"``, ``"knn"``, ``"native"`` (same as
        exact), an unfitted inverse estimator, or ``None`` for none.
    fit_sample : int or None, default=None
        Fit on at most this many seeded random rows (``None``: all rows).
    chunk_size : int, default=20_000
        Rows per chunk when embedding the rest or reading a memmap.
    backend : {"auto", "cpu", "gpu"}, default="auto"
    random_state : int, RandomState or None, default=None
    cache_dir : str, Path or None, default=None
        Folder of the projection cache; ``None`` disables caching.
    progress : callable(stage, done, total) or None, default=None
        Stage ``"reduce"``, rows.
    snapshot : callable or None, default=None
        Accepted as every reducer does and never called: PCA has no layout that forms over iterations.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    mean_ : ndarray of shape (n_features,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
    incremental_ : bool
        The rows were read chunk by chunk.
    fit_description_ : str
        How the PCA was fitted, in words ("over all 3000 rows, exact").
    embedding_, fit_index_, backend_, inverse_, trust_, ... : see :class:`~engine.reduce.base.BaseReducer`

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> pca = PCAReducer(random_state=0).fit(X)
    >>> pca.embedding_.shape, pca.inverse_transform(pca.embedding_[:3]).shape
    ((200, 2), (3, 8))
    """

    method = "pca"
    _fits_in_chunks = True  # exact PCA from every chunk's moments: a Dask array is never gathered

    def __init__(
        self,
        n_components=2,
        *,
        whiten=False,
        incremental="auto",
        incremental_bytes=1 << 30,
        inverse="auto",
        fit_sample=None,
        chunk_size=20_000,
        backend="auto",
        random_state=None,
        cache_dir=None,
        progress=None,
        snapshot=None,
    ):
        self.n_components = n_components
        self.whiten = whiten
        self.incremental = incremental
        self.incremental_bytes = incremental_bytes
        self.inverse = inverse
        self.fit_sample = fit_sample
        self.chunk_size = chunk_size
        self.backend = backend
        self.random_state = random_state
        self.cache_dir = cache_dir
        self.progress = progress
        self.snapshot = snapshot

    def _check_params(self, n_samples):
        if self.incremental not in ("auto", True, False):
            raise ReducerValueError(f"PCAReducer: incremental must be 'auto', True or False, got {self.incremental!r}.")
        check_int(self.incremental_bytes, "incremental_bytes", owner="PCAReducer")

    def _use_incremental(self, X, on_disk) -> bool:
        if backends.is_chunked(X):
            return True
        if self.incremental == "auto":
            return bool(on_disk and X.nbytes > self.incremental_bytes)
        return bool(self.incremental)

    def _extra_work(self, X, on_disk):
        # a fit chunk by chunk reads every row once before embedding them
        if not self._use_incremental(X, on_disk):
            return 0
        return len(X) if self.fit_sample is None else min(len(X), self.fit_sample)

    def _fit_model(self, X, backend, tuned_value, report_rows, watch=None):
        k = self.n_components
        n, d = X.shape[0], int(np.prod(X.shape[1:], dtype=np.int64))
        if k > min(n, d):
            raise ReducerValueError(
                f"PCAReducer: n_components={k} must be <= min(n_samples, n_features) = {min(n, d)} "
                f"for activations of shape {tuple(X.shape)}."
            )
        self.incremental_ = self._use_incremental(X, self._on_disk) and backend == "cpu"
        read = [0]

        def rows_read(stage, done, total):
            report_rows(done - read[0])
            read[0] = done

        directions = PrincipalDirections(
            k, fit_sample=None, method="gpu" if backend == "gpu" else "auto", chunk_size=self.chunk_size,
            in_chunks=self.incremental_, random_state=seed_of(self.random_state),
            progress=rows_read if self.incremental_ else None,
        ).fit(X)
        directions.progress = None  # this fit's callback: the fitted model is cached and sent to workers
        self.components_ = directions.components_.astype(np.float32)
        self.mean_ = directions.mean_.astype(np.float32)
        self.explained_variance_ratio_ = directions.explained_variance_ratio_
        self.explained_variance_ = directions.explained_variance_
        self.fit_description_ = directions.describe()
        # one formula for fitted and new rows, so transform(X) == embedding_ exactly; in chunks for a memmap
        parts = backends.map_chunks(self._transform_model, X, self.chunk_size)
        return directions, np.concatenate(parts)

    def _transform_model(self, X):
        # The projection itself, identical for every backend (see project)
        return project(X, self.mean_, self.components_, np.sqrt(self.explained_variance_) if self.whiten else None)

    def _linear_inverse(self):
        """``(A, b)`` with ``inverse(Y) = Y @ A + b``: the exact inverse of the projection onto the components."""
        A = self.components_.astype(np.float64)
        if self.whiten:
            A = A * np.sqrt(self.explained_variance_)[:, None]
        return A, self.mean_.astype(np.float64)

    def _native_inverse(self, Y):
        A, b = self._linear_inverse()
        return np.asarray(Y, np.float64) @ A + b
