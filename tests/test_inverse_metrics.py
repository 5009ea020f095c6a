"""The inverse-projection measures of ``engine.reduce.metrics`` on maps whose answers are known by hand, and the
benchmark case that uses them (``benchmarks/cases/inverse_methods.py``) in its quick mode."""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.errors import ReducerValueError
from engine.reduce.metrics import (
    STEEP,
    class_stability,
    consistency,
    decoded_accuracy,
    gradient_map,
    gradient_norms,
    gradient_stats,
    inverse_metrics,
    padded_grid,
)

# An exactly invertible linear projection of 6-D activations that lie in a 2-D subspace: X = E @ A, E = X @ pinv(A).
A = np.array([[1.0, -2.0, 0.5, 3.0, 0.0, 1.5], [0.5, 1.0, -1.0, 0.0, 2.0, -0.5]])
W = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [0.0, 0.5, 0.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.5]])


def _linear_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    E = (rng.normal(size=(n, 2)) * [3.0, 1.0] + [1.0, -2.0]).astype(np.float32)
    return E, (E.astype(np.float64) @ A).astype(np.float32)


def classify(X):
    """A fixed linear classifier of the activations (3 classes)."""
    return np.argmax(np.asarray(X, np.float64) @ W, axis=1)


def decode(X):
    """A fixed linear 'rest of the model' (activations -> 4 outputs)."""
    return np.asarray(X, np.float64) @ W[:, :2] @ np.array([[1.0, 0.0, 2.0, 1.0], [0.0, 1.0, -1.0, 3.0]])


def exact_inverse(xy):
    return (np.asarray(xy, np.float64) @ A).astype(np.float32)


def project(X):
    return (np.asarray(X, np.float64) @ np.linalg.pinv(A)).astype(np.float32)


def _split(n, seed=0):
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n // 5:]), np.sort(perm[: n // 5])


def test_an_exact_inverse_of_a_linear_projection_is_perfect():
    E, X = _linear_data()
    train, test = _split(len(E))
    labels = classify(X[test])
    variance = float(X.var(axis=0).mean())
    m = inverse_metrics(exact_inverse, E[test], X[test], embedding=E, variance=variance, classify=classify,
                        labels=labels, decode=decode, project=project, grid=30)
    assert m.n_holdout == len(test)
    assert m.mse == pytest.approx(0.0, abs=1e-9) and m.relative_mse == pytest.approx(0.0, abs=1e-9)
    assert m.output_mse == pytest.approx(0.0, abs=1e-8) and m.output_relative_mse == pytest.approx(0.0, abs=1e-8)
    assert m.consistency == 1.0 and m.decoded_accuracy == 1.0 and m.class_stability == 1.0
    # a linear map moves the decoded point equally fast everywhere: a constant gradient map, no steep cell
    g = m.gradient
    assert g["max"] == pytest.approx(g["median"], rel=1e-4) and g["mean"] == pytest.approx(g["median"], rel=1e-4)
    assert g["median"] > 0 and g["steep_share"] == 0.0 and g["steep_factor"] == STEEP
    assert m.seconds_per_point > 0
    d = m.to_dict()
    assert d["consistency"] == 1.0 and set(d["gradient"]) == {"mean", "median", "max", "steep_share", "steep_factor"}


def test_a_constant_inverse_is_at_chance_and_explains_no_variance():
    """Always the training rows' mean activation: every decoded point gets the mean's class, so Cons_d is the share
    of the held-out samples predicted as that class (here the majority class: the mean sits in the middle one), and
    the error is the activations' own variance."""
    rng = np.random.default_rng(1)
    # three classes along the first axis: the middle one (class 1) is the largest and holds the mean
    centres = np.repeat([-6.0, 0.0, 6.0], [150, 300, 150])
    X = np.c_[centres + rng.normal(0, 1.0, len(centres)), rng.normal(0, 1.0, (len(centres), 3))].astype(np.float32)
    E = X[:, :2] + rng.normal(0, 0.1, (len(X), 2)).astype(np.float32)

    def by_first_axis(Z):
        return np.digitize(np.asarray(Z)[:, 0], [-3.0, 3.0])

    train, test = _split(len(X), seed=2)
    mean = X[train].mean(axis=0)

    def constant(xy):
        return np.tile(mean, (len(xy), 1))

    predicted = by_first_axis(X[test])
    counts = np.bincount(predicted, minlength=3)
    assert by_first_axis(mean[None])[0] == counts.argmax() == 1  # the mean is classified as the majority class
    majority_share = counts.max() / len(test)
    m = inverse_metrics(constant, E[test], X[test], embedding=E, variance=float(X.var(axis=0).mean()),
                        classify=by_first_axis, labels=predicted, project=lambda Z: np.asarray(Z)[:, :2], grid=20)
    assert m.consistency == pytest.approx(majority_share)
    assert m.decoded_accuracy == pytest.approx(majority_share)
    assert m.class_stability == pytest.approx(majority_share)  # every round trip lands on the mean's class
    assert m.relative_mse == pytest.approx(1.0, abs=0.15)
    # and exactly the held-out rows' variance (+ the squared offset of the training mean) per feature
    expected = np.mean(X[test].var(axis=0) + (X[test].mean(axis=0) - mean) ** 2)
    assert m.mse == pytest.approx(expected, rel=1e-4)
    # a map that does not move has a zero gradient everywhere, and no cell is "steep" against a zero median
    assert m.gradient["max"] == 0.0 and m.gradient["steep_share"] == 0.0


def test_the_gradient_of_a_linear_map_is_its_slope_by_hand():
    # on a grid: v(x, y) = a x + b y (one output) has |grad| = sqrt(a^2 + b^2) at every node
    a, b = 3.0, -4.0
    xy, dx, dy = padded_grid((0.0, 2.0), (-1.0, 1.0), 8, 5)
    values = (a * xy[:, 0] + b * xy[:, 1]).reshape(5 + 2, 8 + 2, 1)
    assert (dx, dy) == (0.25, 0.4)
    g = gradient_norms(values, dx, dy)
    assert g.shape == (5, 8) and np.allclose(g, 5.0, rtol=1e-5)
    # gradient_map: the box's sides are units and the norm is over the spread. X(x, y) = (a x, a y) on a box of
    # width 4 and height 2 moves (4 a, 2 a) per unit of each side: |J| = a sqrt(4^2 + 2^2), over spread s
    scale, spread = 2.5, 7.0
    box = np.array([[0.0, 0.0], [4.0, 2.0], [1.0, 1.5]])
    gmap = gradient_map(lambda p: scale * np.asarray(p, np.float64), box, spread, grid=10)
    assert gmap.shape == (10, 10)
    assert np.allclose(gmap, scale * np.sqrt(4.0**2 + 2.0**2) / spread, rtol=1e-5)
    # the linear map a*x of the module's docstring: x -> 2x on a box of sides w, h: 2 sqrt(w^2 + h^2) / sqrt(8)
    P = np.random.default_rng(0).normal(size=(200, 2))
    (x0, y0), (x1, y1) = P.min(axis=0), P.max(axis=0)
    g2 = gradient_map(lambda p: 2.0 * np.asarray(p, np.float64), P, np.sqrt(8.0), grid=20)
    assert np.allclose(g2, 2.0 * np.hypot(x1 - x0, y1 - y0) / np.sqrt(8.0), rtol=1e-5)


def test_a_planted_fold_shows_as_steep_cells_where_it_is():
    box = np.array([[0.0, 0.0], [1.0, 1.0]])

    def smooth(p):
        p = np.asarray(p, np.float64)
        return np.c_[p[:, 0], p[:, 1]]

    def folded(p):  # the same map, torn along x = 0.5: a jump of 10 spreads
        p = np.asarray(p, np.float64)
        return np.c_[p[:, 0] + 10.0 * (p[:, 0] > 0.5), p[:, 1]]

    assert gradient_stats(gradient_map(smooth, box, 1.0, grid=20))["steep_share"] == 0.0
    gmap = gradient_map(folded, box, 1.0, grid=20)
    stats = gradient_stats(gmap)
    assert stats["steep_share"] > 0 and stats["max"] > STEEP * stats["median"]
    steep_columns = np.unique(np.nonzero(gmap > STEEP * stats["median"])[1])
    assert steep_columns.tolist() == [9, 10]  # the two columns of cells on either side of x = 0.5
    assert stats["steep_share"] == pytest.approx(2 / 20)
    # a stricter factor counts fewer cells, never more
    assert gradient_stats(gmap, steep=1e6)["steep_share"] == 0.0


def test_gradient_stats_ignores_non_finite_cells_and_an_empty_map():
    stats = gradient_stats(np.array([[1.0, 1.0, np.nan], [1.0, 10.0, np.inf]]))
    assert stats["median"] == 1.0 and stats["max"] == 10.0 and stats["steep_share"] == pytest.approx(1 / 4)
    empty = gradient_stats(np.array([np.nan]))
    assert np.isnan(empty["median"]) and empty["steep_share"] == 0.0


def test_class_lists_must_match_and_accuracy_counts_true_labels():
    assert consistency([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert decoded_accuracy(np.array([[1], [1]]), [1, 0]) == 0.5  # any shape, read flat
    with pytest.raises(ReducerValueError):
        consistency([0, 1], [0])
    with pytest.raises(ReducerValueError):
        consistency([], [])
    with pytest.raises(ReducerValueError):
        gradient_norms(np.zeros((2, 5, 1)), 1.0, 1.0)


def test_class_stability_counts_rows_whose_class_survives_every_round():
    E, X = _linear_data(60)
    assert class_stability(classify, project, exact_inverse, X) == 1.0
    first = classify(X)
    target = np.bincount(first).argmax()
    # a map that sends everything to one point of the target class: only that class's rows stay
    point = X[np.flatnonzero(first == target)[0]]
    assert class_stability(classify, project, lambda xy: np.tile(point, (len(xy), 1)), X) == pytest.approx(
        np.mean(first == target))


def test_given_predictions_time_and_class_list_are_used_as_given():
    E, X = _linear_data(100)
    calls = []

    def counted(xy):
        calls.append(len(xy))
        return exact_inverse(xy)

    noisy = X[:20] + 1.0  # the map's own held-out predictions (e.g. leave-one-out), not a fresh call's
    m = inverse_metrics(counted, E[:20], X[:20], embedding=E, variance=1.0, classify=classify,
                        predicted=classify(X[:20]), decoded=noisy, seconds=2.0, grid=5, stability_rounds=0)
    assert m.mse == pytest.approx(1.0, rel=1e-5) and m.seconds_per_point == pytest.approx(0.1)
    assert m.class_stability is None and m.decoded_accuracy is None and m.output_mse is None
    assert calls[0] == 20 and calls[1] == 7 * 7  # one fresh call, then the padded 5 x 5 grid


# ---- the benchmark case -------------------------------------------------------------------------------------------

def test_importing_the_published_package_leaves_the_working_directory_alone():
    from benchmarks.cases import CASES, inverse_methods

    assert "inverse_methods" in CASES
    cwd = os.getcwd()
    reason = inverse_methods.published_available()
    assert os.getcwd() == cwd  # inverse-projections 0.1.3 chdirs into its own folder at import
    assert reason == "" or "pip install -e '.[bench]'" in reason


def test_a_figure_compares_in_its_own_direction_and_survives_zeros():
    from benchmarks.cases.inverse_methods import Figure
    from benchmarks.harness import Side, table

    higher = Figure("c", "Cons_d", "per 1,000", Side("ours", [900.0]), Side("theirs", [600.0]), higher=True)
    lower = Figure("c", "MSE", "x1e-4", Side("ours", [200.0]), Side("theirs", [600.0]))
    zero = Figure("c", "steep", "per 1,000", Side("ours", [0.0]), Side("theirs", [5.0]))
    both = Figure("c", "steep", "per 1,000", Side("ours", [0.0]), Side("theirs", [0.0]))
    theirs_zero = Figure("c", "steep", "per 1,000", Side("ours", [4.0]), Side("theirs", [0.0]))
    worse = Figure("c", "Cons_d", "per 1,000", Side("ours", [300.0]), Side("theirs", [600.0]), higher=True)
    assert higher.ratio == pytest.approx(1.5) and lower.ratio == pytest.approx(3.0)
    assert zero.ratio is None and theirs_zero.ratio is None and both.ratio == 1.0
    assert worse.ratio == pytest.approx(0.5)
    text = table([higher, lower, zero, both, theirs_zero, worse])
    assert "1.5x better" in text and "3.0x better" in text and "2.0x worse" in text


@pytest.mark.slow
def test_the_benchmark_case_runs_quick():
    """``python -m benchmarks --quick --only inverse_methods`` in this process (~20 s: 600 MNIST rows, PCA)."""
    from benchmarks.cases import inverse_methods

    rows = inverse_methods.run(quick=True)
    reason = inverse_methods.published_available()
    if reason:
        assert rows and all(r.skipped == reason for r in rows)
        return
    measured = [r for r in rows if not r.skipped]
    assert all(r.ours.samples for r in measured)
    assert all(r.skipped.startswith("--quick (") for r in rows if r.skipped)
    by = {}
    for r in measured:
        by.setdefault(r.label.split(": ", 1)[1].rsplit(", vs ", 1)[0], {})[r.baseline.name] = r
    for figure in ("held-out MSE / variance", "Cons_d (decoded point keeps the sample's probe class)",
                   "inverse of a batch of 2,000 held-out points"):
        assert set(by[figure]) == {"NNinv", "ILAMP", "RBFinv"}, by.keys()
        assert all(r.baseline.samples and r.met is not None for r in by[figure].values())
    first = by["held-out MSE / variance"]["NNinv"]
    assert set(first.extra["all_maps"]) == {"exact", "mlp", "knn", "NNinv", "ILAMP", "RBFinv"}
    assert first.extra["n_holdout"] == 120 and first.extra["n_train"] == 480
