"""Inverse maps (exact PCA, NNInv MLP, k-NN, native UMAP) and the trust measure, on real autoencoder activations."""

from __future__ import annotations

import json

import digits as digits_data
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks

from engine.backends.cupy import gpu_available
from engine.reduce import (
    KNNInverse,
    MLPInverse,
    NativeInverse,
    PCAInverse,
    PCAReducer,
    ReducerValueError,
    TrustModel,
    TSNEReducer,
    UMAPReducer,
    make_inverse,
    quality_report,
)


@pytest.fixture(scope="module")
def digits():
    return digits_data.digits_autoencoder()


@pytest.fixture(scope="module")
def umap_digits(digits):
    return UMAPReducer(n_neighbors=15, inverse="knn", random_state=0).fit(digits.activations)


def _split(n, seed=0, test=0.2):
    perm = np.random.default_rng(seed).permutation(n)
    k = int(test * n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def _relative_error(pred, truth):
    return float(np.mean((pred - truth) ** 2) / np.mean((truth - truth.mean(axis=0)) ** 2))


# ---- exact PCA inverse -----------------------------------------------------------------------------------------


def test_pca_inverse_is_exact(digits):
    A = digits.activations
    reducer = PCAReducer(random_state=0).fit(A)
    reference = PCA(n_components=2).fit(A)
    Y = reducer.embedding_
    X_hat = reducer.inverse_transform(Y)

    assert reducer.inverse_.kind == "exact" and reducer.inverse_.exact_
    # the rank-2 reconstruction, as scikit-learn computes it
    np.testing.assert_allclose(X_hat, reference.inverse_transform(reference.transform(A)), atol=2e-4)
    # and projecting a decoded point gives the point back, anywhere in the plane (far outside too)
    far = np.array([[40.0, -25.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(reducer.transform(reducer.inverse_transform(far)), far, atol=1e-3)
    np.testing.assert_allclose(reducer.transform(X_hat), Y, atol=1e-4)


def test_linear_inverse_without_a_pca_is_fitted_by_least_squares(digits):
    A = digits.activations
    reducer = PCAReducer().fit(A)
    lstsq = PCAInverse().fit(reducer.embedding_, A)  # no reducer given: learned from the pairs alone
    assert not lstsq.exact_
    Y = reducer.embedding_[:50]
    np.testing.assert_allclose(lstsq.transform(Y), reducer.inverse_transform(Y), atol=1e-3)


# ---- learned inverses ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_vs_knn(digits, umap_digits):
    """NNInv and the k-NN baseline trained on 80% of the (embedding, activation) pairs, tested on the rest."""
    A, Y = digits.activations, umap_digits.embedding_
    train, test = _split(len(A))
    mlp = MLPInverse(random_state=0).fit(Y[train], A[train])
    knn = KNNInverse().fit(Y[train], A[train])
    return mlp, knn, Y[test], A[test], A[train]


def test_mlp_inverse_beats_the_knn_baseline_on_held_out_points(mlp_vs_knn):
    mlp, knn, Y_test, A_test, _ = mlp_vs_knn
    mlp_error = _relative_error(mlp.transform(Y_test), A_test)
    knn_error = _relative_error(knn.transform(Y_test), A_test)
    print(f"held-out relative round-trip error: mlp {mlp_error:.4f}  knn {knn_error:.4f}")
    assert mlp_error < knn_error
    assert mlp.stop_reason_ in ("early_stopping", "max_epochs", "max_seconds")


def test_mlp_query_is_float32_array_math_on_the_extracted_weights(mlp_vs_knn):
    mlp, _, Y_test, _, A_train = mlp_vs_knn
    one = mlp.transform(Y_test[:1])
    many = mlp.transform(Y_test)
    assert one.dtype == np.float32 and one.shape == (1, 8) and many.shape == (len(Y_test), 8)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-5, atol=1e-5)  # vectorised == one at a time
    assert all(W.dtype == np.float32 for W in mlp.coefs_)
    # held-out errors are the errors of the validation samples it did not train on
    truth = A_train[mlp.holdout_index_]
    np.testing.assert_allclose(np.mean((mlp.holdout_predict() - truth) ** 2, axis=1), mlp.holdout_error_, rtol=1e-4)
    assert 0 < len(mlp.holdout_index_) < len(A_train)
    assert mlp.round_trip_error() == pytest.approx(float(np.mean(mlp.holdout_error_)))


def test_knn_inverse_returns_the_activation_at_an_embedded_point(digits, umap_digits):
    A, Y = digits.activations, umap_digits.embedding_
    knn = KNNInverse(n_neighbors=5).fit(Y, A)
    np.testing.assert_allclose(knn.transform(Y[:20]), A[:20], atol=1e-5)
    # its held-out errors are leave-one-out, not zero
    assert knn.round_trip_error() > 0.01


def test_any_reducer_composes_with_any_inverse(digits):
    A = digits.activations[:500]
    reducer = TSNEReducer(
        perplexity=20, n_iter=150, early_exaggeration_iter=100, random_state=0, inverse=KNNInverse(n_neighbors=7)
    ).fit(A)
    assert isinstance(reducer.inverse_, KNNInverse) and reducer.inverse_.n_neighbors == 7
    assert reducer.inverse_transform(reducer.embedding_[:3]).shape == (3, 8)
    pca_knn = PCAReducer(inverse="knn").fit(A)
    assert pca_knn.inverse_.kind == "knn"
    pca_native = PCAReducer(inverse="native").fit(A)  # PCA's native inverse is its exact one
    np.testing.assert_allclose(
        pca_native.inverse_transform(pca_native.embedding_[:5]),
        PCAReducer().fit(A).inverse_transform(pca_native.embedding_[:5]),
        atol=1e-4,
    )
    assert make_inverse("auto", method="pca").kind == "exact"
    assert make_inverse("auto", method="umap").kind == "mlp"
    with pytest.raises(ReducerValueError, match="inverse must be one of"):
        make_inverse("spline")


def test_native_umap_inverse_is_an_option(digits, umap_digits):
    native = NativeInverse(max_holdout=5).fit(umap_digits.embedding_, digits.activations, reducer=umap_digits)
    X_hat = native.transform(umap_digits.embedding_[:2])
    assert X_hat.shape == (2, 8) and np.isfinite(X_hat).all()
    assert native.round_trip_error() < float(np.var(digits.activations, axis=0).mean())
    with pytest.raises(ReducerValueError, match="needs a fitted reducer"):
        NativeInverse().fit(umap_digits.embedding_, digits.activations)


def test_inverse_rejects_malformed_queries(mlp_vs_knn):
    mlp, knn, _, _, _ = mlp_vs_knn
    for inverse in (mlp, knn):
        with pytest.raises(ReducerValueError, match="Reshape"):
            inverse.transform(np.zeros(2))
        with pytest.raises(ReducerValueError, match="2 features"):
            inverse.transform(np.zeros((1, 3)))
        with pytest.raises(ReducerValueError, match="NaN"):
            inverse.transform(np.array([[np.nan, 0.0]]))


# ---- trust -----------------------------------------------------------------------------------------------------


def test_trust_is_clearly_worse_far_outside_the_data(umap_digits):
    reducer = umap_digits
    E = reducer.embedding_
    lo, hi = E.min(axis=0), E.max(axis=0)
    span = hi - lo
    inside = E[::9] + 0.002 * span  # next to embedded points
    far = np.array([hi + 3 * span, lo - 5 * span, [lo[0] - 2 * span[0], hi[1] + 2 * span[1]]])

    t_in, t_far = reducer.trust(inside), reducer.trust(far)
    assert len(t_in) == len(inside) and len(t_far) == 3
    assert t_far.out_of_bounds.all() and t_far.outside_hull.all() and t_far.outside_support.all()
    assert t_in.out_of_bounds.mean() < 0.05
    assert t_far.distance.min() > 10 * np.median(t_in.distance)
    assert t_far.relative_distance.min() > 50
    assert t_far.error.min() > 10 * np.median(t_in.error)
    # the error estimate grows with the distance from the data
    ray = np.array([hi + f * span for f in (0.5, 1, 2, 4)])
    assert np.all(np.diff(reducer.trust(ray).error) > 0)
    record = t_far.record(0)
    assert json.dumps(record) and record["out_of_bounds"] is True
    assert json.dumps(t_in.to_dict())


def test_trust_flags_gaps_inside_the_hull():
    rng = np.random.default_rng(0)
    E = np.vstack([rng.normal(-5, 0.3, (300, 2)), rng.normal(5, 0.3, (300, 2))])  # two blobs
    trust = TrustModel().fit(E).evaluate(np.array([[0.0, 0.0], [-5.0, -5.0], [5.0, 5.0]]))
    assert trust.outside_support.tolist() == [True, False, False]
    assert not trust.outside_hull[0]  # between the blobs: inside the hull, but no data there
    assert np.isnan(trust.error).all()  # no held-out errors given, no error estimate


def test_trust_of_many_points_measures_distances_to_a_sample_and_the_hull_of_all():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(60_000, 2)).astype(np.float32)
    E[123] = (9.0, 9.0)  # one far point: the hull and the bounds must still hold it, sampled or not
    full, sampled = TrustModel().fit(E), TrustModel(max_points=5_000).fit(E)
    assert full.tree_rows_ is None and len(sampled.tree_rows_) == 5_000 and sampled.tree_.n == 5_000
    assert np.all(np.diff(sampled.tree_rows_) > 0)
    np.testing.assert_array_equal(sampled.bounds_, full.bounds_)
    np.testing.assert_allclose(sampled.hull_equations_, full.hull_equations_)
    q = np.array([[0.0, 0.0], [8.9, 8.9], [4.0, -4.5], [30.0, 0.0]])
    a, b = full.evaluate(q), sampled.evaluate(q)
    assert a.outside_hull.tolist() == b.outside_hull.tolist() == [False, False, True, True]
    assert a.outside_support.tolist() == b.outside_support.tolist() == [False, True, True, True]
    # inside the data a point is about one spacing from the nearest, sampled or not; far out, hundreds
    assert b.relative_distance[0] < 3 and b.relative_distance[-1] > 100
    with pytest.raises(ReducerValueError, match="max_points"):
        TrustModel(max_points=1).fit(E)


# ---- scikit-learn's estimator checks ---------------------------------------------------------------------------


def _expected_failed_checks(estimator):
    expected = {
        # The inverse maps return float32 activations by design (the layer's dtype, and the engine's contract);
        # scikit-learn expects float64 predictions from a multi-output regressor.
        "check_regressor_multioutput": "float32 output by design",
    }
    if isinstance(estimator, MLPInverse):
        # float32 matrix products give results that differ in the last bit (~1e-7 relative) depending on where a
        # row falls in the BLAS blocks of its batch; the check asks for bit-equal rows.
        expected["check_methods_sample_order_invariance"] = "float32 BLAS rounding depends on the batch layout"
    return expected


@parametrize_with_checks([PCAInverse(), KNNInverse()], expected_failed_checks=_expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# Each check refits the network: a small network and a few epochs suffice for what the checks look at (the estimator's
# contract, not the quality of its fit), a few milliseconds each.
@parametrize_with_checks(
    [MLPInverse(hidden_layer_sizes=(32,), max_epochs=3, patience=4, epoch_samples=512, random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_scikit_learn_estimator_checks_mlp(estimator, check):
    check(estimator)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")
def test_inverse_maps_keep_cupy_arrays_on_the_device(digits, umap_digits):
    import cupy

    A, Y = digits.activations, umap_digits.embedding_
    train, test = _split(len(A))
    # a short training: what is checked is where the map runs and that it computes what NumPy does, not how well it
    # learned
    mlp = MLPInverse(random_state=0, max_epochs=3, epoch_samples=2_000).fit(Y[train], A[train])
    knn = KNNInverse().fit(Y[train], A[train])
    Y_test = Y[test]
    for inverse in (mlp, knn):
        out = inverse.transform(cupy.asarray(Y_test))
        assert isinstance(out, cupy.ndarray) and out.dtype == cupy.float32
        np.testing.assert_allclose(out.get(), inverse.transform(Y_test), rtol=1e-4, atol=1e-4)


def test_overlapping_fits_give_the_blas_its_threads_back_after_the_last():
    """The MLP trains on one BLAS thread, a setting of the whole process: two fits overlapping on two threads (a
    served dashboard's sessions) must not leave it at one thread, whichever ends first."""
    from threadpoolctl import threadpool_info

    from engine.reduce.inverse import _one_blas_thread

    def blas():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas()
    if not before or max(before) == 1:
        pytest.skip("the BLAS runs on one thread here already")
    first, second = _one_blas_thread(), _one_blas_thread()
    first.__enter__()
    assert set(blas()) == {1}
    second.__enter__()
    first.__exit__(None, None, None)
    assert set(blas()) == {1}  # the second fit still runs
    second.__exit__(None, None, None)
    assert blas() == before
    with _one_blas_thread(enabled=False):  # a large network keeps the BLAS' threads
        assert blas() == before


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")
def test_the_mlp_trains_on_cupy_arrays_as_on_numpy_ones(digits, umap_digits):
    """The training's array code is written against the array namespace: on CuPy arrays it takes the same steps."""
    import cupy

    from engine.reduce.inverse import _Network, _train

    x = np.ascontiguousarray(umap_digits.embedding_, np.float32)
    y = np.ascontiguousarray(digits.activations, np.float32)
    fitted = []
    for xp in (np, cupy):
        net = _Network((2, 64, 64, y.shape[1]), np.random.default_rng(0), xp=xp)
        epochs, reason, best = _train(net, xp.asarray(x[100:]), xp.asarray(y[100:]), xp.asarray(x[:100]),
                                      xp.asarray(y[:100]), batch=128, epochs=3, repeat=1, learning_rate=1e-2,
                                      patience=5, max_seconds=None, rng=np.random.default_rng(1),
                                      on_epoch=lambda e: None)
        assert (epochs, reason) == (3, "max_epochs")
        fitted.append((best, cupy.asnumpy(net.flat) if xp is cupy else net.flat))
    # (float32 sums in another order on the device: Adam's steps stay close, not bit-equal)
    assert fitted[1][0] == pytest.approx(fitted[0][0], rel=1e-2)
    np.testing.assert_allclose(fitted[1][1], fitted[0][1], rtol=1e-2, atol=1e-3)


def test_quality_report_of_a_learned_inverse_uses_held_out_samples(digits, umap_digits):
    reducer = umap_digits
    report = quality_report(reducer, digits.activations, decode=digits.decode)
    assert report.inverse == "knn" and report.inverse_holdout == len(digits.activations)
    assert 0.02 < report.inverse_error < 1.0  # leave-one-out: not the zero error of the fitted points
    assert report.output_error is not None


def test_native_umap_inverse_on_read_only_activations(digits, umap_digits):
    """Activations come from a read-only memory map; umap-learn's inverse writes into its training data."""
    from engine.reduce import UMAPReducer

    frozen = np.array(digits.activations, dtype=np.float32)
    frozen.setflags(write=False)
    reducer = UMAPReducer(n_neighbors=15, inverse=NativeInverse(max_holdout=3), random_state=0).fit(frozen)
    assert reducer.inverse_transform(reducer.embedding_[:1]).shape == (1, frozen.shape[1])
