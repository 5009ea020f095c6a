"""t-SNE to 2-D: openTSNE on the CPU (it can embed new points), cuML's TSNE on a GPU (it cannot).

scikit-learn's TSNE is not used: it has no ``transform`` for new points, which the sample-then-embed-the-rest
strategy and the dashboard need.

The optimisation is watched through openTSNE's ``callbacks`` every :data:`SNAPSHOT_EVERY` iterations, in both the
early-exaggeration and the main phase: progress (``"optimising the t-SNE layout"``, iterations) and, with
``snapshot``, the layout as it forms, so that a first picture is on screen seconds after the affinities are
computed. The callbacks are attached to every fit of the fit rows, with or without a snapshot, so that a fit's result
never depends on whether someone watched it (openTSNE then evaluates the KL divergence at those iterations, which
does not change the gradient: the same embedding, tested).

The affinities are openTSNE's own (those ``TSNE.fit`` computes: one perplexity, 3 x perplexity exact neighbours
below 1,000 rows, Annoy's above), with the neighbour index built here (:func:`_affinities`): openTSNE's choice of
index imports pynndescent only to see whether it is installed, and that import compiles pynndescent's numba code,
20-30 s of a first fit in a process with an empty numba cache (3-7 s with a filled one), for an index not used.

Measured on the MNIST bottleneck (10,000 x 10, 2 threads, a shared 2-core machine under load 5-6, so +-50 %):
affinities (Annoy) 5-15 s, early exaggeration (250 iterations) 17-22 s, main phase (500) 60-100 s, with openTSNE's
choice of gradient (FFT from 10,000 rows, Barnes-Hut below); Barnes-Hut at 10,000 rows was not consistently faster
(200 iterations: 21-24 s against 6-18 s for FFT), so the engine keeps openTSNE's choice.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from engine.backends.cupy import import_cuml, to_numpy
from engine.errors import ReducerValueError
from engine.reduce.base import BaseReducer, seed_of
from engine.reduce.validation import check_int

__all__ = ["SNAPSHOT_EVERY", "TSNEReducer"]

#: Iterations between two snapshots of the layout (and progress reports) during the optimisation.
SNAPSHOT_EVERY = 25
#: The progress stages of a t-SNE fit, in words.
AFFINITIES, OPTIMISING = "computing t-SNE affinities", "optimising the t-SNE layout"


class TSNEReducer(BaseReducer):
    """t-distributed Stochastic Neighbour Embedding of the activations (openTSNE).

    Parameters
    ----------
    n_components : {1, 2}, default=2
    perplexity : float or "auto", default="auto"
        ``"auto"`` picks it from ``tune_grid`` by trustworthiness on ``tune_sample`` rows within
        ``tune_seconds`` (report in ``tuning_``; choice in ``perplexity_``). It is lowered to
        ``(n_samples - 1) / 3`` for tiny inputs.
    n_iter : int, default=500
        Optimisation iterations after the early exaggeration phase.
    early_exaggeration_iter : int, default=250
    learning_rate : float or "auto", default="auto"
    metric : str, default="euclidean"
    tune_grid : tuple of float, default=(10, 30, 50)
    tune_sample : int, default=2_000
    tune_seconds : float, default=30
    inverse : str, inverse estimator or None, default="auto"
        ``"auto"`` and ``"mlp"``: :class:`~engine.reduce.MLPInverse`; ``"knn"``; an inverse estimator;
        ``None``. t-SNE has no native inverse.
    fit_sample : int or None, default=50_000
        Fit on at most this many seeded random rows; openTSNE places the others against that embedding.
        Ignored on the GPU, where cuML fits every row (it cannot place new ones).
    chunk_size : int, default=20_000
    backend : {"auto", "cpu", "gpu"}, default="auto"
    n_jobs : int or None, default=None
        openTSNE threads; ``None`` uses every core.
    random_state : int, RandomState or None, default=None
    cache_dir : str, Path or None, default=None
    progress : callable or None, default=None
        ``progress(stage, done, total)``: ``"tuning perplexity"`` (trials), ``"computing t-SNE affinities"`` (0 of
        1, then 1 of 1), ``"optimising the t-SNE layout"`` (iterations of both phases), ``"reduce"`` (rows),
        ``"training the inverse map"`` (epochs of the learned inverse).
    snapshot : callable or None, default=None
        ``snapshot(embedding, fit_index, done, total)``: the layout of the fit rows (float32 (m, n_components), a
        copy) and their indices into ``X``, every :data:`SNAPSHOT_EVERY` iterations of the optimisation (early
        exaggeration, then the main phase; ``done`` is the iteration of both the optimiser is at, the layout the
        one before its step, and ``total`` is ``early_exaggeration_iter + n_iter``); the last call has
        ``done == total`` and the final layout, equal to ``embedding_[fit_index_]``. A caller draws it as it
        forms. Not called by the tuning's trial fits, when the model is read from the cache, nor on the GPU. An
        exception it raises is not caught: it stops the fit, nothing is cached, and ``fit`` raises it (raising is
        thus also a way to cancel a fit).

    Attributes
    ----------
    perplexity_ : float
    model_ : openTSNE.TSNEEmbedding or cuml.TSNE
    embedding_, fit_index_, backend_, tuning_, inverse_, trust_, model_source_, ... : see
        :class:`~engine.reduce.base.BaseReducer`

    Examples
    --------
    >>> embedding = TSNEReducer(perplexity=30, random_state=0).fit_transform(activations)   # doctest: +SKIP
    """

    method = "tsne"
    _tuned_param = "perplexity"
    _tune_default = 30
    _caches_model = True

    def __init__(
        self,
        n_components=2,
        *,
        perplexity="auto",
        n_iter=500,
        early_exaggeration_iter=250,
        learning_rate="auto",
        metric="euclidean",
        tune_grid=(10, 30, 50),
        tune_sample=2_000,
        tune_seconds=30.0,
        inverse="auto",
        fit_sample=50_000,
        chunk_size=20_000,
        backend="auto",
        n_jobs=None,
        random_state=None,
        cache_dir=None,
        progress=None,
        snapshot=None,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.learning_rate = learning_rate
        self.metric = metric
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
        if self.n_components not in (1, 2):
            raise ReducerValueError(f"TSNEReducer: n_components must be 1 or 2, got {self.n_components!r}.")
        values = [self.perplexity] if self.perplexity != "auto" else list(self.tune_grid)
        if not values:
            raise ReducerValueError("TSNEReducer: tune_grid is empty; give at least one perplexity value.")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or v <= 0:
                raise ReducerValueError(f"TSNEReducer: perplexity must be 'auto' or a number > 0, got {v!r}.")
        check_int(self.n_iter, "n_iter", owner="TSNEReducer")
        check_int(self.early_exaggeration_iter, "early_exaggeration_iter", minimum=0, owner="TSNEReducer")
        if self.inverse == "native":
            raise ReducerValueError("TSNEReducer has no native inverse; use inverse='mlp' (default) or 'knn'.")

    def _can_transform(self, backend):
        return backend == "cpu"

    def _fit_model(self, X, backend, perplexity, report, watch=None):
        if len(X) < 4:
            raise ReducerValueError(f"TSNEReducer needs at least 4 samples, got n_samples = {len(X)}.")
        perplexity = float(min(perplexity, max(1.0, (len(X) - 1) / 3.0)))
        seed = seed_of(self.random_state)
        if watch is not None:
            watch.step(AFFINITIES, 0, 1)
        if backend == "gpu":
            import cupy

            # only parameters every cuML release spells the same way (iteration counts were renamed over time)
            model = import_cuml().TSNE(n_components=self.n_components, perplexity=perplexity, random_state=seed)
            embedding = to_numpy(model.fit_transform(cupy.asarray(X)))
            if watch is not None:
                watch.step(AFFINITIES, 1, 1)
            return model, np.asarray(embedding, dtype=np.float32)
        from openTSNE import TSNE

        watcher = _Watcher(watch, self.early_exaggeration_iter, self.n_iter) if watch is not None else None
        n_jobs = self.n_jobs if self.n_jobs is not None else (os.cpu_count() or 1)
        affinities = _affinities(X, perplexity, self.metric, n_jobs, seed)
        model = TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            n_iter=self.n_iter,
            early_exaggeration_iter=self.early_exaggeration_iter,
            learning_rate=self.learning_rate,
            metric=self.metric,
            n_jobs=n_jobs,
            random_state=seed,
            verbose=False,
            **({"callbacks": [watcher], "callbacks_every_iters": SNAPSHOT_EVERY} if watcher is not None else {}),
        ).fit(X, affinities=affinities)
        # openTSNE keeps the callbacks with the embedding (for its transform): not ours to keep, nor to pickle
        params = getattr(model, "gradient_descent_params", None)
        if isinstance(params, dict) and "callbacks" in params:
            params["callbacks"] = None
        embedding = np.asarray(model, dtype=np.float32)
        if watcher is not None:
            watcher.finish(embedding)
        return model, embedding

    def _transform_model(self, X):
        return np.asarray(self.model_.transform(X), dtype=np.float32)


#: Metrics for which openTSNE's own choice of neighbour index is scikit-learn's (below 1,000 rows) or Annoy's.
_ANNOY_METRICS = ("cosine", "euclidean", "manhattan", "hamming", "dot", "l1", "l2", "taxicab")


def _affinities(X, perplexity: float, metric: str, n_jobs: int, seed):
    """The affinities ``openTSNE.TSNE.fit(X)`` computes (a ``MultiscaleMixture`` of one perplexity over the
    ``3 x perplexity`` nearest neighbours: exact below 1,000 rows, Annoy above), without its check of whether
    pynndescent is installed, which imports (and so compiles) it; None for another metric (openTSNE then chooses)."""
    from openTSNE import affinity, nearest_neighbors

    if metric not in _ANNOY_METRICS:
        return None
    n = len(X)
    effective = min(float(perplexity), (n - 1) / 3)  # openTSNE's check_perplexities, for one perplexity
    k = min(n - 1, int(3 * effective))
    index_cls = nearest_neighbors.Sklearn if n < 1000 else nearest_neighbors.Annoy
    index = index_cls(data=X, k=k, metric=metric, metric_params=None, n_jobs=n_jobs, random_state=seed,
                      verbose=False, knn_kwargs=None)
    return affinity.MultiscaleMixture(perplexities=perplexity, knn_index=index, metric=metric, n_jobs=n_jobs,
                                      random_state=seed, verbose=False)


class _Watcher:
    """openTSNE's callback: progress and snapshots of both phases of the optimisation, counted as one.

    openTSNE calls it with ``(iteration, error, embedding)`` every ``callbacks_every_iters`` iterations of a phase,
    before that iteration's step, and calls ``optimization_about_to_start`` at the start of each phase. The call
    at the last iteration of all is left to :meth:`finish`, which has the final layout.
    """

    def __init__(self, watch, early_iter: int, main_iter: int):
        self.watch, self.early_iter, self.total = watch, int(early_iter), int(early_iter) + int(main_iter)
        self.phase = -1

    def optimization_about_to_start(self):
        self.phase += 1
        if self.phase == 0:
            self.watch.step(AFFINITIES, 1, 1)

    def __call__(self, iteration, error, embedding):
        done = (self.early_iter if self.phase > 0 else 0) + int(iteration)
        if done < self.total:
            self.watch.step(OPTIMISING, done, self.total)
            self.watch.layout(embedding, done, self.total)
        return False  # go on

    def finish(self, embedding):
        self.watch.step(OPTIMISING, self.total, self.total)
        self.watch.layout(embedding, self.total, self.total)
