"""The Linked views tab's views: the latent plot to select on, the compare view beside it, the parallel coordinates
below and the selection bar above, laid out by :class:`LinkedView`. They only show
:class:`~dashboard.linked.state.Linked`.
"""

from __future__ import annotations

import html

import datashader as ds
import holoviews as hv
import numpy as np
import panel as pn
import param
from holoviews.operation.datashader import datashade, dynspread

from ..jobs import subscribe
from ..latent import blank_plot, embedding_raster, plot_options, plot_tools
from ..widgets import NOTE_CSS, View, card, name_models, status_pane
from .state import PICTURE, Linked, view_name

__all__ = ["CompareView", "LinkedView", "LinkedViews", "ParallelView", "SelectionBar", "SelectionPlot"]

#: Colours of selected samples on the latent plots, from sparse to dense.
SELECTED = ["#8a8a8a", "#000000"]
#: Colour of the ranges brushed on the parallel axes.
BRUSH = "#ff7f0e"


class LinkedViews(View):
    """A view of the Linked views tab's state."""

    store = param.ClassSelector(class_=Linked, doc="The Linked views tab's state")


class SelectionPlot(LinkedViews):
    """A latent plot with box and lasso selection; the selection, wherever it was made, drawn over it in black.

    Parameters
    ----------
    store : Linked
    side : {"left", "right"}
        "left": the main view's inspection; "right": the compare view's.
    """

    side = param.Selector(default="left", objects=["left", "right"])

    def __init__(self, **params):
        super().__init__(**params)
        linked = self.store
        self.box = hv.streams.BoundsXY(bounds=None)
        self.lasso = hv.streams.Lasso(geometry=None)
        subscribe(self.box, lambda bounds=None: linked.select_box(bounds, self.side), linked)
        subscribe(self.lasso, lambda geometry=None: linked.select_lasso(geometry, self.side), linked)
        points = linked.inspector.param.points if self.side == "left" else linked.param.other_points
        self.figure_name = "selection-figure" if self.side == "left" else "compare-figure"
        self._pane = pn.pane.HoloViews(pn.bind(self._plot, points, linked.inspector.param.color_by),
                                       sizing_mode="stretch_both", min_height=380, linked_axes=False)

    def selected(self, selection):
        """The selected samples at their coordinates on this side (the engine's ``map_selection``)."""
        mapped = self.store.highlight(self.side)
        return hv.Points(mapped.xy if mapped is not None else np.empty((0, 2)), ["x", "y"])

    def _plot(self, points, color_by):
        linked = self.store
        if points is None:
            return blank_plot()
        view = linked.view(self.side)
        raster = embedding_raster(points, color_by, linked.inspector.param.spread, view)
        raster = raster.opts(**plot_tools("box_select", "lasso_select", active=("box_select",)))
        self.box.source = raster
        self.lasso.source = raster
        chosen = hv.DynamicMap(pn.bind(self.selected, linked.param.selection))
        # density as shade, as in the parallel coordinates: a large selection keeps its structure
        shown = dynspread(datashade(chosen, aggregator=ds.count(), cmap=SELECTED, cnorm="eq_hist", min_alpha=200),
                          max_px=1, threshold=0.5)
        method = view.method if view is not None else linked.inspector.method
        title = f"{view_name(view) if view is not None else ''} · {len(points):,} points"
        return (raster * shown).opts(hv.opts.Overlay(**plot_options(title, method, self.figure_name)))

    def __panel__(self):
        return self._pane


class ParallelView(LinkedViews):
    """Parallel coordinates of the inspected layer, drawn by Datashader and coloured by label; drag a box over part
    of one or more axes to select the samples in those ranges. The selection is drawn over the faded rest."""


    def __init__(self, **params):
        super().__init__(**params)
        linked = self.store
        self.box = hv.streams.BoundsXY(bounds=None)
        subscribe(self.box, lambda bounds=None: linked.select_axes(bounds), linked)
        self.shown = None  # the engine Image on screen
        self._pane = pn.pane.HoloViews(pn.bind(self._plot, linked.param.parallel), sizing_mode="stretch_both",
                                       min_height=300, linked_axes=False)

    def _plot(self, parallel):
        if parallel is None:
            return hv.RGB(np.full((2, 2, 4), 255, np.uint8)).opts(
                responsive=True, xaxis=None, yaxis=None, toolbar=None, title="Parallel coordinates · preparing…")
        axes = parallel.axes
        image = hv.DynamicMap(self.image, streams=[hv.streams.Params(self.store, ["selection"])])
        self.box.source = image
        brushes = hv.DynamicMap(pn.bind(self.brush_marks, self.store.param.brushes))
        title = f"Parallel coordinates · {axes.describe()}"
        return (image * brushes).opts(
            hv.opts.RGB(xticks=list(enumerate(axes.names)), yticks=[(0, "min"), (1, "max")],
                        tools=["box_select"], active_tools=["box_select"], xlabel="", ylabel="each axis' range",
                        xrotation=45 if axes.n_axes > 10 else 0),
            hv.opts.Overlay(responsive=True, toolbar="above", title=title + " · drag a box over an axis range",
                            hooks=[name_models("parallel-figure")]),
        )

    def image(self, selection=None, width=PICTURE[0], height=PICTURE[1]):
        """The engine's picture as an ``hv.RGB`` spanning the engine canvas' ranges (axis ``j`` at ``x = j``).

        Drawn at one size and stretched to the plot: binning every line again at each new plot size would cost
        seconds at a million samples; at one size it is done once, on the worker, and a selection only adds its own
        lines."""
        parallel = self.store.parallel
        picture = self.store.picture(width, height)
        self.shown = picture
        (x0, x1), (y0, y1) = (parallel.canvas(width, height).x_range, parallel.canvas(width, height).y_range)
        rgba = np.flipud(picture.data.view(np.uint8).reshape(height, width, 4))
        return hv.RGB(rgba, ["axis", "position"], bounds=(x0, y0, x1, y1))

    def brush_marks(self, brushes):
        """The ranges brushed, as outlined bars on their axes."""
        axes = self.store.axes
        rects = []
        if axes is not None:
            for j, lo, hi in brushes:
                a, b = sorted(float(v) for v in axes.to_unit(j, [lo, hi]))
                rects.append((j - 0.12, a, j + 0.12, b))
        return hv.Rectangles(rects).opts(fill_color=BRUSH, fill_alpha=0.15, line_color=BRUSH, line_width=2)

    def __panel__(self):
        return self._pane


class SelectionBar(LinkedViews):
    """How many samples are selected and where; clear; export the ids."""

    FORMATS = {"CSV": ".csv", "NumPy (.npy)": ".npy", "text": ".txt"}

    def __init__(self, **params):
        super().__init__(**params)
        linked = self.store
        self.summary = pn.pane.HTML(pn.bind(self._summary, linked.param.selection, linked.param.origin),
                                    sizing_mode="stretch_width", margin=(12, 10), stylesheets=[NOTE_CSS],
                                    css_classes=["selection-summary"])
        self.probe = pn.pane.HTML(pn.bind(self._probe, linked.param.selection, linked.param.box), visible=False,
                                  css_classes=["selection-probe-pane"], margin=0)
        none = linked.param.selection.rx.is_(None)
        self.clear = pn.widgets.Button(label="Clear", color="light", width=80, margin=(10, 5), disabled=none)
        self.clear.on_click(linked.clear)
        self.format = pn.widgets.Select(options=self.FORMATS, value=".csv", width=130, margin=(10, 5))
        self.download = pn.widgets.FileDownload(
            callback=lambda: linked.export(self.format.value), filename="selection.csv", label="Export ids",
            color="primary", width=120, margin=(10, 5), disabled=none,
        )
        self.format.param.watch(lambda e: setattr(self.download, "filename", f"selection{e.new}"), "value")

    def _summary(self, selection, origin):
        n = len(self.store.inspection.embedding) if self.store.inspection is not None else 0
        if selection is None:
            return ("<span class='muted'>Drag a box or a lasso on a latent plot, or over an axis range of the "
                    "parallel coordinates: the same samples light up in every view.</span>")
        return (f"<b class='selected-count'>{len(selection):,}</b> of {n:,} samples selected · "
                f"{html.escape(origin)}")

    @staticmethod
    def _probe(selection, box):
        """A hidden element for the browser tests: the count, and the box as the server received it."""
        if selection is None:
            return ""
        bounds = "" if box is None or np.ndim(box) != 1 else ",".join(repr(float(v)) for v in box)
        return f"<div class='selection-probe' data-count='{len(selection)}' data-bounds='{bounds}'></div>"

    def __panel__(self):
        return pn.Row(self.summary, self.clear, self.format, self.download, self.probe, sizing_mode="stretch_width")


class CompareView(LinkedViews):
    """The compare view's choices (model file, layer, reducer) and its latent plot."""


    def __init__(self, **params):
        super().__init__(**params)
        p = self.store.param
        self.model = pn.widgets.Select.from_param(p.other_model, label="Model file", width=220)
        self.layer = pn.widgets.Select.from_param(p.other_layer, label="Layer", width=170)
        self.method = pn.widgets.Select.from_param(p.other_method, label="Reducer", width=100)
        self.show = pn.widgets.Button(label="Show side by side", color="primary", width=150, margin=(24, 10, 5, 10),
                                      css_classes=["show-comparison"])
        self.show.on_click(self.store.show_comparison)
        self.plot = SelectionPlot(store=self.store, side="right")

    def __panel__(self):
        hint = pn.pane.HTML("<span class='muted'>Pick another layer of this model, or another model file of the "
                            "project folder (a 16-D bottleneck beside a 10-D one, say), and show it here: a "
                            "selection on either plot lights up the same samples on the other.</span>",
                            stylesheets=[NOTE_CSS], sizing_mode="stretch_width", margin=(10, 10),
                            visible=self.store.param.other_points.rx.is_(None))
        shown = pn.Column(self.plot, visible=self.store.param.other_points.rx.is_not(None),
                          sizing_mode="stretch_both")
        return pn.Column(pn.FlexBox(self.model, self.layer, self.method, self.show, flex_wrap="wrap"), hint, shown,
                         sizing_mode="stretch_both")


class LinkedView(LinkedViews):
    """The linked-views tab: the selection bar; the latent plot and the compare view side by side; the parallel
    coordinates below.

    Parameters
    ----------
    store : Linked
    """


    def __init__(self, **params):
        super().__init__(**params)
        linked = self.store
        self.bar = SelectionBar(store=linked)
        self.plot = SelectionPlot(store=linked, side="left")
        self.compare = CompareView(store=linked)
        self.parallel = ParallelView(store=linked)
        self.status = status_pane(linked)

    def __panel__(self):
        grid = pn.GridSpec(sizing_mode="stretch_width", height=1080, mode="override")
        grid[0:9, 0:6] = card("Latent space · box or lasso to select", self.plot)
        grid[0:9, 6:12] = card("Compare · another layer or model of the project, linked by sample", self.compare)
        grid[9:15, 0:12] = card("Parallel coordinates · coloured by label, the selection in black", self.parallel)
        return pn.Column(self.status, self.bar, grid, sizing_mode="stretch_width")
