"""The decoded landscape (engine.explore.landscape) and its colours (engine.render.landscape), on real small models:
a classifier (its own class scores are mapped), a labelled autoencoder (a probe's classes), an unlabelled one (no
classes: said why). Every cell of a layer is checked against what a single decode at the cell's centre gives."""

from __future__ import annotations

import numpy as np
import pytest
from builders import build_models, write_project

from engine.data.project import load_project
from engine.errors import Cancelled, ProbeUnavailable, UsageError
from engine.explore.inspection import Inspection
from engine.explore.landscape import LAYERS, cells_for, landscape
from engine.reduce.metrics import padded_grid
from engine.render.landscape import to_rgba

AE_VIEW = '[input_view]\nkind = "image"\nshape = [16, 16]\n[output_view]\nkind = "image"\nshape = [16, 16]\n'


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("landscape")
    rng = np.random.default_rng(5)
    model, _ = build_models()["conv1d"]
    x = rng.normal(size=(240, 32, 3)).astype("float32")
    write_project(root, "clf", model, x, rng.integers(0, 3, 240),
                  manifest='default_layer = "gap"\nclass_names = ["walk", "run", "rest"]\n')
    model, _ = build_models()["conv2d"]
    x = rng.random((240, 16, 16, 1)).astype("float32")
    write_project(root, "ae", model, x, rng.integers(0, 3, 240),
                  manifest='default_layer = "bottleneck"\nclass_names = ["a", "b", "c"]\n' + AE_VIEW)
    write_project(root, "unlabelled", model, x, None, manifest='default_layer = "bottleneck"\n' + AE_VIEW)
    return root


def inspect(root, name, method="pca", inverse="auto"):
    return Inspection(load_project(name, root), method=method, inverse=inverse, cache_dir=root / ".cache")


def centres(m):
    ny, nx = m.shape
    return padded_grid(m.x_range, m.y_range, nx, ny)[0].reshape(ny + 2, nx + 2, 2)[1:-1, 1:-1].reshape(-1, 2)


def view_of(insp, pad=0.5):
    E = insp.embedding
    (x0, y0), (x1, y1) = E.min(axis=0), E.max(axis=0)
    return (x0 - pad, x1 + pad), (y0 - pad, y1 + pad)


@pytest.mark.parametrize(("name", "source"), [("clf", "the model's output 'probs'"), ("ae", "the probe")])
def test_decision_cells_equal_single_decodes_at_their_centres(root, name, source):
    """Batch = one by one: each cell's class and confidence are those of a tap at its centre, decoded alone."""
    insp = inspect(root, name, inverse="knn" if name == "ae" else "auto")
    m = landscape(insp, "decision", *view_of(insp), cells=(7, 5), batch=8)
    assert m.shape == (5, 7) and m.source.startswith(source) and m.names == (("walk", "run", "rest") if name == "clf"
                                                                              else ("a", "b", "c"))
    clf = insp.classifier()
    for (x, y), cls, conf in zip(centres(m), m.values.ravel(), m.alpha.ravel(), strict=True):
        p = clf.proba(insp.decode(x, y).activation[None])[0]
        assert cls == p.argmax() and conf == pytest.approx(p.max(), abs=1e-5)
    u = landscape(insp, "uncertainty", *view_of(insp), cells=(7, 5))
    p = clf.proba(insp.reducer.inverse_transform(centres(u)))
    h = -(p * np.log(np.clip(p, 1e-30, 1))).sum(axis=1) / np.log(3)
    np.testing.assert_allclose(u.values.ravel(), h, atol=1e-5)


def test_the_models_probabilities_are_mapped_as_they_are(root):
    """The classifier ends in a softmax: its scores are the probabilities (summing to 1), not softmaxed again."""
    insp = inspect(root, "clf")
    acts = insp.reducer.inverse_transform(insp.embedding[:5])
    scores = insp.decode_outputs(acts.reshape(5, *insp.latent_shape)).reshape(5, -1)
    np.testing.assert_allclose(insp.classifier().proba(acts), scores, rtol=1e-5)


def test_error_and_distance_cells_are_the_trust_of_their_centres(root):
    insp = inspect(root, "ae", inverse="knn")
    for layer, key in (("error", "relative_error"), ("distance", "relative_distance")):
        m = landscape(insp, layer, *view_of(insp, 3.0), cells=(9, 6))
        np.testing.assert_allclose(m.values.ravel(), getattr(insp.reducer.trust(centres(m)), key), rtol=1e-5)
        assert m.stats["max"] >= m.stats["median"] >= m.stats["min"]
    far = landscape(insp, "distance", (100.0, 101.0), (100.0, 101.0), cells=(2, 2))
    assert far.values.min() > 10  # far outside the data: many neighbour spacings away


def test_the_gradient_of_a_linear_inverse_is_flat_and_a_knn_inverse_has_ridges(root):
    insp = inspect(root, "ae")  # PCA: the exact inverse is linear
    g = landscape(insp, "gradient", *view_of(insp), cells=(10, 8))
    assert g.values.shape == (8, 10)
    np.testing.assert_allclose(g.values, 1.0, rtol=1e-3)  # the map's median everywhere
    # by hand: the change of the decoded point over one unit of the data's box along x and y, over the spread, is
    # the map's median the values are relative to
    E = insp.embedding
    w, h = np.ptp(E[:, 0]), np.ptp(E[:, 1])
    a = insp.reducer.inverse_transform(np.array([[0, 0], [1, 0], [0, 1]], np.float32)).astype(np.float64)
    spread = np.sqrt(insp.reducer.activation_variance_ * a.shape[1])
    expected = np.sqrt(np.sum((a[1] - a[0]) ** 2) * w**2 + np.sum((a[2] - a[0]) ** 2) * h**2) / spread
    assert insp.median_gradient == pytest.approx(expected, rel=1e-3)
    k = landscape(inspect(root, "ae", inverse="knn"), "gradient", *view_of(insp), cells=(30, 30))
    assert k.values.max() > 3 * np.median(k.values)  # a k-NN blend jumps between neighbourhoods


def test_the_atlas_draws_the_decode_at_each_tile_centre(root):
    from engine.render.samples import sample_picture

    insp = inspect(root, "ae")
    m = landscape(insp, "atlas", (-1.0, 1.0), (-2.0, 2.0), cells=(50, 100))
    ty, tx = 12, 6  # taller than wide: 12 tiles down the longer side
    assert m.picture.shape == (ty * 48, tx * 48, 3)
    xy = padded_grid(m.x_range, m.y_range, tx, ty)[0].reshape(ty + 2, tx + 2, 2)[1:-1, 1:-1]
    # the bottom-left tile is the decode at the lowest, leftmost centre
    out = insp.decode(*xy[0, 0]).output
    tile = m.picture[(ty - 1) * 48:(ty) * 48, 0:48]
    pic = sample_picture(out, insp.project.output_view, width=46, height=46)
    np.testing.assert_array_equal(tile[1:47, 1:47], pic)


def test_a_map_without_classes_says_why(root):
    insp = inspect(root, "unlabelled")
    with pytest.raises(ProbeUnavailable, match=r"output 'recon' of project 'unlabelled' is not a vector of class "
                                               r"scores, and no probe can be trained: .*label"):
        landscape(insp, "decision", *view_of(insp))
    assert landscape(insp, "error", *view_of(insp), cells=(4, 4)).values.shape == (4, 4)  # the other layers work


def test_cancellation_stops_between_batches(root):
    insp = inspect(root, "clf")
    asked = []

    def cancel():
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Cancelled, match="view moved on"):
        landscape(insp, "decision", *view_of(insp), cells=(20, 20), batch=50, cancel=cancel)
    assert len(asked) == 3  # two batches decoded, the third never started


@pytest.mark.parametrize(("args", "message"), [
    (("contour", (0, 1), (0, 1)), "no map layer 'contour'; the layers: decision"),
    (("error", (1, 0), (0, 1)), "x0 < x1 and y0 < y1"),
    (("error", (0, float("nan")), (0, 1)), "all finite"),
    (("error", "wide", (0, 1)), "needs a view"),
])
def test_bad_requests_name_the_value(root, args, message):
    with pytest.raises(UsageError, match=message):
        landscape(inspect(root, "clf"), *args)


def test_cells_follow_the_view_size():
    assert cells_for(800, 800) == (100, 100)
    nx, ny = cells_for(4000, 3000)
    assert nx * ny <= 16_384 and abs(nx / ny - 4 / 3) < 0.05
    with pytest.raises(UsageError, match="positive size"):
        cells_for(0, 10)


def test_decision_colours_are_the_points_colours_and_chance_is_transparent(root):
    from engine.render import color_key

    insp = inspect(root, "clf")
    m = landscape(insp, "decision", *view_of(insp), cells=(6, 6))
    rgba = to_rgba(m).view(np.uint8).reshape(6, 6, 4)
    key = color_key(m.names)
    for (i, j), cls in np.ndenumerate(m.values):
        colour = key[m.names[int(cls)]]
        assert rgba[i, j, :3].tolist() == [int(colour[k:k + 2], 16) for k in (1, 3, 5)]
        expected = 255 * 0.85 * np.clip((m.alpha[i, j] - 1 / 3) / (2 / 3), 0, 1)
        assert abs(int(rgba[i, j, 3]) - expected) <= 1
    for layer in LAYERS:
        if layer != "decision":
            assert to_rgba(landscape(insp, layer, *view_of(insp), cells=(4, 4))).dtype == np.uint32


def test_the_quality_report_has_the_literatures_measures(root):
    q = inspect(root, "clf", method="pca").quality
    assert 0 <= q.consistency <= 1 and 0 <= q.decoded_accuracy <= 1 and 0 <= q.class_stability <= 1
    assert q.classes_from == "the model's output 'probs'" and q.stability_rounds == 2
    assert q.gradient["max"] == pytest.approx(q.gradient["median"], rel=1e-3)  # PCA's exact inverse is linear
    assert q.seconds_per_point > 0
    assert "Cons_d" in q.to_text() and "gradient map" in q.to_text()
    assert inspect(root, "unlabelled").quality.consistency is None  # no classes: left out, not invented


def test_the_verdict_reads_the_fold_of_the_map_at_the_tap(root):
    """A linear inverse never folds (fold 1 everywhere); a k-NN blend has ridges where the decode jumps, which the
    gradient layer shows and the verdict names."""
    from engine.reduce.verdict import verdict

    pca = inspect(root, "ae")
    assert [pca.fold(x, y) for x, y in [(0.0, 0.0), (3.0, -2.0), (50.0, 50.0)]] == pytest.approx([1, 1, 1], rel=1e-2)
    knn = inspect(root, "ae", inverse="knn")
    m = landscape(knn, "gradient", *view_of(knn), cells=(30, 30))
    folds = np.array([knn.fold(x, y) for x, y in centres(m)])
    assert folds.max() > 3 and np.median(folds) < 3
    v = verdict({"relative_distance": 1.0, "fold": 12.0})
    assert v.words == "extrapolating" and v.reasons[0].startswith("the map folds here: the decode moves 12 x faster")
    assert verdict({"relative_distance": 1.0, "fold": 2.0}).words == "among the data"
