"""The Explore and Linked views tabs without a browser: drive their widgets and streams, check what the views hold
against the engine's own answers.

Two small real projects are written to a temporary projects root: ``tiny`` (a dense autoencoder with a 3-unit
bottleneck, and a second model file with a 5-unit one over the same inputs, for the compare view) and ``conv``
(a convolutional layer of 6 x 6 x 8 activations, edited along principal directions with channel scales). Outside a
server the views' work runs synchronously, so every assertion follows the action directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from builders import blobs, projects_root

pn = pytest.importorskip("panel")

CLASSES = ["red", "green", "blue"]
EXPLORE, LINKED = 1, 2  # the tabs


def _dense(bottleneck: int, seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,), name="x")
    enc = layers.Dense(6, activation="tanh", name="enc")(inp)
    code = layers.Dense(bottleneck, name="bottleneck")(enc)
    out = layers.Dense(8, name="output")(layers.Dense(6, activation="tanh", name="dec")(code))
    return keras.Model(inp, out)


def _build_tiny(path):
    path.mkdir()
    x, y = blobs(3, 100, 8, spread=0.5)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    _dense(3, 0).save(path / "model.keras")
    _dense(5, 1).save(path / "wide.keras")
    (path / "project.toml").write_text(
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "bottleneck"\n'
        'class_names = ["red", "green", "blue"]\n[input_view]\nkind = "vector"\n[output_view]\nkind = "vector"\n'
    )


def _build_conv(path):
    import keras
    from keras import layers

    path.mkdir()
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(2), 40)
    x = np.stack([np.eye(6), np.fliplr(np.eye(6))])[y] + rng.normal(scale=0.2, size=(80, 6, 6))
    np.save(path / "x.npy", x[..., None].astype(np.float32))
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6, 6, 1)), layers.Conv2D(8, 3, padding="same", activation="relu", name="features"),
        layers.Conv2D(1, 3, padding="same", name="image"),
    ])
    model.save(path / "model.keras")
    (path / "project.toml").write_text(
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "features"\n'
        '[input_view]\nkind = "image"\nshape = [6, 6]\n[output_view]\nkind = "image"\nshape = [6, 6]\n'
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, tiny=_build_tiny, conv=_build_conv)


def _open(project: str, tab: int):
    """A dashboard on ``project`` with ``tab`` opened, as a click on the tab does."""
    from dashboard.template import Dashboard

    dash = Dashboard(project=project)
    assert dash.store.error == "", dash.store.error
    tabs = dash.main().objects[1]
    tabs.active = tab
    return dash


@pytest.fixture
def explore(root):
    dash = _open("tiny", EXPLORE)
    assert dash.explorer.editor is not None, dash.explorer.error
    return dash


@pytest.fixture
def linked(root):
    dash = _open("tiny", LINKED)
    assert dash.linked.parallel is not None, dash.linked.error
    return dash


def _tap(dash, x, y):
    dash.explore.plot.tap.event(x=float(x), y=float(y))
    return dash.store.decode


# -- latent editor ---------------------------------------------------------------------------------------------------


def test_editing_one_unit_changes_the_decode_shown(explore):
    ex, view = explore.explorer, explore.explore.editor
    insp = explore.store.inspection
    assert ex.origin.startswith("sample 0") and ex.editor.basis_ == "units"
    assert [w.label.split(" · ")[0] for _, _, w in view.sliders] == ["unit 0", "unit 1", "unit 2"]
    np.testing.assert_allclose([w.value for _, _, w in view.sliders], insp.activations[0], rtol=1e-6)
    before, image_before = ex.output.copy(), view.edit_image.object

    kind, index, slider = view.sliders[1]
    slider.value = float(insp.activations[0, 1] + 0.5)  # what dragging the slider sends

    expected = insp.activations[0].astype(np.float64).copy()
    expected[1] += 0.5
    np.testing.assert_allclose(ex.activation, expected, rtol=1e-6)
    np.testing.assert_allclose(ex.output, insp.decode_activation(expected), rtol=1e-5)
    assert not np.allclose(ex.output, before)
    assert view.edit_image.object != image_before and view.start_image.object is not None
    assert ex.edited and not view.reset.disabled
    view.reset.clicks += 1
    np.testing.assert_allclose(ex.output, before, rtol=1e-6)


def test_out_of_range_values_are_flagged_in_the_view(explore):
    ex, view = explore.explorer, explore.explore.editor
    _kind, _index, slider = view.sliders[2]
    control = ex.editor.controls(ex.start)[2]
    assert control.range[1] > control.observed[1]  # the slider reaches beyond the data

    slider.value = (control.observed[1] + control.range[1]) / 2
    assert ex.flags.tolist() == ex.editor.out_of_range(ex.values).tolist() == [False, False, True]
    assert slider.bar_color == "#d62728"
    assert "1 of 3 controls outside the data" in view.flags.object and "unit 2" in view.flags.object

    slider.value = control.observed[1]  # on the bound: inside
    assert not ex.flags.any() and slider.bar_color != "#d62728"
    assert "within the data" in view.flags.object


def test_a_feature_map_is_edited_along_principal_directions_with_channel_scales(root):
    dash = _open("conv", EXPLORE)
    ex, view = dash.explorer, dash.explore.editor
    editor = ex.editor
    assert editor.basis_ == "principal" and editor.n_channels_ == 8
    kinds = [kind for kind, _, _ in view.sliders]
    assert kinds.count("principal") == len(editor.controls_) and kinds.count("channel") == 8
    for control, (_, _, widget) in zip(ex.start.controls, view.sliders):
        assert widget.disabled == (not control.active)  # a channel all zero at the start cannot be scaled
    assert view._channels.visible
    np.testing.assert_allclose(ex.activation, ex.start.activation, atol=1e-4)  # no edit: the sample itself

    active = next(i for i, (kind, _, w) in enumerate(view.sliders) if kind == "channel" and not w.disabled)
    kind, channel, widget = view.sliders[active]
    widget.value = 0.0  # switch one feature map off
    assert ex.scales[channel] == 0.0
    np.testing.assert_allclose(ex.activation[..., channel], 0.0, atol=1e-6)
    np.testing.assert_allclose(ex.output, dash.store.inspection.decode_activation(ex.activation), rtol=1e-5)
    assert not np.allclose(ex.output, ex.start_output)


def test_what_drives_a_unit_of_the_editor_opens_it_in_the_units_tab(explore):
    view, units = explore.explore.editor, explore.units
    assert view.drives.visible and list(view.unit_pick.options) == ["unit 0", "unit 1", "unit 2"]
    view.unit_pick.value = view.unit_pick.options["unit 1"]
    view.drives.clicks += 1
    assert units.active and units.error == "", units.error
    assert (units.layer, units.unit) == ("bottleneck", 1)
    assert units.examples is not None and units.examples.target.channel == 1  # the dataset ranked by that unit


def test_what_drives_a_channel_of_a_feature_map_ranks_by_the_channel(root):
    dash = _open("conv", EXPLORE)
    view, units = dash.explore.editor, dash.units
    assert set(view.unit_pick.options) == {f"channel {c} scale" for c in range(8)}  # directions are not units
    view.unit_pick.value = view.unit_pick.options["channel 5 scale"]
    view.drives.clicks += 1
    assert (units.layer, units.unit, units.reduce) == ("features", 5, "mean"), units.error
    assert units.examples.target.channel == 5 and units.examples.target.position is None


def test_a_tap_loads_into_the_editor_and_the_edit_can_be_saved(explore):
    store, ex = explore.store, explore.explorer
    emb = np.asarray(store.inspection.embedding)
    decode = _tap(explore, *(emb[40] + 0.3))
    assert ex.origin.startswith("tap at") and ex.start.sample is None
    np.testing.assert_allclose(ex.start.activation, decode.activation, rtol=1e-6)
    np.testing.assert_allclose(ex.start_output, decode.output, rtol=1e-5)

    explore.explore.editor.sliders[0][2].value = float(decode.activation[0] + 1.0)
    view = explore.explore.editor
    view.label.value = "edited"
    view.save.clicks += 1
    assert store.error == "" and explore.datasets.error == "", store.error or explore.datasets.error
    record = explore.datasets.records[-1]
    assert record.user_label == "edited"
    np.testing.assert_allclose(np.asarray(record.activation).reshape(-1), ex.activation.reshape(-1), rtol=1e-6)


def test_load_sample_by_id(explore):
    ex, view = explore.explorer, explore.explore.editor
    view.sample.value = 123
    view.load.clicks += 1
    assert ex.start.sample == 123 and ex.origin == f"sample 123 (label {CLASSES[1]})"
    np.testing.assert_allclose(ex.values, explore.store.inspection.activations[123], rtol=1e-6)


# -- nearest neighbours ----------------------------------------------------------------------------------------------


def _brute_force(acts, query, k, metric, exclude=None):
    a = np.asarray(acts, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64).reshape(-1)
    if metric == "euclidean":
        d = np.sqrt(((a - q) ** 2).sum(axis=1))
    else:
        d = 1 - (a @ q) / (np.linalg.norm(a, axis=1) * np.linalg.norm(q))
    if exclude is not None:
        d[exclude] = np.inf
    order = np.lexsort((np.arange(len(d)), d))[:k]
    return order, d[order]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbours_of_a_tap_match_a_brute_force_search_and_show_labels(explore, metric):
    ex, view = explore.explorer, explore.explore.neighbors
    acts = explore.store.inspection.activations
    view.metric.value = metric
    view.k.value = 6
    decode = _tap(explore, *np.asarray(explore.store.inspection.embedding)[250])

    ids, dist = _brute_force(acts, decode.activation, 6, metric)
    np.testing.assert_array_equal(ex.neighbors.ids, ids)
    np.testing.assert_allclose(ex.neighbors.distances, dist, rtol=1e-6, atol=1e-9)
    items = view.strip.items
    assert len(items) == 6 and all(item["src"].startswith("data:image/png;base64,") for item in items)
    labels = explore.store.inspection.labels
    for item, sid in zip(items, ids):
        assert item["caption"].startswith(f"#{sid} · <b>{CLASSES[labels[sid]]}</b>")
    assert "tap at" in view._about.object


def test_neighbours_of_a_sample_leave_the_sample_out_and_a_click_loads_one(explore):
    ex, view = explore.explorer, explore.explore.neighbors
    ex.load_sample(7)
    ids, _ = _brute_force(explore.store.inspection.activations, explore.store.inspection.activations[7], ex.k,
                          ex.metric, exclude=7)
    np.testing.assert_array_equal(ex.neighbors.ids, ids)
    view.strip._handle_msg({"key": view.strip.items[2]["key"]})  # what a click on the third thumbnail sends
    assert ex.start.sample == ids[2]


# -- interpolation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolation_between_taps_starts_and_ends_at_their_decodes(explore, method):
    ex, view = explore.explorer, explore.explore.interpolation
    insp = explore.store.inspection
    emb = np.asarray(insp.embedding)
    first, second = _tap(explore, *emb[10]), _tap(explore, *emb[210])
    view.method.value = method
    view.steps.value = 6
    view.run.clicks += 1

    path = ex.path
    assert ex.error == "" and path is not None and len(path.t) == 6 and path.method == method
    np.testing.assert_allclose(path.outputs[0], first.output, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(path.outputs[-1], second.output, rtol=1e-5, atol=1e-6)
    expected_xy = insp.reducer.transform(path.activations.reshape(6, -1))
    np.testing.assert_allclose(ex.path_xy, expected_xy, rtol=1e-5, atol=1e-6)
    assert len(view.strip.items) == 6 and view.strip.items[0]["caption"] == "t = 0.00"
    overlay = explore.explore.plot.marks(ex.path_xy, ex.neighbors, explore.store.decode)
    np.testing.assert_allclose(overlay.Path.I.array()[:, :2], expected_xy, rtol=1e-5)  # drawn on the plot

    view.strip._handle_msg({"key": view.strip.items[3]["key"]})  # a click on step 3 loads it into the editor
    np.testing.assert_allclose(ex.start.activation, path.activations[3], rtol=1e-6)
    assert ex.origin.startswith("step 3 of the path")


def test_interpolation_between_two_samples(explore):
    ex, view = explore.explorer, explore.explore.interpolation
    insp = explore.store.inspection
    view.endpoints.value = "two samples"
    assert view.from_sample.visible and view.to_sample.visible
    view.from_sample.value, view.to_sample.value = 5, 295
    view.run.clicks += 1
    np.testing.assert_allclose(ex.path.outputs[0], insp.decode_activation(insp.activations[5]), rtol=1e-5)
    np.testing.assert_allclose(ex.path.outputs[-1], insp.decode_activation(insp.activations[295]), rtol=1e-5)
    assert "sample 5" in view._about.object and "sample 295" in view._about.object


def test_interpolation_without_two_taps_says_what_to_do(explore):
    explore.explore.interpolation.run.clicks += 1
    assert "tap two points" in explore.explorer.error and explore.explorer.path is None


# -- linked selection ------------------------------------------------------------------------------------------------


def _box_around(emb, centre, half):
    cx, cy = emb[centre]
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


def test_a_box_on_the_latent_plot_selects_the_engines_ids_and_highlights_them_in_parallel(linked):
    from engine.explore.selection import select_box
    from engine.render.parallel import parallel_image

    lk, views = linked.linked, linked.linked_views
    insp = linked.store.inspection
    emb = np.asarray(insp.embedding)
    bounds = _box_around(emb, 20, 1.0)
    views.plot.box.event(bounds=bounds)  # what the box-select tool sends

    x0, y0, x1, y1 = bounds
    expected = select_box(emb, x0, x1, y0, y1)
    assert len(expected) > 0
    np.testing.assert_array_equal(lk.selection, expected)
    assert f"<b class='selected-count'>{len(expected):,}</b> of 300" in views.bar.summary.object
    np.testing.assert_array_equal(views.plot.selected(lk.selection).array(), emb[expected])

    image = views.parallel.image(selection=lk.selection, width=400, height=200)
    engine = parallel_image(lk.axes, insp.labels, class_names=CLASSES, selected=expected, width=400, height=200)
    np.testing.assert_array_equal(views.parallel.shown.data, engine.data)  # the highlight is the engine's
    plain = parallel_image(lk.axes, insp.labels, class_names=CLASSES, width=400, height=200)
    assert not np.array_equal(engine.data, plain.data)
    assert image.data.shape == (200, 400, 4)


def test_a_lasso_selects_the_engines_ids(linked):
    from engine.explore.selection import select_lasso

    emb = np.asarray(linked.store.inspection.embedding)
    cx, cy = emb[150]
    polygon = np.array([[cx - 1, cy - 1], [cx + 1, cy - 1], [cx, cy + 1.5]])
    linked.linked_views.plot.lasso.event(geometry=polygon)
    np.testing.assert_array_equal(linked.linked.selection, select_lasso(emb, polygon))
    assert linked.linked.origin.startswith("lasso on bottleneck")


def test_a_box_on_the_inspect_plot_is_the_linked_views_selection_until_it_is_cleared(linked):
    from engine.explore.selection import select_box

    emb = np.asarray(linked.store.inspection.embedding)
    x0, y0, x1, y1 = _box_around(emb, 40, 1.0)
    linked.latent.box.event(bounds=(x0, y0, x1, y1))  # the box-select tool of the Inspect tab's plot
    expected = select_box(emb, x0, x1, y0, y1)
    assert len(expected) > 0
    np.testing.assert_array_equal(linked.selection.ids, expected)
    np.testing.assert_array_equal(linked.linked.selection, expected)  # the same ids in the linked views
    assert linked.linked.origin.startswith("the Inspect tab's plot: box x")
    views = linked.linked_views
    np.testing.assert_array_equal(views.plot.selected(linked.linked.selection).array(), emb[expected])
    assert f"<b class='selected-count'>{len(expected):,}</b> of 300" in views.bar.summary.object

    linked.linked.select_box(_box_around(emb, 10, 0.5))  # a selection made in the linked views stays...
    made_there = linked.linked.selection.copy()
    linked.selection.clear()  # ...when the Inspect tab's selection is cleared
    np.testing.assert_array_equal(linked.linked.selection, made_there)
    linked.latent.box.event(bounds=(x0, y0, x1, y1))
    linked.selection.clear()  # the one that came from the Inspect tab goes with it
    assert linked.linked.selection is None


def test_an_axis_range_selects_the_engines_ids_and_highlights_them_on_the_latent_plot(linked):
    from engine.explore.selection import intersect, select_axis_range

    lk, views = linked.linked, linked.linked_views
    axes = lk.axes
    views.parallel.box.event(bounds=(0.9, 0.3, 1.1, 0.7))  # a box over axis 1, from 30% to 70% of its range

    expected = select_axis_range(axes.values[:, 1], axes.to_data(1, 0.3), axes.to_data(1, 0.7))
    assert 0 < len(expected) < 300
    np.testing.assert_array_equal(lk.selection, expected)
    assert lk.brushes == [(1, float(axes.to_data(1, 0.3)), float(axes.to_data(1, 0.7)))]
    assert lk.origin.startswith("unit 1 in [")
    emb = np.asarray(linked.store.inspection.embedding)
    np.testing.assert_array_equal(views.plot.selected(lk.selection).array(), emb[expected])
    np.testing.assert_allclose(views.parallel.brush_marks(lk.brushes).array()[0, [1, 3]], [0.3, 0.7])

    views.parallel.box.event(bounds=(-0.2, 0.0, 1.2, 0.5))  # two axes: both ranges hold
    both = intersect(select_axis_range(axes.values[:, 0], axes.to_data(0, 0.0), axes.to_data(0, 0.5)),
                     select_axis_range(axes.values[:, 1], axes.to_data(1, 0.0), axes.to_data(1, 0.5)))
    np.testing.assert_array_equal(lk.selection, both)


def test_compare_view_maps_ids_across_two_layers(linked):
    from engine.explore.selection import select_box

    lk, views = linked.linked, linked.linked_views
    assert lk.other_layer == "enc"  # the layer before the inspected one, by default
    views.compare.show.clicks += 1
    assert lk.error == "" and lk.comparison is not None and lk.other.layer == "enc"
    left, right = lk.comparison.left, lk.comparison.right

    emb = np.asarray(left.embedding)
    views.plot.box.event(bounds=_box_around(emb, 60, 1.0))
    ids = lk.selection
    np.testing.assert_array_equal(views.compare.plot.selected(ids).array(), np.asarray(right.embedding)[ids])

    other = np.asarray(right.embedding)
    bounds = _box_around(other, 280, 0.5)
    views.compare.plot.box.event(bounds=bounds)  # a box on the right lights the same ids on the left
    x0, y0, x1, y1 = bounds
    expected = select_box(other, x0, x1, y0, y1)
    np.testing.assert_array_equal(lk.selection, expected)
    np.testing.assert_array_equal(views.plot.selected(lk.selection).array(), emb[expected])
    assert lk.origin.startswith("box on enc")


def test_compare_view_with_another_model_file_of_the_project(linked):
    lk, views = linked.linked, linked.linked_views
    files = dict(zip(lk.param.other_model.names.values(), lk.param.other_model.names.keys()))
    assert set(files) == {"", "wide.keras"}
    views.compare.model.value = "wide.keras"
    assert lk.other_layer == "bottleneck"  # the same layer of the other model
    views.compare.show.clicks += 1
    assert lk.error == "" and lk.other.latent_shape == (5,) and lk.other.project.model_path.name == "wide.keras"

    emb = np.asarray(lk.other.embedding)
    views.compare.plot.box.event(bounds=_box_around(emb, 0, 2.0))
    np.testing.assert_array_equal(views.plot.selected(lk.selection).array(),
                                  np.asarray(linked.store.inspection.embedding)[lk.selection])


def test_export_writes_the_selected_ids(linked):
    from engine.explore.selection import load_ids

    lk, bar = linked.linked, linked.linked_views.bar
    assert bar.download.disabled
    emb = np.asarray(linked.store.inspection.embedding)
    linked.linked_views.plot.box.event(bounds=_box_around(emb, 99, 1.5))
    assert not bar.download.disabled
    for suffix in bar.FORMATS.values():
        bar.format.value = suffix
        path = bar.download.callback()  # what the download button serves
        assert path.suffix == suffix and bar.download.filename == f"selection{suffix}"
        np.testing.assert_array_equal(load_ids(path), lk.selection)
    bar.clear.clicks += 1
    assert lk.selection is None and bar.download.disabled


def test_the_tabs_render_their_named_figures(explore, linked):
    for view, names in ((explore.explore, ["explore-figure"]),
                        (linked.linked_views, ["selection-figure", "parallel-figure"])):
        model = pn.panel(view).get_root()
        for name in names:
            assert model.select_one({"name": name}) is not None, name


def test_the_explore_marks_are_drawn_over_the_map_and_a_tap_leaves_the_map_alone(explore):
    """The path, its steps, the neighbours and the current tap sit at Bokeh's overlay level, so that a tap repaints
    them alone; the map (the raster, and its legend's swatches) stays at the glyph level, under them."""
    model = pn.panel(explore.explore).get_root()
    figure = model.select_one({"name": "explore-figure"})
    emb = np.asarray(explore.store.inspection.embedding)
    _tap(explore, *(emb[12] + 0.2))
    glyphs = [r for r in figure.renderers if hasattr(r, "glyph")]
    swatches = [r for r in glyphs if "color" in r.data_source.data]  # the categorical legend's entries
    image = [r for r in glyphs if type(r.glyph).__name__ == "ImageRGBA"]
    marks = [r for r in glyphs if r not in swatches and r not in image]
    assert len(image) == 1 and len(swatches) == 1 and len(marks) == 4
    assert [r.level for r in image + swatches] == ["glyph", "glyph"]
    assert [r.level for r in marks] == ["overlay"] * 4, [(r.glyph, r.level) for r in marks]
    tapped = float(emb[12][0] + 0.2)
    assert any(np.isclose(list(r.data_source.data.get("x", [])), tapped).any() for r in marks)  # the cross
