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
import os
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import panel as pn
import param

from engine.errors import InspectorError

from .cache import InspectionCache, Request
from .sample import weakly

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
WORKERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latent-inspector-work")


def _build(request: Request, progress):
    from engine.inspection import Inspection
    from engine.project import load_project

    project = load_project(request.project, root=request.root)
    if request.model:
        from engine.finetune import with_model

        project = with_model(project, request.model)
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


class RecentProbes:
    """Probes trained on a layer, shared by every session: keyed by (projects root, project, model file, layer), the
    ``max_items`` most recently trained or used kept (a long-running server sees many layers and model versions)."""

    def __init__(self, max_items: int = 32):
        self.max_items = max_items
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, key):
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def __setitem__(self, key, probe):
        with self._guard:
            self._items[key] = probe
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


_PROBES = RecentProbes()
#: The plot's table with the probe's columns, per inspection and probe.
_PROBE_FRAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Colour choices that need a trained probe.
PROBE_COLORS = ("prediction", "misclassified")
#: Categories of the "misclassified" colouring.
AGREES, DISAGREES = "probe agrees with label", "misclassified"


class Progress:
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


def in_server_session() -> bool:
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
    model_version = param.Selector(default="", objects=[""], doc="Model file: '' for the project's own model, else "
                                   "a fine-tuned version's path relative to the project folder")
    dataset = param.String(default="generated", doc="Generated dataset that saves go to")

    # -- what the engine answered --------------------------------------------------------------------------------
    project_obj = param.Parameter(default=None, doc="engine.project.Project of the current project")
    layers = param.List(default=[], doc="engine.split.LayerInfo of every layer")
    inspection = param.Parameter(default=None, doc="engine.inspection.Inspection of the current choice")
    points = param.DataFrame(default=None, allow_None=True, doc="Embedding with label columns, for the plot")
    decode = param.Parameter(default=None, doc="The current engine Decode")
    history = param.List(default=[], doc="The last decodes, oldest first")
    saved = param.List(default=[], doc="Saved records of the dataset that lie on the current plot (markers)")
    records = param.List(default=[], doc="Every record of the current generated dataset (engine Record), oldest first")
    datasets = param.List(default=[], doc="Generated datasets of the project")
    probe = param.Parameter(default=None, doc="engine.probe.Probe trained on the current layer, or None")
    probe_note = param.String(default="", doc="Why no probe can be trained here, when that is so")
    prediction = param.Parameter(default=None, doc="The probe's engine Prediction for the current decode")
    compare = param.Parameter(default=None, doc="The original model's output for the current decode's activation, "
                              "when a fine-tuned version is shown")
    notice = param.String(default="", doc="Outcome of the last dataset or fine-tuning action")
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
        self._closed = False
        if in_server_session():
            pn.state.on_session_destroyed(weakly(self._closing))
        self.param.watch(self._predict, "decode", precedence=50)  # after the decoded image, which the user waits for
        self._lock = threading.Lock()
        objects = self.param.project.objects
        served = os.environ.get("LATENT_INSPECTOR_PROJECT")  # the project `latent-inspector serve PROJECT` opens
        default = next((p for p in (served, "mnist") if p in objects), objects[0] if objects else None)
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
        if self._closed:  # a result of the closed session's last work: nobody is left to see what it would start
            return
        with self._lock:
            self._generation += 1
            generation = self._generation
        tracker = Progress(label)
        self.param.update(busy=True, status=label, progress=None, **({"error": ""} if clear_error else {}))
        if in_server_session():
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
        future = loop.run_in_executor(WORKERS, work, tracker)
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.25)
            if self._closed:
                # Queued work is dropped, so that it does not hold the worker every session shares; work already
                # running finishes (a shared inspection it builds still lands in the cache) and nobody waits for it.
                future.cancel()
                return
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

    def _closing(self, session_context=None):
        """The session's page is gone: nothing this store would compute can be seen any more."""
        self._closed = True

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
                              history=[], saved=[], hovered=None, probe=None, prediction=None, compare=None,
                              notice="")
            self._refresh_versions()
            self.layer = layer
        finally:
            self._opening = False
        self._load_records()
        if layer is None:
            self.error = f"project {project.name!r}: the model has no layer where it can be cut"
        else:
            self._inspect(clear_error=False)

    @param.depends("layer", "method", "inverse", "n_neighbors", "min_dist", "perplexity", "model_version",
                   watch=True)
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
        root = self.project_obj.path.parent if self.project_obj is not None else None
        return Request.make(self.project, self.layer, self.method, self.inverse, params, root=root,
                            model=self.model_version)

    def _inspected(self, inspection):
        probe = _PROBES.get(self._probe_key(inspection))
        frame = self._frame(inspection) if probe is None else self._probe_frame(inspection, probe)
        self.param.update(inspection=inspection, points=frame, decode=None, hovered=None, probe=probe,
                          prediction=None, compare=None)
        self._colors(inspection, probe)
        self.probe_note = self._probe_unavailable()
        self._mark_saved()

    def _colors(self, inspection, probe):
        colors = ["label", "none"] if inspection.labels is not None else ["none"]
        if probe is not None:
            colors[-1:-1] = ["prediction", "misclassified"] if inspection.labels is not None else ["prediction"]
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

    def _probe_frame(self, inspection, probe) -> pd.DataFrame:
        """The plot's table plus the probe's predicted class and, with labels, whether it agrees with the label."""
        per_probe = _PROBE_FRAMES.setdefault(inspection, weakref.WeakKeyDictionary())
        frame = per_probe.get(probe)
        if frame is None:
            frame = self._frame(inspection).copy(deep=False)
            names = list(probe.class_names_)
            frame["prediction"] = pd.Categorical(probe.predict_names(inspection.activations), categories=names)
            if inspection.labels is not None:
                wrong = probe.misclassified(inspection.activations, inspection.labels)
                frame["misclassified"] = pd.Categorical.from_codes(wrong.astype("int8"), [AGREES, DISAGREES])
            per_probe[probe] = frame
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

    def _predict(self, *_):
        """The probe's label for the current decode and, with a fine-tuned version, the original model's output."""
        decoded, probe = self.decode, self.probe
        prediction = compare = None
        if decoded is not None:
            if probe is not None:
                prediction = probe.predict_one(decoded.activation)
            if self.model_version and self.project_obj is not None:
                from engine.finetune import decode_with, model_versions

                try:
                    original = model_versions(self.project_obj)[0]
                    compare = decode_with(self.project_obj, original, self.layer, decoded.activation[None])[0]
                except InspectorError as exc:
                    self.error = str(exc)
        self.param.update(prediction=prediction, compare=compare)

    def restore(self, decode):
        """Show an earlier decode of the history again."""
        if any(decode is d for d in self.history):
            self.decode = decode

    def clear_history(self):
        """Forget the history of decodes (saved records stay: they are the dataset's)."""
        self.param.update(history=[])

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

    # -- probe -----------------------------------------------------------------------------------------------------

    def _probe_key(self, inspection) -> tuple:
        project = inspection.project
        return (str(project.path.parent), project.name, str(project.model_path), inspection.layer)

    def _probe_unavailable(self) -> str:
        """Why no probe can be trained on this project, or '' when one can."""
        if self.project_obj is None:
            return ""
        from engine.probe import probe_status

        return probe_status(self.project_obj) or ""

    def train_probe(self, *_):
        """Train the engine's logistic-regression probe on the current layer's activations and labels."""
        inspection = self.inspection
        if inspection is None:
            return
        names = self.class_names() or None

        def work(progress):
            from engine.probe import train_probe

            progress("fitting", 0, 2)
            probe = train_probe(inspection, class_names=names)
            progress("predicting every sample", 1, 2)
            return probe, self._probe_frame(inspection, probe)

        def apply(result):
            probe, frame = result
            _PROBES[self._probe_key(inspection)] = probe
            if self.inspection is not inspection:
                return
            self.param.update(probe=probe, points=frame)
            self._colors(inspection, probe)
            self._predict()

        self._submit(f"probe on {inspection.layer}", work, apply)

    # -- generated datasets ----------------------------------------------------------------------------------------

    def _dataset(self):
        """This session's handle on the current dataset: its undo takes back this session's own last save."""
        from engine.generated import GeneratedDataset

        key = (str(self.project_obj.path), self.dataset)
        if getattr(self, "_open_dataset", (None, None))[0] != key:
            self._open_dataset = (key, GeneratedDataset(self.project_obj, self.dataset))
        return self._open_dataset[1]

    @param.depends("dataset", watch=True)
    def _load_records(self):
        """Read the current dataset's records (and the project's dataset names) from disk."""
        if self.project_obj is None:
            return
        from engine.generated import list_datasets

        try:
            records = self._dataset().records()
        except (InspectorError, ValueError) as exc:
            self.param.update(records=[], saved=[], error=str(exc))
            return
        self.param.update(records=records, datasets=list_datasets(self.project_obj))
        self._mark_saved()

    def _mark_saved(self):
        inspection = self.inspection
        self.saved = [r for r in self.records if inspection is not None and r.matches(inspection)]

    def save_current(self, label=None):
        """Save the current decode, labelled ``label`` (default: the probe's prediction), to the dataset.

        Returns the record's id, or None when nothing was saved (the reason is in :attr:`error`).
        """
        prediction = self.prediction
        return self.save_decode(self.decode, label, suggestion=prediction.name if prediction is not None else None)

    def save_decode(self, decoded, label=None, *, suggestion=None):
        """Save any engine Decode of the current inspection (a tap, an edited activation, an interpolation step)
        to the dataset, labelled ``label`` (else ``suggestion``). Returns the record's id or None (see :attr:`error`).
        """
        inspection = self.inspection
        if decoded is None or inspection is None:
            return None
        if label is None or not str(label).strip():
            if suggestion is None:
                self.error = "Give the point a label before saving it (no probe is trained to suggest one)."
                return None
            label = suggestion
        from engine.generated import record_from_decode

        try:
            record_id = self._dataset().save(record_from_decode(inspection, decoded, str(label).strip(), self.probe))
        except (InspectorError, ValueError, OSError) as exc:
            self.error = f"Not saved: {exc}"
            return None
        self.notice = f"Saved as {label!r} to {self.dataset!r} ({record_id})."
        self._load_records()
        return record_id

    def undo_save(self, *_):
        """Take back the newest record of the dataset (it is moved aside, not destroyed)."""
        try:
            record = self._dataset().undo()
        except (InspectorError, ValueError, OSError) as exc:
            self.error = str(exc)
            return None
        self.notice = f"Took back {record.id} ({record.user_label!r})." if record else "Nothing to take back."
        self._load_records()
        return record

    def delete_record(self, record_id: str):
        """Delete one record of the dataset by id."""
        try:
            record = self._dataset().delete(record_id)
        except (InspectorError, ValueError, OSError, KeyError) as exc:
            self.error = str(exc)
            return None
        self.notice = f"Deleted {record.id} ({record.user_label!r})."
        self._load_records()
        return record

    def export_dataset(self, format: str):
        """Write the dataset as ``.npz``, ``.csv`` or ``.h5`` (x = decoded outputs, y = labels) into a temporary
        folder and return the file's path (for a download), or None on failure."""
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp(prefix="latent-inspector-export-"))
        try:
            return self._dataset().export(folder / f"{self.dataset}.{format}", format)
        except (InspectorError, ValueError, OSError) as exc:
            self.error = str(exc)
            return None

    # -- fine-tuning and model versions ----------------------------------------------------------------------------

    def _refresh_versions(self, select: str | None = None):
        from engine.finetune import model_versions

        project = self.project_obj
        found = model_versions(project)
        names = {f"original ({found[0].name})": ""}
        names |= {str(v.path.relative_to(project.path)): str(v.path.relative_to(project.path)) for v in found[1:]}
        versions = list(names.values())
        self.param.model_version.objects = names
        if select is not None:
            self.model_version = select
        elif self.model_version not in versions:
            self.model_version = ""

    @property
    def suffix_trainable(self) -> bool:
        """True when the model's output is drawn as class probabilities, so its suffix can learn the dataset's
        labels (the engine checks the outputs themselves before training)."""
        inspection = self.inspection
        return bool(inspection is not None and len(inspection.output_shape) == 1 and inspection.output_shape[0] > 1
                    and getattr(self.project_obj.output_view, "kind", None) == "probabilities")

    def finetune(self, *, epochs: int = 5):
        """Fine-tune the model's suffix on the dataset's records; the new version is saved and then shown."""
        project, dataset = self.project_obj, self.dataset
        if project is None:
            return
        from engine.project import load_project

        def work(progress):
            from engine.finetune import finetune_suffix, with_model

            current = with_model(project, self.model_version) if self.model_version else project
            return finetune_suffix(current, dataset, epochs=epochs, unknown_labels="skip",
                                   progress=lambda done, total: progress("training", done, total))

        def apply(result):
            self.project_obj = load_project(project.name, project.path.parent)
            self.notice = (
                f"Fine-tuned for {len(result.history)} epochs on {result.n_records} records of {dataset!r}"
                + (f" ({result.skipped} with labels outside the model's classes skipped)" if result.skipped else "")
                + f": their loss {result.loss_before:.3f} → {result.loss_after:.3f}, accuracy "
                f"{result.accuracy_before:.0%} → {result.accuracy_after:.0%}. Saved as {result.path.name}; "
                "the original model is unchanged."
            )
            self._refresh_versions(select=str(result.path.relative_to(project.path)))

        self._submit(f"fine-tuning on {dataset}", work, apply)

    def refit_probe(self, *_, record_weight: float = 10.0):
        """Refit the probe on the project's labelled activations plus the dataset's records (each weighing as much
        as ``record_weight`` samples: a few corrections among thousands of samples would barely move it)."""
        inspection, dataset = self.inspection, self.dataset
        if inspection is None:
            return

        def work(progress):
            from engine.finetune import finetune_probe

            layer = self._dataset().manifest()["layer"] if self._dataset().exists else None
            if layer is not None and layer != inspection.layer:
                raise InspectorError(f"dataset {dataset!r} holds activations of layer {layer!r}; the plot shows "
                                     f"{inspection.layer!r}: switch to that layer to refit the probe with it")
            progress("fitting", 0, 2)
            probe = finetune_probe(inspection.project, dataset, record_weight=record_weight)
            progress("predicting every sample", 1, 2)
            return probe, self._probe_frame(inspection, probe)

        def apply(result):
            probe, frame = result
            _PROBES[self._probe_key(inspection)] = probe
            self.notice = (f"Probe refitted with the records of {dataset!r} (each weighing {record_weight:g} "
                           f"samples): validation accuracy {probe.validation_accuracy_:.1%}.")
            if self.inspection is inspection:
                self.param.update(probe=probe, points=frame)
                self._colors(inspection, probe)
                self._predict()

        self._submit(f"probe with {dataset}", work, apply)
