"""t-SNE to 2-D: openTSNE on the CPU (it can embed new points), cuML's TSNE on a GPU (it cannot).

scikit-learn's TSNE is not used: it has no ``transform`` for new points, which the sample-then-embed-the-rest
strategy and the dashboard need.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from engine.backends.cupy import import_cuml, to_numpy
from engine.errors import ReducerValueError
from engine.progress import report
from engine.reduce.base import BaseReducer, seed_of
from engine.reduce.validation import check_int

__all__ = ["SNAPSHOT_EVERY", "TSNEReducer"]

#: Iterations between two snapshots of the layout (and progress reports) during the optimisation.
SNAPSHOT_EVERY = 25


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
    snapshot : callable or None, default=None
        ``snapshot(embedding, fit_index, done, total)`` is called with the layout of the fitted rows every
        ``SNAPSHOT_EVERY`` iterations of the optimisation (early exaggeration, then the main phase; ``done`` counts
        both), so that a caller can draw it as it forms. Not called by the tuning's trial fits, nor on the GPU. An
        exception it raises stops the fit and is raised from ``fit``.

    Attributes
    ----------
    perplexity_ : float
    model_ : openTSNE.TSNEEmbedding or cuml.TSNE
    embedding_, fit_index_, backend_, tuning_, inverse_, trust_, ... : see
        :class:`~engine.reduce.base.BaseReducer`

    Examples
    --------
    >>> embedding = TSNEReducer(perplexity=30, random_state=0).fit_transform(activations)   # doctest: +SKIP
    """

    method = "tsne"
    _tuned_param = "perplexity"
    _tune_default = 30

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

    def _fit_model(self, X, backend, perplexity, report):
        if len(X) < 4:
            raise ReducerValueError(f"TSNEReducer needs at least 4 samples, got n_samples = {len(X)}.")
        perplexity = float(min(perplexity, max(1.0, (len(X) - 1) / 3.0)))
        seed = seed_of(self.random_state)
        if backend == "gpu":
            import cupy

            # only parameters every cuML release spells the same way (iteration counts were renamed over time)
            model = import_cuml().TSNE(n_components=self.n_components, perplexity=perplexity, random_state=seed)
            embedding = to_numpy(model.fit_transform(cupy.asarray(X)))
            return model, np.asarray(embedding, dtype=np.float32)
        from openTSNE import TSNE

        model = TSNE(
            **self._snapshot_callbacks(len(X)),
            n_components=self.n_components,
            perplexity=perplexity,
            n_iter=self.n_iter,
            early_exaggeration_iter=self.early_exaggeration_iter,
            learning_rate=self.learning_rate,
            metric=self.metric,
            n_jobs=self.n_jobs if self.n_jobs is not None else (os.cpu_count() or 1),
            random_state=seed,
            verbose=False,
        ).fit(X)
        # openTSNE keeps the callbacks with the embedding: not ours to keep (nor to pickle into the cache)
        params = getattr(model, "gradient_descent_params", None)
        if isinstance(params, dict) and params.get("callbacks") is not None:
            params["callbacks"] = None
            if "use_callbacks" in params:
                params["use_callbacks"] = False
        return model, np.asarray(model, dtype=np.float32)

    def _snapshot_callbacks(self, n_rows: int) -> dict:
        """openTSNE's ``callbacks`` for :attr:`snapshot` and the progress of the optimisation, when this fit is the
        fit of every sampled row (not a tuning trial)."""
        rows = getattr(self, "_snapshot_rows", None)
        if rows is None or len(rows) != n_rows or (self.snapshot is None and self.progress is None):
            return {}
        total, done = self.early_exaggeration_iter + self.n_iter, [0]
        snapshot, progress = self.snapshot, self.progress

        def callback(iteration, error, embedding):
            done[0] = min(total, done[0] + SNAPSHOT_EVERY)
            report(progress, "optimising the t-SNE layout", done[0], total)
            if snapshot is not None:
                snapshot(np.asarray(embedding, dtype=np.float32), rows, done[0], total)
            return False  # go on

        return {"callbacks": [callback], "callbacks_every_iters": SNAPSHOT_EVERY}

    def _transform_model(self, X):
        return np.asarray(self.model_.transform(X), dtype=np.float32)
