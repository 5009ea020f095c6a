"""The state of refining the model by moving the selected samples on the Inspect tab's plot.

:class:`Refining` follows an :class:`~dashboard.inspector.state.Inspector` and its
:class:`~dashboard.selection.state.Selection`: in *move* mode, the selection's centroid is a handle the user drags
(:attr:`origin` to :attr:`destination`); :meth:`refine` runs :func:`engine.explore.refine.refine` on the session's
job runner (progress, cancel), the layers before the cut fine-tuned on a copy of the model and saved as a new
version. The plot then moves every point from its place to the refined model's on the same map (the frames of
:func:`engine.explore.refine.transition`) and shows the new version, read on that map
(:func:`engine.explore.refine.refined_inspection`): taps decode through the refined model, the selection stays. It
keeps what came of it: where the moved samples landed on the same map, the drift of the others, the probe's held-out
accuracy before and after (:func:`engine.explore.probe.train_probe`), the suffix's outputs for the
moved samples. :meth:`undo` drops the newest refinement (:func:`engine.explore.refine.undo_refinement`). Every
number is the engine's.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import param

from engine.errors import InspectorError

from ..inspector.state import Follower
from ..selection.state import Selection

__all__ = ["FRAMES", "FRAME_MS", "Refining"]

#: Frames of the points' way from their places to the refined model's, :data:`FRAME_MS` apart.
FRAMES = 8
FRAME_MS = 200




class Refining(Follower):
    """Moving the selection and refining the model, for one session.

    Parameters
    ----------
    inspector : Inspector
    selection : Selection
        The samples to move.
    on_versions : callable, optional
        Called after a version was added or dropped (the fine-tuning card lists the versions).

    Example
    -------
    >>> refining = Refining(inspector=store, selection=selection)      # doctest: +SKIP
    >>> refining.moving = True; refining.drag_to(1.5, -0.3)            # doctest: +SKIP
    >>> refining.refine(); refining.result.path.name                   # doctest: +SKIP
    'model-20261204T231500.keras'
    """

    selection = param.ClassSelector(class_=Selection, doc="The session's selection: the samples to move")
    on_versions = param.Callable(default=None, allow_None=True, doc="Called when the versions change")
    moving = param.Boolean(default=False, doc="Move mode: the selection's centroid is a handle to drag")
    destination = param.XYCoordinates(default=None, allow_None=True, doc="Where the handle was dragged")
    steps = param.Integer(default=60, bounds=(1, 2000), doc="Training steps of a refinement")
    last_layers = param.Integer(default=0, bounds=(0, None), doc="Train only the last k layers before the cut (0: all)")
    result = param.Parameter(default=None, doc="The last refinement's engine.explore.refine.RefineResult")
    probe_before = param.Number(default=None, allow_None=True, doc="Probe's held-out accuracy before")
    probe_after = param.Number(default=None, allow_None=True, doc="Probe's held-out accuracy after")
    refinements = param.List(default=[], doc="The project's refinements (engine.explore.refine.Refinement)")
    notice = param.String(default="", doc="Outcome of the last refinement or undo")

    def __init__(self, **params):
        super().__init__(**params)
        self._cancel = threading.Event()
        self._refined = None  # the refined version's inspection this session shows: its result stays with it
        self._origin = None  # the inspection the last refinement was made on (undo goes back to it)
        self.selection.param.watch(self._selection_changed, "ids")
        self.inspector.param.watch(self._inspection_changed, ["inspection", "project_obj"])
        self._inspection_changed()

    # -- the handle -------------------------------------------------------------------------------------------------

    @property
    def origin(self) -> tuple[float, float] | None:
        """The selection's centroid on the map (where the handle starts), None without a selection."""
        ids, inspection = self.selection.ids, self.inspection
        if ids is None or not len(ids) or inspection is None:
            return None
        x, y = np.asarray(inspection.embedding, np.float64)[ids].mean(axis=0)
        return float(x), float(y)

    def handle(self) -> tuple[float, float] | None:
        """Where the handle is drawn: the destination once dragged, else the selection's centroid; None when it is
        not shown (not in move mode, or nothing selected)."""
        if not self.moving or self.origin is None:
            return None
        return self.destination if self.destination is not None else self.origin

    def drag_to(self, x, y):
        """The handle was dragged to ``(x, y)`` (the plot's PointDraw tool)."""
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            return
        if np.isfinite(x) and np.isfinite(y) and self.origin is not None:
            self.destination = (x, y)

    def _selection_changed(self, *_):
        self.destination = None

    def _inspection_changed(self, *_):
        if self.inspection is not None and self.inspection is self._refined:  # the version just refined, shown
            self.param.update(destination=None)
            return
        self._refined = None
        self.param.update(destination=None, result=None, probe_before=None, probe_after=None)
        self.refresh()

    def refresh(self):
        """Read the project's refinements again."""
        from engine.explore.refine import refinements

        project = self.inspector.project_obj
        try:
            self.refinements = refinements(project) if project is not None else []
        except InspectorError as exc:
            self.error = str(exc)

    def blocker(self) -> str:
        """Why no refinement can start now, in words ('' when one can)."""
        if self.inspection is None:
            return "Refining waits for the inspection of a layer."
        if self.selection.ids is None or not len(self.selection.ids):
            return "Select samples with the box or lasso tool first."
        if not self.moving:
            return "Turn on “Move selection” and drag the diamond handle to where the samples belong."
        if self.destination is None:
            return "Drag the diamond handle (the selection's centre) to where the samples belong."
        return ""

    # -- refining ---------------------------------------------------------------------------------------------------

    def refine(self):
        """Refine the model so that the selected samples move to the handle: a new model version, on the worker."""
        from engine.explore.refine import Move

        why = self.blocker()
        if why:
            self.error = why
            return
        inspection, ids = self.inspection, np.asarray(self.selection.ids)
        move = Move(tuple(int(i) for i in ids), tuple(self.destination))
        steps, last = self.steps, (self.last_layers or None)
        self._cancel = cancel = threading.Event()
        request = self.inspector.request()  # the refined version's picture is kept under the same choices

        def work(progress):
            from engine.explore.probe import train_probe
            from engine.explore.refine import refine, refined_inspection, transition

            result = refine(inspection, move, steps=steps, last_layers=last, progress=progress, cancel=cancel.is_set)
            before = after = None
            if inspection.labels is not None:
                progress("probe before and after", 0, 2)
                try:
                    before = train_probe(inspection).validation_accuracy_
                    after = train_probe(result.activations_after, inspection.labels).validation_accuracy_
                except InspectorError:  # no probe for these labels: the rest of the comparison stands
                    pass
                progress("probe before and after", 2, 2)
            refined, problem = None, ""
            try:
                refined = refined_inspection(inspection, result, progress=progress)
                refined.frame  # noqa: B018 (the plot's table, made here rather than on the event loop)
                refined.decode(*(float(v) for v in refined.embedding[0]))  # the suffix's first call traces its graph
            except InspectorError as exc:  # the version is saved; only its picture is missing
                problem = str(exc)
            return result, before, after, refined, problem, transition(result.xy_before, result.xy_after, FRAMES)

        def apply(found):
            result, before, after, refined, problem, frames = found
            if self.inspection is not inspection:  # another inspection was opened meanwhile
                return
            version = str(result.path.relative_to(inspection.project.path))
            shown = (f"The plot shows {result.path.name} on the same map; taps decode through it." if refined
                     is not None else f"It could not be shown on the map: {problem}")
            self.param.update(result=result, probe_before=before, probe_after=after, destination=None,
                              notice=(f"Saved {result.path.name} in {result.seconds:.1f} s: {len(result.moved):,} "
                                      f"samples moved; the parent {result.parent.name} is unchanged. {shown}"))
            if refined is None:
                self._versions_changed()
                return
            from .. import shared

            shared.INSPECTIONS.put(dataclasses.replace(request, model=version), refined)
            self._origin = inspection

            def show():
                if self.inspection is not inspection:  # the user opened another picture meanwhile
                    return
                self._refined = refined
                self.selection.keep_for(refined)  # the same samples on the same map: the selection still holds
                self._versions_changed(select=version)  # the inspector opens it from the cache: no new map

            self._animate(inspection, frames, show)

        self.jobs.submit("refine", f"refining the model: {len(ids):,} samples moved", work, apply)

    def _animate(self, inspection, frames, then):
        """The plot moves every point along ``frames`` (one every :data:`FRAME_MS`), taps waiting, then ``then()``;
        outside a server ``then()`` at once."""
        import panel as pn

        from ..jobs import in_server_session

        inspector = self.inspector
        if not in_server_session() or inspector.points is None or len(inspector.points) != len(frames[-1]):
            then()
            return
        table, left = inspector.points, list(frames)

        def step():
            if inspector.inspection is not inspection or not left:
                return
            frame = left.pop(0)
            moved = table.copy()
            moved["x"], moved["y"] = frame[:, 0].astype(table["x"].dtype), frame[:, 1].astype(table["y"].dtype)
            inspector.param.update(moving=True, decode=None, hovered=None, points=moved,
                                   shown="refined: points moving")  # short: the title must fit the plot
            if not left:
                then()

        pn.state.add_periodic_callback(step, period=FRAME_MS, count=len(left))

    def cancel(self, *_):
        """Stop the refinement under way between two steps: nothing is saved."""
        self._cancel.set()

    def undo(self, *_):
        """Drop the newest refinement (its model file and its moves); its parent is restored as it was."""
        from engine.explore.refine import undo_refinement

        project = self.inspector.project_obj
        if project is None or not self.refinements:
            self.error = "No refinement to undo."
            return
        newest = self.refinements[-1].path
        try:
            parent = undo_refinement(project, newest)
        except InspectorError as exc:
            self.error = str(exc)
            return
        self.param.update(result=None, probe_before=None, probe_after=None,
                          notice=f"Dropped {newest.name}; back to {parent.name}.")
        select = None
        if self.inspector.model_version and newest.name in self.inspector.model_version:  # the version shown is gone:
            select = "" if parent == project.model_path else str(parent.relative_to(project.path))  # its parent then
            if self._origin is not None:
                self.selection.keep_for(self._origin)  # its picture, cached: the same samples on the same map
        self._versions_changed(select=select)

    def _versions_changed(self, select: str | None = None):
        self.refresh()
        if self.on_versions is not None:
            self.on_versions(select)
