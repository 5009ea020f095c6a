"""Render, server side: a categorical latent space (10 classes) shaded into 800 x 800 on every pan or zoom.

One sample is what the dashboard's server does when the user pans or zooms: the plot's ``RangeXY`` stream fires,
the DynamicMap re-runs its operations and the Bokeh image is replaced (what is then sent to the browser is measured
by the ``browser`` case). Ours is the dashboard's plot (:class:`dashboard.latent.shade_categories`: the engine's
``aggregate_colors`` + ``shade_colors`` over a ``PointIndex``, then ``tf.dynspread``); the baseline is stock
HoloViews, ``dynspread(datashade(points, aggregator=ds.count_cat("label")))``. Both shade the same points with
the same colours and options, and the images are compared pixel by pixel (``extra``). Pans move the full view by a
few percent; zooms show a quarter of the extent (1/16 of the area) around the class centres. 100 million points
are written to ``.npy`` files first and indexed from the memory-mapped files.

From 10 million points, the dashboard draws zoomed-out views from a pyramid of per-category counts
(:mod:`engine.render.pyramid`, ``Inspection.pyramid``): a second comparison, "render (server), pyramid", times that
plot against the first wave's (the point index alone) on the same views plus deep zooms (a 32nd of the extent,
which the pyramid leaves to the points), and reports the pyramid's build time (built out of core from the files at
100M, in a process of its own whose peak memory is read), its size on disk, and how many points its counts differ
from the point path's of the snapped view (the point path's equals datashader's, above) beside the points lying
exactly on a snapped view's upper edge (the one difference expected: see engine.render.pyramid).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import synthetic
from benchmarks.harness import Comparison, Side

SIZE = 800
TARGET_S = 0.150  # 10M categorical under 150 ms per pan or zoom


def _plots(element, index, colors, pyramid=None):
    """Our plot and the stock one (and ours with ``pyramid``, when given), each a Bokeh plot of a DynamicMap with
    its own RangeXY stream; returns ``{name: render(view) -> image}``, ``render`` replacing the plot's image."""
    import datashader as ds
    import holoviews as hv
    from holoviews.operation.datashader import datashade, dynspread

    from dashboard.latent import shade_categories

    hv.extension("bokeh", logo=False)
    renderer = hv.renderer("bokeh")
    plots = {}
    for name in ("ours", "stock") + (("pyramid",) if pyramid is not None else ()):
        ranges = hv.streams.RangeXY()
        size = hv.streams.PlotSize(width=SIZE, height=SIZE)
        options = dict(color_key=colors, min_alpha=90, streams=[size, ranges])
        if name in ("ours", "pyramid"):
            dmap = shade_categories(element, aggregator=ds.by("label", ds.count()), index=index, threshold=0.5,
                                    max_px=3, pyramid=pyramid if name == "pyramid" else None, **options)
        else:
            dmap = dynspread(datashade(element, aggregator=ds.count_cat("label"), **options), threshold=0.5,
                             max_px=3)
        plot = renderer.get_plot(dmap.opts(frame_width=SIZE, frame_height=SIZE))

        def render(view, ranges=ranges, plot=plot):
            ranges.event(x_range=view[0], y_range=view[1])  # the plot re-renders, as on a pan in the browser
            return plot.handles["source"].data["image"][0]

        plots[name] = render
    return plots


def _views(kind: str, count: int, seed: int = 0) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``count`` views: ``pan`` shifts the full extent by up to 6% per step; ``zoom`` shows a quarter of the extent
    around each class centre in turn."""
    lo, hi = -15.0, 15.0
    rng = np.random.default_rng(seed)
    views = []
    if kind == "pan":
        for _ in range(count):
            dx, dy = rng.uniform(-0.06, 0.06, 2) * (hi - lo)
            views.append(((lo + dx, hi + dx), (lo + dy, hi + dy)))
    else:  # zoom: a quarter of the extent; deep: a 32nd
        centres, _, _ = synthetic._layout(0)
        half = (hi - lo) / (8 if kind == "zoom" else 64)
        for i in range(count):
            cx, cy = centres[i % len(centres)] + rng.uniform(-1, 1, 2)
            views.append(((cx - half, cx + half), (cy - half, cy + half)))
    return views


def equivalence(ours: np.ndarray, stock: np.ndarray, colors: dict) -> dict:
    """How close two Bokeh RGBA images (uint32, H x W) are: identical pixels, largest and mean channel difference,
    same inked pixels, and the share of inked pixels whose nearest class colour agrees."""
    from datashader.colors import rgb

    a = ours.view(np.uint8).reshape(*ours.shape, 4).astype(np.int16)
    b = stock.view(np.uint8).reshape(*stock.shape, 4).astype(np.int16)
    diff = np.abs(a - b)
    inked_a, inked_b = a[..., 3] > 0, b[..., 3] > 0
    palette = np.array([rgb(c) for c in colors.values()], np.int16)
    both = inked_a & inked_b

    def nearest(img):
        return np.argmin(((img[both][:, None, :3] - palette[None]) ** 2).sum(-1), axis=1)

    return {
        "identical_px": round(float((diff == 0).all(-1).mean()), 6),
        "max_abs_diff": int(diff.max()),
        "mean_abs_diff_rgba": [round(float(v), 4) for v in diff.reshape(-1, 4).mean(0)],
        "same_inked_px": round(float((inked_a == inked_b).mean()), 6),
        "hue_class_match": round(float((nearest(a) == nearest(b)).mean()), 6) if both.any() else None,
    }


def _stages(frame, index, colors) -> dict:
    """Milliseconds of each stage at the full view (median of 3): ours and datashader's."""
    import datashader as ds
    import datashader.transfer_functions as tf

    from engine.render import aggregate_colors, make_canvas, shade_colors

    canvas = make_canvas(width=SIZE, height=SIZE, x_range=(-15.0, 15.0), y_range=(-15.0, 15.0))

    def ms(fn, repeats=3):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return round(float(np.median(times)) * 1e3, 1), out

    out = {}
    out["ours_aggregate_ms"], agg = ms(lambda: aggregate_colors(index, canvas=canvas, colors=colors))
    out["ours_shade_ms"], img = ms(lambda: shade_colors(agg, min_alpha=90))
    out["spread_ms"], _ = ms(lambda: tf.dynspread(img, threshold=0.5, max_px=3))
    out["stock_count_cat_ms"], cat = ms(lambda: canvas.points(frame, "x", "y", agg=ds.count_cat("label")))
    out["stock_shade_ms"], _ = ms(lambda: tf.shade(cat, color_key=colors, how="eq_hist", min_alpha=90,
                                                   rescale_discrete_levels=True))
    out["stock_plain_count_and_shade_ms"], _ = ms(lambda: tf.shade(canvas.points(frame, "x", "y", agg=ds.count())))
    return out


def _measure(label_n: str, frame, index, colors, repeats: int, kinds, extra: dict, n: int) -> list[Comparison]:
    import holoviews as hv

    element = hv.Points(frame, ["x", "y"], ["label"])
    plots = _plots(element, index, colors)
    results = []
    for kind in kinds:
        views = _views(kind, repeats + 2, seed=len(results))
        for view in views[:2]:  # warm-up (first render, numba dispatch, caches)
            plots["ours"](view)
            plots["stock"](view)
        ours, stock = [], []
        for view in views[2:]:
            t0 = time.perf_counter()
            a = plots["ours"](view)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = plots["stock"](view)
            stock.append(time.perf_counter() - t0)
        judged = n == 10_000_000
        p95 = float(np.percentile(ours, 95))
        results.append(Comparison(
            "render (server)", f"{label_n} points, {kind}, {SIZE}x{SIZE}", "ms",
            Side("shade_categories (PointIndex, colour aggregate, dynspread)", ours),
            Side("stock datashade(count_cat) + dynspread", stock),
            target=f"< {TARGET_S * 1e3:.0f} ms p95" if judged else "", met=(p95 < TARGET_S) if judged else None,
            extra={**(extra if kind == "pan" else {}), **equivalence(a, b, colors)},  # stages: once per size
        ))
    return results


def _pyramid_against_points(pyramid, index, colors, views, x, y) -> dict:
    """Over the ``views`` the pyramid serves: how many points its counts differ from the point path's of the
    snapped view (itself datashader's), and how many points lie exactly on a snapped view's upper edge (datashader's
    last pixel, the lattice's next cell: the only difference expected)."""
    from engine.render import aggregate_colors, aggregate_pyramid, make_canvas

    diff = edge = served = 0
    for x_range, y_range in views:
        view = pyramid.snap(x_range, y_range, SIZE, SIZE)
        if view is None:
            continue
        served += 1
        canvas = make_canvas(width=view.width, height=view.height, x_range=view.x_range, y_range=view.y_range)
        a = aggregate_pyramid(pyramid, view, colors=colors).data[..., 0].astype(np.int64)
        diff += int(np.abs(a - aggregate_colors(index, canvas=canvas, colors=colors).data[..., 0]).sum())
        (x0, x1), (y0, y1) = view.x_range, view.y_range
        edge += int((((x == x1) & (y >= y0) & (y <= y1)) | ((y == y1) & (x >= x0) & (x <= x1))).sum())
    return {"pyramid_views_checked": served, "pyramid_count_diff_vs_points": diff,
            "points_on_snapped_upper_edges": edge}


def _measure_pyramid(label_n: str, frame, index, pyramid, colors, repeats: int, extra: dict,
                     n: int) -> list[Comparison]:
    """The dashboard's plot with the pyramid against the point index alone, on pans, zooms and deep zooms."""
    import holoviews as hv

    plots = _plots(hv.Points(frame, ["x", "y"], ["label"]), index, colors, pyramid)
    results = []
    for kind in ("pan", "zoom", "deep"):
        views = _views(kind, repeats + 2, seed=10 + len(results))
        for view in views[:2]:
            plots["pyramid"](view)
            plots["ours"](view)
        with_pyramid, points_only = [], []
        for view in views[2:]:
            t0 = time.perf_counter()
            plots["pyramid"](view)
            with_pyramid.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plots["ours"](view)
            points_only.append(time.perf_counter() - t0)
        served = sum(pyramid.serves(*view, SIZE, SIZE, index) is not None for view in views[2:])
        p95 = float(np.percentile(with_pyramid, 95))
        results.append(Comparison(
            "render (server), pyramid", f"{label_n} points, {kind}, {SIZE}x{SIZE}", "ms",
            Side("shade_categories with the pyramid (points past its base cell)", with_pyramid),
            Side("shade_categories with the point index alone (first wave)", points_only),
            target=f"< {TARGET_S * 1e3:.0f} ms p95", met=p95 < TARGET_S,
            extra={**(extra if kind == "pan" else {}), "views_from_pyramid": f"{served}/{len(views) - 2}",
                   **_pyramid_against_points(pyramid, index, colors, views[2:4], frame["x"].to_numpy(),
                                             frame["y"].to_numpy())},
        ))
    return results


_BUILD_SCRIPT = """
import json, resource, sys, time
import numpy as np
from engine.render import build_pyramid, save_pyramid
paths, out, classes = sys.argv[1:4], sys.argv[4], json.loads(sys.argv[5])
x, y, codes = (np.load(p, mmap_mode="r") for p in paths)
t0 = time.perf_counter()
pyramid = build_pyramid(x, y, codes, classes)
built = time.perf_counter() - t0
t0 = time.perf_counter()
stored = save_pyramid(pyramid, out)
print(json.dumps({"build_s": round(built, 2), "save_s": round(time.perf_counter() - t0, 2),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "disk_mib": round(stored.disk_bytes() / 2**20, 1), "base_cells": list(pyramid.levels[0].shape),
                  "levels": len(pyramid.levels)}))
"""


def _build_out_of_core(paths: dict, out) -> dict:
    """Build and store the pyramid of the ``.npy`` files in a process of its own; its times, peak RSS, size."""
    import json
    import subprocess
    import sys

    from benchmarks.browser import REPO

    proc = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, str(paths["x"]), str(paths["y"]), str(paths["codes"]),
                           str(out), json.dumps(list(synthetic.CLASSES))], cwd=REPO, capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[Comparison]:
    from engine.render import (
        build_pyramid,
        color_key,
        index_frame,
        index_points,
        open_pyramid,
        points_frame,
        save_pyramid,
    )

    colors = color_key(synthetic.CLASSES)
    warm = synthetic.frame(1000)  # numba kernels loaded, so that the index build below is the build alone
    _stages(warm, index_frame(warm, "label"), colors)
    results = []
    sizes = (1_000_000,) if quick else (1_000_000, 10_000_000)
    for n in sizes:
        frame = synthetic.frame(n)
        t0 = time.perf_counter()
        index = index_frame(frame, "label")
        built = time.perf_counter() - t0
        extra = {"index_build_s": round(built, 2), "index_mib": round(index.nbytes / 2**20)}
        extra.update(_stages(frame, index, colors))
        results += _measure(f"{n:,}", frame, index, colors, 4 if quick else 12, ("pan", "zoom"), extra, n)
        if n >= 10_000_000 or quick:  # (quick: 1M, to exercise the comparison; the pyramid pays from 10M)
            with tempfile.TemporaryDirectory(prefix="bench-pyramid-") as tmp:
                t0 = time.perf_counter()
                pyramid = build_pyramid(frame["x"].to_numpy(), frame["y"].to_numpy(),
                                        frame["label"].cat.codes.to_numpy(), synthetic.CLASSES)
                built = time.perf_counter() - t0
                pyramid = save_pyramid(pyramid, Path(tmp) / "pyramid.zarr")
                built_extra = {"pyramid_build_s": round(built, 2),
                               "pyramid_disk_mib": round(pyramid.disk_bytes() / 2**20, 1)}
                results += _measure_pyramid(f"{n:,}", frame, index, pyramid, colors, 4 if quick else 12,
                                            built_extra, n)
        del frame, index
    if not quick:
        n = 100_000_000
        with tempfile.TemporaryDirectory(prefix="bench-100m-") as tmp:
            paths = synthetic.write_npy(tmp, n)
            x, y, codes = (np.load(paths[k], mmap_mode="r") for k in ("x", "y", "codes"))
            t0 = time.perf_counter()
            index = index_points(x, y, codes, synthetic.CLASSES)  # one pass over the files
            built = time.perf_counter() - t0
            import pandas as pd

            frame = pd.DataFrame({"x": np.asarray(x), "y": np.asarray(y),
                                  "label": pd.Categorical.from_codes(np.asarray(codes), categories=synthetic.CLASSES)})
            assert frame["label"].dtype == points_frame(np.zeros((1, 2)), [0], synthetic.CLASSES)["label"].dtype
            extra = {"index_build_s": round(built, 2), "index_mib": round(index.nbytes / 2**20),
                     "data": "float32 .npy files, memory-mapped", **_stages(frame, index, colors)}
            results += _measure("100,000,000", frame, index, colors, 4, ("pan", "zoom"), extra, n)
            built = _build_out_of_core(paths, Path(tmp) / "pyramid.zarr")
            pyramid = open_pyramid(Path(tmp) / "pyramid.zarr")
            results += _measure_pyramid("100,000,000", frame, index, pyramid, colors, 8,
                                        {f"pyramid_{k}": v for k, v in built.items()}, n)
            del frame, index, x, y, codes, pyramid
    return results
