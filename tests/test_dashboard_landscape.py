"""The map layer in the dashboard (dashboard.landscape): chosen above the plot, drawn under the points as the engine's
pixels over the plot's view, recomputed when the view moves, faded by its slider, and explained when it cannot be
drawn. (Outside a server the jobs run at once; the browser test draws it in Chromium.)"""

from __future__ import annotations

import numpy as np
import panel as pn
import pytest
from builders import build_models, projects_root, write_project

from engine.render.landscape import to_rgba

AE_VIEW = '[input_view]\nkind = "image"\nshape = [16, 16]\n[output_view]\nkind = "image"\nshape = [16, 16]\n'


def _labelled(path):
    model, _ = build_models()["conv2d"]
    rng = np.random.default_rng(2)
    write_project(path.parent, path.name, model, rng.random((200, 16, 16, 1)).astype("float32"),
                  rng.integers(0, 3, 200), manifest='default_layer = "bottleneck"\nclass_names = ["a", "b", "c"]\n'
                  + AE_VIEW)


def _unlabelled(path):
    model, _ = build_models()["conv2d"]
    rng = np.random.default_rng(2)
    write_project(path.parent, path.name, model, rng.random((200, 16, 16, 1)).astype("float32"), None,
                  manifest='default_layer = "bottleneck"\n' + AE_VIEW)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, labelled=_labelled, unlabelled=_unlabelled)


@pytest.fixture
def app(root):
    from dashboard.template import Dashboard

    dash = Dashboard(project="labelled")
    assert dash.store.error == "" and dash.store.inspection is not None
    return dash


def _layer_source(model):
    renderer = model.select_one({"name": "map-layer"})
    assert renderer is not None, "no map layer renderer on the latent figure"
    return renderer, model.select_one({"name": "map-layer-source"})


def test_a_chosen_layer_is_the_engines_pixels_over_the_plots_view_under_the_points(app):
    model = pn.panel(app.latent).get_root()
    figure = model.select_one({"name": "latent-figure"})
    renderer, source = _layer_source(model)
    assert figure.renderers[0] is renderer  # under the points' raster
    assert source.data["image"] == []  # no layer chosen: nothing drawn

    view = ((-2.0, 3.0), (-1.0, 1.5), 400, 200)
    app.latent.range.event(x_range=view[0], y_range=view[1])
    app.latent.size.event(width=view[2], height=view[3])
    assert app.map_layer.view == view
    app.map_layer.layer = "decision"

    m = app.store.inspection.landscape("decision", view[0], view[1], cells=(50, 25))
    np.testing.assert_array_equal(source.data["image"][0], to_rgba(m))
    assert (source.data["x"], source.data["y"], source.data["dw"], source.data["dh"]) == ([-2.0], [-1.0], [5.0],
                                                                                          [2.5])
    legend = app.map_view.legend.object
    assert "data-layer='decision'" in legend and "classes from the probe" in legend and "50 x 25 cells" in legend
    assert "(probe)" in legend  # in the line; the full meaning is its tooltip

    app.latent.range.event(x_range=(0.0, 1.0), y_range=(0.0, 1.0))  # a pan: the layer follows the view
    assert source.data["x"] == [0.0] and source.data["dw"] == [1.0]

    app.map_layer.opacity = 0.3
    assert renderer.glyph.global_alpha == 0.3

    app.map_layer.layer = "gradient"
    assert "data-layer='gradient'" in app.map_view.legend.object and "here: median" in app.map_view.legend.object
    app.map_layer.layer = "none"
    assert source.data["image"] == [] and app.map_view.legend.object == ""


def test_a_layer_follows_a_new_projection(app):
    app.map_layer.layer = "error"
    before = app.map_layer.image["image"][0]
    app.store.inverse = "knn"  # PCA with a k-NN inverse: another map back, another error
    assert app.store.inspection is not None and app.store.inspection.reducer.inverse_.kind == "knn"
    after = app.map_layer.image["image"][0]
    assert after.shape == before.shape and not np.array_equal(after, before)


def test_a_project_without_classes_says_why_beside_the_menu_and_the_other_layers_work(root):
    from dashboard.template import Dashboard

    app = Dashboard(project="unlabelled")
    app.map_layer.layer = "decision"
    assert app.map_layer.image is None
    legend = app.map_view.legend.object
    assert "flagged" in legend and "is not a vector of class scores, and no probe can be trained" in legend
    assert app.errors.alert.visible is False or "class scores" not in str(app.errors.alert.object)
    app.map_layer.layer = "distance"
    assert app.map_layer.image is not None and app.map_layer.error == ""


def test_the_quality_card_has_the_classes_kept_and_the_folds(app):
    rows = dict(__import__("dashboard.inspector.controls", fromlist=["quality_rows"]).quality_rows(app.store.quality))
    assert "Cons_d" in rows["decoded samples keep their class"] and "ACC_M" in rows["decoded samples classified right"]
    assert "Gradient map layer" in rows["folds of the map"]


def test_a_view_and_a_layer_changed_at_once_on_two_threads_end_in_the_last_layer(app):
    """Panel runs a session's callbacks on its thread pool: a pan's new view and a menu choice can reach the map
    layer at once. The view's refresh is held, on its own thread, between reading the state and submitting its job
    (by a watcher of the note it writes in between) while the menu's refresh runs on this one: the layer drawn at the
    end is the menu's, with no error (the older refresh read the old layer, and its job carried a stale token)."""
    import threading

    layer = app.map_layer
    layer.param.update(view=((-2.0, 3.0), (-1.0, 1.5), 400, 200), layer="decision")
    assert "data-layer='decision'" in layer.legend
    viewer, menu_done = threading.Event(), threading.Event()

    def hold_the_viewer(event):
        if threading.current_thread().name == "pan" and not viewer.is_set():
            viewer.set()
            menu_done.wait(3)  # with the fix the menu waits for this refresh, so this wait runs out

    watcher = layer.param.watch(hold_the_viewer, "note")
    try:
        pan = threading.Thread(target=lambda: setattr(layer, "view", ((0.0, 1.0), (0.0, 1.0), 400, 200)),
                               name="pan")
        pan.start()
        assert viewer.wait(30), "the view's refresh did not start"
        layer.layer = "uncertainty"
        menu_done.set()
        pan.join(30)
        assert not pan.is_alive()
    finally:
        layer.param.unwatch(watcher)
    assert layer.error == "" and "data-layer='uncertainty'" in layer.legend
    assert app.map_view.legend.object == layer.legend
    m = app.store.inspection.landscape("uncertainty", (0.0, 1.0), (0.0, 1.0), cells=(50, 25))
    np.testing.assert_array_equal(layer.image["image"][0], to_rgba(m))
