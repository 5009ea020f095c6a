"""UMAP to 2-D: umap-learn on the CPU, cuML's UMAP on a GPU; ``n_neighbors`` self-tuned by default.

umap-learn is imported inside the functions that use it (its import compiles numba code and pulls in
TensorFlow-dependent parts), so importing the engine stays fast.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from engine.backends.cupy import import_cuml, to_numpy
from engine.errors import ReducerValueError
from engine.reduce.base import BaseReducer, seed_of

__all__ = ["EXACT_KNN_MIN_ROWS", "EXACT_KNN_WORK", "UMAPReducer"]

#: Exact neighbours (scikit-learn) instead of NN-descent from this many rows (umap-learn itself computes them exactly
#: below 4,096 rows)...
EXACT_KNN_MIN_ROWS = 4096
#: ...up to rows x rows x features of this much work (about 10 s of brute-force distances on two cores; a 10,000 x
#: 1,000 layer, or 50,000 rows of 40 features).
EXACT_KNN_WORK = 1e11
#: Metrics scikit-learn's neighbours and umap-learn's share under the same name.
_EXACT_METRICS = ("euclidean", "manhattan", "chebyshev", "cosine")


class UMAPReducer(BaseReducer):
    """Uniform Manifold Approximation and Projection of the activations.

    Parameters
    ----------
    n_components : int, default=2
    n_neighbors : int or "auto", default="auto"
        Size of the local neighbourhood. ``"auto"`` picks it from ``tune_grid`` by trustworthiness on
        ``tune_sample`` rows within ``tune_seconds`` (report in ``tuning_``; choice in ``n_neighbors_``).
    min_dist : float, default=0.1
    metric : str, default="euclidean"
    n_epochs : int or None, default=None
        umap-learn's default (200 for large inputs, 500 for small).
    tune_grid : tuple of int, default=(5, 15, 30, 50)
    tune_sample : int, default=2_000
    tune_seconds : float, default=30
    inverse : str, inverse estimator or None, default="auto"
        ``"auto"`` and ``"mlp"``: :class:`~engine.reduce.MLPInverse`; ``"knn"``; ``"native"`` (umap-learn's
        ``inverse_transform``, slow); an unfitted inverse estimator; ``None``.
    fit_sample : int or None, default=50_000
        Fit on at most this many seeded random rows and embed the others with ``transform`` in chunks.
    chunk_size : int, default=20_000
    backend : {"auto", "cpu", "gpu"}, default="auto"
    n_jobs : int, default=-1
        Threads of umap-learn (it runs single-threaded whenever ``random_state`` is set).
    random_state : int, RandomState or None, default=None
    cache_dir : str, Path or None, default=None
    progress : callable or None, default=None

    Attributes
    ----------
    n_neighbors_ : int
        The value used (chosen by the tuning when ``n_neighbors="auto"``).
    model_ : umap.UMAP or cuml.UMAP
    embedding_, fit_index_, backend_, tuning_, inverse_, trust_, ... : see
        :class:`~engine.reduce.base.BaseReducer`

    Examples
    --------
    >>> reducer = UMAPReducer(n_neighbors=15, inverse="knn", random_state=0)   # doctest: +SKIP
    >>> embedding = reducer.fit_transform(activations)                          # doctest: +SKIP
    """

    method = "umap"
    _tuned_param = "n_neighbors"
    _tune_default = 15

    def __init__(
        self,
        n_components=2,
        *,
        n_neighbors="auto",
        min_dist=0.1,
        metric="euclidean",
        n_epochs=None,
        tune_grid=(5, 15, 30, 50),
        tune_sample=2_000,
        tune_seconds=30.0,
        inverse="auto",
        fit_sample=50_000,
        chunk_size=20_000,
        backend="auto",
        n_jobs=-1,
        random_state=None,
        cache_dir=None,
        progress=None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.n_epochs = n_epochs
        self.tune_grid = tune_grid
        self.tune_sample = tune_sample
        self.tune_seconds = tune_seconds
        self.inverse = inverse
        self.fit_sample = fit_sample
        self.chunk_size = chunk_size
        self.backend = backend
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.cache_dir = cache_dir
        self.progress = progress

    def _check_params(self, n_samples):
        values = [self.n_neighbors] if self.n_neighbors != "auto" else list(self.tune_grid)
        if not values:
            raise ReducerValueError("UMAPReducer: tune_grid is empty; give at least one n_neighbors value.")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 2:
                raise ReducerValueError(f"UMAPReducer: n_neighbors must be 'auto' or an integer >= 2, got {v!r}.")
        if not self.min_dist >= 0:
            raise ReducerValueError(f"UMAPReducer: min_dist must be >= 0, got {self.min_dist!r}.")

    def _fit_model(self, X, backend, n_neighbors, report):
        # umap-learn needs n_neighbors < n_samples; it would lower it with a warning, we do it quietly.
        k = int(max(2, min(n_neighbors, len(X) - 1)))
        common = dict(
            n_neighbors=k,
            n_components=self.n_components,
            min_dist=self.min_dist,
            metric=self.metric,
            n_epochs=self.n_epochs,
            random_state=seed_of(self.random_state),
        )
        if backend == "gpu":
            import cupy

            model = import_cuml().UMAP(**common)
            embedding = to_numpy(model.fit_transform(cupy.asarray(X)))
            return model, np.asarray(embedding, dtype=np.float32)
        import umap

        if len(X) <= self.n_components + 1:
            raise ReducerValueError(
                f"UMAPReducer needs more than n_components + 1 = {self.n_components + 1} samples, "
                f"got n_samples = {len(X)}."
            )
        extra = {}
        exact = EXACT_KNN_MIN_ROWS <= len(X) and len(X) ** 2 * X.shape[1] <= EXACT_KNN_WORK
        if exact and self.metric in _EXACT_METRICS:
            # The exact neighbours from scikit-learn instead of umap-learn's NN-descent: the same graph (better:
            # exact), in under a second for a 10,000 x 10 layer, without NN-descent's numba compilation (about 30 s
            # on the first fit of a process, on two cores). transform() builds NN-descent's index when first asked.
            from sklearn.neighbors import NearestNeighbors

            nn = NearestNeighbors(n_neighbors=k, metric=self.metric).fit(X)
            distances, indices = nn.kneighbors(X)
            extra["precomputed_knn"] = (indices, distances.astype(np.float32), None)
        model = umap.UMAP(**common, n_jobs=self.n_jobs, init="spectral" if len(X) > 10 else "random", **extra)
        # umap-learn keeps X as its _raw_data and its native inverse_transform writes into it: a read-only input
        # (the activation cache is a read-only memory map) must be copied, or inverse="native" fails in numba.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            embedding = model.fit_transform(np.require(X, requirements="W"))
        return model, np.asarray(embedding, dtype=np.float32)

    def _transform_model(self, X):
        if self.backend_ == "gpu":
            import cupy

            return np.asarray(to_numpy(self.model_.transform(cupy.asarray(X))), dtype=np.float32)
        model = self.model_
        if getattr(model, "_knn_search_index", False) is None:  # fitted on exact neighbours: build the index now
            from pynndescent import NNDescent

            model._knn_search_index = NNDescent(model._raw_data, metric=self.metric, n_neighbors=model.n_neighbors,
                                                random_state=seed_of(self.random_state), n_jobs=self.n_jobs,
                                                compressed=False)
        return np.asarray(model.transform(X), dtype=np.float32)

    def _native_inverse(self, Y):
        """umap-learn's own inverse (seconds per call); cuML's UMAP has none."""
        if self.backend_ == "gpu":
            raise ReducerValueError(
                "cuML's UMAP has no inverse_transform: use inverse='mlp' or 'knn', or backend='cpu' for 'native'."
            )
        return self.model_.inverse_transform(np.asarray(Y, dtype=np.float32))
