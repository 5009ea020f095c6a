"""Views of the probe and the generated dataset: label a decode, save it, manage the records, fine-tune on them.

:class:`ProbeView` trains the engine's logistic-regression probe on the inspected layer and shows its validation
accuracy, its confusion matrix and its class probabilities for the current decode. :class:`LabelBox` sits under the
decoded output: the probe's predicted label in an editable box, and Save / Undo. :class:`DatasetView` is the
generated dataset: its records in a table (delete any), exports for training, fine-tuning of the model's suffix or
of the probe, and the original model's decode beside a fine-tuned version's.

Every number shown here is the engine's (:mod:`engine.probe`, :mod:`engine.generated`, :mod:`engine.finetune`).
"""

from __future__ import annotations

import html
import json
import logging

import pandas as pd
import panel as pn
import param

from ..widgets import NOTE_CSS, View, any_busy, error_html, error_pane, weakly
from .state import Datasets

__all__ = ["DatasetView", "DatasetsView", "LabelBox", "ProbeView", "confusion_html", "probabilities_html"]

log = logging.getLogger(__name__)

PROBE_CSS = """
:host table.confusion { border-collapse: collapse; font-size: 11px; margin-top: 4px; }
:host table.confusion th, :host table.confusion td { padding: 1px 4px; text-align: right; }
:host table.confusion th { color: #555; font-weight: 500; }
:host table.confusion td.diag { background: #dbe8f7; font-weight: 600; }
:host table.confusion td.off { color: #b02a37; }
:host .bars { display: grid; grid-template-columns: max-content 1fr max-content; gap: 2px 6px; font-size: 12px;
              align-items: center; }
:host .bar { height: 10px; background: #3b5b92; border-radius: 2px; }
:host .bar.top { background: #d62728; }
:host .muted { color: #666; }
"""
#: Class probabilities listed for a decode: the most likely ones.
TOP_CLASSES = 10


def confusion_html(probe) -> str:
    """The probe's validation confusion matrix (rows: true class, columns: predicted) as an HTML table."""
    names = [html.escape(str(n)) for n in probe.class_names_]
    matrix = probe.confusion_matrix_
    head = "".join(f"<th>{n}</th>" for n in names)
    rows = []
    for i, name in enumerate(names):
        cells = "".join(
            f"<td class='{'diag' if i == j else ('off' if v else '')}'>{int(v)}</td>" for j, v in enumerate(matrix[i])
        )
        rows.append(f"<tr><th>{name}</th>{cells}</tr>")
    return (f"<table class='confusion'><tr><th title='true class ↓, predicted →'>true\\pred</th>{head}</tr>"
            f"{''.join(rows)}</table>")


def probabilities_html(prediction) -> str:
    """The probe's class probabilities for one decode, as bars, the most likely first."""
    ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])[:TOP_CLASSES]
    cells = []
    for i, (name, p) in enumerate(ranked):
        cells.append(f"<span>{html.escape(str(name))}</span>"
                     f"<div class='bar{' top' if i == 0 else ''}' style='width:{100 * p:.1f}%'></div>"
                     f"<span>{p:.1%}</span>")
    return f"<div class='bars'>{''.join(cells)}</div>"


class DatasetsView(View):
    """A view of the generated datasets' state."""

    store = param.ClassSelector(class_=Datasets, doc="The session's generated datasets and probe")


class ProbeView(DatasetsView):
    """Train the probe on the current layer; its validation accuracy, confusion matrix and current prediction."""

    def __init__(self, **params):
        super().__init__(**params)
        store, inspector = self.store, self.store.inspector
        self.train = pn.widgets.Button(
            label="Train probe on this layer", color="primary", css_classes=["train-probe"], margin=(5, 10),
            disabled=pn.bind(lambda i, note, busy: i is None or bool(note) or busy, inspector.param.inspection,
                             store.param.probe_note, any_busy(inspector, store)),
        )
        self.train.on_click(store.train_probe)
        # its training, or why it failed, under the button
        line = pn.bind(self._status_html, store.param.status, store.param.error, store.param.error_at)
        self.status = pn.pane.HTML(line, stylesheets=[NOTE_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                   css_classes=["probe-status"])
        self._summary = pn.pane.HTML(pn.bind(self._summary_html, inspector.param.probe, store.param.probe_note,
                                             inspector.param.inspection),
                                     stylesheets=[PROBE_CSS], sizing_mode="stretch_width", margin=(0, 10))
        self._prediction = pn.pane.HTML(pn.bind(self._prediction_html, store.param.prediction),
                                        stylesheets=[PROBE_CSS], sizing_mode="stretch_width", margin=(0, 10))

    @staticmethod
    def _status_html(status, error, error_at) -> str:
        failed = error_html(error, error_at, "probe")
        return failed or (f"<span class='muted'>{html.escape(status)}</span>" if status else "")

    @staticmethod
    def _summary_html(probe, note, inspection) -> str:
        return f"<div class='probe-summary'>{ProbeView._summary_body(probe, note, inspection)}</div>"

    @staticmethod
    def _summary_body(probe, note, inspection) -> str:
        if note:
            return f"<p><b>Probe unavailable.</b> {html.escape(note)}</p>"
        if probe is None:
            layer = html.escape(inspection.layer) if inspection is not None else "the layer"
            return (f"<p class='muted'>A logistic regression on the activations of {layer}, standardized, "
                    "validated on a stratified split: how linearly the layer separates the classes, and a "
                    "label for every decode.</p>")
        kind = "binary" if probe.binary_ else f"{len(probe.classes_)} classes"
        split = "" if probe.stratified_ else ", not stratified: too few samples"
        unvalidated = probe.unvalidated_note()
        caveat = f"<p class='muted probe-unvalidated'>{html.escape(unvalidated)}.</p>" if unvalidated else ""
        return (f"<p>Validation accuracy <b>{probe.validation_accuracy_:.1%}</b> "
                f"<span class='muted'>(chance {probe.chance_:.1%}, {kind}, scored on "
                f"<span class='probe-held-out'>{len(probe.validation_index_):,}</span> held-out samples{split})"
                f"</span></p>{caveat}{confusion_html(probe)}")

    @staticmethod
    def _prediction_html(prediction) -> str:
        if prediction is None:
            return ""
        return (f"<div class='probe-prediction'><p style='margin:6px 0 2px'>This decode looks like "
                f"<b class='predicted-label'>{html.escape(str(prediction.name))}</b>:</p>"
                f"{probabilities_html(prediction)}</div>")

    def __panel__(self):
        return pn.Column(self.train, self.status, self._summary, self._prediction, sizing_mode="stretch_both",
                         scroll=True)


class LabelBox(DatasetsView):
    """The label of the current decode (the probe's prediction, editable: a class or any new label) and Save."""

    def __init__(self, **params):
        super().__init__(**params)
        store, inspector = self.store, self.store.inspector
        self.label = pn.widgets.AutocompleteInput(
            placeholder="a class or a new label", restrict=False, min_characters=0,
            case_sensitive=False, search_strategy="includes", width=200, margin=(5, 5),
            css_classes=["label-input"], options=self._options(),
        )
        self.save = pn.widgets.Button(label="Save", color="primary", width=70, margin=(5, 5),
                                      css_classes=["save-point"], disabled=inspector.param.decode.rx.is_(None))
        # The click carries the label. A label typed and Save clicked at once reach the server as two messages, which
        # its event threads may handle in either order (the record then got the previous label); here the browser
        # writes the label it shows, with a count, into one hidden field, and that one message is the save request.
        # (no width: a hidden widget still counts in its row's minimum width, which would widen the whole card)
        self._request = pn.widgets.TextInput(visible=False, width=0, margin=0, css_classes=["save-request"])
        # Held weakly: Panel keeps the click's JavaScript arguments (this field among them) for as long as the button
        # lives, so a strong watcher here would tie the button to this view and its store for the life of the server.
        self._request.param.watch(weakly(self._requested), "value")
        self.save.js_on_click(args={"label": self.label, "request": self._request}, code=_SAVE_JS)
        # only this session's own saves: disabled until it saved one (a fresh page would take back another's)
        self.undo = pn.widgets.Button(label="Undo save", color="light", width=90, margin=(5, 5),
                                      css_classes=["undo-save"], disabled=store.param.undoable.rx.not_())
        self.undo.on_click(store.undo_save)
        self.error = error_pane(store, at="label", css_classes=["label-error"], margin=(0, 5))  # save, undo
        store.param.watch(self._suggest, "prediction")
        store.param.watch(self._offer, "records")
        inspector.param.watch(self._offer, "project_obj")

    def _offer(self, *_):
        self.label.options = self._options()

    def _options(self) -> list[str]:
        names = list(self.store.inspector.class_names())
        return names + sorted({r.user_label for r in self.store.records} - set(names))

    def _suggest(self, event):
        if event.new is not None:
            self.label.param.update(value=str(event.new.name), value_input=str(event.new.name))

    def submit(self, label: str | None):
        """Save the current decode under ``label`` (stripped; empty or None: the probe's prediction), as a click on
        *Save* with ``label`` in the box does."""
        label = (label or "").strip()
        self.store.save_current(label or None)

    def _requested(self, event):
        try:
            request = json.loads(event.new)
            label = request["label"]
        except (TypeError, ValueError, KeyError):  # not what _SAVE_JS writes
            log.warning("ignored a malformed save request: %.80r", event.new)
            return
        self.submit(str(label))

    @staticmethod
    def _guess_html(prediction) -> str:
        """The probe's guess for the current decode, one line under the label box: where the decode is."""
        if prediction is None:
            return ""
        top = sorted(prediction.probabilities.items(), key=lambda cp: -cp[1])[:3]
        rest = ", ".join(f"{html.escape(str(c))} {p:.0%}" for c, p in top[1:])
        return (f"<span class='probe-guess'>the probe reads <b>{html.escape(str(prediction.name))}</b> "
                f"({top[0][1]:.1%})</span>" + (f"<span class='muted'> · then {rest}</span>" if rest else ""))

    def __panel__(self):
        # the probe's guess right under the label it fills (the probe's card, with the full probabilities, is a screen
        # below the decode)
        guess = pn.pane.HTML(pn.bind(self._guess_html, self.store.param.prediction), stylesheets=[NOTE_CSS],
                             margin=(0, 8), css_classes=["decode-guess"], sizing_mode="stretch_width")
        return pn.Column(pn.Row(self.label, self.save, self.undo, self._request, margin=0,
                                sizing_mode="stretch_width"),
                         guess, self.error, margin=0, sizing_mode="stretch_width")


#: Browser side of *Save*: the label as the box shows it (typed, or picked from the list) and a count, so that two
#: saves with the same label are two changes.
_SAVE_JS = """
const typed = (label.value_input || label.value || "");
request.value = JSON.stringify({label: typed, n: (window.__latentSaves = (window.__latentSaves || 0) + 1)});
"""


class DatasetView(DatasetsView):
    """The generated dataset: its records in a table (delete any), and exports for training.

    Parameters
    ----------
    store : Datasets
    tuning : dashboard.finetune.views.FineTuneView, optional
        Training on the records: its buttons sit under the table, what came of it under the dataset's own notice.
    """

    tuning = param.Parameter(default=None, doc="A view with actions() and results() to show with the records")
    COLUMNS = ("id", "timestamp", "user_label", "probe_label", "probe_confidence", "x", "y", "on_plot")
    #: The records table: a delete column frozen at its right edge, always inside the card; the other columns at
    #: their natural widths, scrolled sideways where the card is narrower than they are.
    TABLE_CSS = """
    .tabulator-cell[tabulator-field="delete"] { cursor: pointer; color: #b02a37; font-weight: 600; }
    .tabulator-cell[tabulator-field="delete"]:hover { background-color: #f8e5e7; }
    """

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.dataset_name = pn.widgets.AutocompleteInput.from_param(
            store.param.dataset, label="Dataset", restrict=False, min_characters=0, width=180, margin=(0, 10, 5, 10),
            css_classes=["dataset-name"],
        )
        store.param.watch(lambda e: setattr(self.dataset_name, "options", list(e.new)), "datasets")
        # The delete column is data, not one of Tabulator's button columns: Panel appends those after every other
        # column and cannot freeze them, so at 1500 px the ✕ lay past the card's edge, out of reach.
        self.table = pn.widgets.Tabulator(
            self._frame(), show_index=False, disabled=True, height=210, sizing_mode="stretch_width",
            css_classes=["records-table"], layout="fit_data_fill", frozen_columns={"delete": "right"},
            widths={"delete": 38}, text_align={"delete": "center"}, sortable={"delete": False},
            stylesheets=[self.TABLE_CSS],
            titles={"user_label": "label", "probe_label": "probe", "probe_confidence": "conf.", "on_plot": "here",
                    "delete": ""},
            formatters={"probe_confidence": {"type": "progress", "max": 1},
                        "x": {"type": "money", "precision": 4, "symbol": ""},
                        "y": {"type": "money", "precision": 4, "symbol": ""}},
        )
        self.table.on_click(self._clicked)
        store.param.watch(lambda *_: setattr(self.table, "value", self._frame()), ["records", "saved"])
        self.downloads = pn.Row(*(self._download(fmt) for fmt in ("npz", "csv", "h5")), margin=0)
        self.notice = pn.pane.HTML(pn.bind(lambda t: f"<p class='dataset-notice'>{html.escape(t)}</p>" if t else "",
                                           store.param.notice), sizing_mode="stretch_width", margin=(0, 10))
        self.error = error_pane(store, at="records", css_classes=["records-error"])  # delete, export, dataset

    def _frame(self) -> pd.DataFrame:
        on_plot = {id(r) for r in self.store.saved}
        rows = [{**{k: r.summary()[k] for k in self.COLUMNS[:-1]}, "on_plot": id(r) in on_plot}
                for r in reversed(self.store.records)]
        frame = pd.DataFrame(rows, columns=list(self.COLUMNS))
        frame["timestamp"] = frame["timestamp"].astype(str).str.slice(0, 19).str.replace("T", " ")
        frame["delete"] = "✕"
        return frame

    def _clicked(self, event):
        if event.column == "delete":
            record_id = self.table.value.iloc[event.row]["id"]
            self.store.delete_record(str(record_id))

    def _download(self, fmt: str):
        return pn.widgets.FileDownload(
            callback=lambda: self.store.export_dataset(fmt), filename=f"dataset.{fmt}", label=f".{fmt}",
            color="light", width=70, margin=(5, 5), css_classes=[f"export-{fmt}", "li-light"],
            disabled=self.store.param.records.rx.len() == 0,
        )

    def __panel__(self):
        hint = pn.pane.HTML("<small>export x = outputs, y = labels:</small>", margin=(12, 0, 0, 10))
        # wraps rather than pushing the exports past the card's edge on a narrower window
        header = pn.FlexBox(self.dataset_name, hint, self.downloads, margin=0, sizing_mode="stretch_width")
        tuning = self.tuning
        parts = [header, self.error, self.table]
        parts += [self.notice] if tuning is None else [tuning.actions(), self.notice, tuning.results()]
        return pn.Column(*parts, sizing_mode="stretch_both", scroll=True)
