"""The dashboard's store: what the user chose, and what the engine computed for it.

:class:`Inspector` holds the choices (project, layer, reducer, inverse map and their parameters, colouring) as
parameters, and the engine's answers (the inspection, the current decode, the history of decodes, what lies under
the cursor) as parameters the views depend on. It computes nothing itself: every number comes from an
:class:`engine.inspection.Inspection`.

Long work (loading a model, propagating the dataset, fitting a reducer) runs on a worker thread shared by the
process, so that no session, this one included, stops answering while it runs; the page shows its progress. The
built inspections are cached for every session of the process (:mod:`dashboard.cache`). Outside a server (tests,
a notebook) the same work runs synchronously.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import panel as pn
import param

from engine.errors import InspectorError

from .cache import InspectionCache, Request

log = logging.getLogger(__name__)

METHODS = {"PCA": "pca", "UMAP": "umap", "t-SNE": "tsne"}
INVERSES = {
    "auto": "auto",
    "exact (PCA)": "exact",
    "learned (MLP)": "mlp",
    "nearest neighbours": "knn",
    "native (UMAP)": "native",
}
#: Reducer parameters shown in the sidebar, by method: the names are those of the engine's estimators.
METHOD_PARAMS = {"pca": (), "umap": ("n_neighbors", "min_dist"), "tsne": ("perplexity",)}
HISTORY_LENGTH = 16

# Two cores: one worker computes while the other core keeps serving every session's events. Requests of several
# sessions queue here (each page shows its own wait as progress); identical requests are computed once.
_WORKERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latent-inspector-work")


def _build(request: Request, progress):
    from engine.inspection import Inspection
    from engine.project import load_project

    project = load_project(request.project, root=request.root)
    inspection = Inspection(
        project, request.layer, method=request.method, inverse=request.inverse, params=dict(request.params),
        progress=progress,
    )
    # Here, on the worker, not on the event loop when the page first reads them: the quality report (computed on
    # first access) and the suffix's first call (its graph is traced then), so that the first tap is as fast as any.
    progress("quality report", 0, 1)
    inspection.quality  # noqa: B018
    x, y = (float(v) for v in inspection.embedding[0])
    inspection.decode(x, y)
    return inspection


#: Inspections shared by every session of this process.
INSPECTIONS = InspectionCache(_build)
#: The plot's table of each inspection alive, shared likewise.
_FRAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Progress:
    """Collects progress reports from the worker thread; the event loop reads them."""

    def __init__(self, title: str):
        self.title, self.label, self.fraction, self.t0 = title, title, None, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, *args):
        # The engine reports (done, total) or (stage, done, total).
        *stage, done, total = args
        if stage:
            self.label = f"{self.title}: {stage[0]}"
        self.fraction = done / total if total else None

    @property
    def text(self) -> str:
        pct = f" {100 * self.fraction:.0f}%" if self.fraction is not None else ""
        return f"{self.label}{pct} ({self.elapsed:.0f} s)"


def _in_server_session() -> bool:
    doc = pn.state.curdoc
    return bool(doc is not None and doc.session_context is not None)


class Inspector(param.Parameterized):
    """State of one dashboard session.

    Parameters
    ----------
    project : str, optional
        Name of a project folder under the projects root; default ``mnist`` when there, else the first. An unknown
        name opens the default and sets :attr:`error`.
    projects : list of str, optional
        The projects offered; default :func:`engine.project.list_projects`.

    Example
    -------
    >>> store = Inspector(project="mnist")                  # doctest: +SKIP
    >>> store.decode_at(0.5, -1.0).output.shape             # doctest: +SKIP
    (28, 28, 1)
    """

    # -- choices ------------------------------------------------------------------------------------------------
    project = param.Selector(default=None, objects=[], allow_None=True, doc="Project folder under the projects root")
    layer = param.Selector(default=None, objects=[], allow_None=True, doc="Layer where the model is cut")
    method = param.Selector(default="pca", objects=METHODS, doc="2-D reducer")
    inverse = param.Selector(default="auto", objects=INVERSES, doc="Map from the plane back to the layer")
    n_neighbors = param.Selector(default="auto", objects=["auto", 5, 10, 15, 30, 50, 100, 200],
                                 doc="UMAP: neighbours per point ('auto': the engine tunes it)")
    min_dist = param.Number(default=0.1, bounds=(0.0, 0.99), step=0.05, doc="UMAP: minimum distance in the plane")
    perplexity = param.Selector(default="auto", objects=["auto", 5, 10, 30, 50, 100],
                                doc="t-SNE: perplexity ('auto': the engine tunes it)")
    color_by = param.Selector(default="label", objects=["label", "none"], doc="Colour of the points")
    spread = param.Integer(default=3, bounds=(0, 8), doc="Point size: maximum spread in pixels in sparse areas")
    live = param.Boolean(default=False, doc="Decode continuously under the cursor")

    # -- what the engine answered --------------------------------------------------------------------------------
    project_obj = param.Parameter(default=None, doc="engine.project.Project of the current project")
    layers = param.List(default=[], doc="engine.split.LayerInfo of every layer")
    inspection = param.Parameter(default=None, doc="engine.inspection.Inspection of the current choice")
    points = param.DataFrame(default=None, allow_None=True, doc="Embedding with label columns, for the plot")
    decode = param.Parameter(default=None, doc="The current engine Decode")
    history = param.List(default=[], doc="The last decodes, oldest first")
    saved = param.List(default=[], doc="Decodes the user kept")
    hovered = param.Dict(default=None, allow_None=True, doc="The sample nearest to the cursor")

    busy = param.Boolean(default=False)
    progress = param.Number(default=None, allow_None=True, bounds=(0, 1), doc="Fraction done, None if unknown")
    status = param.String(default="")
    error = param.String(default="", doc="Last error, shown as an alert until dismissed")

    def __init__(self, **params):
        projects = params.pop("projects", None)
        super().__init__(**{k: v for k, v in params.items() if k != "project"})
        from engine.project import list_projects

        self.param.project.objects = list(projects) if projects is not None else list_projects()
        self._generation = 0
        self._opening = False
        self._lock = threading.Lock()
        objects = self.param.project.objects
        default = "mnist" if "mnist" in objects else (objects[0] if objects else None)
        project, problem = params.get("project") or default, None
        if project is not None and project not in objects:
            problem = f"No project {project!r}; projects available: {', '.join(objects) or 'none'}"
            project = default  # show what there is, and say what went wrong
        if project is not None:
            self.project = project  # triggers the load
        if problem:
            self.error = problem

    # -- long work -------------------------------------------------------------------------------------------------

    def _submit(self, label, work, apply, *, clear_error: bool = True):
        """Run ``work(progress)`` off the event loop, then ``apply(result)`` unless a newer request superseded it.

        A new request clears the last error, unless it only continues the previous one (``clear_error=False``).
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
        tracker = _Progress(label)
        self.param.update(busy=True, status=label, progress=None, **({"error": ""} if clear_error else {}))
        if _in_server_session():
            async def task():
                await self._run_async(generation, tracker, work, apply)

            pn.state.execute(task)
        else:
            self._finish(generation, tracker, work, apply)

    def _finish(self, generation, tracker, work, apply):
        try:
            result = work(tracker)
        except Exception as exc:
            self._failed(generation, exc)
        else:
            self._done(generation, tracker, apply, result)

    async def _run_async(self, generation, tracker, work, apply):
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(_WORKERS, work, tracker)
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.25)
            if generation == self._generation and not done:
                self.param.update(status=tracker.text, progress=tracker.fraction)
            if done:
                break
        try:
            result = future.result()
        except Exception as exc:
            self._failed(generation, exc)
        else:
            self._done(generation, tracker, apply, result)

    def _done(self, generation, tracker, apply, result):
        if generation != self._generation:  # the user asked for something else meanwhile
            return
        try:
            apply(result)
        except Exception as exc:
            self._failed(generation, exc)
            return
        if generation == self._generation:
            self.param.update(busy=False, progress=None, status=f"{tracker.title}: done in {tracker.elapsed:.1f} s")

    def _failed(self, generation, exc):
        if not isinstance(exc, InspectorError):
            log.exception("dashboard work failed", exc_info=exc)
        if generation == self._generation:
            message = str(exc) if isinstance(exc, InspectorError) else f"{type(exc).__name__}: {exc}"
            self.param.update(busy=False, progress=None, status="", error=message)

    # -- project and layer -----------------------------------------------------------------------------------------

    @param.depends("project", watch=True)
    def _open_project(self):
        name = self.project
        if name is None:
            return

        def work(progress):
            from engine.project import load_project
            from engine.split import list_layers

            progress("loading the model", 0, 1)
            project = load_project(name)
            project.inputs()
            project.labels()
            return project, list_layers(project.model())

        self._submit(f"opening {name}", work, self._project_opened)

    def _project_opened(self, result):
        project, layers = result
        valid = [info.name for info in layers if info.valid_cut]
        layer = self.layer if self.layer in valid else project.default_layer
        if layer not in valid:
            layer = valid[len(valid) // 2] if valid else None
        self._opening = True  # one inspection for the new project and layer, not one per parameter set below
        try:
            self.param.layer.objects = [info.name for info in layers]
            self.param.update(project_obj=project, layers=layers, inspection=None, points=None, decode=None,
                              history=[], saved=[], hovered=None)
            self.layer = layer
        finally:
            self._opening = False
        if layer is None:
            self.error = f"project {project.name!r}: the model has no layer where it can be cut"
        else:
            self._inspect(clear_error=False)

    @param.depends("layer", "method", "inverse", "n_neighbors", "min_dist", "perplexity", watch=True)
    def _inspect(self, clear_error: bool = True):
        if self._opening or self.project_obj is None or self.layer is None or self.project_obj.name != self.project:
            return
        info = next((i for i in self.layers if i.name == self.layer), None)
        if info is not None and not info.valid_cut:
            self.error = f"cannot cut at {info.name!r}: {info.reason}"
            return
        request = self.request()
        cached = INSPECTIONS.peek(request)
        if cached is not None:  # built before, by this session or another: no work, no progress to show
            with self._lock:
                self._generation += 1
            self.param.update(busy=False, progress=None, status=f"{request.method.upper()} of {request.layer}: "
                              "ready (cached)", **({"error": ""} if clear_error else {}))
            self._inspected(cached)
            return
        def work(progress):
            inspection = INSPECTIONS.get(request, progress)
            self._frame(inspection)  # on the worker too: ten million rows take a while
            return inspection

        self._submit(f"{request.method.upper()} of {request.layer}", work, self._inspected, clear_error=clear_error)

    def request(self) -> Request:
        """The engine request for the current choices."""
        params = {name: getattr(self, name) for name in METHOD_PARAMS[self.method]}
        params = {k: v for k, v in params.items() if v != "auto"}  # absent: the engine tunes it
        return Request.make(self.project, self.layer, self.method, self.inverse, params)

    def _inspected(self, inspection):
        self.param.update(inspection=inspection, points=self._frame(inspection), decode=None, hovered=None)
        colors = ["label", "none"] if inspection.labels is not None else ["none"]
        if getattr(inspection, "predictions", None) is not None:
            colors.insert(len(colors) - 1, "prediction")
        self.param.color_by.objects = colors
        if self.color_by not in colors:
            self.color_by = colors[0]

    def _frame(self, inspection) -> pd.DataFrame:
        """The embedding as the plot's table: the engine's ``points_frame`` (x, y, categorical label), made once
        per inspection and shared by the sessions showing it."""
        from engine.render import points_frame

        frame = _FRAMES.get(inspection)
        if frame is None:
            names = list(inspection.project.label_names() or []) or None
            frame = points_frame(inspection.embedding, inspection.labels, names)
            predictions = getattr(inspection, "predictions", None)
            if predictions is not None:
                frame["prediction"] = points_frame(inspection.embedding, predictions, names)["label"]
            _FRAMES[inspection] = frame
        return frame

    def class_names(self) -> list[str]:
        if self.project_obj is None:
            return []
        names = self.project_obj.label_names()
        return list(names) if names is not None else []

    # -- decoding ----------------------------------------------------------------------------------------------------

    def decode_at(self, x, y, record: bool = True):
        """Decode the point (x, y) of the plane: inverse map, then the model's suffix. Returns the engine's Decode.

        ``record`` appends it to the history (a tap does, a live hover does not).
        """
        if self.inspection is None or x is None or y is None:
            return None
        try:
            decoded = self.inspection.decode(float(x), float(y))
        except InspectorError as exc:
            self.error = str(exc)
            return None
        if record:
            self.param.update(decode=decoded, history=(self.history + [decoded])[-HISTORY_LENGTH:])
        else:
            self.decode = decoded
        return decoded

    def restore(self, decode):
        """Show an earlier decode of the history again."""
        if any(decode is d for d in self.history):
            self.decode = decode

    def save_current(self):
        """Keep the current decode as a marker on the plot."""
        if self.decode is not None:
            self.saved = self.saved + [self.decode]

    def clear_markers(self):
        self.param.update(saved=[], history=[])

    def hover_at(self, x, y):
        """Record the sample nearest to (x, y), and decode there in live mode."""
        if self.inspection is None or x is None or y is None:
            return
        if self.live:
            self.decode_at(x, y, record=False)
        index = int(self.inspection.nearest(float(x), float(y)))
        if self.hovered is not None and self.hovered["index"] == index:
            return
        label = None
        if self.inspection.labels is not None:
            names = self.class_names()
            code = int(self.inspection.labels[index])
            label = names[code] if code < len(names) else str(code)
        ex, ey = (float(v) for v in self.inspection.embedding[index])
        self.hovered = {"index": index, "label": label, "x": ex, "y": ey}

    def dismiss_error(self, *_):
        self.error = ""
