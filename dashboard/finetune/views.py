"""The view of training on the generated dataset: fine-tune the model's suffix, refit the probe, and the original
model's decode beside a fine-tuned version's.

Every number shown here is the engine's (:mod:`engine.model.finetune`, :mod:`engine.explore.probe`).
"""

from __future__ import annotations

import html

import panel as pn
import param

from .. import sample
from ..widgets import NOTE_CSS, View, any_busy, status_pane
from .state import FineTuning

__all__ = ["FineTuneView", "FineTuningView"]


class FineTuningView(View):
    """A view of the fine-tuning state."""

    store = param.ClassSelector(class_=FineTuning, doc="The session's fine-tuning and model versions")


class FineTuneView(FineTuningView):
    """Fine-tune the model's suffix (for so many epochs) or refit the probe on the dataset's records; what came of
    it; and, while a fine-tuned version is shown, the original model's decode beside it."""

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        inspector, datasets = store.inspector, store.datasets
        busy = any_busy(inspector, datasets, store)
        self.tune = pn.widgets.Button(
            label="Fine-tune the model's suffix", color="primary", variant="outline", margin=(5, 10),
            css_classes=["finetune-suffix"],
            disabled=pn.bind(lambda i, r, busy: busy or bool(self.store.finetune_blocker()),
                             inspector.param.inspection, datasets.param.records, busy),
        )
        # What the button does, or why it is disabled, in words under it: a tooltip at the window's edge was cut off.
        self.why = pn.pane.HTML(pn.bind(self._why_html, inspector.param.inspection, datasets.param.records),
                                stylesheets=[NOTE_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                css_classes=["finetune-why"])
        self.epochs = pn.widgets.IntInput(label="epochs", value=5, start=1, end=500, width=80, margin=(0, 10),
                                          css_classes=["finetune-epochs"])
        self.tune.on_click(lambda _e: store.finetune(epochs=self.epochs.value))
        self.refit = pn.widgets.Button(
            label="Refit the probe with these records", color="light", margin=(5, 10), css_classes=["refit-probe"],
            disabled=pn.bind(lambda r, note, busy: busy or not r or bool(note), datasets.param.records,
                             datasets.param.probe_note, busy),
        )
        self.refit.on_click(store.refit_probe)
        self.status = status_pane(store, css_classes=["finetune-status"])  # the training under way, or what failed
        self.notice = pn.pane.HTML(pn.bind(lambda t: f"<p class='finetune-notice'>{html.escape(t)}</p>" if t else "",
                                           store.param.notice), sizing_mode="stretch_width", margin=(0, 10))
        self.compare = pn.Row(pn.bind(self._compare, store.param.compare, inspector.param.decode), margin=0)

    def _why_html(self, *_) -> str:
        blocker = self.store.finetune_blocker()
        if blocker:
            return f"<span class='muted'>{html.escape(blocker)}</span>"
        return ("<span class='muted'>Fine-tuning trains the layers after the cut on the records' activations and "
                "labels, and saves a new model version.</span>")

    def _compare(self, compare, decode):
        if compare is None or decode is None:
            return None
        inspector = self.store.inspector
        project = inspector.project_obj
        spec = project.output_view
        return pn.Row(
            pn.Column(pn.pane.HTML("<small>original model</small>", margin=0),
                      sample.draw(project, spec, compare, width=90, height=90)),
            pn.Column(pn.pane.HTML(f"<small>{html.escape(inspector.model_version)}</small>", margin=0),
                      sample.draw(project, spec, decode.output, width=90, height=90)),
            margin=(0, 10),
        )

    def actions(self):
        """The buttons: fine-tune (with its epochs) and refit the probe; right under them the training under way or
        what went wrong, then what fine-tuning does or why it cannot."""
        return pn.Column(pn.FlexBox(self.tune, self.epochs, self.refit, margin=0, sizing_mode="stretch_width"),
                         self.status, self.why, margin=0, sizing_mode="stretch_width")

    def results(self):
        """What came of the last training, and the original model's decode beside the version's."""
        return pn.Column(self.notice, self.compare, sizing_mode="stretch_width", margin=0)

    def __panel__(self):
        return pn.Column(self.actions(), self.results(), sizing_mode="stretch_width", margin=0)
