"""Moving the selection on the Inspect tab's plot to refine the model, driven in-process without a browser: the
plot rendered to its Bokeh models, the handle's source changed as the point-draw tool changes it in the page, the
refinement run by the card's button (synchronously outside a server), before/after shown, undone."""

from __future__ import annotations

import numpy as np
import pytest
from builders import blobs, projects_root

pn = pytest.importorskip("panel")


def _build(path):
    import keras
    from keras import layers

    path.mkdir()
    x, y = blobs(3, 100, 6, spread=0.8)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(12, activation="tanh", name="hidden"),
                              layers.Dense(4, name="code"), layers.Dense(3, activation="softmax", name="probs")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, verbose=0)
    model.save(path / "model.keras")
    (path / "project.toml").write_text(
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "code"\n'
        'class_names = ["cat", "dog", "fox"]\n[input_view]\nkind = "vector"\n[output_view]\nkind = "probabilities"\n')


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, movable=_build)


def _figure(view):
    figure = pn.panel(view).get_root().select_one({"name": "latent-figure"})
    assert figure is not None
    return figure


def _renderer(figure, name):
    (found,) = [r for r in figure.renderers if r.name == name]
    return found


def test_dragging_the_handle_refines_the_model_and_undo_drops_it(root):
    from bokeh.models import PointDrawTool

    from dashboard.template import Dashboard

    dash = Dashboard(project="movable")
    store, refining, view = dash.store, dash.refining, dash.refine_view
    assert store.error == "", store.error
    emb, labels = np.asarray(store.inspection.embedding), store.inspection.labels
    assert view.go.disabled and "Select samples" in refining.blocker()

    cats = emb[labels == 0]
    (x0, y0), (x1, y1) = cats.min(axis=0), cats.max(axis=0)
    dash.selection.select_box(x0, x1, y0, y1)  # the box around the cats
    n = dash.selection.count
    assert n >= 100
    refining.moving = True
    figure = _figure(dash.latent)
    handle = _renderer(figure, "refine-handle")
    tool = next(t for t in figure.tools if isinstance(t, PointDrawTool))
    assert tool.renderers == [handle] and not tool.add and figure.toolbar.active_drag is tool
    centroid = emb[dash.selection.ids].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose([handle.data_source.data["x"][0], handle.data_source.data["y"][0]], centroid,
                               rtol=1e-6)
    assert view.go.disabled and "Drag the diamond" in refining.blocker()

    # the page's point-draw tool moves the diamond: its source comes back with the new place
    dogs = emb[labels == 1].mean(axis=0)
    source = handle.data_source
    source.data = {**source.data, "x": [float(dogs[0])], "y": [float(dogs[1])]}
    assert refining.destination == pytest.approx((float(dogs[0]), float(dogs[1])))
    assert not view.go.disabled and f"{n:,} samples to move" in view._why_html()

    refining.steps = 30
    view.go.clicks += 1
    assert refining.error == "" and store.error == "", refining.error or store.error
    result = refining.result
    assert result is not None and list(result.moved) == list(dash.selection.ids)
    assert result.moved_gap_after < result.moved_gap_before
    # before and after, in the card: the probe, the distances, the moved samples' outputs
    outcome = view._outcome_html(result, refining.notice)
    assert "probe held-out accuracy" in outcome and "mean drift on the map" in outcome
    assert "cat (" in outcome and "→" in outcome and f"Saved {result.path.name}" in outcome
    # the class each moved sample sits among in the layer, before → after (the engine's names for the labels)
    names = ["cat", "dog", "fox"]
    among = f"<td>{names[result.neighbours_before[0]]} → {names[result.neighbours_after[0]]}</td>"
    assert "<th>among</th>" in outcome and among in outcome
    assert refining.probe_before is not None and refining.probe_after is not None
    # each moved sample's path on the plot, and the version listed for the model chooser too
    paths = _renderer(figure, "refine-paths").data_source.data
    np.testing.assert_allclose(paths["x1"], result.xy_after[result.moved][:, 0])
    assert f"models/{result.path.name}" in store.param.model_version.objects.values()
    assert [r.path for r in refining.refinements] == [result.path]
    assert result.path.name in view._versions_html(refining.refinements)
    assert refining.destination is None  # the next drag starts from the selection's centroid
    # the plot now shows the refined version on the same map: every point where the refinement put it, the table
    # of the plot too, and a tap decodes through the refined model
    assert store.model_version == f"models/{result.path.name}" and "same map" in refining.notice
    refined = store.inspection
    assert refined.project.model_path == result.path and refining.result is result  # the comparison stays
    np.testing.assert_array_equal(refined.embedding, result.xy_after.astype(np.float32))
    np.testing.assert_allclose(store.points["x"].to_numpy(), result.xy_after[:, 0], rtol=1e-6)
    assert not store.moving and store.error == ""
    first = int(result.moved[0])
    store.decode_at(*result.xy_after[first])
    assert store.decode.nearest == first

    view.undo.clicks += 1
    assert not result.path.exists() and refining.refinements == [] and "Dropped" in refining.notice
    assert f"models/{result.path.name}" not in store.param.model_version.objects.values()
    # back to the parent: its own picture, the map from before
    assert store.model_version == "" and store.inspection.project.model_path.name == "model.keras"
    np.testing.assert_array_equal(store.inspection.embedding, emb)
    assert list(dash.selection.ids) == list(result.moved)  # the same samples on the same map: still selected


def test_a_drag_without_a_selection_or_a_bad_place_is_ignored_and_the_button_says_why(root):
    from dashboard.template import Dashboard

    dash = Dashboard(project="movable")
    refining, view = dash.refining, dash.refine_view
    refining.moving = True
    assert view.handle_data()["x"] == []  # nothing selected: no handle
    refining.drag_to(1.0, 2.0)
    assert refining.destination is None
    dash.selection.select_box(-100, 100, -100, 100)
    refining.drag_to(float("nan"), 0.0)
    refining.drag_to("here", 0.0)
    assert refining.destination is None
    refining.refine()  # the button is disabled; called anyway, it says why
    assert "Drag the diamond" in refining.error
    refining.drag_to(0.5, 0.5)
    refining.refine()  # every sample selected: the engine's typed error, next to the button
    assert "leave some unmoved" in refining.error and refining.result is None
