"""The Selection card of the Inspect tab: how many samples the box or lasso took, their inputs, and what to do with
them (label them all, save them as a dataset, export their ids or rows, clear).

The thumbnails are the first :data:`SHOWN` selected samples' inputs, drawn as the project's ``[input_view]`` says
(:func:`dashboard.sample.thumbnail_src`); a click on one decodes the plot at that sample.
"""

from __future__ import annotations

import html

import panel as pn
import param

from .. import sample
from ..widgets import NOTE_CSS, WRAP_CSS, PickStrip, View, any_busy, sample_caption, status_pane
from .state import Selection

__all__ = ["SHOWN", "SelectionView"]

#: Thumbnails shown: the first selected samples.
SHOWN = 48
#: Small thumbnails, in rows that wrap.
SMALL_CSS = """
.card { padding: 2px; gap: 1px; font-size: 10px; }
.card img { width: 52px; height: 52px; }
.strip { gap: 4px; }
"""


class SelectionView(View):
    """The selection's count, thumbnails and actions."""

    store = param.ClassSelector(class_=Selection, doc="The session's selection")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self._count = pn.pane.HTML(self._count_html(), sizing_mode="stretch_width", margin=(0, 10),
                                   stylesheets=[NOTE_CSS])
        self.strip = PickStrip(self._decode_sample, sizing_mode="stretch_both", min_height=120,
                               stylesheets=[WRAP_CSS, SMALL_CSS], css_classes=["selection-strip"])
        nothing = store.param.ids.rx.is_(None)
        busy = any_busy(store, store.inspector)
        # a plain box (a completion menu open on the click would put one of its classes in the box)
        self.label = pn.widgets.TextInput(placeholder="label", width=130, margin=(5, 5, 5, 10),
                                          css_classes=["selection-label"])
        self.label_all = pn.widgets.Button(label="Label all as…", color="primary", width=120, margin=(5, 5),
                                           css_classes=["selection-label-all"], disabled=nothing)
        self.label_all.on_click(lambda _e: store.label_all(self.label.value_input or self.label.value))
        self.dataset_name = pn.widgets.TextInput(value="selection", width=130, margin=(5, 5, 5, 10),
                                         css_classes=["selection-name"])
        self.save = pn.widgets.Button(label="Save as dataset", color="primary", width=120, margin=(5, 5),
                                      css_classes=["selection-save"], disabled=nothing)
        self.save.on_click(lambda _e: store.save_as(self.dataset_name.value_input or self.dataset_name.value))
        self.ids_file = pn.widgets.FileDownload(callback=store.export_ids, filename="selection-ids.csv",
                                                label="Export ids (.csv)", color="light", width=130,
                                                margin=(5, 5, 5, 10), css_classes=["selection-ids", "li-light"],
                                                disabled=nothing)
        self.rows_file = pn.widgets.FileDownload(callback=store.export_rows, filename="selection-rows.csv",
                                                 label="Export rows (.csv)", color="light", width=130, margin=(5, 5),
                                                 css_classes=["selection-rows", "li-light"], disabled=nothing)
        self.clear = pn.widgets.Button(label="Clear selection", color="light", width=130, margin=(5, 5, 5, 10),
                                       css_classes=["selection-clear"], disabled=nothing)
        self.clear.on_click(store.clear)
        self._notice = pn.pane.HTML(pn.bind(self._notice_html, store.param.notice), sizing_mode="stretch_width",
                                    margin=(0, 10), stylesheets=[NOTE_CSS])
        self._status = status_pane(store, visible=busy)
        store.param.watch(self._show, "ids")

    def _count_html(self) -> str:
        store = self.store
        if store.ids is None:
            return ("<span class='muted'>Pick the box or lasso select tool in the plot's toolbar (top right) and drag "
                    "over the plot.</span>")
        n = len(store.ids)
        shown = f" · the first {SHOWN} below" if n > SHOWN else ""
        return (f"<b class='selection-count' data-count='{n}'>{n:,} samples selected</b> "
                f"<span class='muted'>({html.escape(store.how)}){shown} · also shown in the Linked views tab</span>")

    @staticmethod
    def _notice_html(notice: str) -> str:
        return f"<span class='ok selection-notice'>{html.escape(notice)}</span>" if notice else ""

    def _show(self, *_):
        store = self.store
        self._count.object = self._count_html()
        project, inspection = store.inspector.project_obj, store.inspection
        if store.ids is None or project is None or inspection is None:
            self.strip.show()
            return
        ids = store.ids[:SHOWN]
        spec, inputs, labels = project.input_view, project.inputs(), inspection.labels
        if sample.custom_view(project, spec) is not None:  # the project draws its inputs itself: no thumbnails
            self.strip.show()
            return
        label = store.inspector.label_of
        self.strip.show((i, sample.thumbnail_src(inputs[int(i)], spec, width=52, height=52),
                         sample_caption(i, None if labels is None else label(labels[int(i)]))) for i in ids)

    def _decode_sample(self, sample_id: int):
        """A click on a thumbnail: decode the plot at that sample."""
        inspection = self.store.inspection
        if inspection is not None:
            x, y = inspection.embedding[int(sample_id)]
            self.store.inspector.decode_at(float(x), float(y))

    def __panel__(self):
        actions = pn.Column(
            pn.Row(self.label, self.label_all, margin=0),
            pn.Row(self.dataset_name, self.save, margin=0),
            pn.Row(self.ids_file, self.rows_file, margin=0),
            self.clear, self._notice, self._status, width=300, margin=0,
        )
        return pn.Column(self._count, pn.Row(self.strip, actions, sizing_mode="stretch_both", margin=0),
                         sizing_mode="stretch_both", margin=0)
