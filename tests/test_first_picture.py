"""A first picture in seconds, then the refined one (issue 17): the staged plan, the model entries of the projection
cache that let the refined stage reuse the first picture's map, t-SNE's layout as it forms, progress in words, and
UMAP's exact neighbours. Small synthetic data, real libraries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from engine.errors import ReducerValueError
from engine.explore.stages import Stage, stages
from engine.reduce import TSNEReducer, UMAPReducer, make_reducer


def _clusters(n: int, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(6, d))
    return (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture
def count_fits(monkeypatch):
    """Rows of every backend-model fit of the UMAP and t-SNE reducers, in order (the real fits, counted)."""
    fits = []
    for cls in (UMAPReducer, TSNEReducer):
        original = cls._fit_model

        def counted(self, X, *args, _original=original, **kwargs):
            fits.append(len(X))
            return _original(self, X, *args, **kwargs)

        monkeypatch.setattr(cls, "_fit_model", counted)
    return fits


# ---- the staged plan ---------------------------------------------------------------------------------------------


def test_pca_and_quick_requests_are_one_stage():
    assert stages("pca", "auto", {}) == (Stage("final", "auto", {}, "PCA, exact (PCA) inverse"),)
    (only,) = stages("umap", "knn", {"n_neighbors": 30, "min_dist": 0.5})
    assert (only.name, only.inverse, only.params) == ("final", "knn", {"n_neighbors": 30, "min_dist": 0.5})
    assert [s.name for s in stages("tsne", "exact", {"perplexity": 50})] == ["final"]
    assert [s.name for s in stages("umap", "native", {"n_neighbors": 15})] == ["final"]


@pytest.mark.parametrize("method, name, default", [("umap", "n_neighbors", 15), ("tsne", "perplexity", 30)])
def test_self_tuned_or_learned_requests_show_the_default_with_knn_first(method, name, default):
    first, refined = stages(method, "auto", {name: "auto", "n_iter": 300} if method == "tsne" else {})
    assert (first.name, first.inverse) == ("first picture", "knn")
    assert first.params[name] == default and f"{name} {default} (default)" in first.words
    assert (refined.name, refined.inverse) == ("refined", "auto") and name not in refined.params
    assert "self-tuned" in refined.words and "learned (MLP) inverse" in refined.words
    if method == "tsne":  # other parameters are kept in both stages
        assert first.params["n_iter"] == refined.params["n_iter"] == 300

    first, refined = stages(method, "mlp", {name: 10})  # given value, learned inverse: only the inverse differs
    assert first.params == refined.params == {name: 10} and (first.inverse, refined.inverse) == ("knn", "mlp")
    first, refined = stages(method, "knn", {})  # self-tuned, quick inverse: the inverse is kept
    assert first.inverse == refined.inverse == "knn" and first.params == {name: default}


def test_native_inverse_is_kept_for_umap_and_refused_for_tsne():
    first, refined = stages("umap", "native", {})
    assert first.inverse == refined.inverse == "native" and first.params == {"n_neighbors": 15}
    with pytest.raises(ReducerValueError, match="no native inverse"):
        stages("tsne", "native", {})
    with pytest.raises(ReducerValueError, match="method must be one of"):
        stages("isomap", "auto", {})
    with pytest.raises(ReducerValueError, match="inverse must be one of"):
        stages("umap", "magic", {})


# ---- no repeated work between stages ----------------------------------------------------------------------------


def test_refined_stage_reuses_the_first_pictures_map_when_tuning_keeps_the_default(tmp_path, count_fits):
    X = _clusters(600)
    common = dict(random_state=0, cache_dir=tmp_path, tune_sample=200, tune_seconds=0.0)  # budget: default only
    built = [make_reducer("umap", inverse=s.inverse, **common, **s.params)
             for s in stages("umap", "knn", {"n_epochs": 40})]
    first = built[0].fit(X)
    assert count_fits == [600] and first.model_source_ == "fitted"
    refined = built[1].fit(X)
    # the tuning tried the default on 200 rows; the map of every row was read, not fitted again
    assert count_fits == [600, 200] and refined.model_source_ == "model cache"
    assert refined.n_neighbors_ == 15 and refined.tuning_.skipped == (5, 30, 50)
    np.testing.assert_array_equal(refined.embedding_, first.embedding_)
    assert len(list((tmp_path / "models").glob("UMAPReducer-*.joblib"))) == 1


def test_another_inverse_map_or_tuning_on_every_row_reuses_the_fitted_model(tmp_path, count_fits):
    X = _clusters(400)
    first = TSNEReducer(perplexity=30, n_iter=60, early_exaggeration_iter=20, inverse="knn", random_state=0,
                        cache_dir=tmp_path).fit(X)
    other_inverse = TSNEReducer(perplexity=30, n_iter=60, early_exaggeration_iter=20, inverse="exact",
                                random_state=0, cache_dir=tmp_path).fit(X)
    # self-tuned on every fit row (400 <= tune_sample): the trial at the default is the model fitted before
    tuned = TSNEReducer(n_iter=60, early_exaggeration_iter=20, inverse="knn", random_state=0, cache_dir=tmp_path,
                        tune_seconds=0.0).fit(X)
    assert count_fits == [400]
    assert other_inverse.model_source_ == tuned.model_source_ == "model cache" and tuned.perplexity_ == 30
    np.testing.assert_array_equal(other_inverse.embedding_, first.embedding_)
    np.testing.assert_array_equal(tuned.embedding_, first.embedding_)
    assert type(other_inverse.inverse_).__name__ == "PCAInverse"
    # a parameter that changes the map is another model
    moved = TSNEReducer(perplexity=30, n_iter=61, early_exaggeration_iter=20, inverse="knn", random_state=0,
                        cache_dir=tmp_path).fit(X)
    assert count_fits == [400, 400] and moved.model_source_ == "fitted"


# ---- t-SNE's layout as it forms ---------------------------------------------------------------------------------


def test_tsne_snapshots_arrive_in_order_and_end_with_the_embedding():
    X = _clusters(300)
    seen, reports = [], []
    reducer = TSNEReducer(perplexity=20, n_iter=100, early_exaggeration_iter=50, inverse="knn", random_state=0,
                          fit_sample=240, snapshot=lambda e, i, d, t: seen.append((e, i, d, t)),
                          progress=lambda stage, d, t: reports.append((stage, d, t))).fit(X)
    done = [d for _, _, d, _ in seen]
    assert done == sorted(set(done)) and done[0] == 25 and done[-1] == 150  # both phases, growing
    assert all(t == 150 and e.shape == (240, 2) and e.dtype == np.float32 for e, _, _, t in seen)
    assert all(np.array_equal(i, reducer.fit_index_) for _, i, _, _ in seen)
    np.testing.assert_array_equal(seen[-1][0], reducer.embedding_[reducer.fit_index_])
    assert not np.array_equal(seen[0][0], seen[-1][0])  # a copy of the layout then, not the final array
    # watching changes nothing: the same fit without a snapshot
    plain = TSNEReducer(perplexity=20, n_iter=100, early_exaggeration_iter=50, inverse="knn", random_state=0,
                        fit_sample=240).fit(X)
    np.testing.assert_array_equal(plain.embedding_, reducer.embedding_)
    names = [r[0] for r in reports]
    assert names.index("computing t-SNE affinities") < names.index("optimising the t-SNE layout") < \
        names.index("reduce")
    optimising = [d for s, d, _ in reports if s == "optimising the t-SNE layout"]
    assert optimising == sorted(optimising) and optimising[-1] == 150


@pytest.mark.parametrize("rows", [400, 1200])  # exact neighbours below 1,000 rows, Annoy's above
def test_tsne_affinities_are_opentsnes_own(rows):
    """The neighbour index is built by the reducer (openTSNE's own choice imports pynndescent to see whether it is
    installed, compiling it): the embedding is openTSNE's ``TSNE.fit`` exactly."""
    from openTSNE import TSNE

    X = _clusters(rows)
    ours = TSNEReducer(perplexity=30, n_iter=40, early_exaggeration_iter=20, n_jobs=2, inverse=None,
                       random_state=0).fit(X)
    theirs = TSNE(perplexity=30, n_iter=40, early_exaggeration_iter=20, n_jobs=2, random_state=0).fit(X)
    np.testing.assert_array_equal(ours.embedding_, np.asarray(theirs, dtype=np.float32))


def test_a_raising_snapshot_stops_the_fit_and_caches_nothing(tmp_path):
    def broken(embedding, fit_index, done, total):
        if done >= 50:
            raise RuntimeError("the plot went away")

    with pytest.raises(RuntimeError, match="the plot went away"):
        TSNEReducer(perplexity=20, n_iter=60, early_exaggeration_iter=40, inverse="knn", random_state=0,
                    cache_dir=tmp_path, snapshot=broken).fit(_clusters(200))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    with pytest.raises(ReducerValueError, match="snapshot must be a callable"):
        TSNEReducer(snapshot="draw").fit(_clusters(50))


def test_umap_and_pca_accept_a_snapshot_and_never_call_it():
    called = []
    for method, params in (("umap", {"n_neighbors": 10, "n_epochs": 20}), ("pca", {})):
        make_reducer(method, inverse=None, random_state=0, snapshot=lambda *a: called.append(a), **params) \
            .fit(_clusters(150))
    assert called == []


# ---- progress in words --------------------------------------------------------------------------------------------


def test_umap_reports_tuning_and_epochs_in_words():
    reports = []
    UMAPReducer(n_epochs=30, tune_grid=(5, 15), tune_sample=150, tune_seconds=60.0, inverse="knn", random_state=0,
                progress=lambda stage, d, t: reports.append((stage, d, t))).fit(_clusters(300))
    tuning = [(d, t) for s, d, t in reports if s == "tuning n_neighbors"]
    assert tuning[0] == (0, 2) and tuning[-1] == (2, 2)
    epochs = [(d, t) for s, d, t in reports if s == "fitting UMAP"]
    assert epochs[0] == (0, 30) and epochs[-1] == (30, 30) and len(epochs) > 2  # the layout's epochs as they go
    assert [d for d, _ in epochs] == sorted(d for d, _ in epochs)
    assert reports[-1] == ("reduce", 300, 300)


def test_the_learned_inverse_reports_its_epochs():
    from engine.reduce import MLPInverse

    reports = []
    Y = _clusters(200, d=2)
    inverse = MLPInverse(hidden_layer_sizes=(8,), max_epochs=3, epoch_samples=200, random_state=0,
                         progress=lambda stage, d, t: reports.append((stage, d, t))).fit(Y, _clusters(200))
    assert reports[0] == ("training the inverse map", 0, 3) and reports[-1] == ("training the inverse map", 3, 3)
    assert [d for _, d, _ in reports] == sorted(d for _, d, _ in reports)
    import pickle

    assert pickle.loads(pickle.dumps(inverse)).progress is None  # the callback is not part of the fitted map


# ---- UMAP's exact neighbours --------------------------------------------------------------------------------------


def test_exact_neighbours_are_umap_learns_own_and_place_new_rows(monkeypatch):
    """From 4,096 rows the neighbours come from scikit-learn instead of NN-descent. Below, umap-learn computes them
    exactly itself: handed ours there instead, it makes the same map."""
    import engine.reduce.umap_ as umap_module

    X = _clusters(1500, d=8, seed=3)
    # where the engine takes over from NN-descent: from 4,096 rows, up to about 5 s of exact search
    # (NN-descent's maps are as trustworthy, 0.981 against 0.983: `python -m benchmarks --only first_picture`)
    reducer = UMAPReducer(n_neighbors=15)
    assert [reducer._exact_neighbours(np.empty(shape, np.float32)) for shape in
            ((4095, 8), (4096, 8), (10_000, 10), (10_000, 784), (60_000, 10))] == [False, True, True, False, False]
    own = UMAPReducer(n_neighbors=15, n_epochs=60, inverse=None, random_state=0).fit(X)
    monkeypatch.setattr(umap_module, "EXACT_KNN_MIN_ROWS", 0)
    ours = UMAPReducer(n_neighbors=15, n_epochs=60, inverse=None, random_state=0).fit(X)
    assert ours._exact_neighbours(X) and own.model_._small_data and not ours.model_._small_data
    assert ours.model_._knn_search_index is None  # no search index until transform asks for one
    (t_own, t_ours) = (trustworthiness(X, r.embedding_, n_neighbors=10) for r in (own, ours))
    assert t_ours > 0.9 and abs(t_ours - t_own) < 0.01, (t_ours, t_own)
    # new rows are placed by an exact search of the fitted rows, next to where they were embedded
    placed = ours.transform(X[:20] + 1e-3)
    assert type(ours.model_._knn_search_index).__name__ == "ExactNeighbors"
    assert np.abs(placed - ours.embedding_[:20]).max() < 0.1 * np.ptp(ours.embedding_, axis=0).max()
