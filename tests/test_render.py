"""The render path: datashader stages (frame -> aggregate -> shade) and the PNG with legend and decode grid."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from engine import render
from engine.reduce import PCAReducer


@pytest.fixture(scope="module")
def digits_pca():
    """Real data: scikit-learn's 8x8 digits, a PCA of the pixels, and its exact inverse as the decoder."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    reducer = PCAReducer(random_state=0).fit(X)
    return reducer, y


def test_pipeline_stages_are_datashader_objects(digits_pca):
    import datashader.transfer_functions as tf
    import xarray as xr

    reducer, labels = digits_pca
    E = reducer.embedding_
    frame = render.points_frame(E, labels, class_names=[f"digit {i}" for i in range(10)])
    assert str(frame["label"].dtype) == "category" and len(frame) == len(E)

    canvas = render.make_canvas(E, width=120, height=80)
    agg = render.aggregate(frame, canvas=canvas)
    assert isinstance(agg, xr.DataArray) and agg.shape == (80, 120, 10)
    assert int(agg.sum()) == len(E)  # every point lands in one pixel of one category (5% padding)

    img = render.shade(agg)
    assert isinstance(img, tf.Image) and img.shape == (80, 120)
    pil = img.to_pil()
    assert pil.size == (120, 80)


def test_pixels_take_the_colour_of_their_class():
    E = np.array([[0.0, 0.0]] * 50 + [[10.0, 10.0]] * 50)
    labels = np.array([0] * 50 + [1] * 50)
    pil = render.latent_image(E, labels, width=50, height=50, spread=False).convert("RGB")
    a = np.asarray(pil)
    keys = render.color_key(["0", "1"])
    hex_of = lambda px: "#{:02x}{:02x}{:02x}".format(*px)
    # class 0 sits bottom-left, class 1 top-right (y grows upwards in the picture)
    assert hex_of(a[-3, 2]) == keys["0"] or hex_of(a[-2, 2]) == keys["0"] or hex_of(a[-3, 3]) == keys["0"]
    assert hex_of(a[2, -3]) == keys["1"] or hex_of(a[2, -2]) == keys["1"] or hex_of(a[3, -3]) == keys["1"]
    assert hex_of(a[25, 25]) == "#ffffff"


def test_unlabelled_points_are_shaded_by_count():
    E = np.random.default_rng(0).normal(size=(5000, 2))
    pil = render.latent_image(E, width=64, height=64)
    assert pil.size == (64, 64)
    assert len(np.unique(np.asarray(pil.convert("L")))) > 5  # a density ramp, not a flat colour


def test_write_png_with_legend_and_a_grid_of_decodes(digits_pca, tmp_path):
    reducer, labels = digits_pca
    asked = []

    def decode_fn(xy):
        asked.append(np.asarray(xy))
        return reducer.inverse_transform(xy)  # real decodes: the exact PCA inverse of each grid position

    path = render.write_png(
        tmp_path / "out" / "latent.png",
        reducer.embedding_,
        labels,
        class_names=[str(i) for i in range(10)],
        decode_fn=decode_fn,
        draw_fn=lambda out: out.reshape(8, 8),
        grid=4,
        size=200,
        tile=32,
        title="digits",
        compositor="pil",
    )
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
        a = np.asarray(img.convert("RGB"))
    assert width > 200 + 4 * 32 and height >= 200
    # the decodes were asked once, on a 4 x 4 lattice inside the embedding's range
    (xy,) = asked
    assert xy.shape == (16, 2)
    E = reducer.embedding_
    assert (xy.min(axis=0) > E.min(axis=0) - 1).all() and (xy.max(axis=0) < E.max(axis=0) + 1).all()
    # the right-hand grid is not blank and the legend shows the class colours
    assert a[:, -4 * 36 :].std() > 10
    legend_colours = {render.color_key([str(i) for i in range(10)])[str(i)] for i in range(10)}
    present = {"#{:02x}{:02x}{:02x}".format(*px) for px in a[:, 200:260].reshape(-1, 3)}
    assert len(legend_colours & present) >= 8


def test_write_png_without_decodes(tmp_path):
    E = np.random.default_rng(1).normal(size=(300, 2))
    path = render.write_png(tmp_path / "plain.png", E, np.arange(300) % 3, compositor="pil")
    with Image.open(path) as img:
        assert img.size[0] >= 600


def test_write_png_errors():
    E = np.zeros((3, 2))
    with pytest.raises(ValueError, match="draw_fn"):
        render.write_png("x.png", E, decode_fn=lambda xy: xy)
    with pytest.raises(ValueError, match="compositor"):
        render.write_png("x.png", E, compositor="svg")
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        render.points_frame(np.zeros((3, 3)))


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None, reason="checks the message without matplotlib")
def test_matplotlib_compositor_needs_matplotlib(tmp_path):
    with pytest.raises(ImportError, match="pip install matplotlib"):
        render.write_png(tmp_path / "m.png", np.zeros((3, 2)), compositor="matplotlib")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_matplotlib_compositor(digits_pca, tmp_path):
    reducer, labels = digits_pca
    path = render.write_png(
        tmp_path / "m.png",
        reducer.embedding_,
        labels,
        decode_fn=reducer.inverse_transform,
        draw_fn=lambda out: out.reshape(8, 8),
        grid=3,
        compositor="matplotlib",
    )
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.array([[0.0, 1.0]]), [[0, 255]]),  # floats in [0, 1] are scaled
        (np.array([[-2.0, 2.0]]), [[0, 255]]),  # other ranges are min-max normalized
        (np.array([[[7], [9]]], np.uint8), [[7, 9]]),  # (H, W, 1) uint8 kept as is
    ],
)
def test_to_rgb_array(image, expected):
    rgb = render.to_rgb_array(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (*np.asarray(expected).shape, 3)
    np.testing.assert_array_equal(rgb[..., 0], expected)


# -- the per-view path: PointIndex -> aggregate_colors -> shade_colors, the same pixels as count_cat + tf.shade ------

CLASSES = [f"class {i}" for i in range(6)]


def _frame(n=20_000, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    centres = rng.uniform(-5, 5, size=(len(CLASSES), 2))
    E = centres[labels] + rng.normal(scale=spread, size=(n, 2)) * rng.uniform(0.3, 1.5, (len(CLASSES), 1))[labels]
    return render.points_frame(E, labels, CLASSES)


def _stock(frame, canvas, **shade):
    """What datashader and HoloViews give: count_cat, tf.shade, and transparent pixels zeroed (HoloViews' RGB)."""
    import datashader as ds
    import datashader.transfer_functions as tf

    agg = canvas.points(frame, "x", "y", agg=ds.count_cat("label"))
    img = tf.shade(agg, color_key=render.color_key(CLASSES), **shade)
    rgba = img.data.view(np.uint8).reshape(*img.shape, 4).copy()
    rgba[rgba[..., 3] == 0] = 0
    return agg, rgba


def _ours(frame, canvas, **shade):
    index = render.index_frame(frame, "label")
    agg = render.aggregate_colors(index, canvas=canvas, colors=render.color_key(CLASSES))
    img = render.shade_colors(agg, **shade)
    return agg, img, img.data.view(np.uint8).reshape(*img.shape, 4)


VIEWS = {
    "full": dict(width=160, height=120, x_range=None, y_range=None),
    "zoom": dict(width=90, height=70, x_range=(-1.0, 2.5), y_range=(0.5, 3.0)),
    "beyond the data": dict(width=40, height=40, x_range=(20.0, 30.0), y_range=(-1.0, 1.0)),
    "edges on points": dict(width=64, height=64, x_range=(-2.0, 2.0), y_range=(-2.0, 2.0)),
}


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("view", [*VIEWS, "points on pixel rows"])
def test_colour_aggregate_counts_what_count_cat_counts(view, threads, monkeypatch):
    """Binned on the calling thread, or by three threads in bands of pixel rows (a large view's path), with points
    on the rows' edges and so on the bands' edges: the counts are datashader's."""
    from datashader.colors import rgb

    from engine.render import bins

    monkeypatch.setattr(bins, "BIN_THREADS", threads)
    monkeypatch.setattr(bins, "PARALLEL_POINTS", 0 if threads > 1 else bins.PARALLEL_POINTS)
    frame = _frame()
    if view == "edges on points":  # points exactly on the upper edges belong to the last pixel, as in datashader
        frame.loc[:3, ["x", "y"]] = [[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [0.0, 2.0]]
    if view == "points on pixel rows":  # every y on a pixel row's edge of the view below
        frame["y"] = (np.round(frame["y"].to_numpy() / 0.0625) * 0.0625).astype(frame["y"].dtype)
    view = "edges on points" if view == "points on pixel rows" else view
    canvas = render.make_canvas(frame[["x", "y"]].to_numpy(), **VIEWS[view])
    ref, _ = _stock(frame, canvas)
    agg, _, _ = _ours(frame, canvas)
    counts = ref.values  # (H, W, categories), rows from the bottom
    assert agg.shape == (*counts.shape[:2], 4) and list(agg.coords["channel"].values) == ["count", "r", "g", "b"]
    np.testing.assert_array_equal(agg.data[..., 0], counts.sum(axis=2))
    table = np.array([rgb(render.color_key(CLASSES)[c]) for c in CLASSES])
    np.testing.assert_array_equal(agg.data[..., 1:], counts.astype(np.int64) @ table)
    np.testing.assert_allclose(agg.coords["x"].values, ref.coords["x"].values)
    np.testing.assert_allclose(agg.coords["y"].values, ref.coords["y"].values)


@pytest.mark.parametrize("how", ["eq_hist", "log", "cbrt", "linear"])
@pytest.mark.parametrize(("min_alpha", "rescale"), [(40, True), (90, True), (200, False)])
@pytest.mark.parametrize("view", ["full", "zoom"])
def test_shade_colors_gives_the_pixels_of_tf_shade(how, min_alpha, rescale, view):
    frame = _frame()
    canvas = render.make_canvas(frame[["x", "y"]].to_numpy(), **VIEWS[view])
    shade = dict(how=how, min_alpha=min_alpha, rescale_discrete_levels=rescale)
    _, stock = _stock(frame, canvas, **shade)
    _, img, ours = _ours(frame, canvas, **shade)
    np.testing.assert_array_equal(ours, stock)
    assert (ours[..., 3] > 0).any() and (ours[..., 3] == 0).any()


@pytest.mark.parametrize("case", ["every pixel inked", "one pixel far denser", "a handful of points"])
def test_shade_colors_on_unusual_count_distributions(case):
    """The integer eq_hist of datashader (no empty pixel), counts spread wider than the histogram, few levels."""
    frame = _frame(n=40_000, spread=0.2)
    if case == "every pixel inked":
        canvas = render.make_canvas(width=12, height=9, x_range=(-0.5, 0.5), y_range=(-0.5, 0.5))
        frame = render.points_frame(np.random.default_rng(1).uniform(-0.5, 0.5, (40_000, 2)),
                                    np.arange(40_000) % len(CLASSES), CLASSES)
    elif case == "one pixel far denser":
        E = np.r_[frame[["x", "y"]].to_numpy(), np.zeros((100_000, 2))]
        frame = render.points_frame(E, np.r_[frame["label"].cat.codes, np.zeros(100_000, int)], CLASSES)
        canvas = render.make_canvas(E, width=50, height=50)
    else:
        frame = frame.iloc[:7]
        canvas = render.make_canvas(frame[["x", "y"]].to_numpy(), width=30, height=30)
    for how in ("eq_hist", "log"):
        _, stock = _stock(frame, canvas, how=how, min_alpha=40, rescale_discrete_levels=True)
        _, _, ours = _ours(frame, canvas, how=how, min_alpha=40, rescale_discrete_levels=True)
        np.testing.assert_array_equal(ours, stock)
    if case == "every pixel inked":
        assert (ours[..., 3] > 0).all()


def test_per_view_image_goes_on_through_datashader():
    import datashader.transfer_functions as tf

    E = np.random.default_rng(2).uniform(-1, 1, (40, 2))  # scattered: isolated pixels that dynspread grows
    frame = render.points_frame(E, np.arange(40) % len(CLASSES), CLASSES)
    canvas = render.make_canvas(E, width=100, height=80)
    _, img, _ = _ours(frame, canvas, min_alpha=90)
    spread = tf.dynspread(img, threshold=0.5, max_px=3)
    assert (spread.data >> 24 > 0).sum() > (img.data >> 24 > 0).sum()  # sparse points grew
    pil = tf.set_background(spread, "white").to_pil()
    assert pil.size == (100, 80)


def test_point_index_orders_points_by_cell_and_leaves_out_what_is_not_drawn():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=1000), rng.normal(size=1000)
    codes = rng.integers(0, 3, 1000).astype(np.int8)
    x[:5], y[5:8], codes[8:10] = np.nan, np.inf, -1  # pandas' code for a missing category
    index = render.index_points(x, y, codes, ["a", "b", "c"], grid=16)
    assert len(index) == 990 and index.offsets[-1] == 990 and len(index.offsets) == 16 * 16 + 1
    assert np.all(np.diff(index.offsets) >= 0) and index.codes.dtype == np.uint8
    kept = np.isfinite(x) & np.isfinite(y) & (codes >= 0)
    assert sorted(zip(index.x, index.y, index.codes)) == sorted(zip(x[kept], y[kept], codes[kept]))
    x0, x1, y0, y1 = index.bounds
    assert (x0, x1) == (x[kept].min(), x[kept].max()) and (y0, y1) == (y[kept].min(), y[kept].max())
    kx, ky = index.cell_scale
    cells = np.minimum((index.y - y0) * ky, 15).astype(int) * 16 + np.minimum((index.x - x0) * kx, 15).astype(int)
    assert np.all(np.diff(cells) >= 0)  # in cell order
    for cell in (0, 37, 255):
        assert np.all(cells[index.offsets[cell] : index.offsets[cell + 1]] == cell)


def test_point_index_order_gives_each_points_row():
    rng = np.random.default_rng(2)
    x, y, codes = rng.normal(size=500), rng.normal(size=500), rng.integers(-1, 3, 500)
    index = render.index_points(x, y, codes, ["a", "b", "c"], grid=8)
    assert index.order.dtype == np.uint32 and sorted(index.order) == list(np.flatnonzero(codes >= 0))
    np.testing.assert_array_equal(index.x, x[index.order])
    np.testing.assert_array_equal(index.codes, codes[index.order])


@pytest.mark.parametrize("spread", [1.0, 1e-3], ids=["round", "a thin strip"])
def test_point_index_nearest_is_the_nearest_drawn_point_anywhere_in_the_plane(spread):
    rng = np.random.default_rng(3)
    n = 20_000
    x = (rng.normal(size=n) * 3).astype(np.float32)
    y = (rng.normal(size=n) * spread).astype(np.float32)  # cells 3,000 times wider than tall
    codes = rng.integers(-1, 3, n)  # a quarter not drawn: never the answer
    index = render.index_points(x, y, codes, ["a", "b", "c"], grid=64)
    drawn = np.flatnonzero(codes >= 0)
    queries = np.r_[rng.normal(size=(60, 2)) * 4, [[1e4, -1e4], [-40.0, 0.0], [0.0, 25.0], [x[7], y[7]]]]
    sample = rng.choice(drawn, 500, replace=False)  # as the trust model's tree: the nearest of a sample
    for qx, qy in queries:
        d = (x[drawn].astype(float) - qx) ** 2 + (y[drawn].astype(float) - qy) ** 2
        bound = float(np.sqrt(((x[sample].astype(float) - qx) ** 2 + (y[sample].astype(float) - qy) ** 2).min()))
        for within in (None, bound, bound * 0.5 * np.sqrt(d.min()) / bound):  # none, an upper bound, too short
            got = index.nearest(qx, qy, within)
            assert codes[got] >= 0
            assert (float(x[got]) - qx) ** 2 + (float(y[got]) - qy) ** 2 == d.min()
    empty = render.index_points(np.zeros(2), np.zeros(2), np.full(2, -1), ["a"])
    assert empty.nearest(0.0, 0.0) is None
    one_place = render.index_points(np.ones(3), np.ones(3), np.zeros(3, int), ["a"])  # every point in one cell
    assert one_place.nearest(50.0, -7.0) in (0, 1, 2)


def test_point_index_errors():
    with pytest.raises(ValueError, match="one length"):
        render.index_points(np.zeros(3), np.zeros(2), np.zeros(3, int), ["a"])
    with pytest.raises(ValueError, match="integer category codes"):
        render.index_points(np.zeros(3), np.zeros(3), np.zeros(3), ["a"])
    with pytest.raises(ValueError, match="not a categorical column"):
        render.index_frame(render.points_frame(np.zeros((3, 2))), "label")
    index = render.index_points(np.zeros(3), np.zeros(3), np.zeros(3, int), ["a", "b"])
    with pytest.raises(ValueError, match=r"no colour for categories \['b'\]"):
        render.aggregate_colors(index, canvas=render.make_canvas(width=4, height=4, x_range=(0, 1), y_range=(0, 1)),
                                colors={"a": "red"})
    with pytest.raises(ValueError, match="how must be one of"):
        render.shade_colors(render.aggregate_colors(index, canvas=render.make_canvas(
            width=4, height=4, x_range=(-1, 1), y_range=(-1, 1))), how="sqrt")


def test_dashboard_plot_shades_the_pixels_of_stock_datashade_and_keeps_its_legend():
    """The latent view's operation against stock HoloViews, both re-run by a RangeXY stream as on a pan."""
    import datashader as ds
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 (the backend the legend's options are for)
    import param
    from holoviews.operation.datashader import datashade, dynspread
    from holoviews.plotting.util import categorical_legend

    from dashboard.latent import category_colors, shade_categories

    frame = _frame(n=5000, spread=2.0)
    colors = dict(zip(CLASSES, category_colors(CLASSES)))
    element = hv.Points(frame, ["x", "y"], ["label"])

    class Store(param.Parameterized):
        spread = param.Integer(default=3)

    store = Store()
    streams = {name: (hv.streams.RangeXY(), hv.streams.PlotSize(width=150, height=110)) for name in ("ours", "stock")}
    ours = shade_categories(element, aggregator=ds.by("label", ds.count()), color_key=colors, min_alpha=90,
                            threshold=0.5, max_px=store.param.spread, streams=list(streams["ours"]))
    stock = dynspread(datashade(element, aggregator=ds.count_cat("label"), color_key=colors, min_alpha=90,
                                streams=list(streams["stock"])), threshold=0.5, max_px=store.param.spread)

    def rgba(dmap, name, view):
        streams[name][0].event(x_range=view[0], y_range=view[1])
        return np.dstack([dmap[()].dimension_values(d, flat=False) for d in "RGBA"])

    for spread, view in ((3, ((-12, 12), (-12, 12))), (3, ((-2, 3), (0, 4))), (0, ((-12, 12), (-12, 12)))):
        store.spread = spread
        a, b = rgba(ours, "ours", view), rgba(stock, "stock", view)
        assert a.shape == (110, 150, 4)
        np.testing.assert_array_equal(a, b)
    legend = categorical_legend(ours[()], backend="bokeh")
    assert legend is not None and legend.opts.get().kwargs["cmap"] == colors


def test_the_dashboard_plots_first_picture_spans_the_drawn_points_without_scanning_the_table():
    """The first picture of a session (no range from a pan yet) covers the extent of the points the plot draws, which
    the point index knows (HoloViews would compute it from the table, two passes over x and y): a row with a
    non-finite coordinate or without a class does not widen it, and it equals stock ``datashade``'s first picture
    of the drawn points."""
    import datashader as ds
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 (the backend the legend's options are for)
    import pandas as pd
    from holoviews.operation.datashader import datashade

    from dashboard.latent import category_colors, embedding_raster

    drawn = _frame(n=3000, spread=1.5)
    stray = pd.DataFrame({"x": np.array([np.nan, 400.0, 500.0], drawn["x"].dtype),
                          "y": np.array([1.0, np.inf, -900.0], drawn["y"].dtype),
                          "label": pd.Categorical([CLASSES[0], CLASSES[1], None], categories=CLASSES)})
    table = pd.concat([drawn, stray], ignore_index=True)
    assert table["label"].dtype == drawn["label"].dtype
    first = embedding_raster(table, spread=0)[()]
    x0, y0, x1, y1 = first.bounds.lbrt()
    assert (x0, x1) == (float(drawn["x"].min()), float(drawn["x"].max()))
    assert (y0, y1) == (float(drawn["y"].min()), float(drawn["y"].max()))
    height, width = first.dimension_values(2, flat=False).shape
    stock = datashade(hv.Points(drawn, ["x", "y"], ["label"]), aggregator=ds.count_cat("label"), min_alpha=90,
                      color_key=dict(zip(CLASSES, category_colors(CLASSES))), dynamic=False, width=width,
                      height=height)
    assert stock.bounds.lbrt() == first.bounds.lbrt()
    np.testing.assert_array_equal(np.dstack([first.dimension_values(d, flat=False) for d in "RGBA"]),
                                  np.dstack([stock.dimension_values(d, flat=False) for d in "RGBA"]))
