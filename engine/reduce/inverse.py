"""Inverse maps: from a 2-D point back to the layer.

Every inverse map is an estimator fitted on pairs ``fit(points, activations)`` (scikit-learn's ``fit(X, y)``:
the 2-D points are the map's inputs, the activations its targets) and maps any query points back with
``transform(points) -> activations`` (``predict`` is the same, for scikit-learn's regressor tooling). Any
reducer composes with any inverse map; the reducer passes itself to ``fit(..., reducer=...)`` and only the maps
that need it (exact PCA, native UMAP) look at it.

* :class:`PCAInverse` ("exact"): the linear inverse ``Y @ components + mean`` of a PCA; exact for PCA, fitted
  by least squares for any other reducer.
* :class:`MLPInverse` ("mlp"): NNInv (Espadoto et al., 2019): a small ReLU network 2 -> hidden -> d trained on
  standardized pairs (MSE, Adam, held-out validation split, early stopping) as plain float32 array math, no deep
  learning framework, then evaluated the same way on its weights (NumPy or CuPy), ~50 us per point.
* :class:`KNNInverse` ("knn"): inverse-distance-weighted average of the activations of the k nearest embedded
  points, the baseline every learned map must beat.
* :class:`NativeInverse` ("native"): the reducer's own ``inverse_transform`` (umap-learn's). Slow (seconds per
  call), so never the default.

Every map records held-out round-trip errors (``holdout_index_``, ``holdout_points_``, ``holdout_error_``):
mean squared error per layer feature of samples the map did not learn from. The trust model interpolates them.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import validate_data

from engine.backends.cupy import get_namespace, to_numpy
from engine.errors import ReducerValueError
from engine.progress import report
from engine.reduce.names import INVERSES
from engine.reduce.validation import check_fitted, check_int, check_query

__all__ = ["INVERSES", "KNNInverse", "MLPInverse", "NativeInverse", "PCAInverse", "make_inverse"]

class BaseInverse(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Shared validation, output shaping and held-out bookkeeping of the inverse maps."""

    kind = ""

    def _validate_pairs(self, Y, X):
        # scikit-learn's naming: ``X`` are the inputs of the map (here 2-D points), ``y`` its targets (activations)
        Y, X = validate_data(self, Y, X, dtype=np.float32, multi_output=True, y_numeric=True)
        if len(Y) < 2:
            raise ReducerValueError(
                f"{type(self).__name__} needs at least 2 (point, activation) pairs, got n_samples = {len(Y)}."
            )
        self._targets_1d = X.ndim == 1
        X = np.ascontiguousarray(X.reshape(len(X), -1), dtype=np.float32)
        self.n_outputs_ = X.shape[1]
        return np.ascontiguousarray(Y, dtype=np.float32), X

    def _shape_output(self, out):
        return out[:, 0] if self._targets_1d else out

    def _set_holdout(self, index, points, predicted, truth) -> None:
        self.holdout_index_ = np.asarray(index, dtype=np.int64)
        self.holdout_points_ = np.asarray(points, dtype=np.float32)
        self.holdout_error_ = np.mean((np.asarray(predicted, np.float64) - truth) ** 2, axis=1)

    def holdout_predict(self, which=None):
        """Reconstructions of the held-out samples (``which`` indexes ``holdout_index_``), made without them.

        Maps that learned from a sample cannot leave it out by calling ``transform`` on it again; each map
        recomputes its held-out predictions the way it measured ``holdout_error_``.
        """
        check_fitted(self, "holdout_points_")
        which = slice(None) if which is None else which
        return self.transform(self.holdout_points_[which])

    def predict(self, Y):
        """Same as :meth:`transform` (scikit-learn regressor spelling)."""
        return self.transform(Y)

    def fit_transform(self, X, y, reducer=None):
        """Fit on the pairs and map the fitted points back (for the k-NN map: their own activations)."""
        return self.fit(X, y, reducer=reducer).transform(X)

    def round_trip_error(self) -> float:
        """Mean squared error per feature over the held-out samples."""
        check_fitted(self, "holdout_error_")
        return float(np.mean(self.holdout_error_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.target_tags.required = True
        # ``transform`` is the contract's name for ``predict``: a transformer of 2-D points into activations
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        tags.input_tags.sparse = False
        return tags


def _holdout_rows(n: int, size: int, rng) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(n, size), replace=False)) if size < n else np.arange(n)


class PCAInverse(BaseInverse):
    """Exact linear inverse of a PCA (least squares linear map for any other reducer).

    ``transform(Y) = Y @ A + b``. Given a fitted :class:`~engine.reduce.PCAReducer` as ``reducer``, ``A`` and
    ``b`` are its components and mean, so a point of the embedding maps back to the rank-2 reconstruction
    exactly. Without one, ``A`` and ``b`` are the least-squares solution on the pairs (which, for PCA scores,
    is the same map).

    Parameters
    ----------
    max_holdout : int, default=10_000
        Samples whose reconstruction error is recorded for the trust model.
    random_state : int, RandomState or None, default=0

    Examples
    --------
    >>> Y = np.random.default_rng(0).normal(size=(50, 2)); X = Y @ np.ones((2, 4))
    >>> bool(np.allclose(PCAInverse().fit(Y, X).transform(Y[:3]), X[:3], atol=1e-4))
    True
    """

    kind = "exact"

    def __init__(self, max_holdout=10_000, random_state=0):
        self.max_holdout = max_holdout
        self.random_state = random_state

    def fit(self, X, y, reducer=None):
        """Take the linear inverse from ``reducer`` if it has one, else solve least squares on the pairs ``(X, y)``."""
        check_int(self.max_holdout, "max_holdout", owner="PCAInverse")
        Y, X = self._validate_pairs(X, y)
        linear = reducer._linear_inverse() if hasattr(reducer, "_linear_inverse") else None
        if linear is not None and linear[0].shape == (Y.shape[1], X.shape[1]):
            A, b = linear
            self.exact_ = True
        else:
            design = np.c_[Y.astype(np.float64), np.ones(len(Y))]
            coef, *_ = np.linalg.lstsq(design, X.astype(np.float64), rcond=None)
            A, b = coef[:-1], coef[-1]
            self.exact_ = False
        self.components_ = np.ascontiguousarray(A, dtype=np.float32)
        self.mean_ = np.ascontiguousarray(b, dtype=np.float32)
        rows = _holdout_rows(len(Y), self.max_holdout, check_random_state(self.random_state))
        self._set_holdout(rows, Y[rows], self._map(Y[rows], np), X[rows])
        return self

    def _map(self, Y, xp):
        # In float64, then rounded to float32: a row's result then does not depend on which other rows share its
        # BLAS block (float32 products differ in the last bit with the batch layout; sample-order invariance).
        A = xp.asarray(self.components_, dtype=xp.float64)
        b = xp.asarray(self.mean_, dtype=xp.float64)
        out = Y.astype(xp.float64) @ A
        out += b
        return out.astype(xp.float32)

    def transform(self, Y):
        """Map points of shape (k, 2) back to activations of shape (k, d) (NumPy in, NumPy out; CuPy likewise)."""
        check_fitted(self, "components_")
        Y = check_query(Y, self.n_features_in_, "PCAInverse")
        return self._shape_output(self._map(Y, get_namespace(Y)))


def _relu_forward(x, coefs, intercepts, xp, keep=None):
    """``x`` through ReLU layers ``(coefs[i], intercepts[i])`` and a linear last one; each hidden activation is
    appended to ``keep`` when given (the backward pass needs them)."""
    h = x
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        h = h @ W
        h += b
        xp.maximum(h, 0, out=h)
        if keep is not None:
            keep.append(h)
    out = h @ coefs[-1]
    out += intercepts[-1]
    return out


class _Network:
    """A ReLU network ``sizes[0] -> ... -> sizes[-1]`` (linear output) whose weights and biases are views of one flat
    float32 vector, so that Adam updates all of them in a few whole-vector operations. Weights start Glorot-uniform
    and biases at zero (Keras' defaults for a Dense layer)."""

    def __init__(self, sizes, rng, xp=np):
        shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((a, b), (b,))]
        counts = [int(np.prod(s)) for s in shapes]
        self.flat, self.grad = xp.zeros(sum(counts), np.float32), xp.zeros(sum(counts), np.float32)
        self.params, self.grads, offset = [], [], 0
        for shape, count in zip(shapes, counts):
            self.params.append(self.flat[offset:offset + count].reshape(shape))
            self.grads.append(self.grad[offset:offset + count].reshape(shape))
            offset += count
        for W in self.params[::2]:
            limit = np.sqrt(6.0 / sum(W.shape))
            W[...] = xp.asarray(rng.uniform(-limit, limit, W.shape).astype(np.float32))
        self.xp = xp

    def forward(self, x, keep=None):
        """Outputs for rows ``x``; the hidden activations are appended to ``keep`` (for :meth:`mse_gradient`)."""
        return _relu_forward(x, self.params[::2], self.params[1::2], self.xp, keep)

    def mse_gradient(self, x, y) -> None:
        """``self.grad`` := the gradient of the mean squared error over the batch ``(x, y)`` (every output averaged,
        as Keras' "mse")."""
        hidden = []
        d = self.forward(x, keep=hidden)
        d -= y
        d *= 2.0 / d.size
        inputs = [x, *hidden]
        for layer in range(len(inputs) - 1, -1, -1):
            self.xp.matmul(inputs[layer].T, d, out=self.grads[2 * layer])
            d.sum(axis=0, out=self.grads[2 * layer + 1])
            if layer:
                d = d @ self.params[2 * layer].T
                d *= inputs[layer] > 0


#: A network whose largest weight matrix has at most this many entries trains with one BLAS thread: its products
#: (256 x 256 for the default one) are too small to share, and the BLAS' threads then wait on each other. On this
#: machine (2 cores) the digits bottleneck's 10 epochs took 2.9 s with 2 threads and 2.8 s with one, and 9.1 s
#: against 5.1 s while two other processes kept both cores busy, as a browser and a server do.
SINGLE_THREAD_MAX_WEIGHTS = 512 * 512

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def _one_blas_thread(enabled: bool = True):
    """The BLAS on one thread while the block runs, in every thread of the process (the BLAS' setting is global):
    counted, so that overlapping fits on several threads (a served dashboard's) restore it once, after the last."""
    global _blas_users, _blas_limit
    if not enabled:
        yield
        return
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def _train(net: _Network, x, y, x_val, y_val, *, batch, epochs, repeat, learning_rate, patience, max_seconds, rng,
           on_epoch):
    """Adam (Keras' defaults: beta 0.9 and 0.999, epsilon 1e-7) on the mean squared error, its step decayed along a
    cosine to 1% over every step of ``epochs`` (Keras' ``CosineDecay(alpha=0.01)``). An epoch shows each of the
    ``len(x)`` training rows ``repeat`` times, shuffled; after each, the validation loss picks the best weights, which
    the network keeps at the end. Stops after ``patience`` epochs without a better loss, or once ``max_seconds`` have
    passed. Returns ``(epochs run, stop reason, best validation loss)``."""
    xp, flat, grad = net.xp, net.flat, net.grad
    m, v = xp.zeros_like(flat), xp.zeros_like(flat)
    beta1, beta2, eps = 0.9, 0.999, 1e-7
    rows = repeat * len(x)
    total = epochs * -(-rows // batch)
    best, best_flat, wait, step, reason = np.inf, flat.copy(), 0, 0, "max_epochs"
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = xp.asarray(rng.permutation(rows) % len(x))
        for lo in range(0, rows, batch):
            idx = order[lo:lo + batch]
            net.mse_gradient(x[idx], y[idx])
            step += 1
            rate = learning_rate * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * min(step - 1, total) / total)))
            m *= beta1
            m += (1.0 - beta1) * grad
            v *= beta2
            v += (1.0 - beta2) * grad * grad
            flat -= (rate * np.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)) * m / (xp.sqrt(v) + eps)
        loss = float(xp.mean((net.forward(x_val) - y_val) ** 2))
        if loss < best:
            best, wait = loss, 0
            best_flat[...] = flat
        else:
            wait += 1
        on_epoch(epoch)
        if wait >= patience:
            reason = "early_stopping"
            break
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            reason = "max_seconds"
            break
    flat[...] = best_flat
    return epoch, reason, best


class MLPInverse(BaseInverse):
    """NNInv: a ReLU network trained to map embedded points back to activations.

    Training, in float32 NumPy (matrix products on the BLAS, no deep learning framework, nothing to trace or
    compile): inputs and outputs standardized per column; ``2 -> hidden_layer_sizes -> d`` with ReLU, linear
    output, Glorot-uniform initial weights, MSE, Adam with a cosine-decaying step (Keras' defaults, which the
    first version trained with); a held-out validation split (``validation_fraction``) picks the best epoch's
    weights and stops early after ``patience`` epochs without improvement. The standardization is then folded
    into the first and last layers and the weights are kept as float32 arrays (``coefs_``, ``intercepts_``), so
    ``transform`` is a handful of matrix products on NumPy or CuPy arrays.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256, 256, 256)
    learning_rate : float, default=1e-2
        Initial Adam step, decayed to 1% of it over ``max_epochs`` along a cosine.
    batch_size : int, default=256
    max_epochs : int, default=50
        Length of the learning-rate schedule.
    patience : int, default=20
        Epochs without a better validation loss before stopping early.
    epoch_samples : int, default=16_384
        An epoch shows the network at least this many samples (small sets are repeated), so that the
        per-epoch validation, learning-rate and stopping decisions are made at a useful granularity.
    validation_fraction : float, default=0.1
        Held out from training; their errors are ``holdout_error_``.
    max_samples : int, default=100_000
        Pairs used for training at most (a seeded random subset).
    max_seconds : float or None, default=600
        Stop training after this long (the best weights so far are kept).
    random_state : int, RandomState or None, default=None
        Seeds the split, the initial weights and the order of the batches (no global generator is touched).
    progress : callable(stage, done, total) or None, default=None
        Stage ``"training the inverse map"``: epochs done of ``max_epochs`` (0 before the first, all of them at
        the end, also when it stopped early). A reducer passes its own for the fit of its inverse map.

    Attributes
    ----------
    coefs_, intercepts_ : list of ndarray (float32)
        Weights with the standardization folded in.
    n_epochs_ : int
    stop_reason_ : str
        ``"early_stopping"``, ``"max_epochs"`` or ``"max_seconds"``.
    holdout_index_, holdout_points_, holdout_error_ : ndarray
        The validation samples and their round-trip errors.

    Examples
    --------
    >>> inv = MLPInverse(hidden_layer_sizes=(32,), max_epochs=5, random_state=0)   # doctest: +SKIP
    >>> inv.fit(embedding, activations).transform(np.array([[0.5, -1.0]]))         # doctest: +SKIP
    """

    kind = "mlp"

    def __init__(
        self,
        hidden_layer_sizes=(256, 256, 256),
        learning_rate=1e-2,
        batch_size=256,
        max_epochs=50,
        patience=20,
        epoch_samples=16_384,
        validation_fraction=0.1,
        max_samples=100_000,
        max_seconds=600.0,
        random_state=None,
        progress=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.epoch_samples = epoch_samples
        self.validation_fraction = validation_fraction
        self.max_samples = max_samples
        self.max_seconds = max_seconds
        self.random_state = random_state
        self.progress = progress

    def _check_params(self):
        hidden = tuple(self.hidden_layer_sizes)
        for units in hidden:
            check_int(units, "hidden_layer_sizes entries", owner="MLPInverse")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ReducerValueError(
                f"MLPInverse: validation_fraction must be in (0, 1), got {self.validation_fraction}."
            )
        check_int(self.batch_size, "batch_size", owner="MLPInverse")
        if not self.learning_rate > 0:
            raise ReducerValueError(f"MLPInverse: learning_rate must be > 0, got {self.learning_rate}.")
        check_int(self.max_epochs, "max_epochs", owner="MLPInverse")
        check_int(self.epoch_samples, "epoch_samples", owner="MLPInverse")
        check_int(self.patience, "patience", owner="MLPInverse")
        check_int(self.max_samples, "max_samples", minimum=2, owner="MLPInverse")
        return hidden

    def fit(self, X, y, reducer=None):
        """Train on pairs (embedded point, activation); ``reducer`` is accepted for composition and not used.

        Parameters
        ----------
        X : array of shape (n, 2)
            Embedded points (scikit-learn's naming: the inputs of the map).
        y : array of shape (n, d)
            Their activations (the targets of the map).

        Returns
        -------
        self
        """
        hidden = self._check_params()
        Y, X = self._validate_pairs(X, y)
        stage = "training the inverse map"
        report(self.progress, stage, 0, self.max_epochs)

        rng = check_random_state(self.random_state)
        rows = _holdout_rows(len(Y), self.max_samples, rng)
        n_val = min(max(1, int(round(self.validation_fraction * len(rows)))), len(rows) - 1)
        perm = rng.permutation(rows)
        val, train = np.sort(perm[:n_val]), perm[n_val:]

        x_mean, x_scale = Y[train].mean(axis=0, dtype=np.float64), Y[train].std(axis=0, dtype=np.float64)
        y_mean, y_scale = X[train].mean(axis=0, dtype=np.float64), X[train].std(axis=0, dtype=np.float64)
        x_scale = np.where(x_scale > 1e-12, x_scale, 1.0)
        y_scale = np.where(y_scale > 1e-6 * max(float(y_scale.max()), 1e-12), y_scale, 1.0)

        def standardize(A, mean, scale):
            return ((A - mean) / scale).astype(np.float32)

        # the network's own generator, seeded from the estimator's: initial weights and the order of the batches
        gen = np.random.default_rng(rng.randint(2**31 - 1))
        net = _Network((Y.shape[1], *hidden, X.shape[1]), gen)
        small = max(W.size for W in net.params[::2]) <= SINGLE_THREAD_MAX_WEIGHTS
        with _one_blas_thread(small):
            self.n_epochs_, self.stop_reason_, self.best_val_loss_ = _train(
                net, standardize(Y[train], x_mean, x_scale), standardize(X[train], y_mean, y_scale),
                standardize(Y[val], x_mean, x_scale), standardize(X[val], y_mean, y_scale),
                batch=min(self.batch_size, len(train)), epochs=self.max_epochs,
                repeat=max(1, -(-self.epoch_samples // len(train))), learning_rate=self.learning_rate,
                patience=self.patience, max_seconds=self.max_seconds, rng=gen,
                on_epoch=lambda epochs: report(self.progress, stage, epochs, self.max_epochs),
            )
        coefs = [np.asarray(W, np.float64) for W in net.params[::2]]
        intercepts = [np.asarray(b, np.float64) for b in net.params[1::2]]
        # Fold the standardization in: ((y - m)/s) @ W + b == y @ (W / s[:, None]) + (b - (m / s) @ W),
        # and (h @ W + b) * s + m == h @ (W * s) + (b * s + m).
        intercepts[0] = intercepts[0] - (x_mean / x_scale) @ coefs[0]
        coefs[0] = coefs[0] / x_scale[:, None]
        coefs[-1], intercepts[-1] = coefs[-1] * y_scale, intercepts[-1] * y_scale + y_mean
        self.coefs_ = [np.ascontiguousarray(W, dtype=np.float32) for W in coefs]
        self.intercepts_ = [np.ascontiguousarray(b, dtype=np.float32) for b in intercepts]
        self._device_weights = {}
        self._set_holdout(val, Y[val], self._forward(Y[val], np), X[val])
        report(self.progress, stage, self.max_epochs, self.max_epochs)
        return self

    def _forward(self, Y, xp):
        if xp is np:
            coefs, intercepts = self.coefs_, self.intercepts_
        else:  # CuPy: copy the weights to the device once and keep them there
            key = xp.__name__
            if key not in self._device_weights:
                self._device_weights[key] = (
                    [xp.asarray(W) for W in self.coefs_],
                    [xp.asarray(b) for b in self.intercepts_],
                )
            coefs, intercepts = self._device_weights[key]
        return _relu_forward(Y, coefs, intercepts, xp)

    def transform(self, Y):
        """Map points of shape (k, 2) to activations of shape (k, d), float32, in Y's array namespace.

        One point costs a few small matrix products (tens of microseconds on a CPU).
        """
        check_fitted(self, "coefs_")
        Y = check_query(Y, self.n_features_in_, "MLPInverse")
        return self._shape_output(self._forward(Y, get_namespace(Y)))

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_device_weights"] = {}
        state["progress"] = None  # a callback of the fit that made it, not part of the fitted map
        return state


class KNNInverse(BaseInverse):
    """Inverse-distance-weighted average of the activations of the k nearest embedded points.

    ``x(q) = sum_j w_j x_j / sum_j w_j`` over the k nearest embedded points ``j`` of ``q``, with
    ``w_j = 1 / dist(q, y_j) ** power``. At an embedded point it returns that point's activation.

    Parameters
    ----------
    n_neighbors : int, default=10
    power : float, default=2.0
    max_holdout : int, default=5_000
        Samples whose leave-one-out error is recorded (``holdout_error_``).
    random_state : int, RandomState or None, default=0

    Examples
    --------
    >>> Y = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]); X = np.eye(3)
    >>> KNNInverse(n_neighbors=2).fit(Y, X).transform(Y[:1]).round(3).tolist()
    [[1.0, 0.0, 0.0]]
    """

    kind = "knn"

    def __init__(self, n_neighbors=10, power=2.0, max_holdout=5_000, random_state=0):
        self.n_neighbors = n_neighbors
        self.power = power
        self.max_holdout = max_holdout
        self.random_state = random_state

    def fit(self, X, y, reducer=None):
        """Index the embedded points ``X`` and keep their activations ``y``."""
        check_int(self.n_neighbors, "n_neighbors", owner="KNNInverse")
        check_int(self.max_holdout, "max_holdout", owner="KNNInverse")
        if not self.power >= 0:
            raise ReducerValueError(f"KNNInverse: power must be >= 0, got {self.power}.")
        Y, X = self._validate_pairs(X, y)
        self.tree_ = cKDTree(Y)
        self.targets_ = X
        self.k_ = min(self.n_neighbors, len(Y) - 1)
        rows = _holdout_rows(len(Y), self.max_holdout, check_random_state(self.random_state))
        self._set_holdout(rows, Y[rows], self._leave_one_out(Y[rows], rows), X[rows])
        return self

    def _leave_one_out(self, points, rows):
        """Predict each fitted point ``rows[i]`` (at ``points[i]``) from its k nearest *other* points."""
        d, idx = self.tree_.query(points, k=self.k_ + 1)
        d, idx = d.reshape(len(rows), -1), idx.reshape(len(rows), -1)
        # drop each point itself (or, with duplicates, one of its zero-distance twins)
        is_self = idx == np.asarray(rows)[:, None]
        is_self[~is_self.any(axis=1), -1] = True
        keep = ~is_self
        return self._blend(d[keep].reshape(len(rows), self.k_), idx[keep].reshape(len(rows), self.k_))

    def holdout_predict(self, which=None):
        check_fitted(self, "holdout_points_")
        which = slice(None) if which is None else which
        return self._leave_one_out(self.holdout_points_[which], self.holdout_index_[which])

    def _blend(self, d, idx):
        w = 1.0 / np.maximum(d, 1e-12) ** self.power
        w /= w.sum(axis=1, keepdims=True)
        return np.einsum("kn,knd->kd", w.astype(np.float32), self.targets_[idx])

    def transform(self, Y):
        """Map points of shape (k, 2) to activations of shape (k, d) (CuPy in, CuPy out; searched on the host)."""
        check_fitted(self, "tree_")
        Y = check_query(Y, self.n_features_in_, "KNNInverse")
        xp = get_namespace(Y)
        d, idx = self.tree_.query(to_numpy(Y), k=self.k_)
        d, idx = d.reshape(len(Y), -1), idx.reshape(len(Y), -1)
        out = self._blend(d, idx)
        return self._shape_output(out if xp is np else xp.asarray(out))


class NativeInverse(BaseInverse):
    """The reducer's own inverse (umap-learn's ``UMAP.inverse_transform``; PCA's exact inverse).

    Needs the fitted reducer: ``fit(Y, X, reducer=reducer)``. umap-learn's inverse optimises each query
    against the training data and takes seconds per call, so it is an option, never the default. Its
    ``holdout_error_`` is measured on ``max_holdout`` fitted samples (the native map cannot leave them out).

    Parameters
    ----------
    max_holdout : int, default=50
    random_state : int, RandomState or None, default=0
    """

    kind = "native"

    def __init__(self, max_holdout=50, random_state=0):
        self.max_holdout = max_holdout
        self.random_state = random_state

    def fit(self, X, y, reducer=None):
        check_int(self.max_holdout, "max_holdout", owner="NativeInverse")
        if reducer is None or not hasattr(reducer, "_native_inverse"):
            name = type(reducer).__name__ if reducer is not None else "no reducer"
            raise ReducerValueError(
                f"NativeInverse needs a fitted reducer with a native inverse (UMAP or PCA), got {name}; "
                "use inverse='mlp' or 'knn' for t-SNE."
            )
        Y, X = self._validate_pairs(X, y)
        self.reducer_ = reducer
        rows = _holdout_rows(len(Y), self.max_holdout, check_random_state(self.random_state))
        self._set_holdout(rows, Y[rows], self._call(Y[rows]), X[rows])
        return self

    def holdout_predict(self, which=None):
        check_fitted(self, "holdout_points_")
        which = slice(None) if which is None else which
        return self._call(self.holdout_points_[which])

    def _call(self, Y):
        return np.asarray(self.reducer_._native_inverse(np.asarray(Y, dtype=np.float32)), dtype=np.float32)

    def transform(self, Y):
        check_fitted(self, "reducer_")
        Y = check_query(Y, self.n_features_in_, "NativeInverse")
        xp = get_namespace(Y)
        out = self._call(to_numpy(Y)).reshape(len(Y), -1)
        return self._shape_output(out if xp is np else xp.asarray(out))


def make_inverse(kind: str = "auto", *, method: str | None = None, **params) -> BaseInverse:
    """Build an unfitted inverse map by name.

    Parameters
    ----------
    kind : {"auto", "exact", "mlp", "knn", "native"}
        ``"auto"`` is ``"exact"`` for PCA and ``"mlp"`` otherwise.
    method : {"pca", "umap", "tsne"}, optional
        The reducer it will invert (only ``"auto"`` looks at it).
    **params
        Parameters of the inverse map's class.

    Returns
    -------
    PCAInverse, MLPInverse, KNNInverse or NativeInverse

    Raises
    ------
    ReducerValueError
        For an unknown ``kind``.

    Examples
    --------
    >>> make_inverse("knn", n_neighbors=5)
    KNNInverse(n_neighbors=5)
    """
    if kind == "auto":
        kind = "exact" if method == "pca" else "mlp"
    classes = {"exact": PCAInverse, "mlp": MLPInverse, "knn": KNNInverse, "native": NativeInverse}
    if kind not in classes:
        raise ReducerValueError(f"inverse must be one of {tuple(INVERSES)} or an inverse estimator, got {kind!r}.")
    return classes[kind](**params)
