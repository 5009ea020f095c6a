"""The Inspect tab's views: the latent plot to tap and hover, the decoded output with its trust, the sample under
the cursor, and the history strip.

:class:`LatentView` is the embedding (as glyphs drawn by the browser below :data:`dashboard.glyphs.GLYPH_LIMIT`
points, :func:`dashboard.glyphs.embedding_glyphs`; else :func:`dashboard.latent.embedding_raster`, shaded on the
server) with a ``Tap`` stream that decodes where the user clicks and a ``PointerXY`` stream that reports the cursor
(nearest sample, and live decoding when enabled). HoloViews coalesces the pointer events that arrive while one is
being handled, so the server never queues more than one decode per plot: that is the throttle. Markers for the
decoded, saved and current points are drawn over the points. :class:`OutputView` draws the current decode as the
project's ``[output_view]`` says and, beside it, the engine's trust measures for that point. :class:`CursorView` names
the sample nearest to the cursor and draws its input. :class:`HistoryView` is the strip of the last decodes, each
clickable to show that decode again.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from functools import partial
from types import SimpleNamespace

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import BoxSelectTool, ColumnDataSource, LassoSelectTool

from engine.reduce.names import method_label
from engine.render.samples import view_shape

from .. import sample
from ..datasets.state import Datasets
from ..glyphs import draws_glyphs, embedding_glyphs, glyph_legend, glyph_size
from ..jobs import guarded, subscribe
from ..landscape.views import MapLayerView
from ..latent import blank_plot, category_colors, click_streams, embedding_raster, plot_options, plot_tools
from ..push import Live, document_of, later, push
from ..search.state import Search
from ..selection.state import Selection
from ..tooltip import PointerTip
from ..widgets import ACCENT, HistoryStrip, View, name_models, weakly
from .state import Inspector

__all__ = ["CursorView", "HistoryView", "InspectorView", "LatentView", "OutputView", "PictureStatus", "picture_banner",
           "trust_rows", "verdict_html"]

#: How long after the decoded image the markers follow (see ``LatentView._update_markers``).
MARKER_DELAY_MS = 40
#: How long after the decoded image its trust table follows: the image is what the user waits for, and the table's
#: layout in the browser (a few ms to tens of ms) would otherwise come before the image's first painted frame.
TRUST_DELAY_MS = 40
#: The cursor's sample is looked up and drawn this much later than its pointer event is handled, on the event loop.
#: A click sends the pointer's move just before its tap, and HoloViews handles each some 10-15 ms after it came; the
#: move's two thumbnails and cards (about 10 ms here) then ran first and delayed the tap's decode by as much.
#: Delayed, they come after a tap sent with them. (Scheduled at once, they still ran first about half the time:
#: HoloViews hands a tap to its subscribers a few turns of the event loop after its wait.) Not in live mode, where
#: the cursor's own decode is what the user waits for.
HOVER_DELAY_MS = 20
#: Set by the browser tests: the output view then also carries the decoded values (base64 float32) in a hidden
#: element, so that a test can compare them with the engine's decode in its own process.
PROBE_ENV = "LATENT_INSPECTOR_PROBE"

TRUST_CSS = """
:host table th { text-align: left; padding-right: 1em; font-weight: 500; color: #555; }
:host table { font-size: 13px; }
:host .verdict { border-radius: 4px; padding: 5px 10px; margin-bottom: 6px; border: 1px solid; }
:host .verdict small { display: block; color: inherit; opacity: 0.9; }
:host .level-0 { background: #e8f5e9; border-color: #a5d6a7; color: #1b5e20; }
:host .level-1 { background: #f1f8e9; border-color: #c5e1a5; color: #33691e; }
:host .level-2 { background: #fff3cd; border-color: #ffe69c; color: #664d03; }
:host .level-3 { background: #f8d7da; border-color: #f1aeb5; color: #842029; }
"""
OTHERS_CSS = """
:host .other-outputs-row { display: flex; gap: 10px; align-items: flex-end; flex-wrap: wrap; color: #555; }
:host figure { margin: 0; text-align: center; font-size: 12px; }
:host img { border: 1px solid #e3e7ef; image-rendering: pixelated; }
"""
CURSOR_CSS = """
:host .cursor { display: flex; gap: 12px; align-items: flex-start; }
:host .cursor img { image-rendering: pixelated; border: 1px solid #e3e7ef; }
:host .text { line-height: 1.5; }
"""


class InspectorView(View):
    """A view of the Inspect tab's state."""

    store = param.ClassSelector(class_=Inspector, doc="The session's choices and inspection")


class LatentView(InspectorView):
    """The 2-D embedding with its legend, the decode markers, and the tap and pointer streams.

    A table of fewer than :data:`dashboard.glyphs.GLYPH_LIMIT` points coloured by a category is drawn as glyphs by
    the browser (pan and zoom wait for no server); a larger one, or one coloured by density, is shaded on the server
    for each view. Box and lasso select (picked from the toolbar; pan stays the tool active at first, so a tap
    decodes) select samples into :attr:`selection`; the search's matches and the selection are drawn over the points,
    the others dimmed (hidden with the search's *Show only matches*). :attr:`tip` is the hover preview: the nearest
    sample's input and label in a box at the cursor (placed by the page anywhere: it follows the pointer by itself).

    Parameters
    ----------
    store : Inspector
    datasets : Datasets, optional
        Its saved records that lie on the plot are drawn as stars.
    search : Search, optional
        Its matches are highlighted.
    selection : Selection, optional
        What the box and lasso select; highlighted.

    Example
    -------
    >>> view = LatentView(store=store)                       # doctest: +SKIP
    >>> view.tap.event(x=0.5, y=-1.0); store.decode.xy       # doctest: +SKIP
    """

    datasets = param.ClassSelector(class_=Datasets, default=None, allow_None=True,
                                   doc="The generated datasets: the saved records on this plot are marked")
    search = param.ClassSelector(class_=Search, default=None, allow_None=True, doc="The search: its matches are "
                                 "highlighted")
    selection = param.ClassSelector(class_=Selection, default=None, allow_None=True, doc="The samples selected by "
                                    "the box and lasso tools: highlighted")
    map_layer = param.ClassSelector(class_=MapLayerView, default=None, allow_None=True, doc="The map layer drawn "
                                    "under the points (dashboard.landscape), told the plot's view")
    overlays = param.List(default=[], doc="More plot hooks (plot, element) adding renderers over the points: the "
                          "refine handle (dashboard.refine)")
    drawn = param.Parameter(default=None, doc="(table, colouring, title, inspection) the figure draws: the store's, "
                            "changed only when the picture would change (a table that gains a column draws the same "
                            "figure)")

    def __init__(self, **params):
        super().__init__(**params)
        self.tap, self.press = click_streams(self._on_tap, self.store)
        self.pointer = hv.streams.PointerXY(x=None, y=None)
        self.range = hv.streams.RangeXY()  # the view range, which the page's address keeps (dashboard.urlstate)
        subscribe(self.range, self._on_range, self.store)
        self.size = hv.streams.PlotSize()  # with the range: the view a map layer covers, and its resolution
        subscribe(self.range, self._on_view, self.store)
        subscribe(self.size, self._on_view, self.store)
        subscribe(self.pointer, self._on_pointer, self.store)
        self._markers = Live()  # the current figure's marker source
        self._glyph_renderers: list = []  # the glyph plot's points (none while the plot is datashaded)
        self.store.param.watch(self._resize_glyphs, "spread")
        # after the decoded output (precedence 0) has been drawn: the image is what the user waits for
        self.store.param.watch(self._update_markers, ["decode", "history"], precedence=10)
        if self.datasets is not None:
            self.datasets.param.watch(self._update_markers, "saved", precedence=10)
        # -- selection, highlights and the hover preview (issue 17) --
        self.box = hv.streams.BoundsXY(bounds=None)
        self.lasso = hv.streams.Lasso(geometry=None)
        subscribe(self.box, self._on_box, self.store)
        subscribe(self.lasso, self._on_lasso, self.store)
        self._highlights = Live()  # the current figure's cover, search and selection sources
        if self.search is not None:
            self.search.param.watch(self._update_highlights, ["matches", "isolate"])
        if self.selection is not None:
            self.selection.param.watch(self._update_highlights, "ids")
        self.tip = PointerTip(figure="latent-figure", width=0, height=0, margin=0)
        self.store.param.watch(self._show_tip, "hovered")
        self.drawn = self._drawing()
        self.store.param.watch(self._redraw, ["points", "color_by"])  # with them, the title and inspection they go with
        self._pane = pn.pane.HoloViews(
            pn.bind(lambda drawn: self._plot(*drawn[:2]), self.param.drawn),
            sizing_mode="stretch_both", min_height=420, linked_axes=False, css_classes=["latent-plot"],
        )

    # -- streams --------------------------------------------------------------------------------------------------

    def _on_tap(self, x=None, y=None):
        if x is not None and y is not None:
            self.store.decode_at(x, y)

    def _on_range(self, x_range=None, y_range=None):
        view = self.store.view
        if view is None or x_range is None or y_range is None:
            return
        span = max(view[1] - view[0], view[3] - view[2])
        if max(abs(a - b) for a, b in zip((*x_range, *y_range), view)) > 1e-6 * span:
            self.store.view = None  # the user moved it: the link's view has served

    def _on_view(self, **_):
        r, size = self.range, self.size
        if self.map_layer is None or r.x_range is None or r.y_range is None or not size.width or not size.height:
            return
        view = (tuple(r.x_range), tuple(r.y_range), int(size.width), int(size.height))
        if view != self.map_layer.store.view:
            self.map_layer.store.view = view

    def _on_pointer(self, x=None, y=None):
        if x is None or y is None:
            return
        if self.store.live:  # the decode under the cursor is what the user waits for: at once
            self.store.hover_at(x, y)
        else:
            later(partial(guarded(self.store.hover_at, self.store, "PointerXY"), x, y), HOVER_DELAY_MS)

    def _on_box(self, bounds=None):
        if bounds is not None and self.selection is not None:
            x0, y0, x1, y1 = bounds
            self.selection.select_box(x0, x1, y0, y1)

    def _on_lasso(self, geometry=None):
        if geometry is not None and self.selection is not None:
            self.selection.select_lasso(geometry)

    # -- elements -------------------------------------------------------------------------------------------------

    def _drawing(self) -> tuple:
        store = self.store
        return store.points, store.color_by, store.shown, store.inspection

    def _redraw(self, *_):
        """A new figure only when the picture changes (its points, colouring, title or inspection): a figure replaced
        in the page drops the taps made on the old one meanwhile (a probe trained, which adds its predictions to the
        table, lost a tap so in CI)."""
        old, new = self.drawn, self._drawing()
        if old[2] != new[2] or old[3] is not new[3] or not same_picture(old[:2], new[:2]):
            self.drawn = new

    def _plot(self, points, color_by):
        if points is None:
            return blank_plot()
        store = self.store
        # A small table is drawn by the browser, every point a glyph (pan and zoom wait for no server); a larger one,
        # or a plot coloured by density, is shaded on the server for each view (dashboard.glyphs.GLYPH_LIMIT).
        glyphs = draws_glyphs(points, color_by)
        if glyphs:
            plot = embedding_glyphs(points, color_by, store.spread)
        else:
            plot = embedding_raster(points, color_by, store.param.spread, store.inspection)
        self._glyph_renderers = []
        # What is under the cursor (nearest sample, its label and input) comes from the pointer stream, not a
        # tooltip. No TapTool: the Tap stream needs none, and a TapTool sends a selection to the server per click.
        # Box and lasso select tools select no renderer (they would dim the markers, and select the glyphs): their
        # geometry reaches the selection through the BoundsXY and Lasso streams.
        selects = (BoxSelectTool(renderers=[], description="Box select: select samples"),
                   LassoSelectTool(renderers=[], description="Lasso select: select samples"))
        plot = plot.opts(**plot_tools("crosshair", *selects))
        self.tap.source = self.press.source = plot
        self.pointer.source = plot
        self.range.source = plot
        self.size.source = plot
        self.box.source = plot
        self.lasso.source = plot
        if store.view is not None and not store.moving:  # a link's view, until the user moves it
            x0, x1, y0, y1 = store.view
            plot = plot.opts(xlim=(x0, x1), ylim=(y0, y1))
        method = store.method if store.moving else getattr(store.inspection, "method", store.method)
        title = f"{store.project} · {store.layer} · {store.shown or method_label(method)} · {len(points):,} points"
        under = [weakly(self.map_layer.add_to_plot)] if self.map_layer is not None else []
        kept = [glyph_legend, weakly(self._keep_glyphs)] if glyphs else []
        more = [weakly(hook) for hook in self.overlays]
        return plot.opts(padding=0.08, **plot_options(title, method, "latent-figure", *under, *kept,
                                                      weakly(self._add_highlights), *more, weakly(self._add_markers)))

    def _keep_glyphs(self, plot, element):
        """Plot hook of the glyph plot: its points' renderer, resized in place when the point size changes."""
        self._glyph_renderers = [plot.handles["glyph_renderer"]]  # the current figure's: an older one left the page

    def _resize_glyphs(self, event):
        size = glyph_size(event.new)
        for renderer in self._glyph_renderers:
            with pn.io.unlocked():
                for glyph in (renderer.glyph, renderer.selection_glyph, renderer.nonselection_glyph,
                              renderer.hover_glyph, renderer.muted_glyph):
                    if hasattr(glyph, "size"):  # (unset ones are None or "auto")
                        glyph.size = size

    # -- highlights -----------------------------------------------------------------------------------------------
    # The search's matches and the selection are scatter renderers over a white cover that dims the points under it,
    # raster or glyphs alike (opaque when only the matches are shown), added by a hook under the markers and updated
    # in place (dashboard.push).

    #: Highlighted points drawn at most (an even subset of more).
    MAX_HIGHLIGHTS = 50_000

    def highlight_data(self, kind: str) -> dict:
        """Columns of the highlighted points of ``kind`` ("search" or "selection"): place and colour (the point's
        colour on the plot)."""
        state = self.search if kind == "search" else self.selection
        ids = None if state is None else (state.matches if kind == "search" else state.ids)
        points = self.store.points
        if ids is None or points is None or not len(ids) or int(ids[-1]) >= len(points):
            return {"x": [], "y": [], "color": []}
        ids = ids[:: -(-len(ids) // self.MAX_HIGHLIGHTS)]
        by = self.store.color_by if self.store.color_by in points.columns else None
        if by is not None:
            codes = points[by].cat.codes.to_numpy()[ids]
            colors = np.array(category_colors(list(points[by].cat.categories)) + [ACCENT], dtype=object)[codes]
        else:
            colors = np.full(len(ids), ACCENT, dtype=object)
        return {"x": points["x"].to_numpy()[ids], "y": points["y"].to_numpy()[ids], "color": colors}

    def cover_data(self) -> dict:
        """The cover dimming the points (raster or glyphs) while something is highlighted: a white rectangle far
        beyond the points, translucent, or opaque while the search shows only its matches."""
        search, selection, points = self.search, self.selection, self.store.points
        found = search is not None and search.matches is not None
        chosen = selection is not None and selection.ids is not None
        if points is None or not (found or chosen):
            return {"left": [], "right": [], "bottom": [], "top": [], "alpha": []}
        (x0, x1), (y0, y1) = ((float(points[c].min()), float(points[c].max())) for c in ("x", "y"))
        reach = 1000 * max(x1 - x0, y1 - y0, 1e-9)
        return {"left": [x0 - reach], "right": [x1 + reach], "bottom": [y0 - reach], "top": [y1 + reach],
                "alpha": [1.0 if found and search.isolate else 0.7]}

    def _add_highlights(self, plot, element):
        figure = plot.state
        if any(r.name == "context-cover" for r in figure.renderers):
            return

        def make():
            cover = ColumnDataSource(self.cover_data(), name="context-cover-source")
            figure.quad(left="left", right="right", bottom="bottom", top="top", source=cover, fill_color="white",
                        fill_alpha="alpha", line_alpha=0, name="context-cover")
            found = ColumnDataSource(self.highlight_data("search"), name="search-highlight-source")
            figure.scatter("x", "y", source=found, size=4, fill_color="color", line_color="#1f2a44",
                           line_width=0.5, name="search-highlight")
            chosen = ColumnDataSource(self.highlight_data("selection"), name="selection-highlight-source")
            figure.scatter("x", "y", source=chosen, size=6, fill_color="color", line_color="black", line_width=1.0,
                           name="selection-highlight")
            return {"cover": cover, "search": found, "selection": chosen}

        self._highlights.attach(make)

    def _update_highlights(self, *_):
        self._highlights.update(lambda name: self.cover_data() if name == "cover" else self.highlight_data(name))

    # -- hover preview --------------------------------------------------------------------------------------------

    def _show_tip(self, event):
        """The nearest sample's input and label in the box at the cursor (:class:`dashboard.tooltip.PointerTip`)."""
        hovered, project = event.new, self.store.project_obj
        if hovered is None or project is None:
            self.tip.content = ""
            return
        index, label = hovered["index"], hovered.get("label")
        spec = project.input_view
        image = "" if sample.custom_view(project, spec) is not None else (
            f"<img src='{sample.thumbnail_src(project.inputs()[index], spec, width=64, height=64)}' alt=''>")
        text = f"<b>sample {index:,}</b>" + (f"<br>label <b>{html.escape(str(label))}</b>" if label is not None else "")
        self.tip.content = (f"{image}<div class='hover-text' data-index='{index}' "
                            f"data-label='{html.escape(str(label or ''), quote=True)}'>{text}</div>")

    # -- markers --------------------------------------------------------------------------------------------------
    # Tapped, saved and current points are one Bokeh scatter renderer added to the figure by a hook and updated in
    # place (dashboard.push): as a HoloViews layer of the overlay, every tap would also re-render the raster. It is
    # drawn at Bokeh's "overlay" level, on the canvas layer above the plot's: a change of an overlay repaints that
    # layer alone, where a glyph-level renderer's change repaints the whole plot (the 10,000 glyphs of the mnist
    # project: 160-220 ms of Chromium's software rendering per tap here, a long task that delayed the next tap).

    def marker_data(self) -> dict:
        """Columns of the markers: the history (small rings), saved points (stars), the current point (ring+cross)."""
        store = self.store
        saved = self.datasets.saved if self.datasets is not None else []
        rows = [(d.xy, "circle", 9, "white", 0.6, "black", 1.2) for d in store.history]
        rows += [(d.xy, "star", 16, "#d62728", 1.0, "white", 1.0) for d in saved]
        if store.decode is not None:
            rows += [(store.decode.xy, "circle", 20, "white", 0.0, "black", 2.5),
                     (store.decode.xy, "cross", 20, "white", 1.0, "black", 1.5)]
        names = ("marker", "size", "fill", "alpha", "line", "width")
        data = {"x": [float(r[0][0]) for r in rows], "y": [float(r[0][1]) for r in rows]}
        data.update({name: [r[i + 1] for r in rows] for i, name in enumerate(names)})
        return data

    def _add_markers(self, plot, element):
        figure = plot.state
        if any(r.name == "decode-markers" for r in figure.renderers):
            return

        def make():
            source = ColumnDataSource(self.marker_data(), name="decode-markers-source")
            figure.scatter("x", "y", source=source, marker="marker", size="size", fill_color="fill",
                           fill_alpha="alpha", line_color="line", line_width="width", name="decode-markers",
                           level="overlay")
            return {"markers": source}  # the current figure's: an older figure has left the page

        self._markers.attach(make)

    def _update_markers(self, *_):
        # Two frames after the decoded image, which is what the user waits for.
        self._markers.update(lambda _: self.marker_data(), delay_ms=MARKER_DELAY_MS)

    def __panel__(self):
        return self._pane


PICTURE_CSS = """
:host { position: relative; }
:host(.stale) .latent-plot { opacity: 0.4; transition: opacity 0.3s; }
:host .picture-status { position: absolute; top: 34px; left: 50%; transform: translateX(-50%); z-index: 20;
                        max-width: 85%; }
:host .picture-status.refining { top: auto; bottom: 8px; max-width: 96%; }
"""
BANNER_CSS = """
:host .banner { background: rgba(255, 255, 255, 0.94); border: 1px solid #c9d3e6; border-radius: 6px;
                padding: 8px 14px; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.12); font-size: 13px; color: #24324d; }
:host .banner .bar { height: 4px; background: #e3e7ef; border-radius: 2px; margin-top: 6px; overflow: hidden; }
:host .banner .bar span { display: block; height: 100%; background: #3e5f9a; }
:host .banner .bar.unknown span { width: 30%; animation: slide 1.2s linear infinite; }
@keyframes slide { from { margin-left: -30%; } to { margin-left: 100%; } }
:host .banner.compact { padding: 2px 10px 3px; font-size: 11.5px; white-space: nowrap; overflow: hidden;
                        text-overflow: ellipsis; }
:host .banner.compact .bar { height: 3px; margin-top: 2px; }
"""


def same_picture(a: tuple, b: tuple) -> bool:
    """Whether two ``(table, colouring)`` pairs draw the same picture: the same colouring, and the same points (x, y)
    with the same values of the column it colours by. A table that only gained columns (a probe's predictions) draws
    what the other drew.

    Example
    -------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 0.0], "label": ["a", "b"]})
    >>> same_picture((t, "label"), (t.assign(probe=["b", "b"]), "label")), same_picture((t, "label"), (t, "none"))
    (True, False)
    """
    (ta, ca), (tb, cb) = a, b
    if ta is tb or ca != cb:
        return ta is tb and ca == cb
    if ta is None or tb is None or len(ta) != len(tb):
        return False
    columns = ["x", "y"] + [c for c in {ca} if c in ta or c in tb]
    return all(c in ta and c in tb and ta[c].equals(tb[c]) for c in columns)


def _bar(progress) -> str:
    """A progress bar: ``progress`` done (0 to 1), or a sliding one when the fraction is unknown (None)."""
    return (f"<div class='bar'><span style='width:{100 * progress:.0f}%'></span></div>" if progress is not None
            else "<div class='bar unknown'><span></span></div>")


def picture_banner(shown: str, pending: str, status: str, progress, moving: bool) -> str:
    """The banner over the latent plot while a picture is computed: what the plot shows meanwhile, what is being
    computed, its stage, percentage and the time left (the job's ``status``), as a bar; '' when nothing is."""
    if not pending:
        return ""
    stage = status.split(": ", 1)[1] if ": " in status else status
    if moving:  # the forming layout is what to look at: one line at its foot too
        return (f"<div class='banner compact' title='computing: {html.escape(pending)}'><b>{html.escape(shown)}</b> "
                f"· taps decode once the first picture is ready · {html.escape(stage)}{_bar(progress)}</div>")
    if shown.endswith("first picture"):  # the picture to look at: one line at its foot, over the axis' label
        return (f"<div class='banner compact' title='refining: {html.escape(pending)}'>showing the <b>"
                f"{html.escape(shown)}</b> (tap it) · refining: {html.escape(stage)}{_bar(progress)}</div>")
    elif shown:
        head = f"showing <b>{html.escape(shown)}</b> · computing <b>{html.escape(pending)}</b>"
    else:
        head = f"computing <b>{html.escape(pending)}</b>"
    return f"<div class='banner'>{head}<br><small>{html.escape(stage)}</small>{_bar(progress)}</div>"


class PictureStatus(InspectorView):
    """The latent plot with the progress of the picture being computed on top of it: what the plot shows
    meanwhile (dimmed while it is an older picture), the stage, a percentage and the time left.

    Parameters
    ----------
    store : Inspector
    plot : LatentView
    """

    plot = param.ClassSelector(class_=LatentView, doc="The latent plot the banner covers")

    def __init__(self, **params):
        super().__init__(**params)
        s = self.store.param
        self._banner = pn.pane.HTML(pn.bind(picture_banner, s.shown, s.pending, s.status, s.progress, s.moving),
                                    css_classes=["picture-status"], stylesheets=[BANNER_CSS], margin=0)
        self._layout = pn.Column(self.plot, self._banner, sizing_mode="stretch_both", margin=0,
                                 stylesheets=[PICTURE_CSS], css_classes=["picture"])
        self.store.param.watch(self._dim, ["pending", "moving", "shown"])

    def _dim(self, *_):
        """An older picture (another reducer's, or the first picture before the refined one) is dimmed. While the
        first picture is refined, or t-SNE's layout forms, it is the one to look at: the banner moves to its foot, off
        its top."""
        store = self.store
        first = bool(store.pending) and ("first picture" in store.shown or store.moving)
        stale = bool(store.pending) and bool(store.shown) and not first
        self._layout.css_classes = ["picture", "stale"] if stale else ["picture"]
        self._banner.css_classes = ["picture-status", "refining"] if first else ["picture-status"]

    def __panel__(self):
        return self._layout


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, np.ndarray) and value.size <= 4:
        return ", ".join(_fmt(v) for v in value.ravel())
    return html.escape(str(value))


def trust_rows(fields: dict) -> list[tuple[str, str]]:
    """(label, text) rows of the trust table: the engine's measures of one decode (``Trust.record``), in words."""
    rows, done = [], set()
    measures = (("distance", "relative_distance", "distance to data", "({} × the typical spacing)"),
                ("error", "relative_error", "round-trip error (est.)", "(relative {})"))
    for key, relative, name, words in measures:
        if key in fields:
            text = _fmt(fields[key])
            if relative in fields:
                text += " " + words.format(_fmt(fields[relative]))
            rows.append((name, text))
            done |= {key, relative}
    outside = {"outside_hull": "the convex hull", "outside_support": "the density support"}
    if any(key in fields for key in outside):
        where = [text for key, text in outside.items() if fields.get(key)]
        rows.append(("position", "outside " + " and ".join(where) if where
                     else "inside the data's convex hull and density support"))
        done |= set(outside)
    if "fold" in fields:
        rows.append(("map folding", f"decode moves {_fmt(fields['fold'])} × faster than on the map's median"))
        done.add("fold")
    done.add("out_of_bounds")
    rows += [(k.replace("_", " "), _fmt(v)) for k, v in fields.items() if k not in done]
    return rows


def verdict_html(fields: dict, inspection) -> str:
    """The engine's one-word verdict of a decode (:func:`engine.reduce.verdict.verdict`), what it means, and the
    measures that set it, as the banner above the trust table; with the map's quality report (Cons_d, class
    stability, held-out error) once ``inspection`` has computed it."""
    from engine.reduce.verdict import PENDING, typical_relative_error, verdict

    measured = getattr(getattr(inspection, "reducer", None), "trust_", None)
    # The report (Inspection.quality, a cached property) is computed last, on a worker: read it only once it is
    # there, never compute it here, or the tap would wait seconds for it.
    quality = None if inspection is None else getattr(inspection, "__dict__", {}).get("quality", PENDING)
    result = verdict(fields, typical_relative_error(measured), quality=quality)
    reasons = "; ".join(result.reasons[:2] + ((result.note,) if result.note else ()))
    return (f"<div class='verdict level-{result.level}' data-level='{result.level}'><b>{html.escape(result.words)}"
            f"</b> · {html.escape(result.meaning)}<small>{html.escape(reasons)}</small></div>")


class OutputView(InspectorView):
    """The decoded output at the current point, with its trust measures."""

    HINT = "<i>Tap anywhere in the plot, even far from the data, to decode that point.</i>"

    def __init__(self, **params):
        super().__init__(**params)
        self.plot = None  # the HoloViews object of the decoded output, once an inspection is ready
        self._decodes = 0
        self._values = os.environ.get(PROBE_ENV) == "1"
        # One element of fixed size, rewritten per decode: the trust measures never move the rest of the page.
        self._trust = pn.pane.HTML(self.HINT, margin=(0, 10), stylesheets=[TRUST_CSS], sizing_mode="stretch_width",
                                   height=250)
        self._probe = pn.pane.HTML("", visible=False, css_classes=["decode-probe-pane"], margin=0)
        self._image_source = self._image_spec = None
        self.store.param.watch(self._push_image, "decode")  # first: the image is what the user waits for
        # on the document these panes are in, whatever thread and context the decode came from
        self.store.param.watch(lambda e: later(partial(self._show_trust, e), TRUST_DELAY_MS,
                                               document_of(self._trust)), "decode", precedence=20)
        # last: after the image and the table have changed
        self.store.param.watch(lambda e: later(partial(self._update_probe, e), TRUST_DELAY_MS,
                                               document_of(self._probe, self._trust)), "decode", precedence=100)
        # A model with several outputs: the others, each drawn by its own view, small, under the one chosen.
        self._others = pn.pane.HTML("", visible=False, css_classes=["other-outputs"], margin=(0, 10),
                                    stylesheets=[OTHERS_CSS], sizing_mode="stretch_width")
        self.store.param.watch(self._show_others, "decode", precedence=10)
        # the quality report comes after the picture: the decode on show is judged again with it
        self.store.param.watch(self._quality_measured, "quality")
        self._layout = pn.Column(
            pn.bind(self._view, self.store.param.inspection, self.store.param.head),
            self._others, self._trust, self._probe,
            sizing_mode="stretch_both",
        )

    def _view(self, inspection, head):
        self._image_source = self._image_spec = None
        if inspection is None:
            return pn.pane.Markdown("*The decoded output appears here once the projection is ready.*")
        project = self.store.project_obj
        head = head if head in inspection.heads else inspection.heads[0]
        spec = project.output_views()[head]
        names = list(spec.class_names or []) if spec.kind == "probabilities" else self.store.class_names()
        shape = tuple(inspection.head_shape(head))
        custom = sample.custom_view(project, spec)
        if custom is not None:  # the project draws its outputs itself
            return pn.panel(pn.bind(lambda d: custom(d.output) if d is not None else None, self.store.param.decode),
                            sizing_mode="stretch_both")

        blank = sample.blank(spec, shape)
        kind, _ = view_shape(spec, blank)
        styles = sample.options(spec, blank, name="decoded-output")
        if kind == "image":
            # Built once by HoloViews, empty (transparent) and visible from the start; each decode is then pushed
            # into its source (see dashboard.push), and the colour bar follows the data in the browser.
            empty = sample.element(sample.blank(spec, shape, transparent=True), spec, names)
            empty = empty.redim.range(**{empty.vdims[0].name: (0.0, 1.0)})  # no range to compute from an empty image
            plot = empty.opts(*styles).opts(responsive=True, hooks=[name_models("decoded-output"),
                                                                     weakly(self._capture_image)])
            self._image_spec = spec
            self.plot = plot
            return pn.pane.HoloViews(plot, sizing_mode="stretch_both", min_height=200)

        def draw(decode):  # the same element type before the first decode, so the plot updates in place
            return sample.element(blank if decode is None else decode.output, spec, names)

        plot = self.plot = hv.DynamicMap(pn.bind(draw, self.store.param.decode)).opts(*styles).opts(
            framewise=True, responsive=True)
        # hidden until the first decode (a Column: toggling a HoloViews pane's own visibility upsets Panel 1.9)
        return pn.Column(pn.pane.HoloViews(plot, sizing_mode="stretch_both", min_height=200),
                         visible=self.store.param.decode.rx.is_not(None), sizing_mode="stretch_both")

    def _show_others(self, event):
        decode, inspection = event.new, self.store.inspection
        if decode is None or inspection is None or len(getattr(decode, "heads", {})) < 2:
            self._others.visible = False
            return
        views = self.store.project_obj.output_views()
        shown = self.store.head if self.store.head in decode.heads else inspection.heads[0]
        tiles = "".join(
            f"<figure><img src='{sample.thumbnail_src(value, views[name], width=96, height=72)}' "
            f"alt='output {html.escape(name)}'><figcaption>{html.escape(name)}</figcaption></figure>"
            for name, value in decode.heads.items() if name != shown)
        self._others.object = f"<div class='other-outputs-row'><span>other outputs:</span>{tiles}</div>"
        self._others.visible = True

    def _capture_image(self, plot, element):
        self._image_source = plot.handles["source"]
        mapper = plot.handles.get("color_mapper")
        if mapper is not None:
            mapper.update(low=None, high=None)
        if self.store.decode is not None:
            self._image_source.data = sample.image_data(self.store.decode.output, self._image_spec)

    def _push_image(self, event):
        if self._image_source is None or self._image_spec is None:
            return
        if event.new is not None:
            push(self._image_source, sample.image_data(event.new.output, self._image_spec))
        elif event.old is not None:  # the markers were cleared: so is the image
            blank = sample.blank(self._image_spec, np.shape(event.old.output), transparent=True)
            push(self._image_source, sample.image_data(blank, self._image_spec))

    def _show_trust(self, event):
        decode = event.new
        if decode is None:
            self._trust.object = self.HINT
            return
        fields = decode.trust.record(0)
        x, y = decode.xy
        fold = self.store.inspection.fold(x, y) if self.store.inspection is not None else None
        if fold is not None:
            fields["fold"] = fold
        rows = [("point", f"({x:.4f}, {y:.4f})")] + trust_rows(fields)
        if getattr(decode, "seconds", None) is not None:
            rows.append(("decoded in", f"{1000 * decode.seconds:.1f} ms (server)"))
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
        self._trust.object = f"{verdict_html(fields, self.store.inspection)}<table class='trust'>{body}</table>"

    def _quality_measured(self, event):
        if event.new is not None and self.store.decode is not None:
            self._show_trust(SimpleNamespace(new=self.store.decode))

    def _update_probe(self, event):
        """Fill the hidden element the browser tests read: coordinates, a digest and optionally the values."""
        decode = event.new
        if decode is None:
            self._probe.object = ""
            return
        out = np.ascontiguousarray(decode.output, dtype=np.float32)
        x, y = decode.xy
        digest = hashlib.sha256(out.tobytes()).hexdigest()[:16]
        self._decodes += 1
        values = f" data-values='{base64.b64encode(out.tobytes()).decode()}'" if self._values else ""
        self._probe.object = (f"<div class='decode-probe' data-seq='{self._decodes}' "
                              f"data-x='{float(x)!r}' data-y='{float(y)!r}' "
                              f"data-shape='{','.join(map(str, out.shape))}' data-sha='{digest}'{values}></div>")

    def __panel__(self):
        return self._layout


class CursorView(InspectorView):
    """The sample nearest to the cursor: its number, label and position, and its input drawn small.

    One HTML element of fixed size, rewritten on every new sample: the pointer moves often, and nothing else on the
    page has to be laid out again.
    """

    HINT = "<i>Move the cursor over the plot to see the nearest sample.</i>"

    def __init__(self, **params):
        super().__init__(**params)
        self._html = pn.pane.HTML(self.HINT, sizing_mode="stretch_width", height=130, margin=(5, 10),
                                  stylesheets=[CURSOR_CSS])
        self._custom = pn.Column(margin=0, visible=False)
        self.store.param.watch(self._show, "hovered")

    def _show(self, event):
        hovered, project = event.new, self.store.project_obj
        if hovered is None or project is None:
            self._html.object = self.HINT
            return
        index = hovered["index"]
        lines = [f"<b>sample {index:,}</b>"]
        if hovered.get("label") is not None:
            lines.append(f"label <b>{html.escape(str(hovered['label']))}</b>")
        lines.append(f"at ({hovered['x']:.3f}, {hovered['y']:.3f})")
        spec, x = project.input_view, project.inputs()[index]
        if sample.custom_view(project, spec) is not None:  # the project draws its inputs itself
            self._custom.objects = [sample.draw(project, spec, x)]
            self._custom.visible = True
            self._html.object = "<div class='text'>" + "<br>".join(lines) + "</div>"
            return
        width = 110 if spec.kind == "image" else 220
        src = sample.thumbnail_src(x, spec, width=width, height=110)
        self._html.object = (f"<div class='cursor'><img src='{src}' width='{width}' height='110'>"
                             f"<div class='text'>{'<br>'.join(lines)}</div></div>")

    def __panel__(self):
        return pn.Column(self._custom, self._html, sizing_mode="stretch_width")


class HistoryView(InspectorView):
    """The last decodes as a strip of thumbnails with their coordinates; click one to show it again."""

    def __init__(self, **params):
        super().__init__(**params)
        self._by_key: dict[str, object] = {}
        self._items: dict[str, dict] = {}
        self.strip = HistoryStrip(on_click=self.restore, sizing_mode="stretch_width", height=150)
        # after every other view of a decode, and on the next tick: the strip must not delay the decoded image
        self.store.param.watch(lambda event: pn.state.execute(partial(self._sync, event), schedule=True), "history",
                               precedence=200)

    def _sync(self, event):
        """Thumbnails for new decodes, none for those that left the history: the strip is appended to."""
        history = event.new
        spec = self.store.project_obj.output_view
        items = []
        for decode in history:
            key = f"{id(decode):x}"
            if key not in self._items:
                x, y = decode.xy
                self._items[key] = {"key": key, "src": sample.thumbnail_src(decode.output, spec, width=96, height=96),
                                    "caption": f"({x:.2f}, {y:.2f})"}
                self._by_key[key] = decode
            items.append(self._items[key])
        keep = {item["key"] for item in items}
        for key in [k for k in self._items if k not in keep]:
            del self._items[key], self._by_key[key]
        self.strip.items = items

    def restore(self, key: str):
        """Show the decode of history item ``key`` again."""
        decode = self._by_key.get(key)
        if decode is not None:
            self.store.restore(decode)

    def __panel__(self):
        return self.strip

