"""The inverse-projection literature's measures of an inverse map, for any map (ours or another library's).

Every function takes plain arrays or a callable ``inverse(xy (k, 2)) -> activations (k, d)``, so the same code
measures :class:`~engine.reduce.MLPInverse` and, in ``benchmarks/``, the published methods of the
``inverse-projections`` package on the same held-out split.

* ``consistency`` (Cons_d): the share of held-out samples whose decoded point gets the class the model (or the probe)
  gives the sample itself.
* ``decoded_accuracy`` (ACC_M): the share of held-out samples whose decoded point gets the sample's true label.
* ``gradient_map``: how fast the decoded point moves per unit of map distance, by central differences on a grid
  (Wang and Telea's gradient map, the definition of the ``inverse-projections`` package), in *spreads of the data per
  width of the data's box*: the Jacobian's norm with the map's coordinates scaled so the data's bounding box is the
  unit square, divided by the activations' total standard deviation. A smooth map that unfolds the data evenly sits
  near 1; folds and tears stand out as values many times the median.
* ``class_stability``: the share of samples whose class survives repeated project-decode round trips.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(200, 2))
>>> g = gradient_map(lambda xy: xy @ np.array([[2.0, 0.0], [0.0, 2.0]]), X @ np.eye(2) / 2, np.sqrt(8.0), grid=20)
>>> bool(np.allclose(g, g.flat[0]))       # a linear map has the same gradient everywhere
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import ReducerValueError

__all__ = [
    "InverseMetrics",
    "class_stability",
    "consistency",
    "decoded_accuracy",
    "gradient_map",
    "gradient_norms",
    "gradient_stats",
    "inverse_metrics",
    "local_gradient",
]

#: Gradient above this many times the map's median counts as a fold or a tear in ``gradient_stats``.
STEEP = 3.0


def consistency(pred_decoded, pred_original) -> float:
    """Cons_d: the share of rows where the class of the decoded point equals the class of the original sample."""
    a, b = np.asarray(pred_decoded).ravel(), np.asarray(pred_original).ravel()
    if len(a) != len(b) or not len(a):
        raise ReducerValueError(f"consistency needs two equally long, non-empty class lists; got {len(a)} and {len(b)}")
    return float(np.mean(a == b))


def decoded_accuracy(pred_decoded, labels) -> float:
    """ACC_M: the share of rows where the class of the decoded point is the sample's true label."""
    return consistency(pred_decoded, labels)


def gradient_norms(grid_values, dx: float, dy: float) -> np.ndarray:
    """Norm of the Jacobian at every node of a grid of decoded points, by central differences.

    Parameters
    ----------
    grid_values : array of shape (ny + 2, nx + 2, d)
        Decoded points on a grid padded by one node on each side (row = y, column = x).
    dx, dy : float
        The grid's steps in map units.

    Returns
    -------
    ndarray of shape (ny, nx)
        ``sqrt(|dX/dx|^2 + |dX/dy|^2)`` (the Frobenius norm of the d x 2 Jacobian).
    """
    v = np.asarray(grid_values, dtype=np.float64)
    if v.ndim != 3 or v.shape[0] < 3 or v.shape[1] < 3:
        raise ReducerValueError(f"gradient_norms needs a padded grid of shape (ny + 2, nx + 2, d); got {v.shape}")
    ddx = (v[1:-1, 2:] - v[1:-1, :-2]) / (2.0 * dx)
    ddy = (v[2:, 1:-1] - v[:-2, 1:-1]) / (2.0 * dy)
    return np.sqrt((ddx**2).sum(axis=2) + (ddy**2).sum(axis=2))


def padded_grid(x_range, y_range, nx: int, ny: int) -> tuple[np.ndarray, float, float]:
    """Cell centres of an ``nx`` x ``ny`` grid over the ranges, with one more ring of nodes around it.

    Returns ``(xy of shape ((ny + 2) * (nx + 2), 2) in row-major order (y, then x), dx, dy)``.
    """
    (x0, x1), (y0, y1) = map(tuple, (x_range, y_range))
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    xs = x0 + dx * (np.arange(-1, nx + 1) + 0.5)
    ys = y0 + dy * (np.arange(-1, ny + 1) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32), dx, dy


def data_box(embedding) -> tuple[tuple[float, float], tuple[float, float]]:
    """The bounding box of the embedded points (a degenerate side widened to 1)."""
    E = np.asarray(embedding)  # (no float64 copy: 1.6 GB at 100 million points; a float's min is exact)
    lo, hi = E.min(axis=0).astype(np.float64), E.max(axis=0).astype(np.float64)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def gradient_map(inverse: Callable, embedding, spread: float, grid: int = 100) -> np.ndarray:
    """The gradient map of ``inverse`` over the bounding box of ``embedding``, ``grid`` x ``grid`` cells.

    Parameters
    ----------
    inverse : callable(xy (k, 2)) -> (k, d)
    embedding : array of shape (n, 2)
        The projected data; its bounding box is the map, scaled to the unit square.
    spread : float
        The activations' total standard deviation (``sqrt`` of the sum of the per-feature variances); the norms are
        divided by it.
    grid : int

    Returns
    -------
    ndarray of shape (grid, grid)
    """
    xr, yr = data_box(embedding)
    xy, dx, dy = padded_grid(xr, yr, grid, grid)
    values = np.asarray(inverse(xy), dtype=np.float64).reshape(grid + 2, grid + 2, -1)
    # steps in units of the box's sides: the box is the unit square
    return gradient_norms(values, 1.0 / grid, 1.0 / grid) / (spread if spread > 0 else 1.0)


def local_gradient(inverse: Callable, xy, embedding, spread: float, step: float = 1e-3) -> np.ndarray:
    """The gradient map's value at points ``xy`` (k, 2): central differences of ``inverse`` over ``step`` of the data
    box's sides, in the units of :func:`gradient_map` (four decodes per point, in one batch)."""
    q = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    (x0, x1), (y0, y1) = data_box(embedding)
    hx, hy = step * (x1 - x0), step * (y1 - y0)
    offsets = np.array([[hx, 0.0], [-hx, 0.0], [0.0, hy], [0.0, -hy]])
    v = np.asarray(inverse((q[:, None, :] + offsets[None]).reshape(-1, 2).astype(np.float32)), np.float64)
    v = v.reshape(len(q), 4, -1)
    ddx = (v[:, 0] - v[:, 1]) / (2 * step)
    ddy = (v[:, 2] - v[:, 3]) / (2 * step)
    return np.sqrt((ddx**2).sum(axis=1) + (ddy**2).sum(axis=1)) / (spread if spread > 0 else 1.0)


def gradient_stats(gmap, steep: float = STEEP) -> dict:
    """Mean, median, max of a gradient map and the share of cells above ``steep`` times its median."""
    g = np.asarray(gmap, dtype=np.float64).ravel()
    g = g[np.isfinite(g)]
    median = float(np.median(g)) if len(g) else float("nan")
    return {
        "mean": float(g.mean()) if len(g) else float("nan"),
        "median": median,
        "max": float(g.max()) if len(g) else float("nan"),
        "steep_share": float(np.mean(g > steep * median)) if len(g) and median > 0 else 0.0,
        "steep_factor": steep,
    }


def class_stability(classify: Callable, project: Callable, inverse: Callable, X, rounds: int = 3) -> float:
    """The share of rows of ``X`` whose class is unchanged after each of ``rounds`` project-decode round trips
    (``x -> inverse(project(x))``, repeated), measured against the class of the original row."""
    X = np.asarray(X, dtype=np.float32)
    first = np.asarray(classify(X))
    stable = np.ones(len(X), dtype=bool)
    current = X
    for _ in range(rounds):
        current = np.asarray(inverse(np.asarray(project(current), dtype=np.float32)), dtype=np.float32)
        stable &= np.asarray(classify(current)) == first
    return float(stable.mean())


@dataclass
class InverseMetrics:
    """The literature's measures of one inverse map on one held-out split.

    Attributes
    ----------
    mse, relative_mse : float
        Held-out mean squared error per feature in layer space, and over the activations' mean per-feature variance.
    output_mse, output_relative_mse : float or None
        The same in the model's output space (decodes of the decoded points vs decodes of the true activations).
    consistency, decoded_accuracy : float or None
        Cons_d and ACC_M (None without a classifier, or without labels for ACC_M).
    gradient : dict
        :func:`gradient_stats` of the gradient map over the data's box.
    class_stability : float or None
        After ``stability_rounds`` round trips (None when not measured).
    seconds_per_point : float
        The inverse's time per held-out point, in one batch.
    n_holdout : int
    """

    mse: float
    relative_mse: float
    output_mse: float | None
    output_relative_mse: float | None
    consistency: float | None
    decoded_accuracy: float | None
    gradient: dict
    class_stability: float | None
    seconds_per_point: float
    n_holdout: int

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def inverse_metrics(
    inverse: Callable,
    E_test,
    X_test,
    *,
    embedding,
    variance: float,
    classify: Callable | None = None,
    labels=None,
    decode: Callable | None = None,
    predicted=None,
    project: Callable | None = None,
    stability_rounds: int = 3,
    stability_rows: int = 200,
    grid: int = 100,
    decoded=None,
    seconds: float | None = None,
) -> InverseMetrics:
    """Measure ``inverse`` on held-out pairs ``(E_test, X_test)``.

    Parameters
    ----------
    inverse : callable(xy) -> activations
    E_test : array of shape (k, 2)
        The held-out samples' projections (not seen by the inverse when it was fitted).
    X_test : array of shape (k, d)
        Their activations.
    embedding : array of shape (n, 2)
        Every projected point (the gradient map's box).
    variance : float
        The activations' mean per-feature variance.
    classify : callable(activations) -> classes, optional
        The model's (or the probe's) class of activations: enables Cons_d, ACC_M and the class stability.
    labels : array of shape (k,), optional
        The held-out samples' true labels, in ``classify``'s classes: enables ACC_M.
    decode : callable(activations) -> outputs, optional
        The rest of the model: enables the output-space error.
    predicted : array of shape (k,), optional
        ``classify(X_test)`` if already known.
    project : callable(activations) -> xy, optional
        The projection of new rows (``reducer.transform``): enables the class stability.
    decoded : array of shape (k, d), optional
        ``inverse(E_test)`` if already computed (a map's own held-out predictions, e.g. leave-one-out for k-NN);
        then ``seconds`` is its time, or the time is measured on a fresh call.
    """
    E_test = np.asarray(E_test, dtype=np.float32)
    X_test = np.asarray(X_test, dtype=np.float32).reshape(len(E_test), -1)
    t0 = time.perf_counter()
    fresh = np.asarray(inverse(E_test), dtype=np.float32).reshape(len(E_test), -1)
    per_point = (time.perf_counter() - t0) / max(1, len(E_test))
    if seconds is not None:
        per_point = seconds / max(1, len(E_test))
    recon = fresh if decoded is None else np.asarray(decoded, dtype=np.float32).reshape(len(E_test), -1)
    mse = float(np.mean((recon.astype(np.float64) - X_test) ** 2))
    out_mse = out_rel = None
    if decode is not None:
        truth = np.asarray(decode(X_test), np.float64).reshape(len(X_test), -1)
        pred = np.asarray(decode(recon), np.float64).reshape(len(X_test), -1)
        out_mse = float(np.mean((pred - truth) ** 2))
        var = float(np.mean((truth - truth.mean(axis=0)) ** 2))
        out_rel = out_mse / var if var > 0 else float("nan")
    cons = acc = stability = None
    if classify is not None:
        classes = np.asarray(classify(recon))
        original = np.asarray(classify(X_test)) if predicted is None else np.asarray(predicted)
        cons = consistency(classes, original)
        if labels is not None:
            acc = decoded_accuracy(classes, labels)
        if project is not None and stability_rounds > 0:
            rows = np.linspace(0, len(X_test) - 1, min(stability_rows, len(X_test))).astype(int)
            stability = class_stability(classify, project, inverse, X_test[rows], stability_rounds)
    spread = float(np.sqrt(variance * X_test.shape[1]))
    return InverseMetrics(
        mse=mse,
        relative_mse=mse / variance if variance > 0 else float("nan"),
        output_mse=out_mse,
        output_relative_mse=out_rel,
        consistency=cons,
        decoded_accuracy=acc,
        gradient=gradient_stats(gradient_map(inverse, embedding, spread, grid)),
        class_stability=stability,
        seconds_per_point=per_point,
        n_holdout=len(E_test),
    )
