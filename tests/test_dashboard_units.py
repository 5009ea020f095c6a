"""The Units tab without a browser: pick a unit, see its dataset examples and an optimized input, as the engine says.

A small real project (a conv classifier on 10 x 10 images, labelled) in a temporary projects root. Outside a server
the tab's work runs synchronously, so each assertion follows the action; the optimization's progress then reaches
the view on the same thread, frame by frame.
"""

from __future__ import annotations

import numpy as np
import pytest

pn = pytest.importorskip("panel")

UNITS = 3  # the tab


def _model():
    import keras
    from keras import layers

    keras.utils.set_random_seed(4)
    return keras.Sequential([
        keras.Input((10, 10, 1), name="image"),
        layers.Conv2D(6, 3, padding="same", activation="relu", name="conv"),
        layers.Flatten(name="flat"),
        layers.Dense(4, name="code"),
        layers.Dense(3, activation="softmax", name="probs"),
    ])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from builders import write_project

    root = tmp_path_factory.mktemp("projects")
    rng = np.random.default_rng(8)
    write_project(root, "small", _model(), rng.random((120, 10, 10, 1)).astype(np.float32),
                  rng.integers(0, 3, size=120),
                  manifest='class_names = ["cat", "dog", "cow"]\ndefault_layer = "code"\n'
                  '[input_view]\nkind = "image"\nshape = [10, 10]\n')
    mp = pytest.MonkeyPatch()
    mp.setenv("LATENT_INSPECTOR_PROJECTS", str(root))
    yield root
    mp.undo()


@pytest.fixture
def dash(root):
    from dashboard.template import Dashboard

    dash = Dashboard(project="small")
    assert dash.store.error == "", dash.store.error
    dash.tabs = dash.main().objects[1]
    return dash


def _open(dash):
    dash.tabs.active = UNITS
    return dash.units, dash.units_view


def test_nothing_is_ranked_until_the_tab_opens(dash):
    units = dash.units
    assert units.layer == "code" and units.shape == (4,)
    units.unit = 2
    assert units.examples is None and units.status == ""
    _open(dash)
    assert units.examples is not None and units.examples.target.channel == 2


def test_the_examples_shown_are_the_engines_top_and_bottom_k(dash):
    from engine.explore.featurevis import Unit, top_examples

    units, view = _open(dash)
    units.param.update(layer="conv", unit=4, k=5)
    assert units.spatial and view.reduce.visible and units.position == (5, 5)
    expected = top_examples(dash.store.project_obj, Unit("conv", 4), k=5)
    np.testing.assert_array_equal(units.examples.top.indices, expected.top.indices)
    np.testing.assert_array_equal(units.examples.bottom.indices, expected.bottom.indices)
    html = view._examples.object
    assert html.count("<img src='data:image/png;base64,") == 10
    names = ["cat", "dog", "cow"]
    first = expected.top
    assert f"#{first.indices[0]} · <b>{names[first.labels[0]]}</b><br>{first.activations[0]:.4g}" in html
    assert "conv channel 4 (mean over 10x10)" in html and view.unit.label == "Channel (0..5)"

    # one spatial position: the widget for the row moves it, the ranking follows
    units.reduce = "position"
    view._position.objects[0].value = 2
    assert units.position == (2, 5)
    np.testing.assert_array_equal(units.examples.top.indices,
                                  top_examples(dash.store.project_obj, Unit("conv", 4, (2, 5)), k=5).top.indices)
    assert "conv channel 4 at (2, 5)" in view._examples.object


def test_optimizing_streams_the_input_and_compares_with_the_best_example(dash):
    units, view = _open(dash)
    units.param.update(unit=1, steps=40, seed=5, tv=0.0, jitter=0)
    shown = []
    units.param.watch(lambda e: shown.append(view._live.object) if e.new is not None else None, "live")
    view.run.clicks += 1
    result = units.result
    assert result is not None and units.error == "" and not units.running
    assert [f[0] for f in units._frames] == list(range(4, 41, 4))  # every 4th step reached the view
    assert len(shown) == 10 and "step 4 of 40" in shown[0] and "step 40 of 40" in shown[-1]
    assert len(set(shown)) > 1  # the picture changed as it optimized
    from engine.explore.featurevis import Objective, maximize

    again = maximize(dash.store.project_obj, Objective.unit("code", 1), steps=40, seed=5,
                     regularizers=units.regularizers())
    np.testing.assert_array_equal(result.input, again.input)  # the engine's own run, same parameters
    outcome = view._outcome.object
    assert f"data-activation='{result.activation!r}'" in outcome
    assert f"data-best='{units.examples.best!r}'" in outcome and units.compared is units.examples
    assert f"#{units.examples.top.indices[0]}" in outcome and "40 steps in" in outcome
    assert "lr 0.1, seed 5" in outcome and "optimized in the model's input space" in outcome
    assert view._live.object.count("<img") == 2  # the start beside the result


def test_other_objectives_are_compared_with_the_datasets_best_of_them(dash):
    from engine.explore.featurevis import DeepDream, top_examples

    units, view = _open(dash)
    units.param.update(layer="conv", objective="deepdream", start="top", steps=8)
    view.run.clicks += 1
    assert units.result.objective.kind == "deepdream" and units.result.start.startswith("sample ")
    best = top_examples(dash.store.project_obj, DeepDream("conv"), k=1)
    assert units.compared.best == pytest.approx(best.best)

    units.param.update(objective="sum", weights="1:1, 3:-0.5")
    view.run.clicks += 1
    assert units.result.description == "conv channel 1 (mean over 10x10) - 0.5 x conv channel 3 (mean over 10x10)"
    units.param.update(objective="output", output_index=2)
    view.run.clicks += 1
    assert units.result.description == "output unit 2"
    units.param.update(objective="sum", weights="two")
    view.run.clicks += 1
    assert "'two' is not 'unit:weight'" in units.error and "weighted sum: &#x27;two&#x27;" in view.status.object


def test_cancel_stops_the_run_and_says_so(dash):
    units, view = _open(dash)
    units.steps = 5_000

    def press_cancel(event):
        if event.new is not None and event.new[0] >= 16:
            view.stop.clicks += 1  # what the Cancel button sends, here from the progress of the run

    units.param.watch(press_cancel, "live")
    view.run.clicks += 1
    assert units.result.cancelled and units.result.steps_done == 16
    assert "cancelled after 16 of 5000 steps" in view._outcome.object


def test_show_unit_points_the_tab_at_a_unit_and_brings_it_on_screen(dash):
    view = dash.units_view
    assert dash.tabs.active == 0
    view.show_unit("conv", 3)
    units = dash.units
    assert dash.tabs.active == UNITS and units.active
    assert (units.layer, units.unit, units.reduce) == ("conv", 3, "mean")
    assert units.examples.target.layer == "conv" and units.examples.target.channel == 3
    view.show_unit("conv", 2, position=(1, 7))
    assert units.examples.target.position == (1, 7)


def test_a_bad_unit_or_layer_is_an_error_naming_the_range(dash):
    units, view = _open(dash)
    units.unit = 9
    assert units.error == "layer 'code' has 4 units (shape (4,)); unit 9 is out of range 0..3"
    assert "out of range 0..3" in view.status.object and units.examples is None
    view.show_unit("missing", 0)
    assert units.error.startswith("no layer 'missing' in this model; layers are: image, conv, flat, code")
