"""Inspection on the bundled MNIST project: propagate -> reduce -> decode any 2-D point."""

import numpy as np
import pytest

from engine.data.project import load_project
from engine.explore.inspection import Inspection
from engine.model import split


@pytest.fixture(scope="module")
def mnist_pca(tmp_path_factory):
    stages = []
    insp = Inspection(load_project("mnist"), "bottleneck", method="pca",
                      cache_dir=tmp_path_factory.mktemp("cache"), progress=lambda s, d, t: stages.append(s))
    return insp, stages


def test_stages_report_progress_and_shapes(mnist_pca):
    insp, stages = mnist_pca
    assert stages[0] == "propagate" and "reduce" in stages
    assert insp.embedding.shape == (10_000, 2) and insp.embedding.dtype == np.float32
    assert insp.labels.shape == (10_000,)
    assert insp.latent_shape == (10,) and insp.output_shape == (28, 28, 1)


def test_decode_is_inverse_then_suffix(mnist_pca):
    insp, _ = mnist_pca
    x, y = map(float, insp.embedding[123])
    d = insp.decode(x, y)
    z = insp.reducer.inverse_transform(np.array([[x, y]], np.float32))
    expected = split(insp.project.model(), "bottleneck").decode(z)[0]
    np.testing.assert_allclose(d.output, expected, rtol=1e-5, atol=1e-6)
    assert d.output.shape == (28, 28, 1) and 0 <= d.output.min() and d.output.max() <= 1
    assert d.nearest == 123 or np.allclose(insp.embedding[d.nearest], insp.embedding[123])


def test_decoding_far_outside_the_data_works_and_is_flagged(mnist_pca):
    insp, _ = mnist_pca
    inside = insp.decode(*map(float, insp.embedding.mean(axis=0)))
    far = insp.decode(1e4, -1e4)
    assert np.isfinite(far.output).all()
    assert not inside.trust.out_of_bounds[0] and far.trust.out_of_bounds[0]
    assert far.trust.distance[0] > 100 * max(inside.trust.distance[0], 1e-3)
    assert far.trust.error[0] > inside.trust.error[0]


def test_batch_decode_matches_single_decodes(mnist_pca):
    insp, _ = mnist_pca
    xy = np.array([[0.0, 0.0], [5.0, -3.0], [-20.0, 12.0]], np.float32)
    acts, outs, trust = insp.decode_batch(xy)
    assert acts.shape == (3, 10) and outs.shape == (3, 28, 28, 1) and len(trust) == 3
    for i, (x, y) in enumerate(xy):
        np.testing.assert_allclose(insp.decode(x, y).output, outs[i], rtol=1e-5, atol=1e-6)


def test_nearest_agrees_with_brute_force(mnist_pca):
    insp, _ = mnist_pca
    rng = np.random.default_rng(0)
    for x, y in rng.normal(scale=10, size=(20, 2)):
        brute = int(np.argmin(((insp.embedding - [x, y]) ** 2).sum(axis=1)))
        assert np.allclose(insp.embedding[insp.nearest(x, y)], insp.embedding[brute])


def test_nearest_of_an_embedding_too_large_for_one_tree_comes_from_the_point_index(mnist_pca, monkeypatch):
    from engine.reduce.trust import TrustModel

    insp, _ = mnist_pca
    sampled = TrustModel(max_points=1_000).fit(insp.embedding)  # as for more than 2,000,000 points: its tree's
    # nearest is mostly another point than the nearest of all (1 sample in 10)
    monkeypatch.setattr(insp.reducer, "trust_", sampled)
    rng = np.random.default_rng(1)
    for x, y in np.r_[rng.normal(scale=10, size=(20, 2)), [[1e4, -1e4]]]:
        brute = int(np.argmin(((insp.embedding.astype(float) - [x, y]) ** 2).sum(axis=1)))
        got = insp.nearest(x, y)
        assert np.allclose(insp.embedding[got], insp.embedding[brute])


def test_quality_report_in_layer_and_output_space(mnist_pca):
    insp, _ = mnist_pca
    q = insp.quality
    assert q.method == "pca" and len(q.explained_variance_ratio) == 2
    assert 0.5 < q.trustworthiness <= 1 and 0.5 < q.continuity <= 1
    assert q.inverse_error > 0 and np.isfinite(q.inverse_error)
    assert "trustworthiness" in q.to_text()


def test_conv_layer_inspection_decodes(tmp_path):
    """A cut whose activations are not flat (7 x 7 x 32): flattened for the reducer, reshaped for the suffix."""
    insp = Inspection(load_project("mnist"), "encoder_relu", method="pca", cache_dir=tmp_path)
    assert insp.activations.shape == (10_000, 7 * 7 * 32)
    d = insp.decode(0.0, 0.0)
    assert d.activation.shape == (7, 7, 32) and d.output.shape == (28, 28, 1)
    assert np.isfinite(insp.quality.inverse_error)


def test_the_predicted_classes_of_a_large_table_are_stored_and_read_back(tmp_path, monkeypatch):
    """From PYRAMID_POINTS samples (lowered here) the model's predicted classes, every sample through the suffix,
    are stored in the cache and read back by a later inspection instead of computed again."""
    project = load_project("mnist_onnx")
    first = Inspection(project, method="pca", cache_dir=tmp_path)
    monkeypatch.setattr(Inspection, "PYRAMID_POINTS", 1_000)
    computed = first.predictions()
    assert computed.dtype == np.int8 and computed.shape == (10_000,)
    assert (computed == np.asarray(first.labels)).mean() > 0.95  # the classifier's own classes
    assert len(list((tmp_path / "predictions").glob("*.npy"))) == 1

    second = Inspection(load_project("mnist_onnx"), method="pca", cache_dir=tmp_path)

    def no_suffix(*args, **kwargs):
        raise AssertionError("the stored classes are read, not computed again")

    monkeypatch.setattr(second, "decode_outputs", no_suffix)
    np.testing.assert_array_equal(second.predictions(), computed)

    # a stored file that cannot be read (a disk error, another version's file) is computed again and stored over
    (stored,) = (tmp_path / "predictions").glob("*.npy")
    stored.write_bytes(b"\x93NUMPY broken")
    third = Inspection(load_project("mnist_onnx"), method="pca", cache_dir=tmp_path)
    np.testing.assert_array_equal(third.predictions(), computed)
    np.testing.assert_array_equal(np.load(stored), computed)
    # a cache that cannot be written (its folder's name taken by a file; permissions do not stop root): computed,
    # kept in memory, and the file is left as it was
    stored.unlink()
    (tmp_path / "predictions").rmdir()
    (tmp_path / "predictions").write_text("not a folder")
    fourth = Inspection(load_project("mnist_onnx"), method="pca", cache_dir=tmp_path)
    np.testing.assert_array_equal(fourth.predictions(), computed)
    assert fourth.predictions() is fourth.predictions()
    assert (tmp_path / "predictions").read_text() == "not a folder"


def test_the_fold_of_a_tap_reads_the_embeddings_box_once_not_its_points(mnist_pca, monkeypatch):
    from engine.reduce.metrics import gradient_map, local_gradient

    insp, _ = mnist_pca
    inverse, spread = insp.reducer.inverse_transform, insp._spread
    median = float(np.median(gradient_map(inverse, insp.embedding, spread, grid=40)))
    x, y = map(float, insp.embedding[42])
    expected = float(local_gradient(inverse, [[x, y]], insp.embedding, spread)[0]) / median
    insp.box_corners  # noqa: B018 (found once)
    monkeypatch.setattr(insp, "embedding", None)  # a tap no longer reads the points (100M of them)
    assert insp.fold(x, y) == pytest.approx(expected, rel=1e-9)
