"""Render, server side: a categorical latent space (10 classes) shaded into 800 x 800 on every pan or zoom.

One sample is what the dashboard's server does when the user pans or zooms: the plot's ``RangeXY`` stream fires,
the DynamicMap re-runs its operations and the Bokeh image is replaced (what is then sent to the browser is measured
by the ``browser`` case). Ours is the dashboard's plot (:class:`dashboard.latent.shade_categories`: the engine's
``aggregate_colors`` + ``shade_colors`` over a ``PointIndex``, then ``tf.dynspread``); the baseline is stock
HoloViews, ``dynspread(datashade(points, aggregator=ds.count_cat("label")))``. Both shade the same points with
the same colours and options, and the images are compared pixel by pixel (``extra``). Pans move the full view by a
few percent; zooms show a quarter of the extent (1/16 of the area) around the class centres. 100 million points
are written to ``.npy`` files first and indexed from the memory-mapped files.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from benchmarks import synthetic
from benchmarks.harness import Comparison, Side

SIZE = 800
TARGET_S = 0.150  # 10M categorical under 150 ms per pan or zoom


def _plots(element, index, colors):
    """Our plot and the stock one, each a Bokeh plot of a DynamicMap with its own RangeXY stream; returns
    ``{name: (render(view) -> image, plot)}``, ``render`` replacing the plot's image for a view."""
    import datashader as ds
    import holoviews as hv
    from holoviews.operation.datashader import datashade, dynspread

    from dashboard.latent import shade_categories

    hv.extension("bokeh", logo=False)
    renderer = hv.renderer("bokeh")
    plots = {}
    for name in ("ours", "stock"):
        ranges = hv.streams.RangeXY()
        size = hv.streams.PlotSize(width=SIZE, height=SIZE)
        options = dict(color_key=colors, min_alpha=90, streams=[size, ranges])
        if name == "ours":
            dmap = shade_categories(element, aggregator=ds.by("label", ds.count()), index=index, threshold=0.5,
                                    max_px=3, **options)
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
    else:
        centres, _, _ = synthetic._layout(0)
        half = (hi - lo) / 8
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


def run(quick: bool) -> list[Comparison]:
    from engine.render import color_key, index_frame, index_points, points_frame

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
            del frame, index, x, y, codes
    return results
