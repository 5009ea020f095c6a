"""Brushing and linking: select samples in one view, see the same samples in every other.

The views of one dataset -- the latent plot of the inspected layer, that layer's parallel coordinates, and a compare
view's latent plot of another layer or of another model of the project folder -- all index their rows by sample id,
so a selection is a list of ids (:mod:`engine.selection`). :class:`Linked` holds it, with where it was made: a box or
a lasso on either latent plot (``select_box``, ``select_lasso``), or value ranges on axes of the parallel coordinates
(``select_axis_range`` on ``ParallelAxes.to_data`` of the drawn range, intersected over the axes brushed). Every view
then shows the same ids: on a latent plot at their coordinates there (``map_selection``), in the parallel
coordinates drawn over the faded rest (the engine's highlight). The ids can be exported (``export_ids``).

The parallel axes of an inspection, their line table and the aggregate of every line are made once per process
and shared by the sessions (the first line drawing of a process compiles Datashader's line code: seconds, spent on
the worker). The compare view's second inspection is built on the worker through the process's inspection cache.
Like the explorer, nothing is prepared while the tab is closed (:attr:`Linked.active`).
"""

from __future__ import annotations

import html
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import datashader as ds
import holoviews as hv
import numpy as np
import panel as pn
import param
from holoviews.operation.datashader import datashade, dynspread

from engine.errors import InspectorError

from . import sample
from .background import Background
from .explore import EXPLORE_CSS, status_html, titled
from .latent import embedding_raster
from .state import METHODS, Inspector

#: Colours of selected samples on the latent plots, from sparse to dense.
SELECTED = ["#8a8a8a", "#000000"]
#: Colour of the ranges brushed on the parallel axes.
BRUSH = "#ff7f0e"
#: Size of the parallel-coordinates picture (stretched to the plot).
PICTURE = (1200, 320)
#: Line aggregates kept per inspection (one per picture size).
KEEP_SIZES = 2


@dataclass(eq=False, repr=False)
class ParallelCoordinates:
    """The parallel coordinates of one inspection: the engine's axes, their line table, the lines' aggregates."""

    axes: object
    frame: object
    aggregates: dict = field(default_factory=dict)  # (width, height) -> the aggregate of every line
    lock: threading.Lock = field(default_factory=threading.Lock)

    def canvas(self, width: int, height: int):
        from engine.parallel import make_parallel_canvas

        return make_parallel_canvas(self.axes.n_axes, width=width, height=height)

    def aggregate(self, width: int, height: int):
        """Every line binned at this size (made once per size: a selection only adds the selected lines)."""
        from engine.parallel import aggregate_lines

        key = (int(width), int(height))
        with self.lock:
            agg = self.aggregates.get(key)
            if agg is None:
                agg = aggregate_lines(self.frame, canvas=self.canvas(*key))
                self.aggregates[key] = agg
                while len(self.aggregates) > KEEP_SIZES:
                    self.aggregates.pop(next(iter(self.aggregates)))
            return agg

    def picture(self, width: int, height: int, selected=None):
        """The engine's picture (``shade_lines``), the ``selected`` ids drawn over the faded rest: the same image as
        ``parallel_image(axes, labels, selected=..., frame=frame)``, without binning every line again."""
        from engine.parallel import aggregate_lines, shade_lines

        highlight = None
        if selected is not None:
            highlight = aggregate_lines(self.frame.iloc[np.unique(selected)], canvas=self.canvas(width, height),
                                        reduction=ds.count())
        return shade_lines(self.aggregate(width, height), highlight=highlight)


#: Parallel coordinates of each inspection alive, shared by every session.
_PARALLEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The compare view's plot table of each inspection alive.
_POINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def parallel_coordinates(inspection, class_names=None) -> ParallelCoordinates:
    """The :class:`ParallelCoordinates` of ``inspection`` (its units, or its top 16 principal directions), made once
    per process and drawn once at the picture's size: every line is then binned (seconds at a million samples) and
    Datashader's line code compiled (seconds, once per process), so a selection only bins its own lines."""
    from engine.parallel import lines_frame, parallel_axes

    found = _PARALLEL.get(inspection)
    if found is None:
        axes = parallel_axes(inspection.activations)
        found = ParallelCoordinates(axes, lines_frame(axes, inspection.labels, class_names or None))
        found.picture(*PICTURE, selected=[0])  # both line reductions: every line, and a selection's
        _PARALLEL[inspection] = found
    return found


def points_of(inspection, class_names=None):
    """The plot table (x, y, categorical label) of an inspection of the compare view, made once per process."""
    from engine.render import points_frame

    frame = _POINTS.get(inspection)
    if frame is None:
        frame = _POINTS[inspection] = points_frame(inspection.embedding, inspection.labels, class_names or None)
    return frame


def _name(inspection) -> str:
    model = Path(inspection.project.model_path).name
    return f"{inspection.layer} ({inspection.method.upper()}, {model})"


class Linked(param.Parameterized):
    """The selection shared by the linked views of one session, the parallel axes, and the compare view's second
    inspection.

    Parameters
    ----------
    store : Inspector

    Example
    -------
    >>> linked = Linked(store=store, active=True)                    # doctest: +SKIP
    >>> linked.select_box((0.0, -1.0, 2.0, 1.0))                     # doctest: +SKIP
    >>> linked.picture(800, 300)         # the selected lines over the faded rest  # doctest: +SKIP
    """

    store = param.ClassSelector(class_=Inspector)
    active = param.Boolean(default=False, doc="The views are on screen: keep the parallel axes ready")

    parallel = param.Parameter(default=None, doc="ParallelCoordinates of the current inspection")
    selection = param.Parameter(default=None, doc="Selected sample ids (sorted int64), None: no selection")
    origin = param.String(default="", doc="Where the selection was made, in words")
    box = param.Parameter(default=None, doc="The last box or lasso as the engine received it")
    brushes = param.List(default=[], doc="(axis, lo, hi): the axis ranges of the last selection on the axes, in "
                         "each axis' own values")

    other_model = param.Selector(default="", objects=[""], doc="Model file of the compare view: '' for the model "
                                 "of the main view's project, else a file of the project folder")
    other_layer = param.Selector(default=None, objects=[], allow_None=True, doc="Layer of the compare view")
    other_method = param.Selector(default="pca", objects=METHODS, doc="Reducer of the compare view")
    other = param.Parameter(default=None, doc="engine Inspection of the compare view")
    other_points = param.DataFrame(default=None, allow_None=True, doc="Its plot table")
    comparison = param.Parameter(default=None, doc="engine.compare.Comparison of the main and compare views")

    status = param.String(default="")
    error = param.String(default="")

    def __init__(self, **params):
        super().__init__(**params)
        self.jobs = Background(self)
        self._source = None  # the view (an inspection) the selection was made on
        self._models_of = None  # the project whose model files the compare view lists
        self.store.param.watch(self._reset, "inspection")

    @property
    def inspection(self):
        return self.store.inspection

    @property
    def axes(self):
        return None if self.parallel is None else self.parallel.axes

    # -- preparing --------------------------------------------------------------------------------------------------

    def _reset(self, event):
        old, new = event.old, event.new
        same_samples = (old is not None and new is not None and old.project.name == new.project.name
                        and len(old.embedding) == len(new.embedding))
        if not same_samples:
            self.clear()
            self.param.update(other=None, other_points=None, comparison=None)
        else:  # the same samples: the selection stays, shown on the new projection (the axes' brushes go)
            if self._source is old:
                self._source = new
            self.param.update(brushes=[], comparison=None)
            self._pair()
        self.parallel = None
        self.prepare()

    @param.depends("active", watch=True)
    def prepare(self):
        """Make (or fetch) the parallel coordinates of the current inspection; list the compare view's choices."""
        inspection = self.inspection
        if not self.active or inspection is None:
            return
        if self._models_of is not self.store.project_obj:
            self._list_models()
        if self.parallel is not None:
            return
        names = self.store.class_names()

        def work(progress):
            progress("parallel coordinates", 0, 1)
            return parallel_coordinates(inspection, names)

        def apply(parallel):
            if self.inspection is inspection:
                self.parallel = parallel

        self.jobs.submit("axes", f"parallel coordinates of {inspection.layer}", work, apply)

    # -- selecting --------------------------------------------------------------------------------------------------

    def view(self, side: str = "left"):
        """The inspection shown on a side: "left" the main view's, "right" the compare view's."""
        return self.inspection if side == "left" else self.other

    def _select(self, ids, source, origin: str, box=None, brushes=()):
        self._source = source
        self.param.update(selection=np.asarray(ids, dtype=np.int64), origin=origin, box=box, brushes=list(brushes),
                          error="")

    def select_box(self, bounds, side: str = "left"):
        """Select the samples inside ``bounds`` = (x0, y0, x1, y1) on a latent plot (the engine's ``select_box``)."""
        from engine.selection import select_box

        view = self.view(side)
        if view is None or bounds is None:
            return
        x0, y0, x1, y1 = (float(v) for v in bounds)
        ids = select_box(view.embedding, x0, x1, y0, y1)
        self._select(ids, view, f"box on {_name(view)}", box=(x0, y0, x1, y1))

    def select_lasso(self, geometry, side: str = "left"):
        """Select the samples inside the lasso ``geometry`` (vertices (m, 2)) on a latent plot."""
        from engine.selection import select_lasso

        view = self.view(side)
        if view is None or geometry is None or len(geometry) < 3:
            return
        polygon = np.asarray(geometry, dtype=np.float64)
        self._select(select_lasso(view.embedding, polygon), view, f"lasso on {_name(view)}", box=polygon)

    def covered_axes(self, x0: float, x1: float) -> list[int]:
        """The axes a box from ``x0`` to ``x1`` covers on the parallel plot (axis ``j`` sits at ``x = j``); the
        nearest one when it falls between two."""
        n = self.axes.n_axes
        a, b = sorted((x0, x1))
        covered = [j for j in range(n) if a <= j <= b]
        return covered or [int(min(max(round((a + b) / 2), 0), n - 1))]

    def select_axes(self, bounds):
        """Select the samples whose values lie in the brushed range on every axis the box ``bounds`` covers on the
        parallel coordinates (y from 0 to 1 spans each axis' observed range)."""
        from engine.selection import intersect, select_axis_range

        axes = self.axes
        if axes is None or bounds is None:
            return
        x0, y0, x1, y1 = (float(v) for v in bounds)
        brushes = [(j, float(axes.to_data(j, y0)), float(axes.to_data(j, y1))) for j in self.covered_axes(x0, x1)]
        ids = intersect(*[select_axis_range(axes.values[:, j], lo, hi) for j, lo, hi in brushes])
        ranges = ", ".join(f"{axes.names[j]} in [{min(lo, hi):.3g}, {max(lo, hi):.3g}]" for j, lo, hi in brushes)
        self._select(ids, self.inspection, f"{ranges} on {_name(self.inspection)}", box=(x0, y0, x1, y1),
                     brushes=brushes)

    def clear(self, *_):
        self._source = None
        self.param.update(selection=None, origin="", box=None, brushes=[])

    def highlight(self, side: str = "left"):
        """The selection on a side's latent plot (engine ``MappedSelection``: ids and their coordinates there)."""
        from engine.selection import map_selection

        view = self.view(side)
        if self.selection is None or view is None or self._source is None:
            return None
        try:
            return map_selection(self.selection, self._source, view)
        except InspectorError as exc:
            self.error = str(exc)
            return None

    def picture(self, width: int, height: int):
        """The parallel coordinates (an engine Image), the selection drawn over the faded rest."""
        if self.parallel is None:
            return None
        return self.parallel.picture(width, height, selected=self.selection)

    def export(self, suffix: str = ".csv") -> Path | None:
        """Write the selected ids (``.csv``, ``.npy`` or ``.txt``) into a temporary folder; the file's path, for a
        download, or None without a selection."""
        from engine.selection import export_ids

        if self.selection is None:
            return None
        folder = Path(tempfile.mkdtemp(prefix="latent-inspector-selection-"))
        name = f"{self.store.project}-{self.inspection.layer}-selection{suffix}"
        try:
            return export_ids(self.selection, folder / name)
        except InspectorError as exc:
            self.error = str(exc)
            return None

    # -- compare view -----------------------------------------------------------------------------------------------

    def _list_models(self):
        """The model files of the project folder, and the layers of the chosen one."""
        from engine.compare import model_files

        project = self.store.project_obj
        if project is None:
            return
        self._models_of = project
        own = Path(project.model_path).resolve()
        names = {}
        for path in model_files(project):
            names[f"{path.name} (the project's model)" if path.resolve() == own else path.name] = (
                "" if path.resolve() == own else path.name)
        if "" not in names.values():
            names = {f"{own.name} (the project's model)": "", **names}
        self.param.other_model.objects = names
        if self.other_model not in names.values():
            self.other_model = ""
        self._list_layers()

    @param.depends("other_model", watch=True)
    def _list_layers(self):
        project, model = self.store.project_obj, self.other_model
        if project is None:
            return
        if not model:
            self._layers_listed(list(self.store.layers))
            return

        def work(progress):
            from engine.compare import project_with_model
            from engine.split import list_layers

            progress("reading the model", 0, 1)
            return list_layers(project_with_model(project, model).model())

        self.jobs.submit("layers", f"layers of {model}", work, self._layers_listed)

    def _layers_listed(self, layers):
        valid = [info.name for info in layers if info.valid_cut]
        self.param.other_layer.objects = valid
        current = self.inspection.layer if self.inspection is not None else None
        if self.other_model:  # another model: the same layer, when it has one
            choice = current if current in valid else (valid[len(valid) // 2] if valid else None)
        else:  # the same model: the layer before the inspected one
            before = valid[: valid.index(current)] if current in valid else []
            choice = before[-1] if before else next((v for v in valid if v != current), None)
        self.other_layer = choice

    def show_comparison(self, *_):
        """Build the compare view's inspection (on the worker, through the process's cache) and pair it."""
        from .cache import Request
        from .state import INSPECTIONS

        project, layer = self.store.project_obj, self.other_layer
        if project is None or layer is None:
            return
        request = Request.make(project.name, layer, self.other_method, "auto", root=project.path.parent,
                               model=self.other_model)
        names = self.store.class_names()

        def work(progress):
            inspection = INSPECTIONS.get(request, progress)
            return inspection, points_of(inspection, names)

        def apply(result):
            other, points = result
            self.param.update(other=other, other_points=points)
            self._pair()

        self.jobs.submit("compare", f"{request.method.upper()} of {layer}", work, apply)

    def _pair(self):
        from engine.compare import compare

        if self.other is None or self.inspection is None:
            return
        try:
            self.comparison = compare(self.inspection, self.other)
        except InspectorError as exc:
            self.param.update(comparison=None, other=None, other_points=None, error=str(exc))


# -- views -----------------------------------------------------------------------------------------------------------


class SelectionPlot(pn.viewable.Viewer):
    """A latent plot with box and lasso selection; the selection, wherever it was made, drawn over it in black.

    Parameters
    ----------
    linked : Linked
    side : {"left", "right"}
        "left": the main view's inspection; "right": the compare view's.
    """

    linked = param.ClassSelector(class_=Linked)
    side = param.Selector(default="left", objects=["left", "right"])

    def __init__(self, **params):
        super().__init__(**params)
        linked = self.linked
        self.box = hv.streams.BoundsXY(bounds=None)
        self.lasso = hv.streams.Lasso(geometry=None)
        self.box.add_subscriber(lambda bounds=None: linked.select_box(bounds, self.side))
        self.lasso.add_subscriber(lambda geometry=None: linked.select_lasso(geometry, self.side))
        points = linked.store.param.points if self.side == "left" else linked.param.other_points
        self.figure_name = "selection-figure" if self.side == "left" else "compare-figure"
        self._pane = pn.pane.HoloViews(pn.bind(self._plot, points, linked.store.param.color_by),
                                       sizing_mode="stretch_both", min_height=380, linked_axes=False)

    def selected(self, selection):
        """The selected samples at their coordinates on this side (the engine's ``map_selection``)."""
        mapped = self.linked.highlight(self.side)
        return hv.Points(mapped.xy if mapped is not None else np.empty((0, 2)), ["x", "y"])

    def _plot(self, points, color_by):
        linked = self.linked
        if points is None:
            return hv.Points([]).opts(responsive=True, xaxis=None, yaxis=None, toolbar=None)
        view = linked.view(self.side)
        raster = embedding_raster(points, color_by, linked.store.param.spread)
        raster = raster.opts(tools=["box_select", "lasso_select"], active_tools=["box_select", "wheel_zoom"])
        self.box.source = raster
        self.lasso.source = raster
        chosen = hv.DynamicMap(pn.bind(self.selected, linked.param.selection))
        # density as shade, as in the parallel coordinates: a large selection keeps its structure
        shown = dynspread(datashade(chosen, aggregator=ds.count(), cmap=SELECTED, cnorm="eq_hist", min_alpha=200),
                          max_px=1, threshold=0.5)
        method = view.method if view is not None else linked.store.method
        title = f"{_name(view) if view is not None else ''} · {len(points):,} points"
        return (raster * shown).opts(
            hv.opts.Overlay(responsive=True, title=title, xlabel=f"{method} 1", ylabel=f"{method} 2",
                            toolbar="above", backend_opts={"plot.toolbar.autohide": True},
                            hooks=[sample.name_models(self.figure_name)]),
        )

    def __panel__(self):
        return self._pane


class ParallelView(pn.viewable.Viewer):
    """Parallel coordinates of the inspected layer, drawn by Datashader and coloured by label; drag a box over part
    of one or more axes to select the samples in those ranges. The selection is drawn over the faded rest."""

    linked = param.ClassSelector(class_=Linked)

    def __init__(self, **params):
        super().__init__(**params)
        linked = self.linked
        self.box = hv.streams.BoundsXY(bounds=None)
        self.box.add_subscriber(lambda bounds=None: linked.select_axes(bounds))
        self.shown = None  # the engine Image on screen
        self._pane = pn.pane.HoloViews(pn.bind(self._plot, linked.param.parallel), sizing_mode="stretch_both",
                                       min_height=300, linked_axes=False)

    def _plot(self, parallel):
        if parallel is None:
            return hv.RGB(np.full((2, 2, 4), 255, np.uint8)).opts(
                responsive=True, xaxis=None, yaxis=None, toolbar=None, title="Parallel coordinates · preparing…")
        axes = parallel.axes
        image = hv.DynamicMap(self.image, streams=[hv.streams.Params(self.linked, ["selection"])])
        self.box.source = image
        brushes = hv.DynamicMap(pn.bind(self.brush_marks, self.linked.param.brushes))
        if axes.basis == "units":
            title = f"Parallel coordinates · {axes.n_axes} units"
        else:
            share = float(np.sum(axes.explained_variance_ratio))
            title = f"Parallel coordinates · top {axes.n_axes} principal directions ({share:.0%} of the variance)"
        return (image * brushes).opts(
            hv.opts.RGB(xticks=list(enumerate(axes.names)), yticks=[(0, "min"), (1, "max")],
                        tools=["box_select"], active_tools=["box_select"], xlabel="", ylabel="each axis' range",
                        xrotation=45 if axes.n_axes > 10 else 0),
            hv.opts.Overlay(responsive=True, toolbar="above", title=title + " · drag a box over an axis range",
                            hooks=[sample.name_models("parallel-figure")]),
        )

    def image(self, selection=None, width=PICTURE[0], height=PICTURE[1]):
        """The engine's picture as an ``hv.RGB`` spanning the engine canvas' ranges (axis ``j`` at ``x = j``).

        Drawn at one size and stretched to the plot: binning every line again at each new plot size would cost
        seconds at a million samples; at one size it is done once, on the worker, and a selection only adds its own
        lines."""
        parallel = self.linked.parallel
        picture = self.linked.picture(width, height)
        self.shown = picture
        (x0, x1), (y0, y1) = (parallel.canvas(width, height).x_range, parallel.canvas(width, height).y_range)
        rgba = np.flipud(picture.data.view(np.uint8).reshape(height, width, 4))
        return hv.RGB(rgba, ["axis", "position"], bounds=(x0, y0, x1, y1))

    def brush_marks(self, brushes):
        """The ranges brushed, as outlined bars on their axes."""
        axes = self.linked.axes
        rects = []
        if axes is not None:
            for j, lo, hi in brushes:
                a, b = sorted(float(v) for v in axes.to_unit(j, [lo, hi]))
                rects.append((j - 0.12, a, j + 0.12, b))
        return hv.Rectangles(rects).opts(fill_color=BRUSH, fill_alpha=0.15, line_color=BRUSH, line_width=2)

    def __panel__(self):
        return self._pane


class SelectionBar(pn.viewable.Viewer):
    """How many samples are selected and where; clear; export the ids."""

    linked = param.ClassSelector(class_=Linked)
    FORMATS = {"CSV": ".csv", "NumPy (.npy)": ".npy", "text": ".txt"}

    def __init__(self, **params):
        super().__init__(**params)
        linked = self.linked
        self.summary = pn.pane.HTML(pn.bind(self._summary, linked.param.selection, linked.param.origin),
                                    sizing_mode="stretch_width", margin=(12, 10), stylesheets=[EXPLORE_CSS],
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
        n = len(self.linked.inspection.embedding) if self.linked.inspection is not None else 0
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


class CompareView(pn.viewable.Viewer):
    """The compare view's choices (model file, layer, reducer) and its latent plot."""

    linked = param.ClassSelector(class_=Linked)

    def __init__(self, **params):
        super().__init__(**params)
        p = self.linked.param
        self.model = pn.widgets.Select.from_param(p.other_model, label="Model file", width=220)
        self.layer = pn.widgets.Select.from_param(p.other_layer, label="Layer", width=170)
        self.method = pn.widgets.Select.from_param(p.other_method, label="Reducer", width=100)
        self.show = pn.widgets.Button(label="Show side by side", color="primary", width=150, margin=(24, 10, 5, 10),
                                      css_classes=["show-comparison"])
        self.show.on_click(self.linked.show_comparison)
        self.plot = SelectionPlot(linked=self.linked, side="right")

    def __panel__(self):
        hint = pn.pane.HTML("<span class='muted'>Pick another layer of this model, or another model file of the "
                            "project folder (a 16-D bottleneck beside a 10-D one, say), and show it here: a "
                            "selection on either plot lights up the same samples on the other.</span>",
                            stylesheets=[EXPLORE_CSS], sizing_mode="stretch_width", margin=(10, 10),
                            visible=self.linked.param.other_points.rx.is_(None))
        shown = pn.Column(self.plot, visible=self.linked.param.other_points.rx.is_not(None),
                          sizing_mode="stretch_both")
        return pn.Column(pn.FlexBox(self.model, self.layer, self.method, self.show, flex_wrap="wrap"), hint, shown,
                         sizing_mode="stretch_both")


class LinkedView(pn.viewable.Viewer):
    """The linked-views tab: the selection bar; the latent plot and the compare view side by side; the parallel
    coordinates below.

    Parameters
    ----------
    linked : Linked
    card : callable(title, *objects), optional
    """

    linked = param.ClassSelector(class_=Linked)
    card = param.Callable(default=titled)

    def __init__(self, **params):
        super().__init__(**params)
        linked = self.linked
        self.bar = SelectionBar(linked=linked)
        self.plot = SelectionPlot(linked=linked, side="left")
        self.compare = CompareView(linked=linked)
        self.parallel = ParallelView(linked=linked)
        self.status = pn.pane.HTML(pn.bind(status_html, linked.param.status, linked.param.error),
                                   sizing_mode="stretch_width", margin=(0, 10), stylesheets=[EXPLORE_CSS])

    def __panel__(self):
        card = self.card
        grid = pn.GridSpec(sizing_mode="stretch_width", height=1080, mode="override")
        grid[0:9, 0:6] = card("Latent space · box or lasso to select", self.plot)
        grid[0:9, 6:12] = card("Compare · another layer or model of the project, linked by sample", self.compare)
        grid[9:15, 0:12] = card("Parallel coordinates · coloured by label, the selection in black", self.parallel)
        return pn.Column(self.status, self.bar, grid, sizing_mode="stretch_width")
