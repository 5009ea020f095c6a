"""Models with several outputs are first class: a decode returns every head, each head has its own view and class
names, the dashboard shows the chosen head with the others beside it, and the plot can be coloured by the model's
predicted class at any head. The model is the kind the issue found crashing: an LSTM shared by three heads.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from builders import projects_root

keras = pytest.importorskip("keras")

HEADS = ("activity", "intensity", "recon")


def _build_heads(path):
    from keras import layers

    path.mkdir()
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    t = np.linspace(0, 1, 20, dtype=np.float32)
    x = np.stack([np.stack([np.sin((k + 1) * 6 * t), np.cos((k + 1) * 6 * t)], axis=-1) for k in y])
    x = (x + rng.normal(scale=0.1, size=x.shape)).astype(np.float32)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    inp = keras.Input((20, 2), name="signal")
    shared = layers.LSTM(6, name="shared_lstm")(inp)
    activity = layers.Dense(3, activation="softmax", name="activity")(shared)
    intensity = layers.Dense(4, activation="softmax", name="intensity")(shared)
    recon = layers.Reshape((20, 2), name="recon")(layers.Dense(40, name="recon_dense")(shared))
    model = keras.Model(inp, [activity, intensity, recon])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "sparse_categorical_crossentropy",
                                          "mse"])
    model.fit(x, [y, y % 4, x], epochs=3, verbose=0)
    model.save(path / "model.keras")
    (path / "project.toml").write_text(
        'default_layer = "shared_lstm"\nclass_names = ["walk", "run", "sit"]\n'
        '[output_view.intensity]\nkind = "probabilities"\nclass_names = ["none", "low", "mid", "high"]\n')


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, heads=_build_heads)


@pytest.fixture(scope="module")
def inspection(root):
    from engine import Inspection, load_project

    return Inspection(load_project("heads", root=root), method="pca")


def test_decode_returns_every_head_and_the_one_asked_for(inspection):
    assert inspection.heads == HEADS
    d = inspection.decode(0.1, -0.2)
    assert list(d.heads) == list(HEADS)
    assert d.heads["activity"].shape == (3,) and d.heads["intensity"].shape == (4,)
    assert d.heads["recon"].shape == (20, 2)
    np.testing.assert_array_equal(d.output, d.heads["activity"])  # the first by default
    r = inspection.decode(0.1, -0.2, head="recon")
    np.testing.assert_array_equal(r.output, d.heads["recon"])
    acts, outputs, _ = inspection.decode_batch([[0.1, -0.2], [1.0, 1.0]], head="intensity")
    assert outputs.shape == (2, 4)
    np.testing.assert_allclose(outputs[0], d.heads["intensity"], rtol=1e-5)
    from engine.errors import UsageError

    with pytest.raises(UsageError, match="has no output 'nope'; its outputs: 'activity', 'intensity', 'recon'"):
        inspection.decode(0.0, 0.0, head="nope")


def test_each_head_has_its_view_and_its_class_names(inspection):
    views = inspection.project.output_views()
    assert list(views) == list(HEADS)
    assert (views["activity"].kind, views["activity"].class_names) == ("probabilities", ("walk", "run", "sit"))
    assert (views["intensity"].kind, views["intensity"].class_names) == ("probabilities",
                                                                         ("none", "low", "mid", "high"))
    assert (views["recon"].kind, views["recon"].shape) == ("series", (20, 2))
    assert inspection.project.warnings == []


def test_predictions_per_head_are_the_models_own(inspection):
    scored = inspection.scored_heads()
    assert scored == ("activity", "intensity")
    model = inspection.project.model()
    expected = [np.asarray(o).argmax(axis=1) for o in model(inspection.project.inputs())[:2]]
    for head, want in zip(scored, expected, strict=True):
        np.testing.assert_array_equal(inspection.predictions(head), want)
    assert inspection.predictions("recon") is None


def test_cli_lists_each_output_and_renders_the_head_asked_for(root, tmp_path):
    from engine.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--root", str(root), "--cache-dir", str(tmp_path), "info", "heads"]) == 0
    text = out.getvalue()
    assert "output 'activity': probabilities 3 (walk, run, sit)  (inferred: the output ends in a softmax)" in text
    assert "output 'intensity': probabilities 4 (none, low, mid, high)" in text
    assert "output 'recon': series 20x2" in text
    shared = [line for line in text.splitlines() if line.startswith("shared_lstm")]
    assert shared and shared[0].rstrip().endswith("yes  (default)")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--root", str(root), "--cache-dir", str(tmp_path), "render", "heads", "--grid", "2",
                     "--head", "recon", "-o", str(tmp_path / "recon.png")])
    assert code == 0 and (tmp_path / "recon.png").stat().st_size > 0


def test_the_dashboard_shows_the_chosen_head_and_colours_by_any(root, monkeypatch):
    pytest.importorskip("panel")
    from dashboard.template import Dashboard

    monkeypatch.setenv("LATENT_INSPECTOR_PROJECTS", str(root))
    dash = Dashboard(project="heads")
    store = dash.store
    assert store.error == "", store.error
    assert store.several_heads and store.param.head.objects == list(HEADS) and store.head == "activity"
    assert {"prediction of activity", "prediction of intensity"} <= set(store.param.color_by.objects)
    assert "prediction of recon" not in store.param.color_by.objects
    store.color_by = "prediction of intensity"
    column = store.points["prediction of intensity"]
    assert list(column.cat.categories) == ["none", "low", "mid", "high"]
    np.testing.assert_array_equal(column.cat.codes.to_numpy(), store.inspection.predictions("intensity"))
    d = store.decode_at(0.2, 0.1)
    np.testing.assert_array_equal(d.output, d.heads["activity"])
    store.head = "recon"  # the current point is decoded again, showing the chosen head
    assert store.decode.output.shape == (20, 2)
    np.testing.assert_allclose(store.decode.output, d.heads["recon"], rtol=1e-5)
