"""The latent-space view: the embedding shaded by Datashader, tap and pointer streams, markers over the raster.

The embedding is an ``hv.Points`` element shaded on the server with the engine's colours, re-aggregated by
HoloViews on every zoom, pan or resize (``RangeXY``/``PlotSize`` streams), so ten million points cost one screen of
pixels; ``dynspread`` grows isolated pixels so sparse regions stay visible. Coloured by a category, the plot is
:class:`shade_categories`: HoloViews' ``datashade`` with ``ds.by(label, ds.count())`` (its streams, legend and
options), whose pixels come from the engine's per-view path (:func:`engine.render.aggregate_colors` and
:func:`~engine.render.shade_colors` over a :class:`~engine.render.PointIndex` built once per embedding): the same
image as datashader's ``count_cat`` and ``tf.shade``, about five times faster at ten million points. Shading on the
server sends one RGBA image per view (1.4 MB at 700 x 500); ``rasterize`` would send one count image per class (ten
times that for ten classes) for the browser to colour.
The sample nearest to the cursor, with its label and a thumbnail of its input, is shown beside the plot by
:class:`dashboard.output.CursorView`.

A ``Tap`` stream decodes where the user clicks; a ``PointerXY`` stream reports the cursor (nearest sample, and live
decoding when enabled). HoloViews coalesces the pointer events that arrive while one is being handled, so the
server never queues more than one decode per plot: that is the throttle. Markers for the decoded, saved and
current points are drawn over the raster.
"""

from __future__ import annotations

import threading
import weakref

import colorcet as cc
import datashader as ds
import datashader.transfer_functions as tf
import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource
from holoviews.operation.datashader import datashade, dynspread

from engine.render import PointIndex, aggregate_colors, color_key, index_frame, make_canvas, shade_colors

from .push import push
from .sample import name_models, weakly
from .state import AGREES, DISAGREES, Inspector

#: How long after the decoded image the markers follow (see ``_update_markers``).
MARKER_DELAY_MS = 40


#: Colours of categories that mean something in themselves: the probe's disagreements stand out in red.
FIXED_COLORS = {AGREES: "#c3c8d1", DISAGREES: "#d62728"}


def category_colors(names) -> list[str]:
    """The engine's colour of each category (:func:`engine.render.color_key`), so that the dashboard and the
    PNGs of ``latent-inspector render`` agree; the probe's agree/disagree categories in grey and red."""
    if set(map(str, names)) <= set(FIXED_COLORS):
        return [FIXED_COLORS[str(n)] for n in names]
    key = color_key(names)
    return [key[str(n)] for n in names]


_INDEXES: dict[tuple[int, str], PointIndex] = {}
_INDEXES_LOCK = threading.Lock()


def point_index(points, by: str) -> PointIndex:
    """The engine's :class:`~engine.render.PointIndex` of the plot's table ``points`` coloured by ``by``: built once
    per table and process (the store shares one table between sessions), dropped with the table."""
    key = (id(points), by)
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = index_frame(points, by)
            weakref.finalize(points, _INDEXES.pop, key, None)
    return index


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
                                doc="The points, indexed once (point_index); built here when not given")
    max_px = param.Integer(default=0, bounds=(0, None), doc="dynspread: at most this many pixels per side (0: none)")
    threshold = param.Number(default=0.5, bounds=(0, 1), doc="dynspread: stop at this fraction of adjacent pixels")

    def _process(self, element, key=None):
        agg = self._get_aggregator(element, self.p.aggregator)
        column = getattr(agg, "cat_column", None) or (agg.column if isinstance(agg, ds.count_cat) else None)
        supported = self.p.cnorm in ("eq_hist", "log", "cbrt", "linear") and not self.p.clims
        x, y = element.kdims[:2]
        (x_range, y_range), _, (width, height), _ = self._get_sampling(element, x, y)
        if not (isinstance(element, hv.Points) and column and isinstance(self.p.color_key, dict) and supported
                and width and height):
            rgb = super()._process(element, key)
            if self.p.max_px:
                rgb = dynspread(rgb, max_px=self.p.max_px, threshold=self.p.threshold, dynamic=False)
            return rgb
        index = self.p.index if self.p.index is not None else point_index(element.data, column)
        canvas = make_canvas(width=width, height=height, x_range=x_range, y_range=y_range)
        img = shade_colors(aggregate_colors(index, canvas=canvas, colors=self.p.color_key), how=self.p.cnorm,
                           min_alpha=self.p.min_alpha, alpha=self.p.alpha,
                           rescale_discrete_levels=self.p.rescale_discrete_levels)
        if self.p.max_px:
            img = tf.dynspread(img, threshold=self.p.threshold, max_px=self.p.max_px)
        rgba = np.flipud(img.data.view(np.uint8).reshape(height, width, 4))  # first row at the top, as hv.RGB
        (x0, x1), (y0, y1) = x_range, y_range
        return hv.RGB(rgba, bounds=(x0, y0, x1, y1), kdims=[x, y], vdims=hv.RGB.vdims[:], label=element.label)


def embedding_raster(points, color_by="label", spread=3):
    """The embedding table ``points`` (columns x, y and categories) shaded on the server: by the category
    ``color_by`` in the engine's colours with a legend (:class:`shade_categories`), or by density when the table has
    no such column; isolated pixels grown by up to ``spread`` pixels (a number or a parameter to follow). Every latent
    plot of the dashboard is drawn by it."""
    by = color_by if color_by in points.columns else None
    element = hv.Points(points, ["x", "y"], [c for c in ("label", "prediction") if c in points.columns])
    if by is None:
        raster = datashade(element, aggregator=ds.count(), cmap=cc.kbc[::-1][40:], cnorm="eq_hist")
        return dynspread(raster, threshold=0.5, max_px=spread)
    names = list(points[by].cat.categories)
    colors = dict(zip(names, category_colors(names)))
    raster = shade_categories(element, aggregator=ds.by(by, ds.count()), color_key=colors, min_alpha=90,
                              index=point_index(points, by), threshold=0.5, max_px=spread)
    return raster.opts(show_legend=True, legend_position="right", legend_opts={"label_text_font_size": "9pt"})


class LatentView(pn.viewable.Viewer):
    """The 2-D embedding with its legend, the decode markers, and the tap and pointer streams.

    Parameters
    ----------
    store : Inspector

    Example
    -------
    >>> view = LatentView(store=store)                       # doctest: +SKIP
    >>> view.tap.event(x=0.5, y=-1.0); store.decode.xy       # doctest: +SKIP
    """

    store = param.ClassSelector(class_=Inspector)

    def __init__(self, **params):
        super().__init__(**params)
        self.tap = hv.streams.Tap(x=None, y=None, transient=True)
        self.pointer = hv.streams.PointerXY(x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self.pointer.add_subscriber(self._on_pointer)
        self._marker_sources: list[ColumnDataSource] = []
        # after the decoded output (precedence 0) has been drawn: the image is what the user waits for
        self.store.param.watch(self._update_markers, ["decode", "history", "saved"], precedence=10)
        self._pane = pn.pane.HoloViews(
            pn.bind(self._plot, self.store.param.points, self.store.param.color_by),
            sizing_mode="stretch_both", min_height=420, linked_axes=False, css_classes=["latent-plot"],
        )

    # -- streams --------------------------------------------------------------------------------------------------

    def _on_tap(self, x=None, y=None):
        if x is not None and y is not None:
            self.store.decode_at(x, y)

    def _on_pointer(self, x=None, y=None):
        if x is not None and y is not None:
            self.store.hover_at(x, y)

    # -- elements -------------------------------------------------------------------------------------------------

    def _plot(self, points, color_by):
        if points is None:
            return hv.Points([]).opts(responsive=True, xaxis=None, yaxis=None, toolbar=None)
        store = self.store
        raster = embedding_raster(points, color_by, store.param.spread)
        # What is under the cursor (nearest sample, its label and input) comes from the pointer stream, not a
        # tooltip. No TapTool: the Tap stream needs none, and a TapTool sends a selection to the server per click.
        raster = raster.opts(tools=["crosshair"], active_tools=["wheel_zoom"])
        self.tap.source = raster
        self.pointer.source = raster
        method = store.inspection.method if hasattr(store.inspection, "method") else store.method
        title = f"{store.project} · {store.layer} · {method.upper()} · {len(points):,} points"
        return raster.opts(
            responsive=True, padding=0.08, title=title, xlabel=f"{method} 1", ylabel=f"{method} 2", toolbar="above",
            backend_opts={"plot.toolbar.autohide": True},
            hooks=[name_models("latent-figure"), weakly(self._add_markers)],
        )

    # -- markers --------------------------------------------------------------------------------------------------
    # Tapped, saved and current points are one Bokeh scatter renderer added to the figure by a hook and updated in
    # place (dashboard.push): as a HoloViews layer of the overlay, every tap would also re-render the raster.

    def marker_data(self) -> dict:
        """Columns of the markers: the history (small rings), saved points (stars), the current point (ring+cross)."""
        rows = [(d.xy, "circle", 9, "white", 0.6, "black", 1.2) for d in self.store.history]
        rows += [(d.xy, "star", 16, "#d62728", 1.0, "white", 1.0) for d in self.store.saved]
        if self.store.decode is not None:
            rows += [(self.store.decode.xy, "circle", 20, "white", 0.0, "black", 2.5),
                     (self.store.decode.xy, "cross", 20, "white", 1.0, "black", 1.5)]
        names = ("marker", "size", "fill", "alpha", "line", "width")
        data = {"x": [float(r[0][0]) for r in rows], "y": [float(r[0][1]) for r in rows]}
        data.update({name: [r[i + 1] for r in rows] for i, name in enumerate(names)})
        return data

    def _add_markers(self, plot, element):
        figure = plot.state
        if any(r.name == "decode-markers" for r in figure.renderers):
            return
        source = ColumnDataSource(self.marker_data(), name="decode-markers-source")
        figure.scatter("x", "y", source=source, marker="marker", size="size", fill_color="fill", fill_alpha="alpha",
                       line_color="line", line_width="width", name="decode-markers")
        self._marker_sources = [source]  # the current figure's: an older figure has left the page

    def _update_markers(self, *_):
        data = self.marker_data()
        for source in self._marker_sources:
            # Repainting the latent plot (its full-size raster) costs the browser ~35 ms: done two frames after the
            # decoded image, which is what the user waits for, it no longer delays that image.
            push(source, data, delay_ms=MARKER_DELAY_MS)

    def __panel__(self):
        return self._pane
