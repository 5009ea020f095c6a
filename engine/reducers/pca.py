"""PCA to 2-D: scikit-learn's PCA, IncrementalPCA for large memory-mapped inputs, cuML's PCA on a GPU."""

from __future__ import annotations

import numpy as np

from engine.reducers.backend import import_cuml, to_numpy
from engine.reducers.base import BaseReducer, seed_of
from engine.reducers.validation import ReducerValueError, check_int

__all__ = ["PCAReducer"]


class PCAReducer(BaseReducer):
    """Principal component analysis of the activations, with an exact inverse.

    Parameters
    ----------
    n_components : int, default=2
    whiten : bool, default=False
        Scale the components to unit variance.
    incremental : {"auto", True, False}, default="auto"
        Fit with :class:`~sklearn.decomposition.IncrementalPCA`, reading the rows in chunks. ``"auto"`` does so
        for memory-mapped inputs larger than ``incremental_bytes``.
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
    progress : callable or None, default=None
        ``progress(done_rows, total_rows)``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    mean_ : ndarray of shape (n_features,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
    incremental_ : bool
    embedding_, fit_index_, backend_, inverse_, trust_, ... : see :class:`~engine.reducers.base.BaseReducer`

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> pca = PCAReducer(random_state=0).fit(X)
    >>> pca.embedding_.shape, pca.inverse_transform(pca.embedding_[:3]).shape
    ((200, 2), (3, 8))
    """

    method = "pca"

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

    def _check_params(self, n_samples):
        if self.incremental not in ("auto", True, False):
            raise ReducerValueError(f"PCAReducer: incremental must be 'auto', True or False, got {self.incremental!r}.")
        check_int(self.incremental_bytes, "incremental_bytes", owner="PCAReducer")

    def _use_incremental(self, X, on_disk) -> bool:
        if self.incremental == "auto":
            return bool(on_disk and X.nbytes > self.incremental_bytes)
        return bool(self.incremental)

    def _extra_work(self, X, on_disk):
        # an incremental fit reads every row once before embedding them
        if not self._use_incremental(X, on_disk):
            return 0
        return len(X) if self.fit_sample is None else min(len(X), self.fit_sample)

    def _fit_model(self, X, backend, tuned_value, report):
        k = self.n_components
        if k > min(X.shape):
            raise ReducerValueError(
                f"PCAReducer: n_components={k} must be <= min(n_samples, n_features) = {min(X.shape)} "
                f"for activations of shape {X.shape}."
            )
        self.incremental_ = self._use_incremental(X, self._on_disk) and backend == "cpu"
        if backend == "gpu":
            import cupy

            model = import_cuml().PCA(n_components=k, whiten=self.whiten).fit(cupy.asarray(X))
            components, mean = to_numpy(model.components_), to_numpy(model.mean_)
            ratio, variance = to_numpy(model.explained_variance_ratio_), to_numpy(model.explained_variance_)
        elif self.incremental_:
            from sklearn.decomposition import IncrementalPCA

            batch = max(self.chunk_size, k)
            model = IncrementalPCA(n_components=k, whiten=self.whiten, batch_size=batch)
            bounds = list(range(0, len(X), batch)) + [len(X)]
            if len(bounds) > 2 and bounds[-1] - bounds[-2] < k:  # a last chunk shorter than k joins the previous
                del bounds[-2]
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                model.partial_fit(X[lo:hi])
                report(hi - lo)
            components, mean = model.components_, model.mean_
            ratio, variance = model.explained_variance_ratio_, model.explained_variance_
        else:
            from sklearn.decomposition import PCA

            model = PCA(n_components=k, whiten=self.whiten, random_state=seed_of(self.random_state))
            model.fit(X)
            components, mean = model.components_, model.mean_
            ratio, variance = model.explained_variance_ratio_, model.explained_variance_
        self.components_ = np.asarray(components, dtype=np.float32)
        self.mean_ = np.asarray(mean, dtype=np.float32)
        self.explained_variance_ratio_ = np.asarray(ratio, dtype=np.float64)
        self.explained_variance_ = np.asarray(variance, dtype=np.float64)
        # one formula for fitted and new rows, so transform(X) == embedding_ exactly; in chunks for a memmap
        emb = np.empty((len(X), k), dtype=np.float32)
        for lo in range(0, len(X), self.chunk_size):
            emb[lo : lo + self.chunk_size] = self._transform_model(np.asarray(X[lo : lo + self.chunk_size]))
        return model, np.asarray(emb, dtype=np.float32)

    def _transform_model(self, X):
        # The projection itself, identical for every backend: (X - mean) @ components.T (whitened if asked),
        # in float64 so that a row's result does not depend on which other rows share its BLAS block.
        Y = (X.astype(np.float64) - self.mean_) @ self.components_.T.astype(np.float64)
        if self.whiten:
            Y /= np.sqrt(self.explained_variance_)
        return Y.astype(np.float32)

    def _linear_inverse(self):
        """``(A, b)`` with ``inverse(Y) = Y @ A + b``: the exact inverse of the projection onto the components."""
        A = self.components_.astype(np.float64)
        if self.whiten:
            A = A * np.sqrt(self.explained_variance_)[:, None]
        return A, self.mean_.astype(np.float64)

    def _native_inverse(self, Y):
        A, b = self._linear_inverse()
        return np.asarray(Y, np.float64) @ A + b
