"""The Linked views tab's state: brushing and linking -- select samples in one view, see the same samples in every
other.

The views of one dataset -- the latent plot of the inspected layer, that layer's parallel coordinates, and a compare
view's latent plot of another layer or of another model of the project folder -- all index their rows by sample id,
so a selection is a list of ids (:mod:`engine.explore.selection`). :class:`Linked` holds it, with where it was made:
a box or a lasso on either latent plot (``select_box``, ``select_lasso``), or value ranges on axes of the parallel
coordinates (``select_axis_range`` on ``ParallelAxes.to_data`` of the drawn range, intersected over the axes
brushed), or on the Inspect tab's plot (:meth:`Linked.follow` of the session's ``Selection``). Every view then
shows the same ids: on a latent plot at their coordinates there (``map_selection``), in
the parallel coordinates drawn over the faded rest (the engine's highlight). The ids can be exported
(``export_ids``).

The parallel coordinates are the inspection's own (:attr:`engine.explore.inspection.Inspection.parallel`), made
once per process and shared by the sessions (the first line drawing of a process compiles Datashader's line code:
seconds, spent on the worker). The compare view's second inspection is built on the worker through the process's
inspection cache (:mod:`dashboard.shared`). Like the explorer, nothing is prepared while the tab is closed
(:attr:`Linked.active`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import param

from engine.errors import InspectorError
from engine.reduce.names import METHODS, method_label

from .. import shared
from ..inspector.state import TabState

__all__ = ["MAIN_PLOT", "PICTURE", "Linked", "view_name"]

#: Size of the parallel-coordinates picture (stretched to the plot).
PICTURE = (1200, 320)
#: Where a selection made on the Inspect tab's plot says it was made.
MAIN_PLOT = "the Inspect tab's plot"


def view_name(inspection) -> str:
    """An inspection in words: its layer, reducer and model file."""
    model = Path(inspection.project.model_path).name
    return f"{inspection.layer} ({method_label(inspection.method)}, {model})"


class Linked(TabState):
    """The selection shared by the linked views of one session, the parallel axes, and the compare view's second
    inspection.

    Parameters
    ----------
    inspector : Inspector

    Example
    -------
    >>> linked = Linked(inspector=store, active=True)                  # doctest: +SKIP
    >>> linked.select_box((0.0, -1.0, 2.0, 1.0))                     # doctest: +SKIP
    >>> linked.picture(800, 300)         # the selected lines over the faded rest  # doctest: +SKIP
    """


    parallel = param.Parameter(default=None, doc="engine.render.parallel.ParallelCoordinates of the current "
                               "inspection, once drawn")
    selection = param.Parameter(default=None, doc="Selected sample ids (sorted int64), None: no selection")
    origin = param.String(default="", doc="Where the selection was made, in words")
    box = param.Parameter(default=None, doc="The last box or lasso as the engine received it")
    brushes = param.List(default=[], doc="(axis, lo, hi): the axis ranges of the last selection on the axes, in "
                         "each axis' own values")

    other_model = param.Selector(default="", objects=[""], doc="Model file of the compare view: '' for the model "
                                 "of the main view's project, else a file of the project folder")
    other_layer = param.Selector(default=None, objects=[], allow_None=True, doc="Layer of the compare view")
    other_method = param.Selector(default="pca", objects={label: name for name, label in METHODS.items()},
                                  doc="Reducer of the compare view")
    other = param.Parameter(default=None, doc="engine Inspection of the compare view")
    other_points = param.DataFrame(default=None, allow_None=True, doc="Its plot table")
    comparison = param.Parameter(default=None, doc="engine.explore.compare.Comparison of the main and compare views")

    def __init__(self, **params):
        super().__init__(**params)
        self._source = None  # the view (an inspection) the selection was made on
        self._models_of = None  # the project whose model files the compare view lists
        self.inspector.param.watch(self._reset, "inspection")

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

    def prepare(self):
        """Make (or fetch) the parallel coordinates of the current inspection; list the compare view's choices."""
        inspection = self.on_screen()
        if inspection is None:
            return
        if self._models_of is not self.inspector.project_obj:
            self._list_models()
        if self.parallel is not None:
            return

        def work(progress):
            progress("parallel coordinates", 0, 1)
            parallel = inspection.parallel
            parallel.picture(*PICTURE, selected=[0])  # both line reductions: every line, and a selection's
            return parallel

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
        from engine.explore.selection import select_box

        view = self.view(side)
        if view is None or bounds is None:
            return
        x0, y0, x1, y1 = (float(v) for v in bounds)
        ids = select_box(view.embedding, x0, x1, y0, y1)
        self._select(ids, view, f"box on {view_name(view)}", box=(x0, y0, x1, y1))

    def select_lasso(self, geometry, side: str = "left"):
        """Select the samples inside the lasso ``geometry`` (vertices (m, 2)) on a latent plot."""
        from engine.explore.selection import select_lasso

        view = self.view(side)
        if view is None or geometry is None or len(geometry) < 3:
            return
        polygon = np.asarray(geometry, dtype=np.float64)
        self._select(select_lasso(view.embedding, polygon), view, f"lasso on {view_name(view)}", box=polygon)

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
        from engine.explore.selection import intersect, select_axis_range

        axes = self.axes
        if axes is None or bounds is None:
            return
        x0, y0, x1, y1 = (float(v) for v in bounds)
        brushes = [(j, float(axes.to_data(j, y0)), float(axes.to_data(j, y1))) for j in self.covered_axes(x0, x1)]
        ids = intersect(*[select_axis_range(axes.values[:, j], lo, hi) for j, lo, hi in brushes])
        ranges = ", ".join(f"{axes.names[j]} in [{min(lo, hi):.3g}, {max(lo, hi):.3g}]" for j, lo, hi in brushes)
        self._select(ids, self.inspection, f"{ranges} on {view_name(self.inspection)}", box=(x0, y0, x1, y1),
                     brushes=brushes)

    def clear(self, *_):
        self._source = None
        self.param.update(selection=None, origin="", box=None, brushes=[])

    def follow(self, ids, how: str = ""):
        """Show a selection made on the Inspect tab's plot (``Selection.ids``, how it was made in words) in every
        linked view; ``ids`` None clears it, when the selection shown came from that plot."""
        if ids is None:
            if self.origin.startswith(MAIN_PLOT):
                self.clear()
            return
        if self.inspection is None:
            return
        self._select(ids, self.inspection, f"{MAIN_PLOT}: {how}" if how else MAIN_PLOT)

    def highlight(self, side: str = "left"):
        """The selection on a side's latent plot (engine ``MappedSelection``: ids and their coordinates there)."""
        from engine.explore.selection import map_selection

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
        from engine.explore.selection import export_ids

        if self.selection is None:
            return None
        folder = Path(tempfile.mkdtemp(prefix="latent-inspector-selection-"))
        name = f"{self.inspector.project}-{self.inspection.layer}-selection{suffix}"
        try:
            return export_ids(self.selection, folder / name)
        except InspectorError as exc:
            self.error = str(exc)
            return None

    # -- compare view -----------------------------------------------------------------------------------------------

    def _list_models(self):
        """The model files of the project folder, and the layers of the chosen one."""
        project = self.inspector.project_obj
        if project is None:
            return
        self._models_of = project
        own = Path(project.model_path).resolve()
        names = {}
        for path in project.model_files():
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
        project, model = self.inspector.project_obj, self.other_model
        if project is None:
            return
        if not model:
            self._layers_listed(list(self.inspector.layers))
            return

        def work(progress):
            from engine.model import list_layers

            progress("reading the model", 0, 1)
            return list_layers(project.with_model(model).model())

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
        project, layer = self.inspector.project_obj, self.other_layer
        if project is None or layer is None:
            return
        request = shared.Request.make(project.name, layer, self.other_method, "auto", root=project.path.parent,
                               model=self.other_model)

        def work(progress):
            other = shared.inspection(request, progress)
            other.frame  # noqa: B018 (its plot table, on the worker)
            return other

        def apply(other):
            self.param.update(other=other, other_points=other.frame)
            self._pair()

        self.jobs.submit("compare", f"{method_label(request.method)} of {layer}", work, apply)

    def _pair(self):
        from engine.explore.compare import compare

        if self.other is None or self.inspection is None:
            return
        try:
            self.comparison = compare(self.inspection, self.other)
        except InspectorError as exc:
            self.param.update(comparison=None, other=None, other_points=None, error=str(exc))
