"""Reducers (PCA, UMAP, t-SNE) on real activations of a small Keras autoencoder; real libraries, no mocks."""

from __future__ import annotations

import json

import digits as digits_data
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from engine.backends import fingerprint
from engine.backends.cupy import cuml_available, gpu_available
from engine.errors import InspectorError, ReducerError
from engine.reduce import (
    BackendUnavailableError,
    KNNInverse,
    PCAReducer,
    QualityReport,
    ReducerValueError,
    TSNEReducer,
    UMAPReducer,
    make_reducer,
    quality_report,
)


@pytest.fixture(scope="module")
def digits():
    return digits_data.digits_autoencoder()


@pytest.fixture(scope="module")
def umap_fitted(digits, tmp_path_factory):
    """One UMAP fit shared by several tests (the first UMAP fit of a process pays numba's compile time)."""
    cache = tmp_path_factory.mktemp("projections")
    reducer = UMAPReducer(n_neighbors=15, inverse="knn", random_state=0, cache_dir=cache)
    return reducer.fit(digits.activations), cache


# ---- PCA -------------------------------------------------------------------------------------------------------


def test_pca_matches_scikit_learn_and_reports_explained_variance(digits):
    A = digits.activations
    reducer = PCAReducer(random_state=0).fit(A)
    reference = PCA(n_components=2, random_state=0).fit(A)

    assert reducer.embedding_.shape == (len(A), 2)
    assert reducer.embedding_.dtype == np.float32
    assert reducer.backend_ == "cpu"  # no GPU here: "auto" records the CPU
    np.testing.assert_allclose(reducer.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(np.abs(reducer.embedding_), np.abs(reference.transform(A)), atol=1e-3)
    np.testing.assert_allclose(reducer.transform(A[:5] + 0), reducer.embedding_[:5], atol=1e-4)


def test_pca_on_a_large_memmap_fits_incrementally(digits, tmp_path):
    A = np.tile(digits.activations, (4, 1))
    path = tmp_path / "acts.npy"
    np.save(path, A)
    on_disk = np.load(path, mmap_mode="r")
    calls = []
    reducer = PCAReducer(incremental_bytes=1024, chunk_size=1000, progress=lambda s, d, t: calls.append((d, t)))
    reducer.fit(on_disk)

    assert reducer.incremental_
    full = PCA(n_components=2).fit(A)
    np.testing.assert_allclose(reducer.explained_variance_ratio_, full.explained_variance_ratio_, rtol=0.02)
    assert calls[-1] == (2 * len(A), 2 * len(A))  # one reading pass + one embedding pass
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# ---- UMAP and t-SNE --------------------------------------------------------------------------------------------


def test_umap_shapes_and_quality(umap_fitted, digits):
    reducer, _ = umap_fitted
    A = digits.activations
    assert reducer.embedding_.shape == (len(A), 2)
    assert np.isfinite(reducer.embedding_).all()
    assert reducer.n_neighbors_ == 15 and reducer.tuning_ is None
    report = quality_report(reducer, A)
    assert report.trustworthiness > 0.9  # UMAP keeps the digits' neighbourhoods
    assert 0.0 < report.inverse_error < 1.0


def test_umap_is_deterministic_with_a_seed(umap_fitted, digits):
    reducer, _ = umap_fitted
    again = UMAPReducer(n_neighbors=15, inverse=None, random_state=0).fit(digits.activations)
    np.testing.assert_array_equal(again.embedding_, reducer.embedding_)


def test_transform_of_the_fitted_data_is_the_embedding(umap_fitted, digits):
    reducer, _ = umap_fitted
    np.testing.assert_array_equal(reducer.transform(digits.activations), reducer.embedding_)


def test_tsne_is_deterministic_with_a_seed_and_embeds_new_points(digits):
    A = digits.activations[:600]
    params = dict(perplexity=20, n_iter=150, early_exaggeration_iter=100, inverse=None, random_state=0)
    first = TSNEReducer(**params).fit(A)
    second = TSNEReducer(**params).fit(A)
    np.testing.assert_allclose(first.embedding_, second.embedding_, atol=1e-5)
    new = first.transform(digits.activations[600:650])
    assert new.shape == (50, 2) and np.isfinite(new).all()


def test_large_input_fits_a_seeded_sample_and_embeds_the_rest_in_chunks(digits):
    A = digits.activations
    calls = []
    reducer = UMAPReducer(
        n_neighbors=10,
        fit_sample=700,
        chunk_size=400,
        inverse=None,
        random_state=1,
        progress=lambda stage, done, total: calls.append((done, total)) if stage == "reduce" else None,
    ).fit(A)

    assert len(reducer.fit_index_) == 700
    np.testing.assert_array_equal(reducer.embedding_[reducer.fit_index_], reducer.model_.embedding_)
    assert np.isfinite(reducer.embedding_).all()
    # progress: 700 rows from the fit, then chunks of at most 400 of the 1097 others
    assert calls[0] == (700, len(A)) and calls[-1] == (len(A), len(A))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) == 1 + 3
    # the sample is seeded: same seed, same rows
    rng = np.random.RandomState(1)
    np.testing.assert_array_equal(np.sort(rng.choice(len(A), 700, replace=False)), reducer.fit_index_)


# ---- cache -----------------------------------------------------------------------------------------------------


def test_second_fit_reads_the_projection_cache(umap_fitted, digits):
    first, cache = umap_fitted
    assert first.cache_hit_ is False and len(list(cache.glob("UMAPReducer-*.joblib"))) == 1

    second = UMAPReducer(n_neighbors=15, inverse="knn", random_state=0, cache_dir=cache).fit(digits.activations)
    assert second.cache_hit_ is True and second.cache_key_ == first.cache_key_
    np.testing.assert_array_equal(second.embedding_, first.embedding_)
    # the cached model still places new points and inverts
    np.testing.assert_allclose(second.inverse_transform(first.embedding_[:3]), digits.activations[:3], atol=1e-5)
    assert second.transform(digits.activations[:2] + 0.01).shape == (2, 2)


def test_a_large_cached_projection_is_mapped_from_its_file_not_read_into_memory(digits, tmp_path, monkeypatch):
    import engine.reduce.cache as cache_module

    first = PCAReducer(inverse="mlp", random_state=0, cache_dir=tmp_path).fit(digits.activations)
    monkeypatch.setattr(cache_module, "MAP_BYTES", 0)  # as for the 800 MB embedding of 100 million points
    second = PCAReducer(inverse="mlp", random_state=0, cache_dir=tmp_path).fit(digits.activations)
    assert second.cache_hit_ and isinstance(second.embedding_, np.memmap) and not second.embedding_.flags.writeable
    np.testing.assert_array_equal(second.embedding_, first.embedding_)
    xy = first.embedding_[:4]
    np.testing.assert_allclose(second.inverse_transform(xy), first.inverse_transform(xy), rtol=1e-6)
    np.testing.assert_array_equal(second.trust(xy).distance, first.trust(xy).distance)
    monkeypatch.setattr(cache_module, "MAP_BYTES", 2**40)  # small: read whole, as before
    third = PCAReducer(inverse="mlp", random_state=0, cache_dir=tmp_path).fit(digits.activations)
    assert third.cache_hit_ and not isinstance(third.embedding_, np.memmap)


def test_cache_key_changes_with_parameters_and_data(umap_fitted, digits):
    first, cache = umap_fitted
    other_params = PCAReducer(cache_dir=cache).fit(digits.activations)
    assert other_params.cache_hit_ is False
    changed = digits.activations.copy()
    changed[0] += 1.0  # row 0 is always in the strided fingerprint
    assert fingerprint(changed) != fingerprint(digits.activations)
    assert PCAReducer(cache_dir=cache).fit(changed).cache_hit_ is False
    assert PCAReducer(cache_dir=cache, whiten=True).fit(digits.activations).cache_hit_ is False
    assert PCAReducer(cache_dir=cache).fit(digits.activations).cache_hit_ is True


def test_activations_hash_reads_a_strided_sample_of_a_large_memmap(tmp_path):
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(1_000_000, 16))
    big[::1000] = 1.0
    big.flush()
    h1 = fingerprint(np.load(path, mmap_mode="r"))
    assert h1 == fingerprint(np.load(path, mmap_mode="r"))
    assert h1 != fingerprint(np.zeros((1_000_000, 16), np.float32))


# ---- self-tuning -----------------------------------------------------------------------------------------------


def test_umap_tunes_n_neighbors_from_the_grid_and_reports(digits):
    A = digits.activations[:500]
    reducer = UMAPReducer(
        n_neighbors="auto", tune_grid=(5, 15, 40), tune_sample=500, tune_seconds=300, inverse=None, random_state=0
    ).fit(A)
    tuning = reducer.tuning_
    assert set(tuning.scores) == {5, 15, 40} and not tuning.skipped
    assert tuning.chosen in (5, 15, 40) and reducer.n_neighbors_ == tuning.chosen
    assert tuning.scores[tuning.chosen] == max(tuning.scores.values())
    assert "n_neighbors" in str(tuning) and json.dumps(tuning.to_dict())
    assert quality_report(reducer, A).tuning["chosen"] == tuning.chosen
    # the tuning sample was the whole fit sample: the best candidate's fit is reused, not repeated
    assert reducer.model_.n_neighbors == tuning.chosen


def test_tuning_is_time_boxed(digits):
    A = digits.activations[:400]
    reducer = TSNEReducer(
        perplexity="auto",
        tune_grid=(5, 30, 50),
        tune_seconds=0.0,
        n_iter=100,
        early_exaggeration_iter=50,
        inverse=None,
        random_state=0,
    ).fit(A)
    # the default (30) is always tried; with no time left, the others are reported as skipped
    assert list(reducer.tuning_.scores) == [30]
    assert set(reducer.tuning_.skipped) == {5, 50}
    assert reducer.perplexity_ == 30
    assert "not tried" in reducer.tuning_.to_text()


# ---- quality report --------------------------------------------------------------------------------------------


def test_quality_report_text_dict_and_output_space(digits):
    A = digits.activations
    reducer = PCAReducer(random_state=0).fit(A)
    report = quality_report(reducer, A, decode=digits.decode, outputs=digits.pixels)

    assert isinstance(report, QualityReport)
    assert report.explained_variance_ratio == pytest.approx(list(reducer.explained_variance_ratio_))
    assert 0.0 < report.inverse_error < 1.0 and report.inverse_holdout == len(A)
    assert report.output_error is not None and report.output_reference == "outputs"
    text = str(report)
    assert "explained variance" in text and "trustworthiness@10" in text and "continuity@10" in text
    assert json.loads(json.dumps(report.to_dict()))["method"] == "pca"

    against_decodes = quality_report(reducer, A, decode=digits.decode)
    assert against_decodes.output_reference == "decoded activations"
    # the decoder is not perfect, so reconstructing its own decodes is easier than the true pixels
    assert against_decodes.output_error < report.output_error


def test_quality_report_rejects_other_data(digits):
    reducer = PCAReducer().fit(digits.activations)
    with pytest.raises(ReducerValueError, match="fitted on"):
        quality_report(reducer, digits.activations[:10])


# ---- errors ----------------------------------------------------------------------------------------------------


def test_errors_are_typed_and_say_what_to_do(digits):
    with pytest.raises(ReducerValueError, match="method must be one of"):
        make_reducer("isomap")
    with pytest.raises(ReducerValueError, match="Its parameters"):
        make_reducer("pca", perplexity=3)
    with pytest.raises(NotFittedError) as info:
        UMAPReducer().inverse_transform(np.zeros((1, 2)))
    assert isinstance(info.value, ReducerError) and "fit" in str(info.value)
    with pytest.raises(ReducerValueError, match="no native inverse"):
        TSNEReducer(inverse="native").fit(digits.activations[:50])
    with pytest.raises(ValueError, match="backend must be one of"):
        PCAReducer(backend="tpu").fit(digits.activations)
    with pytest.raises(InspectorError, match="inverse=None"):
        PCAReducer(inverse=None).fit(digits.activations).inverse_transform(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        PCAReducer().fit(np.full((10, 3), np.nan, np.float32))


@pytest.mark.skipif(gpu_available(), reason="checks the error raised without a GPU")
def test_gpu_backend_without_a_gpu_raises_with_the_install_hint(digits):
    with pytest.raises(BackendUnavailableError, match="pip install") as info:
        PCAReducer(backend="gpu").fit(digits.activations)
    assert isinstance(info.value, ImportError) and isinstance(info.value, ReducerError)


@pytest.mark.gpu
@pytest.mark.skipif(not cuml_available(), reason="needs cuML, CuPy and a CUDA device")
@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
def test_gpu_backend_is_used_and_recorded(method, digits):
    reducer = make_reducer(method, backend="gpu", inverse="knn", random_state=0).fit(digits.activations)
    assert reducer.backend_ == "gpu"
    assert reducer.embedding_.shape == (len(digits.activations), 2)
    assert make_reducer(method, backend="auto", inverse=None).fit(digits.activations).backend_ == "gpu"


# ---- scikit-learn's estimator checks ---------------------------------------------------------------------------


def _expected_failed_checks(estimator):
    if isinstance(estimator, TSNEReducer):
        return {
            # openTSNE's Barnes-Hut/FFT gradients give embeddings that differ in the last bits between runs on
            # tiny inputs with several threads; asserted to 1e-5 in test_tsne_is_deterministic_with_a_seed.
            "check_methods_subset_invariance": "t-SNE places each new point against the reference embedding "
            "with a seeded optimisation whose result depends on the batch",
            "check_methods_sample_order_invariance": "openTSNE optimises a batch of new points jointly",
        }
    if isinstance(estimator, UMAPReducer):
        return {
            "check_methods_subset_invariance": "umap-learn's transform optimises a batch of new points jointly, "
            "so a point's position depends on the batch",
            "check_methods_sample_order_invariance": "same reason: umap-learn's transform is batch dependent",
        }
    return {}


@parametrize_with_checks(
    [
        PCAReducer(inverse=KNNInverse()),
        UMAPReducer(n_neighbors=5, n_epochs=30, inverse=None),
        TSNEReducer(perplexity=5, n_iter=50, early_exaggeration_iter=25, inverse=None, n_jobs=1),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
