"""What every session of the process shares: the built inspections, the probes trained on a layer, and the plot
tables with a probe's columns.

Building an :class:`engine.explore.inspection.Inspection` propagates the dataset and fits a reducer and an inverse
map: seconds to minutes. The result depends only on the :class:`Request` (project, model version, layer, reducer,
inverse map, parameters), never on who asked, so the process keeps the last few (:data:`INSPECTIONS`, an engine
:class:`~engine.memo.Memo`) and hands the same object to every session; two sessions asking for the same request at
once compute it once. A build that fails stores nothing. What derives from one inspection (its plot table, point
index, latent editor, parallel coordinates) is the inspection's own, and so shared with it.

A probe depends on the layer's activations only, not on the reducer: the last probes trained are kept by layer
(:data:`PROBES`), so that another session, or another reducer of the same layer, shows it at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from engine.memo import Memo, ObjectMemo
from engine.progress import report

__all__ = [
    "AGREES",
    "DISAGREES",
    "INSPECTIONS",
    "PROBES",
    "PROBE_COLORS",
    "Request",
    "Snapshots",
    "build",
    "inspection",
    "plot_table",
    "probe_key",
    "quality",
    "remember_probe",
    "shared_probe",
    "snapshot_table",
]


@dataclass(frozen=True)
class Request:
    """What to inspect: everything an :class:`~engine.explore.inspection.Inspection` depends on."""

    root: str  # the projects root the name is resolved in
    project: str
    layer: str
    method: str = "pca"
    inverse: str = "auto"
    params: tuple = field(default_factory=tuple)  # sorted (name, value) pairs of the reducer's parameters
    model: str = ""  # a fine-tuned version's file, relative to the project folder; "" for the project's own model

    @classmethod
    def make(cls, project, layer, method="pca", inverse="auto", params=None, root=None, model=""):
        """The request for ``project`` (a name under ``root``, default the projects root) and the choices given."""
        from engine.data.project import projects_root

        root = str(root if root is not None else projects_root())
        return cls(root, project, layer, method, inverse, tuple(sorted((params or {}).items())), str(model or ""))


def build(request: Request, progress=None, snapshot=None):
    """Build the inspection ``request`` names, reporting ``progress(stage, done, total)`` (and, for t-SNE, its
    layout as it is optimised to ``snapshot``: see :class:`Snapshots`); ready to show.

    The plot table (with the model's predicted class of every sample, where the model scores classes: every
    sample through the suffix) and the suffix's first call (its graph is traced then) are made here, on the worker,
    not on the event loop when the page first reads them: the first tap is then as fast as any. The quality report
    is not: it is computed after the picture is shown (:func:`quality`).
    """
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    project = load_project(request.project, root=request.root)
    if request.model:
        project = project.with_model(request.model)
    extra = {"snapshot": snapshot} if snapshot is not None else {}
    inspection = Inspection(project, request.layer, method=request.method, inverse=request.inverse,
                            params=dict(request.params), progress=progress, **extra)
    plot_table(inspection)  # with the model's predicted class of every sample (ten million rows take a while)
    x, y = (float(v) for v in inspection.embedding[0])
    inspection.decode(x, y)
    return inspection


#: Inspections shared by every session of this process: the last few built (each holds its activations,
#: memory-mapped, and its embedding).
INSPECTIONS = Memo(max_items=6, name="inspections shared by every session")


def inspection(request: Request, progress=None, snapshot=None):
    """The inspection for ``request``: the process's, or built now (reporting ``progress``) and kept."""
    return INSPECTIONS.get(request, lambda: build(request, progress, snapshot))


def quality(inspection, progress=None):
    """The quality report of ``inspection`` (computed once; the inspection keeps it)."""
    report(progress, "quality report", 0, 1)
    return inspection.quality


class Snapshots:
    """The latest layout a reducer reported while optimising (``snapshot(embedding, fit_index, done, total)``,
    called on the worker), taken by the event loop at most every ``interval`` seconds: the plot is redrawn about
    once a second, whatever the optimiser's pace."""

    def __init__(self, interval: float = 1.0):
        self.interval, self._latest, self._taken_at = interval, None, 0.0
        self._lock = threading.Lock()

    def __call__(self, embedding, fit_index, done, total):
        with self._lock:
            self._latest = (embedding, fit_index, done, total)

    def take(self):
        """``(embedding, fit_index, done, total)`` reported since the last take, or None (nothing new, or too soon)."""
        now = time.perf_counter()
        with self._lock:
            if self._latest is None or now - self._taken_at < self.interval:
                return None
            taken, self._latest, self._taken_at = self._latest, None, now
        return taken


def snapshot_table(embedding, fit_index, labels=None, class_names=None):
    """The plot table of a layout in progress: the table of :attr:`engine.explore.inspection.Inspection.frame` for
    the rows fitted so far (:func:`engine.render.points_frame`)."""
    import numpy as np

    from engine.render import points_frame

    picked = None if labels is None else np.asarray(labels)[np.asarray(fit_index)]
    return points_frame(np.asarray(embedding, dtype=np.float32), picked, list(class_names or []) or None)


#: Probes trained on a layer, shared by every session: the most recently trained or used, keyed by
#: :func:`probe_key` (a long-running server sees many layers and model versions).
PROBES = Memo(max_items=32, name="probes trained on a layer")


def probe_key(inspection) -> tuple:
    """What a probe depends on: the projects root, project, model file and layer of ``inspection``."""
    project = inspection.project
    return (str(project.path.parent), project.name, str(project.model_path), inspection.layer)


def remember_probe(key: tuple, probe) -> None:
    """Keep ``probe``, trained on the layer ``key`` names, for every session."""
    PROBES.put(key, probe)


def shared_probe(key: tuple):
    """The probe last trained on the layer ``key`` names, or None; a probe asked for counts as recently used."""
    return PROBES.recall(key)


#: Colour choices that need a trained probe.
PROBE_COLORS = ("prediction", "misclassified")
#: Categories of the "misclassified" colouring.
AGREES, DISAGREES = "probe agrees with label", "misclassified"
#: The plot tables with prediction columns (the model's, a probe's), kept while their inspection lives.
_PREDICTION_TABLES = ObjectMemo(max_items=2, name="plot tables with prediction columns")


def plot_table(inspection, probe=None):
    """The plot's table of ``inspection`` (its ``frame``: x, y, categorical label); a copy with the model's predicted
    class at each output of class scores (:func:`output_colors`) and, with a ``probe``, the probe's predicted class
    of each sample and, with labels, whether it agrees with the label. Made once per inspection and probe, and shared
    by the sessions showing them."""
    if probe is None and not output_colors(inspection):
        return inspection.frame
    return _PREDICTION_TABLES.get(inspection, probe, lambda: _with_predictions(inspection, probe))


def output_colors(inspection) -> dict[str, str]:
    """The colourings by the model's own predicted class: column name -> output name, for each output that is a
    vector of class scores ("model prediction" for a single output, "prediction of NAME" for several)."""
    scored = inspection.scored_heads()
    single = len(inspection.heads) == 1
    return {"model prediction" if single else f"prediction of {name}": name for name in scored}


def _with_predictions(inspection, probe):
    import pandas as pd

    frame = inspection.frame.copy(deep=False)
    for column, head in output_colors(inspection).items():
        frame[column] = pd.Categorical.from_codes(inspection.predictions(head), list(inspection.head_classes(head)))
    if probe is None:
        return frame
    frame["prediction"] = pd.Categorical(probe.predict_names(inspection.activations),
                                         categories=list(probe.class_names_))
    if inspection.labels is not None:
        wrong = probe.misclassified(inspection.activations, inspection.labels)
        frame["misclassified"] = pd.Categorical.from_codes(wrong.astype("int8"), [AGREES, DISAGREES])
    return frame
