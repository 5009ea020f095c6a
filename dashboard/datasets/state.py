"""The state of the project's generated datasets and of the probe classifier: label decodes and save them.

:class:`Datasets` follows an :class:`~dashboard.inspector.state.Inspector`: the current generated dataset of the
project (its records, those that lie on the current plot, save / undo / delete / export), and the probe of the
inspected layer (train it, its prediction for the current decode, or why no probe can be trained). Training on the
records (the model's suffix, or the probe refitted) is :mod:`dashboard.finetune`'s. Every number is the engine's
(:mod:`engine.data.generated`, :mod:`engine.explore.probe`); the trained probe is shared by every session
(:mod:`dashboard.shared`) and shown by the inspector, whose plot it colours.
"""

from __future__ import annotations

import param

from engine.errors import DataError, InspectorError

from ..inspector.state import Follower
from ..shared import plot_table

__all__ = ["Datasets"]


class Datasets(Follower):
    """The generated datasets and the probe of one session.

    Parameters
    ----------
    inspector : Inspector
        The session's inspection: what is saved, and what the probe is trained on.

    Example
    -------
    >>> datasets = Datasets(inspector=store, dataset="corrections")     # doctest: +SKIP
    >>> store.decode_at(0.5, -1.0); datasets.save_current("not a digit")  # doctest: +SKIP
    '20240501-...'
    """

    dataset = param.String(default="generated", doc="Generated dataset that saves go to")
    records = param.List(default=[], doc="Every record of the current generated dataset (engine Record), oldest first")
    saved = param.List(default=[], doc="The records that lie on the current plot (its markers)")
    datasets = param.List(default=[], doc="Generated datasets of the project")
    notice = param.String(default="", doc="Outcome of the last save, undo or deletion")
    probe_note = param.String(default="", doc="Why no probe can be trained here, when that is so")
    prediction = param.Parameter(default=None, doc="The probe's engine Prediction for the current decode")
    error_at = param.Selector(default="", objects=["", "label", "records", "probe"], doc=(
        "Which controls asked for the work that failed last, so that its view shows the error beside them: the "
        "label box (save, undo), the records (delete, export, another dataset), the probe's training; '' when the "
        "error came from elsewhere (every view of this state then shows it)"))
    undoable = param.Boolean(default=False, doc="This session saved a record of the current dataset that is still "
                             "there: Undo takes back the newest of them")

    def __init__(self, **params):
        super().__init__(**params)
        self._open = (None, None)  # (key, GeneratedDataset) of the current dataset
        self._mine: dict[tuple, list[str]] = {}  # ids this session saved, oldest first, by (project path, dataset)
        self._failing = ""  # where the error about to be reported comes from (see _fail)
        inspector = self.inspector
        inspector.param.watch(self._project_changed, "project_obj")
        inspector.param.watch(self._mark_saved, "inspection")
        # the probe's label after the decoded image, which the user waits for
        inspector.param.watch(self._predict, ["decode", "probe"], precedence=50)
        self._project_changed()

    def _project_changed(self, *_):
        project = self.inspector.project_obj
        self.param.update(records=[], saved=[], prediction=None, notice="", undoable=False)
        if project is None:
            return
        from engine.explore.probe import probe_status

        self.probe_note = probe_status(project) or ""
        self._load_records()

    # -- where an error is shown -------------------------------------------------------------------------------------

    def _fail(self, where: str, message: str) -> None:
        """Report ``message`` as the error of the controls ``where`` (an :attr:`error_at` value)."""
        self._failing = where
        self.error = ""  # the same message again is a new error: shown again, where it now comes from
        self.error = message

    @param.depends("error", watch=True)
    def _place_error(self):
        if self.error:  # set by _fail, by the job runner after the probe's work failed, or by another state
            self.error_at, self._failing = self._failing, ""

    # -- the dataset -----------------------------------------------------------------------------------------------

    def _key(self) -> tuple:
        return (str(self.inspector.project_obj.path), self.dataset)

    def current(self):
        """This session's handle on the current dataset."""
        from engine.data.generated import GeneratedDataset

        key = self._key()
        if self._open[0] != key:
            self._open = (key, GeneratedDataset(self.inspector.project_obj, self.dataset))
        return self._open[1]

    @param.depends("dataset", watch=True)
    def _load_records(self):
        """Read the current dataset's records (and the project's dataset names) from disk."""
        project = self.inspector.project_obj
        if project is None:
            return
        from engine.data.generated import list_datasets

        try:
            records = self.current().records()
        except (InspectorError, ValueError) as exc:
            self.param.update(records=[], saved=[], undoable=False)
            self._fail("records", str(exc))
            return
        present = {r.id for r in records}
        self.param.update(records=records, datasets=list_datasets(project),
                          undoable=any(i in present for i in self._mine.get(self._key(), ())))
        self._mark_saved()

    def _mark_saved(self, *_):
        inspection = self.inspector.inspection
        self.saved = [r for r in self.records if inspection is not None and r.matches(inspection)]

    def save_current(self, label=None):
        """Save the current decode, labelled ``label`` (default: the probe's prediction), to the dataset.

        Returns the record's id, or None when nothing was saved (the reason is in :attr:`error`).
        """
        prediction = self.prediction
        return self.save_decode(self.inspector.decode, label,
                                suggestion=prediction.name if prediction is not None else None)

    def save_decode(self, decoded, label=None, *, suggestion=None):
        """Save any engine Decode of the current inspection (a tap, an edited activation, an interpolation step)
        to the dataset, labelled ``label`` (else ``suggestion``). Returns the record's id or None (see :attr:`error`).
        """
        inspection = self.inspector.inspection
        if decoded is None or inspection is None:
            return None
        if label is None or not str(label).strip():
            if suggestion is None:
                self._fail("label", "Give the point a label before saving it (no probe is trained to suggest one).")
                return None
            label = suggestion
        from engine.data.generated import record_from_decode

        try:
            record = record_from_decode(inspection, decoded, str(label).strip(), self.inspector.probe)
            record_id = self.current().save(record)
        except (InspectorError, ValueError, OSError) as exc:
            self._fail("label", f"Not saved: {exc}")
            return None
        self._mine.setdefault(self._key(), []).append(record_id)
        self.notice = f"Saved as {label!r} to {self.dataset!r} ({record_id})."
        self._load_records()
        return record_id

    def undo_save(self, *_):
        """Take back this session's newest save to the current dataset (moved aside, not destroyed); a record
        another session saved is never taken back. Returns the record, or None when there is none to take back."""
        mine, record = self._mine.get(self._key(), []), None
        try:
            while mine and record is None:
                try:
                    record = self.current().delete(mine[-1])
                except DataError:  # deleted meanwhile (from the table, or by another session)
                    pass
                mine.pop()
        except (InspectorError, ValueError, OSError) as exc:
            self._fail("label", str(exc))
            return None
        self.notice = (f"Took back {record.id} ({record.user_label!r})." if record
                       else "Nothing this session saved is left to take back.")
        self._load_records()
        return record

    def delete_record(self, record_id: str):
        """Delete one record of the dataset by id."""
        try:
            record = self.current().delete(record_id)
        except (InspectorError, ValueError, OSError, KeyError) as exc:
            self._fail("records", str(exc))
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
            return self.current().export(folder / f"{self.dataset}.{format}", format)
        except (InspectorError, ValueError, OSError) as exc:
            self._fail("records", str(exc))
            return None

    # -- the probe -------------------------------------------------------------------------------------------------

    def _predict(self, *_):
        """The probe's label for the current decode."""
        decoded, probe = self.inspector.decode, self.inspector.probe
        self.prediction = probe.predict_one(decoded.activation) if decoded is not None and probe is not None else None

    def train_probe(self, *_):
        """Train the engine's logistic-regression probe on the current layer's activations and labels."""
        inspection = self.inspector.inspection
        if inspection is None:
            return
        names = self.inspector.class_names() or None

        def work(progress):
            from engine.explore.probe import train_probe

            try:
                progress("fitting", 0, 2)
                probe = train_probe(inspection, class_names=names)
                progress("predicting every sample", 1, 2)
                plot_table(inspection, probe)  # on the worker too: every sample is predicted
            except Exception:
                self._failing = "probe"  # the runner reports the error next, beside the probe's button
                raise
            return probe

        self.jobs.submit("probe", f"probe on {inspection.layer}", work,
                         lambda probe: self.inspector.show_probe(inspection, probe))
