"""UMAP to 2-D: umap-learn on the CPU, cuML's UMAP on a GPU; ``n_neighbors`` self-tuned by default.

umap-learn is imported inside the functions that use it (its import compiles or loads numba code and pulls in
TensorFlow for its ParametricUMAP), so importing the engine stays fast. Three things make a first fit in a fresh
process take seconds rather than a minute (figures on a shared 2-core machine, MNIST bottleneck 10,000 x 10):

* **exact neighbours**: from :data:`EXACT_KNN_MIN_ROWS` rows (below them umap-learn computes them exactly itself) up
  to :data:`EXACT_KNN_WORK`, the k nearest neighbours come from scikit-learn (about 1 s) and are handed to umap-learn
  as ``precomputed_knn``, instead of its NN-descent, whose numba code is compiled again by every process (about
  20-30 s on the first fit of a process). Trustworthiness of the two graphs' embeddings: 0.983 and 0.981. The
  search index umap-learn's ``transform`` needs is then :class:`ExactNeighbors`, made on the first ``transform``.
* **numba's disk cache for umap-learn**: umap-learn 0.5 compiles its graph and layout functions in every process
  (only one of them has ``cache=True``); :func:`import_umap` turns numba's on-disk cache on for them (what
  ``cache=True`` does), so only the first process ever compiles them (about 10 s), and later ones load them.
* :func:`engine.reduce.warm_up` compiles (or loads) all this in the background of a server before a user asks.

``import umap`` imports TensorFlow (umap-learn's ``__init__`` imports ParametricUMAP; importing ``umap.umap_``
still runs that ``__init__``): about 4 s of an 11 s import here when TensorFlow is not loaded yet. A Keras project's
model and the learned inverse map load TensorFlow anyway, so the engine does not work around it.
"""

from __future__ import annotations

import numbers
import re
import sys
import threading
import warnings

import numpy as np

from engine.backends.cupy import import_cuml, to_numpy
from engine.errors import ReducerValueError
from engine.reduce.base import BaseReducer, seed_of

__all__ = ["EXACT_KNN_MIN_ROWS", "EXACT_KNN_WORK", "ExactNeighbors", "UMAPReducer", "import_umap"]

#: Exact neighbours (scikit-learn) instead of NN-descent from this many rows (umap-learn itself computes them exactly
#: below 4,096 rows)...
EXACT_KNN_MIN_ROWS = 4096
#: ...while rows x rows x (features + 40) is at most this: about 5 s of exact search on 2 cores, measured at 0.9 s for
#: 10,000 x 10, 14.5 s for 50,000 x 10 (NN-descent, compiled: 1.6 s and 5.2 s), 0.7 s for 10,000 x 256. Above it,
#: NN-descent, whose compilation the first time in a process (20-30 s) is then worth it.
EXACT_KNN_WORK = 7e10
#: Metrics scikit-learn's neighbours and umap-learn's define alike under the same name.
_EXACT_METRICS = ("euclidean", "manhattan", "chebyshev", "cosine")
#: The packages whose module-level numba functions :func:`import_umap` caches on disk (see there).
_CACHED_PACKAGES = ("umap",)

_import_lock = threading.Lock()
_cached_modules: set = set()


def import_umap():
    """umap-learn, with numba's on-disk cache turned on for its compiled functions.

    umap-learn 0.5 declares ``cache=True`` on one function only: its graph, spectral and layout code is compiled
    again in every process (10-20 s on two cores for a first fit). Turning the cache on for each of its module-level
    numba dispatchers not yet cached (``Dispatcher.enable_caching``, what ``cache=True`` calls) writes them to
    ``NUMBA_CACHE_DIR`` once; later processes load them (0.6 s instead of 14-18 s for :func:`engine.reduce.warm_up`'s
    fits, measured). pynndescent's are left as they are: its NN-descent uses dynamic globals, which numba cannot
    cache (it would warn on every compile), and the rest of it declares ``cache=True`` itself. Safe to call many
    times and from several threads.

    Returns
    -------
    module
        ``umap``.
    """
    with _import_lock:
        import umap

        for name, module in list(sys.modules.items()):
            if module is None or name in _cached_modules or name.split(".")[0] not in _CACHED_PACKAGES:
                continue
            _cached_modules.add(name)
            _cache_dispatchers(module)
    return umap


def _cache_dispatchers(module) -> None:
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except Exception:  # another numba layout: the functions are compiled in each process, as umap-learn does
        return
    for obj in list(vars(module).values()):
        if isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
            obj.enable_caching()


class ExactNeighbors:
    """The search index umap-learn's ``transform`` queries, exact (scikit-learn's ``NearestNeighbors``).

    umap-learn takes it as the third item of ``precomputed_knn`` and calls ``query(X, k, epsilon=...)``; it stands
    for pynndescent's ``NNDescent`` (whose compilation it avoids).

    Parameters
    ----------
    X : ndarray of shape (n, d)
        The fitted rows.
    metric : str
    n_jobs : int
    """

    _angular_trees = False  # read by umap-learn's transform to choose NN-descent's search epsilon

    def __init__(self, X, metric="euclidean", n_jobs=-1):
        from sklearn.neighbors import NearestNeighbors

        self.index_ = NearestNeighbors(metric=metric, n_jobs=n_jobs).fit(X)

    def query(self, X, k, epsilon=None):
        """``(indices int32 (m, k), distances float32 (m, k))`` of the ``k`` nearest fitted rows of each row of X."""
        distances, indices = self.index_.kneighbors(np.asarray(X, dtype=np.float32), n_neighbors=k)
        return indices.astype(np.int32), distances.astype(np.float32)


class _EpochCount:
    """A text stream for umap-learn's tqdm bar of the layout epochs, formatted ``{n}/{total}``, that turns each
    refresh into a progress report."""

    encoding = "utf-8"
    _count = re.compile(r"(\d+)/(\d+)")

    def __init__(self, step):
        self.step = step

    def write(self, text):
        found = self._count.findall(text)
        if found:
            done, total = found[-1]
            self.step(int(done), int(total))
        return len(text)

    def flush(self):
        pass


def _reports_epochs() -> bool:
    """Whether umap-learn's tqdm writes to a stream (a notebook's tqdm draws a widget and writes nothing)."""
    import umap.layouts

    return not any("notebook" in cls.__module__ for cls in getattr(umap.layouts.tqdm, "__mro__", ()))


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
        ``progress(stage, done, total)``: ``"tuning n_neighbors"`` (trials), ``"fitting UMAP"`` (layout epochs; 0
        of them while the neighbours, graph and spectral initialisation are computed), ``"reduce"`` (rows),
        ``"training the inverse map"`` (epochs of the learned inverse).
    snapshot : callable or None, default=None
        Accepted for symmetry with :class:`~engine.reduce.TSNEReducer` and never called: umap-learn computes its
        spectral initialisation and its layout epochs inside ``fit`` and exposes neither before it returns; showing
        the initial layout would mean computing the graph and the eigenvectors twice.

    Attributes
    ----------
    n_neighbors_ : int
        The value used (chosen by the tuning when ``n_neighbors="auto"``).
    model_ : umap.UMAP or cuml.UMAP
    embedding_, fit_index_, backend_, tuning_, inverse_, trust_, model_source_, ... : see
        :class:`~engine.reduce.base.BaseReducer`

    Examples
    --------
    >>> reducer = UMAPReducer(n_neighbors=15, inverse="knn", random_state=0)   # doctest: +SKIP
    >>> embedding = reducer.fit_transform(activations)                          # doctest: +SKIP
    """

    method = "umap"
    _tuned_param = "n_neighbors"
    _tune_default = 15
    _caches_model = True

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
        snapshot=None,
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
        self.snapshot = snapshot

    def _check_params(self, n_samples):
        values = [self.n_neighbors] if self.n_neighbors != "auto" else list(self.tune_grid)
        if not values:
            raise ReducerValueError("UMAPReducer: tune_grid is empty; give at least one n_neighbors value.")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 2:
                raise ReducerValueError(f"UMAPReducer: n_neighbors must be 'auto' or an integer >= 2, got {v!r}.")
        if not self.min_dist >= 0:
            raise ReducerValueError(f"UMAPReducer: min_dist must be >= 0, got {self.min_dist!r}.")

    def _exact_neighbours(self, X) -> bool:
        """Whether the fit computes the exact neighbours with scikit-learn (see :data:`EXACT_KNN_WORK`)."""
        n, d = X.shape
        return self.metric in _EXACT_METRICS and EXACT_KNN_MIN_ROWS <= n and float(n) * n * (d + 40) <= EXACT_KNN_WORK

    def _fit_model(self, X, backend, n_neighbors, report, watch=None):
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
        epochs = self.n_epochs or (500 if len(X) <= 10_000 else 200)  # umap-learn's default, for the first report
        if watch is not None:
            watch.step("fitting UMAP", 0, epochs)
        if backend == "gpu":
            import cupy

            model = import_cuml().UMAP(**common)
            embedding = to_numpy(model.fit_transform(cupy.asarray(X)))
            if watch is not None:
                watch.step("fitting UMAP", epochs, epochs)
            return model, np.asarray(embedding, dtype=np.float32)
        umap = import_umap()

        if len(X) <= self.n_components + 1:
            raise ReducerValueError(
                f"UMAPReducer needs more than n_components + 1 = {self.n_components + 1} samples, "
                f"got n_samples = {len(X)}."
            )
        # umap-learn keeps X as its _raw_data and its native inverse_transform writes into it: a read-only input
        # (the activation cache is a read-only memory map) must be copied, or inverse="native" fails in numba.
        X = np.require(X, requirements="W")
        extra = {}
        if self._exact_neighbours(X):
            indices, distances = ExactNeighbors(X, self.metric, self.n_jobs).query(X, k)  # first: each row itself
            extra["precomputed_knn"] = (indices, distances, None)  # no search index until transform() asks
        if watch is not None and watch.progress is not None and _reports_epochs():
            extra["tqdm_kwds"] = {"disable": False, "file": _EpochCount(lambda d, t: watch.step("fitting UMAP", d, t)),
                                  "bar_format": "{n}/{total}", "mininterval": 0.25}
        model = umap.UMAP(**common, n_jobs=self.n_jobs, init="spectral" if len(X) > 10 else "random", **extra)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*knn_search_index.*")  # ours is not an NNDescent
                embedding = model.fit_transform(X)
        finally:
            model.tqdm_kwds = None  # the fitted model is cached: no stream holding this fit's callback
        if watch is not None:
            watch.step("fitting UMAP", model.n_epochs or epochs, model.n_epochs or epochs)
        return model, np.asarray(embedding, dtype=np.float32)

    def _transform_model(self, X):
        if self.backend_ == "gpu":
            import cupy

            return np.asarray(to_numpy(self.model_.transform(cupy.asarray(X))), dtype=np.float32)
        model = self.model_
        if getattr(model, "_knn_search_index", False) is None:  # fitted on exact neighbours: search them exactly
            model._knn_search_index = ExactNeighbors(model._raw_data, self.metric, self.n_jobs)
        return np.asarray(model.transform(X), dtype=np.float32)

    def _native_inverse(self, Y):
        """umap-learn's own inverse (seconds per call); cuML's UMAP has none."""
        if self.backend_ == "gpu":
            raise ReducerValueError(
                "cuML's UMAP has no inverse_transform: use inverse='mlp' or 'knn', or backend='cpu' for 'native'."
            )
        return self.model_.inverse_transform(np.asarray(Y, dtype=np.float32))
