"""What every reducer does the same way: validate, look in the cache, sample, tune, fit, embed the rest in chunks,
fit the inverse map and the trust model, write the cache.

A concrete reducer (:class:`~engine.reduce.PCAReducer`, :class:`~engine.reduce.UMAPReducer`,
:class:`~engine.reduce.TSNEReducer`) only says how to fit its backend model on rows that fit in memory
(``_fit_model``) and how to place new rows (``_transform_model``); this class composes the rest.

The activations may be a NumPy array, a memory map, or a Dask array or Zarr store of the engine
(:mod:`engine.backends`): sampling reads only the sampled rows, and embedding every row maps over the chunks (on the
Dask scheduler for the latter). The embedding, the inverse map and the trust model are then in memory, as for an
in-memory fit; the inverse map of an out-of-core fit learns from a sample of at most ``INVERSE_SAMPLE`` rows.

With a ``cache_dir``, a UMAP or t-SNE fit also keeps its backend model and embedding alone, keyed by what determines
them (:func:`~engine.reduce.cache.model_key`): a later fit of the same data and parameters that differs only in its
inverse map or its self-tuning's knobs, or whose self-tuning chooses a value fitted before, reads that model instead
of fitting it again (``model_source_ == "model cache"``) and only fits its own inverse map.

Progress, through ``progress(stage, done, total)`` (:mod:`engine.progress`), in words a user reads:
``"tuning n_neighbors"`` or ``"tuning perplexity"`` (trial fits), the backend's own (``"fitting UMAP"``: epochs;
``"computing t-SNE affinities"``, ``"optimising the t-SNE layout"``: iterations), ``"reduce"`` (rows embedded),
``"training the inverse map"`` (epochs of the learned inverse). A callback that raises stops the fit there.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from engine import backends
from engine.backends.cupy import resolve_backend
from engine.errors import ReducerValueError
from engine.progress import report
from engine.reduce.cache import ProjectionCache, array_digest, model_key, projection_key
from engine.reduce.inverse import BaseInverse, make_inverse
from engine.reduce.trust import Trust, TrustModel
from engine.reduce.tuning import tune_parameter
from engine.reduce.validation import check_fitted, check_int

__all__ = ["BaseReducer"]

#: Fewest samples a reducer fits: two points would make a map, but its quality report (neighbourhoods of k < n / 2
#: points) needs three.
MIN_FIT_SAMPLES = 3
#: Rows an out-of-core fit's inverse map learns from (a sample, when the backend model saw every row).
INVERSE_SAMPLE = 100_000


def _is_memmap(X) -> bool:
    return isinstance(X, np.memmap) or isinstance(getattr(X, "base", None), np.memmap)


def _spread(rows):
    """``(count, mean, sum of squared deviations)`` per feature of a chunk of rows."""
    X = rows.astype(np.float64)
    mean = X.mean(axis=0)
    return len(X), mean, ((X - mean) ** 2).sum(axis=0)


def _combine_spread(a, b):
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + delta**2 * (na * nb / n)


def _unfitted(fit_index, n: int, rows: int):
    """``(lo, hi, mask)`` of each run of about ``rows`` rows not in the sorted ``fit_index``: ``mask`` selects
    them in ``lo:hi``."""
    lo = 0
    while lo < n:
        hi, mask = lo, np.ones(0, bool)
        while hi < n and mask.sum() < rows:  # grown by what it lacks, until it holds ``rows`` unfitted rows
            hi = min(hi + rows - int(mask.sum()), n)
            mask = np.ones(hi - lo, bool)
            mask[fit_index[np.searchsorted(fit_index, lo) : np.searchsorted(fit_index, hi)] - lo] = False
        if mask.any():
            yield lo, hi, mask
        lo = hi


def _mean_variance(X, chunk_size) -> float:
    """Mean per-feature variance of ``X``, chunk by chunk (no full-size temporary for a memmap or a Dask array)."""
    n, _, squares = backends.reduce_chunks(_spread, _combine_spread, X, chunk_size)
    return float(squares.sum() / (n * len(squares)))


def _digest(X) -> str:
    """Identity of ``X``'s content: every byte of an array here; the fingerprint of a Dask array or store."""
    return backends.fingerprint(X) if backends.is_chunked(X) else array_digest(X)


class FitWatch:
    """What the fit of a backend model on the reducer's fit rows reports as it goes: progress in words, and the layout
    as it forms (``snapshot``). The self-tuning's trial fits on subsamples get none (``watch=None``).

    Parameters
    ----------
    progress : callable(stage, done, total) or None
    snapshot : callable(embedding, fit_index, done, total) or None
    fit_index : ndarray of int
        The rows of ``X`` being fitted, passed to ``snapshot`` with each layout.
    """

    def __init__(self, progress, snapshot, fit_index):
        self.progress, self.snapshot, self.fit_index = progress, snapshot, fit_index

    def step(self, stage: str, done, total) -> None:
        """Report ``done`` of ``total`` units of ``stage``."""
        report(self.progress, stage, done, total)

    def layout(self, embedding, done, total) -> None:
        """Send a copy of the layout of the fit rows (float32, (m, n_components)) to ``snapshot``, if any.

        An exception the callback raises is not caught: it stops the fit and is raised from ``fit``.
        """
        if self.snapshot is not None:
            self.snapshot(np.array(embedding, dtype=np.float32), self.fit_index, int(done), int(total))


def seed_of(random_state):
    """An int seed for libraries that take one (``None`` stays ``None``: unseeded, possibly parallel)."""
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class _ModelEntries:
    """The model entries of a projection cache (``<cache_dir>/models/``) for one fit: data, parameters, fit rows."""

    def __init__(self, cache, reducer, data_hash, backend, n, n_features, fit_index):
        self.cache = ProjectionCache(cache.directory / "models")
        self.reducer, self.data_hash, self.backend = reducer, data_hash, backend
        self.n, self.n_features, self.fit_index = n, n_features, fit_index
        self.name = type(reducer).__name__

    def _key(self, value) -> str:
        param = self.reducer._tuned_param
        return model_key(self.reducer, self.data_hash, self.backend, {param: value} if param else {})

    def load(self, value) -> dict | None:
        """The entry fitted with the tuned parameter at ``value``, or None (a miss, or an entry of other rows)."""
        entry = self.cache.load(self.name, self._key(value))
        if (entry is None or entry.get("n_features_in_") != self.n_features or len(entry["embedding_"]) != self.n
                or not np.array_equal(entry["fit_index_"], self.fit_index)):
            return None
        return entry

    def save(self, value, model, embedding) -> None:
        self.cache.save(self.name, self._key(value), {
            "model_": model, "embedding_": embedding, "fit_index_": self.fit_index, "n_features_in_": self.n_features,
        })


class BaseReducer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the reducers; not used directly.

    Shared parameters (documented on each subclass): ``n_components``, ``inverse``, ``fit_sample``,
    ``chunk_size``, ``backend``, ``random_state``, ``cache_dir``, ``progress``, ``snapshot``.

    Shared fitted attributes
    ------------------------
    embedding_ : ndarray of shape (n, n_components), float32
        Embedding of every row of the fitted ``X``.
    fit_index_ : ndarray of int
        Rows of ``X`` the backend model was fitted on (all rows unless ``fit_sample`` was smaller).
    backend_ : {"cpu", "gpu"}
    tuning_ : Tuning or None
        Report of the self-tuning, when the tuned parameter was ``"auto"``.
    inverse_ : fitted inverse map or None
    trust_ : TrustModel
    activation_variance_ : float
        Mean per-feature variance of the fitted rows (errors are expressed relative to it).
    cache_hit_ : bool
        True when this fit was read from ``cache_dir`` instead of computed.
    model_source_ : {"fitted", "tuning", "model cache"}
        Where the backend model comes from: fitted for this fit, the self-tuning's fit of the chosen value (when it
        tuned on every fit row), or read from the model entries of ``cache_dir`` (fitted before with the same data
        and the parameters that determine the embedding).
    cache_key_ : str or None
    fit_seconds_ : float
        Wall time of the fit that computed the projection (the original one, for a cache hit).
    """

    method = ""
    _tuned_param: str | None = None  # name of the parameter that may be "auto"
    _tune_default = None
    #: Whether the backend model and embedding are cached on their own (``<cache_dir>/models/``): the model must be
    #: all of the fitted state ``_transform_model`` needs (PCA keeps its state on the reducer, and refits in seconds).
    _caches_model = False

    # ---- to be provided by subclasses -------------------------------------------------------------------------
    def _fit_model(self, X, backend, tuned_value, report, watch: FitWatch | None = None):
        """Fit the backend model on ``X`` (rows in memory); return ``(model, embedding of X)``.

        ``report(rows)`` counts rows of ``_extra_work``; ``watch`` is given for the fit of the fit rows (not for the
        tuning's trials): report its steps and layouts there.
        """
        raise NotImplementedError

    def _transform_model(self, X):
        raise NotImplementedError

    def _can_transform(self, backend) -> bool:
        return True

    def _extra_work(self, X, on_disk) -> int:
        """Rows of progress the model fit reports itself (beyond the n rows embedded)."""
        return 0

    # ---- estimator API ----------------------------------------------------------------------------------------
    def _validate(self, X, reset):
        n = getattr(X, "shape", (None,))[0] if reset else None
        if n is not None and n < MIN_FIT_SAMPLES:
            raise ReducerValueError(
                f"{type(self).__name__} needs at least {MIN_FIT_SAMPLES} samples to fit a 2-D map and measure it, got "
                f"n_samples = {n}."
            )
        if backends.is_chunked(X):  # read by chunks, never whole: check the shape and type only
            if len(X.shape) != 2 or np.dtype(X.dtype).kind not in "biuf":
                raise ReducerValueError(f"{type(self).__name__} expects numeric activations of shape (n, d), got "
                                        f"{tuple(X.shape)} {X.dtype}; flatten each sample to one row.")
            if reset:
                self.n_features_in_ = int(X.shape[1])
            elif X.shape[1] != self.n_features_in_:
                raise ReducerValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                        f"{self.n_features_in_} features as input.")
            return X
        return validate_data(
            self, X, reset=reset, dtype=np.float32, ensure_min_samples=2 if reset else 1, accept_sparse=False
        )

    def _check_common_params(self):
        check_int(self.n_components, "n_components", owner=type(self).__name__)
        if self.fit_sample is not None:
            check_int(self.fit_sample, "fit_sample", minimum=2, owner=type(self).__name__)
        check_int(self.chunk_size, "chunk_size", owner=type(self).__name__)
        if self.progress is not None and not callable(self.progress):
            raise ReducerValueError(f"progress must be a callable(stage, done, total) or None, got {self.progress!r}.")
        inverse = self.inverse
        if not (inverse is None or isinstance(inverse, BaseInverse) or isinstance(inverse, str)):
            raise ReducerValueError(f"inverse must be a name, an inverse estimator or None, got {inverse!r}.")
        if isinstance(inverse, str):
            make_inverse(inverse, method=self.method)  # raises for unknown names

    def _report(self, done, total):
        report(self.progress, "reduce", done, total)

    def _check_snapshot(self):
        snapshot = getattr(self, "snapshot", None)
        if snapshot is not None and not callable(snapshot):
            raise ReducerValueError(f"snapshot must be a callable(embedding, fit_index, done, total) or None, got "
                                    f"{snapshot!r}.")

    def fit(self, X, y=None):
        """Fit the projection of ``X`` (n, d), its inverse map and its trust model.

        Parameters
        ----------
        X : array-like, np.memmap, dask.array.Array or Stored, of shape (n_samples, n_features)
            Activations, one flattened sample per row; converted to float32 chunk by chunk where possible.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ReducerValueError
            Bad parameters or data (also a ``ValueError``).
        BackendUnavailableError
            ``backend="gpu"`` without cuML/CuPy/a device (also an ``ImportError``).
        """
        start = time.perf_counter()
        on_disk = _is_memmap(X)
        self._check_common_params()
        self._check_snapshot()
        X = self._validate(X, reset=True)
        self._check_params(len(X))
        backend = resolve_backend(self.backend)
        n = len(X)

        cache = ProjectionCache(self.cache_dir) if self.cache_dir is not None else None
        data_hash = backends.fingerprint(X) if cache is not None else None
        key = projection_key(self, data_hash, backend) if cache is not None else None
        if cache is not None:
            state = cache.load(type(self).__name__, key)
            if state is not None and state.get("n_features_in_") == X.shape[1] and len(state["embedding_"]) == n:
                self.__dict__.update(state)
                self.cache_hit_, self.cache_key_ = True, key
                self._report(n, n)
                return self

        rng = check_random_state(self.random_state)
        if self.fit_sample is None or self.fit_sample >= n or not self._can_transform(backend):
            fit_index = np.arange(n)
        else:
            fit_index = np.sort(rng.choice(n, size=self.fit_sample, replace=False))
        if len(fit_index) == n:
            X_fit = X if backends.is_chunked(X) else np.ascontiguousarray(X, dtype=np.float32)
        else:
            X_fit = np.ascontiguousarray(backends.take_rows(X, fit_index), dtype=np.float32)
        if backends.is_chunked(X_fit) and not self._fits_in_chunks:
            X_fit = np.ascontiguousarray(backends.take_rows(X, fit_index), dtype=np.float32)

        extra = self._extra_work(X, on_disk)
        total = n + extra
        done = [0]

        def report(rows):
            done[0] += rows
            self._report(done[0], total)

        models = _ModelEntries(cache, self, data_hash, backend, n, X.shape[1], fit_index) \
            if cache is not None and self._caches_model else None
        self._on_disk = on_disk
        tuned_value, tuning, reuse = self._tune(X_fit, backend, rng, models)
        entry = models.load(tuned_value) if models is not None else None
        if entry is not None:  # fitted before on these rows with these parameters: the same map, not fitted again
            model, embedding, source = entry["model_"], entry["embedding_"], "model cache"
        else:
            if reuse is not None:
                (model, emb_fit), source = reuse, "tuning"
            else:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
                    watch = FitWatch(self.progress, getattr(self, "snapshot", None), fit_index)
                    model, emb_fit = self._fit_model(X_fit, backend, tuned_value, report, watch)
                source = "fitted"
            embedding = None
        del self._on_disk
        self.model_ = model
        self.backend_ = backend
        self.tuning_ = tuning
        self.model_source_ = source
        if self._tuned_param is not None:
            setattr(self, self._tuned_param + "_", tuned_value)

        if embedding is None:
            embedding = np.empty((n, self.n_components), dtype=np.float32)
            embedding[fit_index] = np.asarray(emb_fit, dtype=np.float32).reshape(len(fit_index), -1)
            done[0] = extra + len(fit_index)
            self._report(done[0], total)
            if len(fit_index) < n and backends.is_chunked(X):  # every chunk on the scheduler; the fitted rows kept
                embedding = np.concatenate(backends.map_chunks(self._transform_model, X, self.chunk_size))
                embedding[fit_index] = np.asarray(emb_fit, dtype=np.float32).reshape(len(fit_index), -1)
                report(n - len(fit_index))
            elif len(fit_index) < n:  # the other rows, chunk by chunk in order (no index of every row)
                for lo, hi, rest in _unfitted(fit_index, n, self.chunk_size):
                    embedding[lo:hi][rest] = self._transform_model(np.ascontiguousarray(X[lo:hi][rest], np.float32))
                    report(int(rest.sum()))
            if models is not None:
                models.save(tuned_value, model, embedding)
        else:
            self._report(total, total)
        self.embedding_ = embedding
        self.fit_index_ = fit_index
        self._fit_shape = tuple(X.shape)
        self._fit_digest = _digest(X)

        self.activation_variance_ = _mean_variance(X_fit, self.chunk_size)
        inverse_index = fit_index
        if backends.is_chunked(X_fit):  # the backend model saw every row: the inverse learns from a sample
            inverse_index = fit_index[np.sort(rng.choice(n, size=min(n, INVERSE_SAMPLE), replace=False))]
            X_inverse = np.ascontiguousarray(backends.take_rows(X, inverse_index), dtype=np.float32)
        else:
            X_inverse = X_fit
        self.inverse_index_ = inverse_index
        self.inverse_ = self._fit_inverse(embedding[inverse_index], X_inverse)
        self.trust_ = self._fit_trust(embedding)
        self.cache_hit_ = False
        self.cache_key_ = key
        self.fit_seconds_ = time.perf_counter() - start
        if cache is not None:
            cache.save(type(self).__name__, key, self._fitted_state())
        return self

    #: Whether ``_fit_model`` reads rows chunk by chunk (a Dask array as it is); others get the rows in memory.
    _fits_in_chunks = False

    def _fitted_state(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.endswith("_") or k in ("_fit_shape", "_fit_digest")}

    def _tune(self, X_fit, backend, rng, models=None):
        """Return ``(value, Tuning or None, reusable (model, embedding) or None)``.

        When the tuning sample is every fit row, each trial is the fit of that value: one fitted before is read from
        ``models`` (the model entries of the cache) instead of fitted, and the chosen one is reused by ``fit``.
        """
        if self._tuned_param is None:
            return None, None, None
        value = getattr(self, self._tuned_param)
        if value != "auto":
            return value, None, None
        sample = check_int(self.tune_sample, "tune_sample", minimum=3, owner=type(self).__name__)
        whole = len(X_fit) <= sample
        X_tune = X_fit if whole else X_fit[np.sort(rng.choice(len(X_fit), sample, replace=False))]
        stage_name = f"tuning {self._tuned_param}"

        def fit_embed(Xs, v):
            entry = models.load(v) if whole and models is not None else None
            if entry is not None:
                return entry["model_"], entry["embedding_"][models.fit_index]
            return self._fit_model(Xs, backend, v, lambda rows: None)

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
            tuning, fitted = tune_parameter(
                fit_embed,
                X_tune,
                param=self._tuned_param,
                grid=tuple(self.tune_grid),
                default=self._tune_default,
                seconds=float(self.tune_seconds),
                progress=lambda done, total: report(self.progress, stage_name, done, total),
            )
        reuse = fitted[tuning.chosen] if whole else None
        return tuning.chosen, tuning, reuse

    def _fit_trust(self, embedding) -> TrustModel:
        """The trust measures of ``embedding``, from the fitted inverse's held-out errors and the activations'
        variance."""
        inv = self.inverse_
        return TrustModel(random_state=0).fit(
            embedding,
            error_points=None if inv is None else inv.holdout_points_,
            errors=None if inv is None else inv.holdout_error_,
            variance=self.activation_variance_,
        )

    def _fit_inverse(self, embedding, X_fit):
        if self.inverse is None:
            return None
        if isinstance(self.inverse, str):
            params = {"random_state": seed_of(self.random_state)} if self.inverse in ("auto", "mlp") else {}
            inverse = make_inverse(self.inverse, method=self.method, **params)
        else:
            inverse = clone(self.inverse)
        reports = "progress" in inverse.get_params() and inverse.progress is None and self.progress is not None
        if reports:  # the learned map reports its epochs; the others fit in a moment
            inverse.set_params(progress=self.progress)
        try:
            return inverse.fit(embedding, X_fit, reducer=self)
        finally:
            if reports:  # the fitted map is cached and outlives this fit's callback
                inverse.set_params(progress=None)

    def transform(self, X):
        """Embed rows of ``X`` (n, d) into (n, n_components), in chunks (with progress).

        Passing the very array the reducer was fitted on returns ``embedding_`` (same values as
        ``fit_transform``), as umap-learn does.
        """
        check_fitted(self, "embedding_")
        X = self._validate(X, reset=False)
        if tuple(X.shape) == tuple(self._fit_shape) and _digest(X) == self._fit_digest:
            return self.embedding_.copy()
        if not self._can_transform(self.backend_):
            raise ReducerValueError(
                f"{type(self).__name__} fitted with backend={self.backend_!r} cannot embed new points; "
                "refit with backend='cpu'."
            )
        parts = backends.map_chunks(lambda rows: self._transform_model(np.ascontiguousarray(rows, dtype=np.float32)),
                                    X, self.chunk_size, self.progress, "reduce")
        return np.concatenate(parts) if parts else np.empty((0, self.n_components), np.float32)

    def fit_transform(self, X, y=None):
        """Fit and return ``embedding_`` (a copy)."""
        return self.fit(X).embedding_.copy()

    def on_rows(self, X, embedding=None, progress=None):
        """This fitted map, for other activations of the same samples: a copy that places the rows of ``X`` with
        :meth:`transform` (the map does not reshuffle: the same model, the same axes) and fits its inverse map and
        trust measures again, on ``X`` and those places. What a model refined at the layer's prefix needs: its
        activations moved, the map they are read on did not.

        Parameters
        ----------
        X : array (n, d)
            The new activations, one row per sample of the fit (the same number of rows).
        embedding : array (n, n_components), optional
            ``transform(X)`` when already computed.
        progress : callable(stage, done, total), optional
            Stages ``"reduce"`` (rows placed) and ``"training the inverse map"`` (epochs of the learned inverse).

        Returns
        -------
        BaseReducer
            A new fitted reducer; this one is unchanged (the copy shares its fitted map, never its inverse).

        Raises
        ------
        ReducerValueError
            ``X`` has another number of rows or features than the fit, or ``embedding`` another shape.
        """
        import copy

        check_fitted(self, "embedding_")
        X = self._validate(X, reset=False)
        if len(X) != self._fit_shape[0]:
            raise ReducerValueError(f"{type(self).__name__}.on_rows: {len(X):,} rows given; the map was fitted on "
                                    f"{self._fit_shape[0]:,} (one per sample)")
        if embedding is None:
            saved, self.progress = self.progress, progress
            try:
                embedding = self.transform(X)
            finally:
                self.progress = saved
        embedding = np.asarray(embedding, dtype=np.float32)
        if embedding.shape != (len(X), self.n_components):
            raise ReducerValueError(f"{type(self).__name__}.on_rows: embedding of shape {embedding.shape}, expected "
                                    f"{(len(X), self.n_components)}")
        new = copy.copy(self)
        new.embedding_ = embedding
        new._fit_shape, new._fit_digest = tuple(X.shape), _digest(X)
        new.activation_variance_ = _mean_variance(X, self.chunk_size)
        index = getattr(self, "inverse_index_", self.fit_index_)
        rows = np.ascontiguousarray(backends.take_rows(X, index) if backends.is_chunked(X) else X[index],
                                    dtype=np.float32)
        new.progress = progress
        try:
            new.inverse_ = new._fit_inverse(embedding[index], rows)
        finally:
            new.progress = None
        new.trust_ = new._fit_trust(embedding)
        new.cache_key_, new.cache_hit_ = None, False  # not the cached projection: nothing is stored under its key
        return new

    def inverse_transform(self, Y):
        """Map 2-D points (k, n_components) back to the layer (k, d) with the fitted inverse map.

        Raises
        ------
        ReducerValueError
            If the reducer was fitted with ``inverse=None``.
        """
        check_fitted(self, "embedding_")
        if self.inverse_ is None:
            raise ReducerValueError(
                f"{type(self).__name__} was fitted with inverse=None: set inverse='auto', 'mlp', 'knn', "
                "'exact' or 'native' and fit again."
            )
        return self.inverse_.transform(Y)

    def trust(self, Y) -> Trust:
        """Trust measures of decoding each 2-D point (see :class:`~engine.reduce.trust.Trust`)."""
        check_fitted(self, "trust_")
        return self.trust_.evaluate(Y)

    @property
    def _n_features_out(self):
        return self.n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.input_tags.sparse = False
        return tags
