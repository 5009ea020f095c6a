"""Nearest samples in the layer's full-dimensional space agree with a brute-force search, ties in id order."""

import gc

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

import engine.explore.neighbors as nbmod
from engine.data.project import load_project
from engine.errors import InspectorError
from engine.explore.inspection import Inspection
from engine.explore.neighbors import nearest_samples, neighbor_index, neighbors_of


def brute(X, q, metric):
    X, q = np.asarray(X, np.float64), np.asarray(q, np.float64)
    if metric == "euclidean":
        return np.sqrt(((X - q) ** 2).sum(axis=1))
    nx, nq = np.linalg.norm(X, axis=1), np.linalg.norm(q)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((nx > 0) & (nq > 0), X @ q / (nx * nq), 0.0)
    return 1.0 - cos


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2000, 24)).astype(np.float32) + rng.normal(size=24).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 7, 50])
def test_neighbours_agree_with_brute_force(data, metric, k):
    rng = np.random.default_rng(k)
    for q in rng.normal(size=(5, 24)):
        d = brute(data, q, metric)
        expected = np.lexsort((np.arange(len(d)), d))[:k]
        got = nearest_samples(data, q, k, metric)
        assert got.metric == metric and got.ids.dtype == np.int64
        np.testing.assert_array_equal(got.ids, expected)
        np.testing.assert_allclose(got.distances, d[expected], rtol=1e-9, atol=1e-12)


def test_euclidean_neighbours_match_scikit_learn(data):
    q = data[:5] + 0.01
    dist, idx = NearestNeighbors(n_neighbors=6, algorithm="brute").fit(data).kneighbors(q)
    for i in range(5):
        got = nearest_samples(data, q[i], 6)
        np.testing.assert_array_equal(got.ids, idx[i])
        np.testing.assert_allclose(got.distances, dist[i], rtol=1e-4)


def test_a_sample_query_leaves_itself_out_unless_asked(data):
    got = nearest_samples(data, 42, 5)
    assert 42 not in got.ids
    d = brute(data, data[42], "euclidean")
    d[42] = np.inf
    np.testing.assert_array_equal(got.ids, np.argsort(d, kind="stable")[:5])
    kept = nearest_samples(data, 42, 5, exclude_self=False)
    assert kept.ids[0] == 42 and kept.distances[0] == 0.0
    assert set(nearest_samples(data, 42, 5, exclude=[int(got.ids[0])]).ids).isdisjoint({42, int(got.ids[0])})


def test_ties_are_broken_by_sample_id():
    base = np.random.default_rng(1).normal(size=(6, 3))
    X = np.concatenate([base, base[[2, 2, 4]], base[[2]]]).astype(np.float32)  # copies of row 2 at 6, 7, 9
    for metric in ("euclidean", "cosine"):
        got = nearest_samples(X, X[2], 4, metric, exclude_self=False)
        assert got.ids.tolist() == [2, 6, 7, 9] and np.allclose(got.distances, 0.0, atol=1e-7)
        shuffled = nearest_samples(X[::-1].copy(), X[2], 4, metric)  # same rows, ids reversed
        assert shuffled.ids.tolist() == [0, 2, 3, 7]


def test_cosine_treats_zero_vectors_as_directionless():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    got = nearest_samples(X, [2.0, 0.0], 4, "cosine")
    assert got.ids.tolist() == [1, 0, 2, 3]
    np.testing.assert_allclose(got.distances, [0.0, 1.0, 1.0, 2.0], atol=1e-12)


def test_norms_are_computed_once_per_array_and_forgotten_with_it(data):
    assert neighbor_index(data, "euclidean").sq_norms is neighbor_index(data, "cosine").sq_norms
    other = data.copy()
    assert neighbor_index(other).sq_norms is not neighbor_index(data).sq_norms
    assert nbmod._NORMS.peek(other, "norms") is not None
    remembered = len(nbmod._NORMS)
    del other
    gc.collect()
    assert len(nbmod._NORMS) == remembered - 1


def test_k_is_capped_and_bad_queries_are_reported(data):
    assert len(nearest_samples(data[:3], 0, 10).ids) == 2
    with pytest.raises(InspectorError, match="metric must be one of euclidean, cosine"):
        nearest_samples(data, 0, 3, "manhattan")
    with pytest.raises(InspectorError, match=r"sample id 2000 is outside 0\.\.1999"):
        nearest_samples(data, 2000)
    with pytest.raises(InspectorError, match="the query holds 3 values; the layer has 24 per sample"):
        nearest_samples(data, np.zeros(3))


def test_neighbours_of_a_sample_or_a_tap_in_an_inspection(tiny_project, tmp_path):
    insp = Inspection(load_project("tiny", root=tiny_project), "conv2", method="pca", cache_dir=tmp_path)
    nb = neighbors_of(insp, 17, k=6, metric="cosine")
    d = brute(insp.activations, insp.activations[17], "cosine")
    d[17] = np.inf
    np.testing.assert_array_equal(nb.ids, np.lexsort((np.arange(len(d)), d))[:6])
    np.testing.assert_array_equal(nb.labels, insp.labels[nb.ids])
    tap = neighbors_of(insp, (0.1, -0.2), k=3)
    d = brute(insp.activations, insp.decode(0.1, -0.2).activation.reshape(-1), "euclidean")
    np.testing.assert_array_equal(tap.ids, np.argsort(d, kind="stable")[:3])
