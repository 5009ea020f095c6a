"""The Inspect tab's latent plot as glyphs below :data:`dashboard.glyphs.GLYPH_LIMIT` points, datashaded above,
without a browser: the plot rendered to its Bokeh models, the streams driven as the page would drive them.

Two real projects: a small one (300 points, drawn as glyphs) and one just above the limit (datashaded); the engine
computes, nothing is mocked.
"""

from __future__ import annotations

import numpy as np
import pytest
from builders import blobs, projects_root

pn = pytest.importorskip("panel")

CLASSES = ["red", "green", "blue"]


def _build(path, per_class: int):
    """A project of three labelled blobs of ``per_class`` 6-D points and a small dense autoencoder."""
    import keras
    from keras import layers

    path.mkdir()
    x, y = blobs(len(CLASSES), per_class, 6, spread=0.5)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((6,), name="x"), layers.Dense(3, name="bottleneck"),
                      layers.Dense(6, name="output")]).save(path / "model.keras")
    (path / "project.toml").write_text(
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "bottleneck"\n'
        f"class_names = {CLASSES!r}\n".replace("'", '"')
        + '[input_view]\nkind = "vector"\n[output_view]\nkind = "vector"\n'
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from dashboard.glyphs import GLYPH_LIMIT

    yield from projects_root(tmp_path_factory, small=lambda p: _build(p, 100),
                             large=lambda p: _build(p, GLYPH_LIMIT // len(CLASSES) + 1))


def _app(name: str):
    from dashboard.template import Dashboard

    app = Dashboard(project=name)
    assert app.store.error == "", app.store.error
    return app


@pytest.fixture(scope="module")
def small(root):
    return _app("small")


@pytest.fixture(scope="module")
def large(root):
    return _app("large")


def _figure(view):
    """The latent figure as Bokeh would send it to the browser."""
    figure = pn.panel(view).get_root().select_one({"name": "latent-figure"})
    assert figure is not None, "no Bokeh figure named 'latent-figure'"
    return figure


def _points(figure):
    """The renderer of the plot's points (its source is named by the plot: dashboard.widgets.name_models)."""
    found = [r for r in figure.renderers if r.data_source.name == "latent-figure-source"]
    assert len(found) == 1, [r.data_source.name for r in figure.renderers]
    return found[0]


def test_a_small_table_is_drawn_as_glyphs_in_the_rasters_colours_with_a_legend(small):
    from bokeh.models import BoxSelectTool, LassoSelectTool, Scatter, TapTool

    from dashboard.glyphs import glyph_size
    from dashboard.latent import category_colors

    figure = _figure(small.latent)
    points = _points(figure)
    table = small.store.points
    assert isinstance(points.glyph, Scatter)
    assert figure.output_backend == "canvas"  # the browser draws the points, on a canvas (latent.OUTPUT_BACKEND)
    assert figure.lod_threshold is None  # all of them, in colour, during a drag too (latent.CANVAS_OPTS)
    assert len(points.data_source.data["x"]) == len(table) == 300
    np.testing.assert_array_equal(points.data_source.data["x"], table["x"].to_numpy(np.float32))
    np.testing.assert_array_equal(points.data_source.data["y"], table["y"].to_numpy(np.float32))
    # each point's colour: its category's, as the raster has it (its code through the palette of the categories)
    mapper, column = points.glyph.fill_color.transform, points.glyph.fill_color.field
    codes = np.asarray(points.data_source.data[column])
    np.testing.assert_array_equal(codes, table["label"].cat.codes.to_numpy())
    assert list(mapper.palette) == category_colors(CLASSES)
    assert (mapper.low, mapper.high) == (-0.5, len(CLASSES) - 0.5)  # code k on the palette's colour k
    assert points.glyph.size == glyph_size(small.store.spread)
    assert "300 points" in figure.title.text
    (legend,) = figure.legend
    assert legend in figure.right  # where the raster has its legend
    assert [item.label.value for item in legend.items] == CLASSES
    assert [CLASSES[codes[item.index]] for item in legend.items] == CLASSES  # each entry in its category's colour
    # not selectable: no tap tool, and the select tools select no renderer (their geometry goes to the streams)
    assert not any(isinstance(t, TapTool) for t in figure.tools)
    selects = [t for t in figure.tools if isinstance(t, (BoxSelectTool, LassoSelectTool))]
    assert len(selects) == 2 and all(t.renderers == [] for t in selects)
    # the map layer under the points; the cover, the highlights and the markers over them
    names = [r.name for r in figure.renderers]
    at = figure.renderers.index(points)
    assert names.index("map-layer") < at < names.index("context-cover") < names.index("selection-highlight") \
        < names.index("decode-markers")


def test_taps_and_presses_decode_on_the_glyph_plot_and_mark_it(small):
    store, view = small.store, small.latent
    figure = _figure(view)
    markers = figure.select_one({"name": "decode-markers-source"})
    x, y = (float(v) for v in np.asarray(store.inspection.embedding)[17] + 0.3)
    view.tap.event(x=x, y=y)
    assert store.decode.xy == (x, y)
    np.testing.assert_allclose(store.decode.output, store.inspection.decode(x, y).output, rtol=1e-6)
    assert (markers.data["x"][-1], markers.data["y"][-1]) == (x, y)
    view.press.event(x=x - 1, y=y)  # a click held past 300 ms: BokehJS's press
    assert store.decode.xy == (x - 1, y)
    assert view.tap.source is view.press.source is view.box.source is view.lasso.source is view.range.source


def test_a_box_on_the_glyph_plot_selects_the_engines_samples_and_highlights_them(small):
    from engine.explore.selection import select_box

    view, emb = small.latent, np.asarray(small.store.inspection.embedding)
    figure = _figure(view)
    (x0, y0), (x1, y1) = np.percentile(emb, 20, axis=0), np.percentile(emb, 70, axis=0)
    view.box.event(bounds=(x0, y0, x1, y1))
    ids = select_box(emb, x0, x1, y0, y1)
    assert len(ids) > 10
    np.testing.assert_array_equal(small.selection.ids, ids)
    chosen = figure.select_one({"name": "selection-highlight-source"})
    np.testing.assert_array_equal(chosen.data["x"], emb[ids, 0])
    cover = figure.select_one({"name": "context-cover-source"})
    assert cover.data["alpha"] == [0.7]  # the other points dimmed
    small.selection.clear()


def test_the_point_size_resizes_the_glyphs_in_place(small):
    from dashboard.glyphs import glyph_size

    figure = _figure(small.latent)
    points = _points(figure)
    before = small.store.spread
    try:
        small.store.spread = before + 2
        assert points.glyph.size == glyph_size(before + 2)  # the same renderer: nothing re-rendered
    finally:
        small.store.spread = before


def test_colouring_by_density_stays_datashaded(small):
    from bokeh.models import ImageRGBA

    store = small.store
    try:
        store.color_by = "none"
        figure = _figure(small.latent)
        assert isinstance(_points(figure).glyph, ImageRGBA)
        assert figure.output_backend == "canvas"  # an image
    finally:
        store.color_by = "label"


def test_a_table_at_the_limit_is_datashaded_and_taps_decode(large):
    from bokeh.models import ImageRGBA

    from dashboard.glyphs import GLYPH_LIMIT

    store, view = large.store, large.latent
    assert len(store.points) >= GLYPH_LIMIT
    figure = _figure(view)
    points = _points(figure)
    assert isinstance(points.glyph, ImageRGBA)
    assert figure.output_backend == "canvas"
    assert len(points.data_source.data["image"]) == 1  # one image, not the points
    assert f"{len(store.points):,} points" in figure.title.text
    x, y = (float(v) for v in np.asarray(store.inspection.embedding)[4])
    view.tap.event(x=x, y=y)
    assert store.decode.xy == (x, y)
    markers = figure.select_one({"name": "decode-markers-source"})
    assert (markers.data["x"][-1], markers.data["y"][-1]) == (x, y)


def test_embedding_glyphs_needs_a_category_column():
    import pandas as pd

    from dashboard.glyphs import embedding_glyphs

    table = pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 0.0], "label": ["a", "b"]})
    with pytest.raises(ValueError, match="'label' is of type "):  # text, not categories
        embedding_glyphs(table, "label")
    with pytest.raises(ValueError, match="'none' is not one"):
        embedding_glyphs(table, "none")
