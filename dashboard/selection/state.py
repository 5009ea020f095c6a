"""The selection of one session: the samples boxed or lassoed on the Inspect tab's plot, and what to do with them.

:class:`Selection` follows an :class:`~dashboard.inspector.state.Inspector`. A box or a lasso on the latent plot
selects the samples inside it (:func:`engine.explore.selection.select_box`, :func:`~engine.explore.selection
.select_lasso` on the inspection's embedding); the selection can then be

* labelled: :meth:`Selection.label_all` saves every selected sample, labelled as the user says, into the session's
  generated dataset (:class:`dashboard.datasets.state.Datasets`), the path every label correction of the dashboard
  takes (a record per sample: its activation at the layer, the model's output for it, its place on the plot);
* saved as a dataset of its own, each sample under its own label (:meth:`Selection.save_as`);
* exported: its ids (:func:`engine.explore.selection.export_ids`) or its rows of the samples' table with the
  metadata (:func:`engine.explore.search.export_rows`), as CSV files to download.

A new inspection (another layer, reducer, project) clears it: its ids would mean other places.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import param

from engine.errors import InspectorError

from ..datasets.state import Datasets
from ..inspector.state import Follower
from ..search.state import Search

__all__ = ["MAX_RECORDS", "Selection"]

#: At most this many samples are saved at once (each is one record file, written and flushed to disk).
MAX_RECORDS = 2000


class Selection(Follower):
    """The samples selected on the latent plot of one session.

    Parameters
    ----------
    inspector : Inspector
    datasets : Datasets
        Where :meth:`label_all` and :meth:`save_as` save.
    search : Search, optional
        Its samples' table (the plot's columns and the metadata) is what :meth:`export_rows` writes.

    Example
    -------
    >>> selection = Selection(inspector=store, datasets=datasets)      # doctest: +SKIP
    >>> selection.select_box(-1, 1, -1, 1); len(selection.ids)          # doctest: +SKIP
    412
    >>> selection.label_all("blurry")                                  # doctest: +SKIP
    """

    datasets = param.ClassSelector(class_=Datasets, doc="The session's generated datasets")
    search = param.ClassSelector(class_=Search, default=None, allow_None=True, doc="The session's search")
    ids = param.Array(default=None, allow_None=True, doc="Ids of the selected samples (sorted), None: no selection")
    how = param.String(default="", doc="How the selection was made, in words")
    notice = param.String(default="", doc="Outcome of the last action on the selection")

    def __init__(self, **params):
        super().__init__(**params)
        self._kept_for = None  # an inspection of the same samples on the same map (a refined version's)
        self.inspector.param.watch(self._inspection_changed, ["inspection", "project_obj"])

    def keep_for(self, inspection):
        """``inspection`` holds the same samples on the same map (the refined version of the model the selection was
        made on, :func:`engine.explore.refine.refined_inspection`): the selection stays when it is shown."""
        self._kept_for = inspection

    def _inspection_changed(self, *events):
        shown = self.inspector.inspection
        if shown is not None and shown is self._kept_for and all(e.name == "inspection" for e in events):
            return
        self._kept_for = None
        self.clear()

    # -- selecting -------------------------------------------------------------------------------------------------

    def _selected(self, ids, how: str):
        self.param.update(ids=np.asarray(ids, dtype=np.int64), how=how, notice="")

    def select_box(self, x0, x1, y0, y1):
        """Select the samples inside the box ``[x0, x1] x [y0, y1]`` of the plot (the engine's
        :func:`~engine.explore.selection.select_box`)."""
        from engine.explore.selection import select_box

        inspection = self.inspection
        if inspection is None or self.inspector.moving:
            return
        self._selected(select_box(inspection.embedding, x0, x1, y0, y1),
                       f"box x {min(x0, x1):.3g} – {max(x0, x1):.3g}, y {min(y0, y1):.3g} – {max(y0, y1):.3g}")

    def select_lasso(self, polygon):
        """Select the samples inside the lasso ``polygon`` (vertices (m, 2)) of the plot."""
        from engine.explore.selection import select_lasso

        inspection = self.inspection
        if inspection is None or self.inspector.moving or polygon is None or len(polygon) < 3:
            return
        try:
            ids = select_lasso(inspection.embedding, np.asarray(polygon, dtype=np.float64))
        except InspectorError as exc:
            self.error = str(exc)
            return
        self._selected(ids, f"lasso of {len(polygon)} vertices")

    def clear(self, *_):
        """Forget the selection."""
        self.param.update(ids=None, how="", notice="")

    @property
    def count(self) -> int:
        return 0 if self.ids is None else len(self.ids)

    # -- acting on it ----------------------------------------------------------------------------------------------

    def _decodes(self, ids):
        """Each selected sample as an engine Decode of the inspection: its own activation at the layer, the model's
        output for it, its place on the plot and the trust of that place."""
        from engine.explore.inspection import Decode

        inspection = self.inspection
        acts = np.asarray(inspection.activations[ids], dtype=np.float32).reshape((len(ids), *inspection.latent_shape))
        outputs = inspection.decode_outputs(acts, self.inspector.head)
        xy = np.asarray(inspection.embedding[ids], dtype=np.float32)
        trust = inspection.reducer.trust(xy)
        return [Decode((float(p[0]), float(p[1])), a, out, trust[k], int(i), 0.0)
                for k, (i, a, out, p) in enumerate(zip(ids, acts, outputs, xy))]

    def _save(self, dataset: str, labels_of, what: str, on_saved):
        """Save the selected samples into generated dataset ``dataset``, sample ``i`` labelled ``labels_of(i)``, on
        the worker; ``on_saved(count)`` after."""
        from engine.data.generated import GeneratedDataset, record_from_decode

        inspection, ids = self.inspection, self.ids
        if inspection is None or ids is None or not len(ids):
            self.error = "Select samples first: pick the box or lasso tool in the plot's toolbar and drag."
            return
        if len(ids) > MAX_RECORDS:
            self.error = (f"{len(ids):,} samples selected; {what} saves at most {MAX_RECORDS:,} at once (one record "
                          "file each): select fewer")
            return
        project, probe = self.inspector.project_obj, self.inspector.probe
        target = self.datasets.current() if dataset == self.datasets.dataset else GeneratedDataset(project, dataset)

        def work(progress):
            done = 0
            for start in range(0, len(ids), 256):
                chunk = ids[start:start + 256]
                for decoded in self._decodes(chunk):
                    target.save(record_from_decode(inspection, decoded, labels_of(decoded.nearest), probe))
                    done += 1
                progress("saving records", done, len(ids))
            return done

        self.jobs.submit("save", f"{what}: {len(ids):,} samples", work, on_saved)

    def label_all(self, label: str):
        """Record ``label`` for every selected sample: each is saved, so labelled, into the session's generated
        dataset (:attr:`Datasets.dataset`), where label corrections go (and from where the probe or the model's
        suffix is fine-tuned)."""
        label = str(label or "").strip()
        if not label:
            self.error = "Type the label to give the selected samples."
            return
        dataset = self.datasets.dataset

        def saved(count):
            self.notice = f"Labelled {count:,} samples {label!r} in dataset {dataset!r}."
            self.datasets.param.trigger("dataset")  # its records are read again

        self._save(dataset, lambda _i: label, f"labelling as {label!r}", saved)

    def save_as(self, name: str):
        """Save the selected samples, each under its own label (its class name; ``unlabelled`` without labels), as
        generated dataset ``name``; it becomes the session's current dataset."""
        from engine.data.generated import GeneratedDataset

        name = str(name or "").strip()
        try:
            GeneratedDataset(self.inspector.project_obj, name)  # the name is checked before any work
        except InspectorError as exc:
            self.error = str(exc)
            return
        labels = self.inspection.labels if self.inspection is not None else None
        label_of = self.inspector.label_of

        def saved(count):
            self.notice = f"Saved {count:,} samples as dataset {name!r}."
            if self.datasets.dataset == name:
                self.datasets.param.trigger("dataset")
            else:
                self.datasets.dataset = name

        self._save(name, (lambda i: label_of(labels[i])) if labels is not None else (lambda _i: "unlabelled"),
                   f"saving as {name!r}", saved)

    def _export(self, write, filename: str):
        folder = Path(tempfile.mkdtemp(prefix="latent-inspector-selection-"))
        try:
            return write(folder / filename)
        except (InspectorError, OSError) as exc:
            self.error = str(exc)
            return None

    def export_ids(self):
        """The selected ids as a CSV file (``sample_id``, one a line) in a temporary folder: its path, for a
        download; None without a selection."""
        from engine.explore.selection import export_ids

        if self.ids is None:
            return None
        return self._export(lambda path: export_ids(self.ids, path), "selection-ids.csv")

    def export_rows(self):
        """The selected samples' rows of the samples' table (place, label, predictions, metadata) as CSV in a
        temporary folder: its path, for a download; None without a selection."""
        from engine.explore.search import export_rows, sample_table

        if self.ids is None or self.inspector.points is None:
            return None
        table = self.search.table if self.search is not None and self.search.table is not None else None
        if table is None:
            project = self.inspector.project_obj
            table = sample_table(self.inspector.points, project.metadata() if project is not None else None)
        return self._export(lambda path: export_rows(table, self.ids, path), "selection-rows.csv")
