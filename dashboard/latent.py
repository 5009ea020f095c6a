"""The latent plot every tab draws: the embedding shaded by Datashader on the server, re-aggregated on every zoom.

The embedding is an ``hv.Points`` element shaded on the server with the engine's colours, re-aggregated by
HoloViews on every zoom, pan or resize (``RangeXY``/``PlotSize`` streams), so ten million points cost one screen of
pixels; ``dynspread`` grows isolated pixels so sparse regions stay visible. Coloured by a category, the plot is
:class:`shade_categories`: HoloViews' ``datashade`` with ``ds.by(label, ds.count())`` (its streams, legend and
options), whose pixels come from the engine's per-view path (:func:`engine.render.aggregate_colors` and
:func:`~engine.render.shade_colors` over a :class:`~engine.render.PointIndex`, built once per table by the
inspection: :meth:`engine.explore.inspection.Inspection.point_index`): the same image as datashader's
``count_cat`` and ``tf.shade``, about five times faster at ten million points. From two million points, a view
zoomed out far enough is drawn from the inspection's pyramid of per-category counts instead
(:mod:`engine.render.pyramid`, built in the background once per table and stored with the projection): it reads
the view's pixels, not its points, and is snapped to the pyramid's lattice (the image covers a slightly larger
view, at up to 1.41 times the pixels per side), where it is datashader's picture of that view. Shading on the
server sends one RGBA image per view (1.4 MB at 700 x 500); ``rasterize`` would send one count image per class (ten
times that for ten classes) for the browser to colour.

The Inspect tab's plot (taps, the cursor, markers) is :class:`dashboard.inspector.views.LatentView`; the Explore and
Linked views tabs draw the same raster under their own overlays.
"""

from __future__ import annotations

from functools import partial

import colorcet as cc
import datashader as ds
import datashader.transfer_functions as tf
import holoviews as hv
import numpy as np
import param
from holoviews.operation.datashader import datashade, dynspread

from engine.render import PointIndex, aggregate_colors, color_key, index_frame, make_canvas, shade_colors
from engine.render.pyramid import Pyramid, aggregate_pyramid
from engine.settings import pyramid_mode

from .jobs import subscribe
from .shared import AGREES, DISAGREES
from .widgets import name_models

__all__ = ["CANVAS_OPTS", "FIXED_COLORS", "OUTPUT_BACKEND", "blank_plot", "category_colors", "embedding_raster",
           "plot_options", "plot_tools", "shade_categories"]

#: Colours of categories that mean something in themselves: the probe's disagreements stand out in red.
FIXED_COLORS = {AGREES: "#c3c8d1", DISAGREES: "#d62728"}


def category_colors(names) -> list[str]:
    """The engine's colour of each category (:func:`engine.render.color_key`), so that the dashboard and the
    PNGs of ``latent-inspector render`` agree; the probe's agree/disagree categories in grey and red."""
    if set(map(str, names)) <= set(FIXED_COLORS):
        return [FIXED_COLORS[str(n)] for n in names]
    key = color_key(names)
    return [key[str(n)] for n in names]


class shade_categories(datashade):
    """``datashade`` of categorical ``hv.Points`` through the engine's per-view path, then ``dynspread``.

    Everything HoloViews does around the pixels is ``datashade``'s (its streams re-run it on every pan, zoom and
    resize, its pipeline gives the legend, its parameters ``color_key``, ``cnorm``, ``min_alpha`` apply); the
    pixels are :func:`engine.render.shade_colors` of :func:`engine.render.aggregate_colors`, the same as stock
    ``datashade`` with ``count_cat``. Spreading (``max_px``, ``threshold``: HoloViews' ``dynspread`` parameters)
    is ``tf.dynspread`` on the packed image, which spares ``dynspread``'s round trip through an RGB element (about
    40 ms per view at 800 x 800) and gives the same pixels. Anything else (another aggregator or element, no colour
    dict, a ``cnorm`` function or fixed ``clims``) goes to ``datashade`` and ``dynspread`` themselves.
    """

    index = param.ClassSelector(class_=PointIndex, default=None, instantiate=False,
                                doc="The points, indexed once (Inspection.point_index); indexed on every call "
                                "when not given")
    pyramid = param.Parameter(default=None, instantiate=False,
                              doc="The points' counts at every resolution (Inspection.pyramid), or a function "
                              "returning them or None (not ready yet): a view it can serve is drawn from it, snapped "
                              "to its lattice, without reading the points")
    max_px = param.Integer(default=0, bounds=(0, None), doc="dynspread: at most this many pixels per side (0: none)")
    threshold = param.Number(default=0.5, bounds=(0, 1), doc="dynspread: stop at this fraction of adjacent pixels")

    def _process(self, element, key=None):
        agg = self._get_aggregator(element, self.p.aggregator)
        column = getattr(agg, "cat_column", None) or (agg.column if isinstance(agg, ds.count_cat) else None)
        supported = self.p.cnorm in ("eq_hist", "log", "cbrt", "linear") and not self.p.clims
        x, y = element.kdims[:2]
        sampled, given = element, self.p.index
        if given is not None and len(given) and not (self.p.x_range and self.p.y_range):
            # A session's first view (no range from a pan yet) spans the drawn points: their extent is the index's,
            # not two passes of HoloViews over the table's x and y (half a second at 100 million points), and the
            # rows the plot does not draw (non-finite, no class) do not widen it. Only the sampling sees it: a
            # dimension range on the plotted element would become the overlay's, and the layers drawn over it
            # (a selection's density) would keep their first picture.
            bx0, bx1, by0, by1 = given.bounds
            sampled = element.clone(kdims=[x.clone(range=(bx0, bx1)), y.clone(range=(by0, by1)), *element.kdims[2:]])
        (x_range, y_range), _, (width, height), _ = self._get_sampling(sampled, x, y)
        if not (isinstance(element, hv.Points) and column and isinstance(self.p.color_key, dict) and supported
                and width and height):
            rgb = super()._process(element, key)
            if self.p.max_px:
                rgb = dynspread(rgb, max_px=self.p.max_px, threshold=self.p.threshold, dynamic=False)
            return rgb
        pyramid = self.p.pyramid() if callable(self.p.pyramid) else self.p.pyramid
        index = self.p.index if self.p.index is not None else index_frame(element.data, column)
        if isinstance(pyramid, Pyramid):  # (with no index to weigh against, every view it can serve)
            view = pyramid.serves(x_range, y_range, width, height, None if pyramid_mode() == "always" else index)
        else:
            view = None
        if view is not None:  # zoomed out over many points: pixels from the pyramid, the view snapped to its lattice
            agg = aggregate_pyramid(pyramid, view, colors=self.p.color_key)
            x_range, y_range, width, height = view.x_range, view.y_range, view.width, view.height
        else:
            canvas = make_canvas(width=width, height=height, x_range=x_range, y_range=y_range)
            agg = aggregate_colors(index, canvas=canvas, colors=self.p.color_key)
        img = shade_colors(agg, how=self.p.cnorm, min_alpha=self.p.min_alpha, alpha=self.p.alpha,
                           rescale_discrete_levels=self.p.rescale_discrete_levels)
        if self.p.max_px:
            img = tf.dynspread(img, threshold=self.p.threshold, max_px=self.p.max_px)
        rgba = np.flipud(img.data.view(np.uint8).reshape(height, width, 4))  # first row at the top, as hv.RGB
        (x0, x1), (y0, y1) = x_range, y_range
        return hv.RGB(rgba, bounds=(x0, y0, x1, y1), kdims=[x, y], vdims=hv.RGB.vdims[:], label=element.label)


def embedding_raster(points, color_by="label", spread=3, inspection=None):
    """The embedding table ``points`` (columns x, y and categories) shaded on the server: by the category
    ``color_by`` in the engine's colours with a legend (:class:`shade_categories`), or by density when the table has
    no such column; isolated pixels grown by up to ``spread`` pixels (a number or a parameter to follow). The table's
    point index is ``inspection``'s (built once per table), else made here. Every latent plot of the dashboard is
    drawn by it."""
    by = color_by if color_by in points.columns else None
    element = hv.Points(points, ["x", "y"], [c for c in ("label", "prediction") if c in points.columns])
    if by is None:
        raster = datashade(element, aggregator=ds.count(), cmap=cc.kbc[::-1][40:], cnorm="eq_hist")
        return dynspread(raster, threshold=0.5, max_px=spread)
    names = list(points[by].cat.categories)
    colors = dict(zip(names, category_colors(names)))
    index = inspection.point_index(points, by) if inspection is not None else index_frame(points, by)
    # the pyramid from the first view it is ready for (built in the background: the first picture does not wait)
    pyramid = None if inspection is None else partial(inspection.pyramid, points, by, wait=False)
    raster = shade_categories(element, aggregator=ds.by(by, ds.count()), color_key=colors, min_alpha=90,
                              index=index, pyramid=pyramid, threshold=0.5, max_px=spread)
    return raster.opts(show_legend=True, legend_position="right", legend_opts={"label_text_font_size": "9pt"})


def blank_plot():
    """What a latent plot shows before its points exist: an empty frame without axes or tools."""
    return hv.Points([]).opts(responsive=True, xaxis=None, yaxis=None, toolbar=None)


def click_streams(on_click, state=None) -> tuple:
    """The streams of clicks on a latent plot, each calling ``on_click(x=, y=)`` in data coordinates: Tap, and
    PressUp. BokehJS calls a button held still past 300 ms a press, not a tap (``UIGestures.press_threshold``), and
    sends no tap for it: a slow click, or a quick one on a loaded machine whose button-up event comes late, decodes
    through its press-up. Both are transient (x and y go back to None): set each one's ``source`` to the plot. A
    click whose ``on_click`` fails shows the error as ``state``'s (:func:`dashboard.jobs.subscribe`), and the next
    click is handled."""
    streams = (hv.streams.Tap(x=None, y=None, transient=True), hv.streams.PressUp(x=None, y=None, transient=True))
    for stream in streams:
        subscribe(stream, on_click, state)
    return streams


def plot_tools(*tools, active=("pan",)) -> dict:
    """The tool options of a latent plot: pan, box zoom, reset, save, ``tools``, and a wheel zoom that acts only
    with the Ctrl key held, so that the mouse wheel over the plot scrolls the page to the cards below it (a plain
    wheel zoom would zoom the axes instead). ``active`` names the tools active from the start (the wheel zoom
    always is: it waits for Ctrl). A Bokeh tool belongs to one figure, so each call makes its own."""
    from bokeh.models import WheelZoomTool

    wheel = WheelZoomTool(modifiers={"ctrl": True}, description="Wheel zoom (hold Ctrl)")
    # (HoloViews activates tools named in active_tools, not tool objects: plot_options' hook activates this one)
    return dict(default_tools=["pan", "box_zoom", "reset", "save"], tools=[*tools, wheel], active_tools=[*active])


def _activate_ctrl_wheel(plot, element):
    """Make the Ctrl wheel zoom of :func:`plot_tools` the figure's active scroll tool (it acts only with Ctrl)."""
    from bokeh.models import WheelZoomTool

    figure = plot.state
    wheel = next((t for t in figure.tools if isinstance(t, WheelZoomTool) and t.modifiers), None)
    if wheel is not None:
        figure.toolbar.active_scroll = wheel


#: Bokeh's output backend of the latent plot, shaded or glyphs. MNIST's 10,000 points as glyphs, 2 cores, headless
#: Chromium (software GL), 4 pages each, two runs alternated: a pan step (the view moved, two animation frames) took
#: 141 / 148 ms median on WebGL, 46 / 52 ms on canvas; a page load cost Chromium 4.7-5.3 CPU-s against 3.5-4.4, and
#: showed its cards 4.0-4.5 s after the navigation against 3.2-4.0 s. The datashaded plot at 1M points (656c5ef):
#: the page busy 3.0-4.5 s after its plot showed on WebGL, 1.7-2.7 s on canvas.
OUTPUT_BACKEND = "canvas"
#: The figure options that draw a latent plot as the dashboard does: on :data:`OUTPUT_BACKEND`, with Bokeh's level of
#: detail off. With it on (Bokeh's default, over 2,000 glyphs), a canvas draws a drag of the glyph plot as every tenth
#: point in grey and repaints them all in colour 500 ms after: 10,000 glyphs drawn whole take ~50 ms a pan step here.
CANVAS_OPTS = {"plot.output_backend": OUTPUT_BACKEND, "plot.lod_threshold": None}


def plot_options(title: str, method: str, name: str, *hooks) -> dict:
    """The options of a latent plot: ``title``, the axes named after the reducer ``method``, the toolbar above
    (hidden until the pointer comes), and the Bokeh figure named ``name`` (plus further plot ``hooks``).

    The figure is drawn on a plain canvas (:data:`OUTPUT_BACKEND`), never WebGL. A plot shaded on the server is an
    image with a few markers over it, which WebGL draws no faster; the glyph plot has at most
    :data:`dashboard.glyphs.GLYPH_LIMIT` points, which a canvas draws as fast. And Bokeh copies a WebGL figure onto
    its canvas on every repaint: the page repaints its whole layout as each card below the first screen arrives, and
    a browser without a GPU (headless, a remote desktop) reads the pixels back from software GL each time."""
    from engine.reduce.names import method_label

    name_of = method_label(method)  # "t-SNE 1", as the reducer's button says, not "tsne 1"
    return dict(responsive=True, title=title, xlabel=f"{name_of} 1", ylabel=f"{name_of} 2", toolbar="above",
                backend_opts={"plot.toolbar.autohide": True, **CANVAS_OPTS},
                hooks=[name_models(name), _activate_ctrl_wheel, *hooks])
