"""The pages of the in-browser render benchmark, served by ``python -m benchmarks.pages --port N`` on 127.0.0.1.

``/scatter?n=N``: the original approach, every point sent to the browser as a glyph of a Bokeh WebGL scatter (float32
coordinates and uint8 class codes, binary-encoded; coloured by a linear colour mapper: the cheapest way Bokeh has to
send them). ``/shaded?n=N``: the dashboard's latent plot, :class:`dashboard.latent.shade_categories` with the
dashboard's options, one server-shaded image per view, on the dashboard's canvas. ``/glyphs?n=N[&spread=S]``: the
Inspect tab's plot of a small table, :func:`dashboard.glyphs.embedding_glyphs` with its legend (every point a glyph
coloured by its category; the dashboard's point size 3 unless ``spread`` says; on its canvas, not WebGL), with the
streams of the view's range and size that the dashboard's plot has. All show the same synthetic points
(:mod:`benchmarks.synthetic`) in an 800 x 800 frame, with pan and wheel zoom active; their figure is named
``bench-figure`` and its data source ``bench-figure-source``. Data (and the shaded plot's index) are made once per size
and process.
"""

from __future__ import annotations

import argparse
import functools
import sys

SIZE = 800
NAME = "bench-figure"


@functools.cache
def _frame(n: int):
    from benchmarks import synthetic

    return synthetic.frame(n)


@functools.cache
def _index(n: int):
    """The engine's point index of ``_frame(n)`` by label, as the dashboard has its inspection build it once."""
    from engine.render import index_frame

    return index_frame(_frame(n), "label")


@functools.cache
def _arrays(n: int):
    import numpy as np

    from benchmarks import synthetic

    E, labels = synthetic.embedding(n)
    return E[:, 0].astype(np.float32), E[:, 1].astype(np.float32), labels


def _n() -> int:
    import panel as pn

    return int(pn.state.session_args.get("n", [b"1000"])[0])


def scatter_page():
    import panel as pn
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure
    from bokeh.transform import linear_cmap

    from benchmarks import synthetic
    from engine.render import color_key

    n = _n()
    x, y, codes = _arrays(n)
    palette = list(color_key(synthetic.CLASSES).values())
    fig = figure(frame_width=SIZE, frame_height=SIZE, output_backend="webgl", tools="pan,wheel_zoom,reset",
                 active_drag="pan", active_scroll="wheel_zoom", name=NAME, title=f"{n:,} points, WebGL scatter")
    source = ColumnDataSource({"x": x, "y": y, "c": codes}, name=f"{NAME}-source")
    fig.scatter("x", "y", source=source, size=3, line_color=None, fill_alpha=0.6,
                fill_color=linear_cmap("c", palette, low=-0.5, high=len(palette) - 0.5))
    return pn.pane.Bokeh(fig)


def shaded_page():
    import datashader as ds
    import holoviews as hv
    import panel as pn

    from dashboard.latent import CANVAS_OPTS, category_colors, shade_categories
    from dashboard.widgets import name_models

    n = _n()
    frame = _frame(n)
    names = list(frame["label"].cat.categories)
    element = hv.Points(frame, ["x", "y"], ["label"])
    raster = shade_categories(element, aggregator=ds.by("label", ds.count()), color_key=dict(zip(names,
                              category_colors(names))), min_alpha=90, index=_index(n),
                              threshold=0.5, max_px=3)
    raster = raster.opts(frame_width=SIZE, frame_height=SIZE, tools=["pan", "wheel_zoom"],
                         active_tools=["pan", "wheel_zoom"], title=f"{n:,} points, datashaded",
                         show_legend=True, legend_position="right", hooks=[name_models(NAME)],
                         backend_opts=CANVAS_OPTS)
    return pn.pane.HoloViews(raster, linked_axes=False)


def glyphs_page():
    import holoviews as hv
    import panel as pn

    from dashboard.glyphs import embedding_glyphs, glyph_legend
    from dashboard.latent import CANVAS_OPTS
    from dashboard.widgets import name_models

    n = _n()
    spread = int(pn.state.session_args.get("spread", [b"3"])[0])  # the point size (the dashboard's default: 3)
    element = embedding_glyphs(_frame(n), "label", spread=spread)
    # the streams the dashboard's plot has on it: the view's range and size go to the server, which draws nothing
    hv.streams.RangeXY(source=element)
    hv.streams.PlotSize(source=element)
    element = element.opts(frame_width=SIZE, frame_height=SIZE, tools=["pan", "wheel_zoom"],
                           active_tools=["pan", "wheel_zoom"], title=f"{n:,} points, glyphs",
                           hooks=[name_models(NAME), glyph_legend],
                           backend_opts=CANVAS_OPTS)
    return pn.pane.HoloViews(element, linked_axes=False)


def health_page():
    import panel as pn

    return pn.pane.Markdown("ok")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pages", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import holoviews as hv
    import panel as pn

    hv.extension("bokeh", logo=False)
    pn.extension()
    origin = [f"127.0.0.1:{args.port}", f"localhost:{args.port}"]
    pages = {"scatter": scatter_page, "shaded": shaded_page, "glyphs": glyphs_page, "health": health_page}
    pn.serve(pages, port=args.port,
             address="127.0.0.1", websocket_origin=origin, show=False, print=False, title="benchmark")
    return 0


if __name__ == "__main__":
    sys.exit(main())
