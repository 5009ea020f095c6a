"""The pyramid of per-category counts (engine.render.pyramid): the picture of a snapped view is datashader's."""

from __future__ import annotations

import math
import time

import datashader as ds
import numpy as np
import pandas as pd
import pytest

from engine.errors import RenderError
from engine.render import (
    aggregate_colors,
    aggregate_pyramid,
    build_pyramid,
    index_points,
    make_canvas,
    open_pyramid,
    save_pyramid,
    shade_colors,
)

CATEGORIES = ("a", "b", "c", "d")


def _points(n=200_000, seed=0):
    """float32 clusters, some points exactly on the lattice's edges (multiples of small powers of two), a few
    non-finite or without a category (left out)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(CATEGORIES), n)
    centres = rng.normal(scale=6.0, size=(len(CATEGORIES), 2))
    xy = (centres[codes] + rng.normal(scale=[1.0, 2.5], size=(n, 2))).astype(np.float32)
    edge = rng.choice(n, n // 20, replace=False)
    xy[edge] = np.round(xy[edge] * 64) / 64  # on dyadic edges: where a rounding would show
    xy[:5, 0] = np.nan
    codes[5:10] = -1
    return xy[:, 0].copy(), xy[:, 1].copy(), codes


def _datashader_counts(x, y, codes, view):
    # without the points lacking a category: count_cat counts them in the last category, where the engine's point
    # path (PointIndex) and the pyramid leave them out
    keep = codes >= 0
    frame = pd.DataFrame({"x": x[keep], "y": y[keep],
                          "label": pd.Categorical.from_codes(codes[keep], categories=list(CATEGORIES))})
    canvas = ds.Canvas(plot_width=view.width, plot_height=view.height, x_range=view.x_range, y_range=view.y_range)
    agg = canvas.points(frame, "x", "y", agg=ds.count_cat("label"))
    # datashader puts a point exactly on the view's upper edge into the last pixel; the lattice into the next cell
    (x0, x1), (y0, y1) = view.x_range, view.y_range
    counted = (codes >= 0) & np.isfinite(x) & np.isfinite(y)
    on_edge = counted & (((x == x1) & (y >= y0) & (y <= y1)) | ((y == y1) & (x >= x0) & (x <= x1)))
    return np.asarray(agg.data), int(on_edge.sum())


@pytest.fixture(scope="module")
def points():
    return _points()


@pytest.fixture(scope="module")
def pyramid(points):
    x, y, codes = points
    return build_pyramid(x, y, codes, CATEGORIES, base=512, chunk=30_000)


VIEWS = [  # (x_range, y_range, width, height): zoomed out, panned, zoomed in, an aspect far from the data's
    ((-30.0, 30.0), (-30.0, 30.0), 600, 600),
    ((-31.3, 27.9), (-25.0, 33.1), 700, 500),
    ((-5.0, 9.0), (-4.0, 6.0), 300, 200),
    ((-2.0, 2.0), (-2.0, 2.0), 64, 64),
    ((-30.0, 30.0), (-15.0, 15.0), 100, 400),
    ((100.0, 140.0), (0.0, 40.0), 100, 100),  # far from every point
]


@pytest.mark.parametrize("asked", VIEWS)
def test_a_snapped_view_counts_what_datashader_counts_there(points, pyramid, asked):
    x, y, codes = points
    view = pyramid.snap(*asked)
    assert view is not None
    assert asked != VIEWS[4] or view.mx > view.my  # an aspect far from the data's: more cells per pixel along x
    (x0, x1), (y0, y1) = asked[0], asked[1]
    # the snapped view covers the asked one, its pixels within a factor 1.42 of those asked
    assert view.x_range[0] <= x0 and view.x_range[1] >= x1 and view.y_range[0] <= y0 and view.y_range[1] >= y1
    for asked_pixels, pixels in ((asked[2], view.width), (asked[3], view.height)):
        assert asked_pixels / 1.42 <= pixels <= asked_pixels * 1.42 + 2
    got = pyramid.counts(view)
    expected, on_edge = _datashader_counts(x, y, codes, view)
    assert got.shape == expected.shape
    assert int(np.abs(expected.astype(np.int64) - got).sum()) == on_edge  # the edge points, and only them


def test_a_view_finer_than_the_base_cell_is_left_to_the_points(pyramid):
    base_cell = pyramid.cell
    assert pyramid.snap((0.0, 100 * base_cell), (0.0, 100 * base_cell), 400, 400) is None
    assert pyramid.snap((-30.0, 30.0), (-3.0, 3.0), 400, 400) is None  # fine along y
    assert pyramid.snap((0.0, 1.0), (0.0, 1.0), 0, 10) is None
    assert pyramid.snap((1.0, 1.0), (0.0, 1.0), 10, 10) is None


def test_the_shaded_picture_is_the_point_paths_picture_of_the_same_view(points, pyramid):
    """The image served from the pyramid equals the per-point path's (itself datashader's tf.shade of count_cat,
    tests/test_render.py) for the snapped view."""
    x, y, codes = points
    index = index_points(x, y, codes, CATEGORIES)
    for asked in VIEWS[:3]:
        view = pyramid.snap(*asked)
        canvas = make_canvas(width=view.width, height=view.height, x_range=view.x_range, y_range=view.y_range)
        ours = aggregate_pyramid(pyramid, view)
        theirs = aggregate_colors(index, canvas=canvas)
        _, on_edge = _datashader_counts(x, y, codes, view)
        if on_edge:
            continue
        np.testing.assert_array_equal(ours.data, theirs.data)
        assert ours.attrs["category_min"] == theirs.attrs["category_min"]
        np.testing.assert_array_equal(shade_colors(ours).data, shade_colors(theirs).data)


def test_every_level_holds_every_point_and_sums_the_level_below(pyramid, points):
    x, y, codes = points
    counted = int(((codes >= 0) & np.isfinite(x) & np.isfinite(y)).sum())
    assert pyramid.count == counted
    assert max(pyramid.levels[0].shape[:2]) <= 512 and pyramid.levels[-1].shape[:2] == (1, 1)
    for fine, coarse in zip(pyramid.levels, pyramid.levels[1:]):
        assert int(coarse.sum()) == counted
        assert int(coarse[0, 0].sum()) == int(fine[:2, :2].sum())
    assert math.log2(pyramid.cell).is_integer() and (pyramid.origin[0] / pyramid.cell).is_integer()


def test_every_category_counts_when_every_pixel_holds_every_category():
    """``category_min``: tf.shade mixes only the counts above the smallest when no pixel lacks a category."""
    rng = np.random.default_rng(1)
    n = 40_000
    x, y = (rng.uniform(0, 1, n).astype(np.float32) for _ in range(2))
    codes = np.arange(n) % 2
    pyramid = build_pyramid(x, y, codes, ["p", "q"], base=64)
    view = pyramid.snap((0.25, 0.75), (0.25, 0.75), 8, 8)
    agg = aggregate_pyramid(pyramid, view)
    assert agg.attrs["category_min"] == int(pyramid.counts(view).min()) > 0


def test_built_out_of_core_from_zarr_and_memory_maps_and_stored(points, pyramid, tmp_path):
    """Chunks of a Zarr array of (n, 2) and memory-mapped files give the same counts as arrays in memory; the
    stored pyramid reads the same views back from disk."""
    import zarr

    x, y, codes = points
    store = zarr.open_array(str(tmp_path / "embedding.zarr"), mode="w", shape=(len(x), 2), dtype=np.float32,
                            chunks=(50_000, 2))
    store[:] = np.stack([x, y], axis=1)
    np.save(tmp_path / "codes.npy", codes)
    from_zarr = build_pyramid(store, None, np.load(tmp_path / "codes.npy", mmap_mode="r"), CATEGORIES, base=512,
                              chunk=70_000)
    assert from_zarr.cell == pyramid.cell and from_zarr.origin == pyramid.origin
    for a, b in zip(from_zarr.levels, pyramid.levels):
        np.testing.assert_array_equal(a, b)
    stored = save_pyramid(from_zarr, tmp_path / "pyramid.zarr")
    assert stored.path is not None and stored.disk_bytes() > 0
    reopened = open_pyramid(tmp_path / "pyramid.zarr")
    for asked in VIEWS:
        view = reopened.snap(*asked)
        np.testing.assert_array_equal(reopened.counts(view), pyramid.counts(view))


def test_bad_inputs_are_named(tmp_path):
    x = np.zeros(3, np.float32)
    with pytest.raises(RenderError, match="one length"):
        build_pyramid(x, np.zeros(4, np.float32), np.zeros(3, int), ["a"])
    with pytest.raises(RenderError, match="integer category codes"):
        build_pyramid(x, x, np.zeros(3), ["a"])
    with pytest.raises(RenderError, match="none of the 3 points"):
        build_pyramid(np.full(3, np.nan), x, np.zeros(3, int), ["a"])
    with pytest.raises(RenderError, match="shape \\(n, 2\\)"):
        build_pyramid(x, None, np.zeros(3, int), ["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RenderError, match="holds no pyramid"):
        open_pyramid(tmp_path / "empty")


@pytest.mark.gpu
def test_the_gpu_counts_and_sums_the_same(points, pyramid):
    cupy = pytest.importorskip("cupy")
    from engine.backends.cupy import gpu_available

    if not gpu_available():
        pytest.skip("no CUDA device")
    x, y, codes = (cupy.asarray(a) for a in points)
    on_gpu = build_pyramid(x, y, codes, CATEGORIES, base=512, chunk=30_000, xp=cupy)
    for a, b in zip(on_gpu.levels, pyramid.levels):
        np.testing.assert_array_equal(a.get(), b)
    view = on_gpu.snap(*VIEWS[1])
    np.testing.assert_array_equal(aggregate_pyramid(on_gpu, view, xp=cupy).data,
                                  aggregate_pyramid(pyramid, view).data)


def test_the_dashboard_plot_draws_a_zoomed_out_view_from_the_pyramid_as_stock_datashade_draws_it(points, pyramid):
    """The latent view's operation given a pyramid: for a view the pyramid serves, the image covers the snapped
    view, pixel for pixel stock HoloViews' ``datashade(count_cat)`` + ``dynspread`` of that view; a view zoomed in
    past the base cell is drawn from the points, over the view asked."""
    import holoviews as hv
    from holoviews.operation.datashader import datashade, dynspread

    from dashboard.latent import category_colors, shade_categories

    x, y, codes = points
    keep = codes >= 0
    frame = pd.DataFrame({"x": x[keep], "y": y[keep],
                          "label": pd.Categorical.from_codes(codes[keep], categories=list(CATEGORIES))})
    colors = dict(zip(CATEGORIES, category_colors(CATEGORIES)))
    element = hv.Points(frame, ["x", "y"], ["label"])
    # a small plot: fewer cells to read than points in view, so the pyramid serves the views (Pyramid.serves)
    ours_streams = (hv.streams.RangeXY(), hv.streams.PlotSize(width=120, height=80))
    ours = shade_categories(element, aggregator=ds.by("label", ds.count()), color_key=colors, min_alpha=90,
                            threshold=0.5, max_px=2, pyramid=pyramid, streams=list(ours_streams))
    for asked in VIEWS[:3]:
        view = pyramid.snap(asked[0], asked[1], 120, 80)
        ours_streams[0].event(x_range=asked[0], y_range=asked[1])
        image = ours[()]
        assert image.bounds.lbrt() == (view.x_range[0], view.y_range[0], view.x_range[1], view.y_range[1])
        stock_streams = (hv.streams.RangeXY(x_range=view.x_range, y_range=view.y_range),
                         hv.streams.PlotSize(width=view.width, height=view.height))
        # without the points exactly on the view's upper edges (datashader's last pixel, the lattice's next cell)
        (_, x1), (_, y1) = view.x_range, view.y_range
        inside = element.clone(frame[(frame["x"] != x1) & (frame["y"] != y1)])
        stock = dynspread(datashade(inside, aggregator=ds.count_cat("label"), color_key=colors, min_alpha=90,
                                    streams=list(stock_streams)), threshold=0.5, max_px=2)
        a, b = (np.dstack([e.dimension_values(d, flat=False) for d in "RGBA"]) for e in (image, stock[()]))
        assert a.shape == (view.height, view.width, 4)
        np.testing.assert_array_equal(a, b)
    fine = (0.0, 40 * pyramid.cell)
    ours_streams[0].event(x_range=fine, y_range=fine)
    assert ours[()].bounds.lbrt() == (fine[0], fine[0], fine[1], fine[1])  # from the points, as asked
    far = VIEWS[5][:2]  # no point there: cheaper from the (no) points than from its cells
    ours_streams[0].event(x_range=far[0], y_range=far[1])
    assert ours[()].bounds.lbrt() == (far[0][0], far[1][0], far[0][1], far[1][1])


def test_a_view_is_served_by_the_pyramid_when_its_cells_are_fewer_than_its_points(points, pyramid):
    x, y, codes = points
    index = index_points(x, y, codes, CATEGORIES)
    full = ((-30.0, 30.0), (-30.0, 30.0))
    assert index.count_in(*full) == pyramid.count  # every point in view
    small, large = pyramid.snap(*full, 64, 64), pyramid.snap(*full, 900, 900)
    assert small.cells(len(CATEGORIES)) < pyramid.count < large.cells(len(CATEGORIES))
    assert pyramid.serves(*full, 64, 64, index) == small  # 200,000 points against 16,384 cells
    assert pyramid.serves(*full, 900, 900, index) is None  # against 3.7 million cells: the points
    assert pyramid.serves(*full, 900, 900) == large  # without an index, whenever it can
    inside = ((-2.0, 2.0), (-2.0, 2.0))
    in_cells = index.count_in(*inside)
    assert ((x >= -2) & (x <= 2) & (y >= -2) & (y <= 2) & (codes >= 0)).sum() <= in_cells < pyramid.count


def test_an_inspection_builds_its_pyramid_once_stores_it_and_opens_it_again(tiny_project, tmp_path, monkeypatch):
    """Above PYRAMID_POINTS (lowered here: the bundled projects are small) an inspection's table gets a pyramid,
    stored next to the cached projection and opened from there by a later inspection; below, none."""
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    cache = tmp_path / "cache"
    first = Inspection(load_project("tiny", tiny_project), method="pca", cache_dir=cache)
    assert first.pyramid() is None  # 300 points: drawn from the points
    monkeypatch.setattr(Inspection, "PYRAMID_POINTS", 100)
    assert first.pyramid(wait=False) is None  # not built yet: built on a thread meanwhile (the dashboard's way)
    deadline = time.monotonic() + 60
    while (pyramid := first.pyramid(wait=False)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pyramid is not None and first.pyramid() is pyramid
    assert pyramid.count == len(first.frame) and pyramid.path.parent == cache / "pyramids"
    assert first.pyramid() is pyramid  # once per table
    assert first.pyramid(by="nothing") is None
    # the point index of the same table is stored beside it under the same name, found without hashing the
    # table's codes again (a tenth of a second at 100M points)
    from engine.reduce import cache as reduce_cache

    digests = []
    monkeypatch.setattr(reduce_cache, "array_digest", lambda a: digests.append(len(a)) or "unused")
    index = first.point_index()
    assert digests == [] and (cache / "pointindex" / pyramid.path.stem).is_dir()
    assert len(index) == len(first.frame) and first.point_index() is index
    monkeypatch.undo()
    monkeypatch.setattr(Inspection, "PYRAMID_POINTS", 100)
    second = Inspection(load_project("tiny", tiny_project), method="pca", cache_dir=cache)
    again = second.pyramid()
    assert again is not pyramid and again.path == pyramid.path  # opened, not built: one store in the folder
    assert len(list((cache / "pyramids").iterdir())) == 1
    view = again.snap(pyramid.bounds[:2], pyramid.bounds[2:], 50, 50)
    np.testing.assert_array_equal(again.counts(view), pyramid.counts(view))
    monkeypatch.setenv("LATENT_INSPECTOR_PYRAMID", "OFF")  # switched off: none, even where one was built
    assert second.pyramid() is None
    monkeypatch.setenv("LATENT_INSPECTOR_PYRAMID", "sometimes")  # not a mode: the default, auto
    monkeypatch.setenv("LATENT_INSPECTOR_PYRAMID_POINTS", "1000")  # above the 300 points: none
    assert second.pyramid() is None


def test_a_point_index_stored_opens_memory_mapped_and_draws_and_answers_as_built(points, tmp_path):
    from engine.render import index_points, open_point_index, save_point_index

    x, y, codes = points
    built = index_points(x, y, codes, CATEGORIES)
    stored = save_point_index(built, tmp_path / "index")
    assert isinstance(stored.x, np.memmap) and isinstance(stored.order, np.memmap)
    assert (stored.categories, stored.bounds, stored.grid, len(stored)) == \
        (built.categories, built.bounds, built.grid, len(built))
    canvas = make_canvas(width=120, height=90, x_range=(-2.0, 3.0), y_range=(-1.0, 2.5))
    np.testing.assert_array_equal(aggregate_colors(stored, canvas=canvas).data,
                                  aggregate_colors(built, canvas=canvas).data)
    assert [stored.nearest(a, b) for a, b in ((0, 0), (40, -9))] == [built.nearest(a, b) for a, b in ((0, 0), (40, -9))]
    (tmp_path / "index" / "order.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(RenderError, match="no point index"):
        open_point_index(tmp_path / "index")
    with pytest.raises(RenderError, match="no point index"):
        open_point_index(tmp_path / "nothing here")


def test_an_inspection_stores_the_point_index_of_a_large_table_and_opens_it_again(tiny_project, tmp_path,
                                                                                  monkeypatch):
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    cache = tmp_path / "cache"
    small = Inspection(load_project("tiny", tiny_project), method="pca", cache_dir=cache)
    assert not isinstance(small.point_index().x, np.memmap) and not (cache / "pointindex").exists()
    monkeypatch.setattr(Inspection, "PYRAMID_POINTS", 100)  # the 300 points count as many
    first = Inspection(load_project("tiny", tiny_project), method="pca", cache_dir=cache)
    index = first.point_index()
    assert isinstance(index.x, np.memmap) and len(list((cache / "pointindex").iterdir())) == 1
    second = Inspection(load_project("tiny", tiny_project), method="pca", cache_dir=cache)
    again = second.point_index()
    assert again is not index and again.x.filename == index.x.filename  # opened, not built again
    xy = second.embedding[17]
    assert second.nearest(*map(float, xy)) == 17 or np.allclose(second.embedding[second.nearest(*xy)], xy)
    (cache / "pointindex" / next((cache / "pointindex").iterdir()).name / "index.json").write_text("{}")
    third = Inspection(load_project("tiny", tiny_project), method="pca", cache_dir=cache)
    rebuilt = third.point_index()  # an unreadable folder is built again, and replaced
    assert len(rebuilt) == len(index) and isinstance(rebuilt.x, np.memmap)
