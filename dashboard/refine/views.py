"""The view of refining the model by moving samples: the handle on the Inspect tab's plot, the card's controls,
and what came of the last refinement beside what was before.

On the plot (a hook of :class:`dashboard.inspector.views.LatentView`, :meth:`RefineView.add_to_plot`): in move mode, a
diamond at the selection's centroid, dragged with Bokeh's point-draw tool (activated with the mode) to where the
samples belong, a dashed line from the centroid to it; after a refinement, each moved sample's path from where it was
to where the refined model puts it on the same map. The sources are updated in place (:mod:`dashboard.push`); the
handle's new place comes back through its source.

Every number shown is the engine's (:mod:`engine.explore.refine`, :mod:`engine.explore.probe`).
"""

from __future__ import annotations

import html
import weakref
from functools import partial

import numpy as np
import panel as pn
import param

from ..push import Live
from ..widgets import NOTE_CSS, View, any_busy, status_pane
from .state import Refining

__all__ = ["RefineView"]

#: Moved samples listed with their outputs before and after.
LISTED = 12
HANDLE = "refine-handle"


def _on_loop(model, fn) -> None:
    """``fn()`` on the server's event loop through Panel's dispatch (as :func:`dashboard.push.push` does for data);
    at once outside a server."""
    from panel.io.state import set_curdoc

    doc = model.document

    def run():
        if doc is None:
            fn()
            return
        with set_curdoc(doc), pn.io.unlocked():
            fn()

    if doc is None or doc.session_context is None:
        run()
    else:
        doc.add_next_tick_callback(run)


def _weak_change(method):
    """A Bokeh ``on_change`` callback (Bokeh checks for the ``attr, old, new`` signature) calling the bound ``method``
    while its object lives: the document outlives the session's view (as :func:`dashboard.widgets.weakly`)."""
    ref = weakref.WeakMethod(method)

    def changed(attr, old, new):
        bound = ref()
        if bound is not None:
            bound(attr, old, new)

    return changed


class RefineView(View):
    """Move the selection and refine the model: the mode, the buttons, before/after, the refinements with undo."""

    store = param.ClassSelector(class_=Refining, doc="The session's refining state")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        busy = any_busy(store, store.inspector)
        self.mode = pn.widgets.Toggle.from_param(store.param.moving, name="Move selection", color="light",
                                                 width=140, margin=(5, 10), css_classes=["refine-move"])
        self.steps = pn.widgets.IntInput.from_param(store.param.steps, name="steps", width=80, margin=(0, 10),
                                                    css_classes=["refine-steps"])
        self.last = pn.widgets.IntInput.from_param(store.param.last_layers, name="last layers (0: all)", width=120,
                                                   margin=(0, 10), css_classes=["refine-last"])
        self.go = pn.widgets.Button(
            label="Refine model", color="primary", width=140, margin=(5, 10), css_classes=["refine-go"],
            disabled=pn.bind(lambda *a: a[-1] or bool(store.blocker()), store.param.destination, store.param.moving,
                             store.selection.param.ids, store.inspector.param.inspection, busy))
        self.go.on_click(lambda _e: store.refine())
        self.stop = pn.widgets.Button(label="Cancel", color="light", width=90, margin=(5, 10),
                                      css_classes=["refine-cancel"],
                                      disabled=pn.bind(lambda b: not b, store.param.busy))
        self.stop.on_click(store.cancel)
        self.undo = pn.widgets.Button(label="Undo last refinement", color="light", width=170, margin=(5, 10),
                                      css_classes=["refine-undo"],
                                      disabled=pn.bind(lambda r, b: b or not r, store.param.refinements, busy))
        self.undo.on_click(store.undo)
        self.status = status_pane(store, css_classes=["refine-status"])
        self.why = pn.pane.HTML(pn.bind(self._why_html, store.param.destination, store.param.moving,
                                        store.selection.param.ids, store.inspector.param.inspection),
                                stylesheets=[NOTE_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                css_classes=["refine-why"])
        self.outcome = pn.pane.HTML(pn.bind(self._outcome_html, store.param.result, store.param.notice),
                                    stylesheets=[NOTE_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                    css_classes=["refine-outcome"])
        self.versions = pn.pane.HTML(pn.bind(self._versions_html, store.param.refinements), stylesheets=[NOTE_CSS],
                                     sizing_mode="stretch_width", margin=(0, 10), css_classes=["refine-versions"])
        self._live = Live()
        self._tools = None  # (toolbar, point-draw tool, pan tool) of the figure on the page
        store.param.watch(self._update_handle, ["moving", "destination"])
        store.selection.param.watch(self._update_handle, "ids")
        store.param.watch(self._update_paths, "result")
        store.param.watch(self._activate, "moving")

    # -- the plot ---------------------------------------------------------------------------------------------------

    def handle_data(self) -> dict:
        """The handle's place (one point, or none) and the dashed line to it from the selection's centroid."""
        at, origin = self.store.handle(), self.store.origin
        if at is None:
            return {"x": [], "y": [], "x0": [], "y0": []}
        return {"x": [at[0]], "y": [at[1]], "x0": [origin[0]], "y0": [origin[1]]}

    def path_data(self) -> dict:
        """Each moved sample's path on the map: from before to after the last refinement."""
        result = self.store.result
        if result is None or self.store.inspection is None:
            return {"x0": [], "y0": [], "x1": [], "y1": []}
        before, after = result.xy_before[result.moved], result.xy_after[result.moved]
        return {"x0": before[:, 0].tolist(), "y0": before[:, 1].tolist(), "x1": after[:, 0].tolist(),
                "y1": after[:, 1].tolist()}

    def add_to_plot(self, plot, element):
        """Plot hook: the handle, its point-draw tool and the moved samples' paths, once per figure."""
        from bokeh.models import ColumnDataSource, PanTool, PointDrawTool

        figure = plot.state
        if any(r.name == HANDLE for r in figure.renderers):
            return

        def make():  # (the handle and its arrow move with the pointer: overlays, see LatentView._add_markers)
            paths = ColumnDataSource(self.path_data(), name="refine-paths-source")
            figure.segment(x0="x0", y0="y0", x1="x1", y1="y1", source=paths, line_color="#333333", line_alpha=0.7,
                           line_width=1.2, name="refine-paths")
            figure.scatter("x1", "y1", source=paths, size=8, fill_alpha=0, line_color="#d62728", line_width=2,
                           name="refine-after")
            handle = ColumnDataSource(self.handle_data(), name="refine-handle-source")
            figure.segment(x0="x0", y0="y0", x1="x", y1="y", source=handle, line_color="black", line_dash="dashed",
                           line_width=1.5, name="refine-arrow", level="overlay")
            glyph = figure.scatter("x", "y", source=handle, marker="diamond", size=24, fill_color="#ffbf00",
                                   line_color="black", line_width=1.5, name=HANDLE, level="overlay")
            tool = PointDrawTool(renderers=[glyph], add=False, drag=True, num_objects=1,
                                 description="Move selection: drag the diamond")
            figure.add_tools(tool)
            pan = next((t for t in figure.toolbar.tools if isinstance(t, PanTool)), None)
            self._tools = (figure.toolbar, tool, pan)
            if self.store.moving:
                figure.toolbar.active_drag = tool
            handle.on_change("data", _weak_change(self._dragged))
            return {"handle": handle, "paths": paths}

        self._live.attach(make)

    def _dragged(self, attr, old, new):
        """The handle's source changed in the browser: the point-draw tool moved it."""
        xs, ys = list(new.get("x", [])), list(new.get("y", []))
        if len(xs) != 1 or len(ys) != 1:
            return
        at = self.store.handle()
        if at is not None and (float(xs[0]), float(ys[0])) == (float(at[0]), float(at[1])):
            return  # our own push
        self.store.drag_to(xs[0], ys[0])

    def _update_handle(self, *_):
        if "handle" in self._live:
            self._live.update(lambda _name: self.handle_data(), "handle")

    def _update_paths(self, *_):
        if "paths" in self._live:
            self._live.update(lambda _name: self.path_data(), "paths")

    def _activate(self, event):
        """Move mode on: the point-draw tool takes the plot's drag; off: the pan tool again."""
        if self._tools is None:
            return
        toolbar, tool, pan = self._tools

        def set_drag(on):
            toolbar.active_drag = tool if on else (pan or "auto")

        _on_loop(toolbar, partial(set_drag, bool(event.new)))

    # -- the card ---------------------------------------------------------------------------------------------------

    def _why_html(self, *_) -> str:
        blocker = self.store.blocker()
        if blocker:
            return f"<span class='muted refine-why-text'>{html.escape(blocker)}</span>"
        x, y = self.store.destination
        n = len(self.store.selection.ids)
        return (f"<span class='muted refine-why-text'>{n:,} samples to move to ({x:.3g}, {y:.3g}): "
                "“Refine model” fine-tunes the layers before the cut on a copy of the model and saves a new "
                "version.</span>")

    def _outcome_html(self, result, notice) -> str:
        store = self.store
        parts = [f"<p class='ok refine-notice'>{html.escape(notice)}</p>"] if notice else []
        if result is None:
            return "".join(parts)

        def pct(v):
            return "–" if v is None else f"{v:.1%}"

        rows = [
            ("probe held-out accuracy", pct(store.probe_before), pct(store.probe_after)),
            ("moved samples: distance to where they were dragged", f"{result.moved_gap_before:.3g}",
             f"{result.moved_gap_after:.3g}"),
            ("unmoved samples: mean drift on the map", "0", f"{result.map_drift:.3g}"),
            ("unmoved samples: mean drift in the layer", "0", f"{result.layer_drift:.3g}"),
        ]
        table = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
        parts.append(f"<table class='refine-figures'><tr><th></th><th>before</th><th>after</th></tr>{table}</table>")
        parts.append(self._moved_html(result))
        return "".join(parts)

    def _moved_html(self, result) -> str:
        """The first moved samples: label, and the suffix's output before and after (the class it gives, for class
        scores; else how far the output moved)."""
        inspection = self.store.inspection
        if inspection is None:
            return ""
        labels, label_of = inspection.labels, self.store.inspector.label_of
        before, after = np.asarray(result.outputs_before), np.asarray(result.outputs_after)
        classes = before.ndim == 2 and before.shape[1] > 1
        names = inspection.head_classes() if classes else ()
        near = result.neighbours_before is not None and result.neighbours_after is not None
        rows = []
        for k, i in enumerate(result.moved[:LISTED]):
            label = "–" if labels is None else html.escape(str(label_of(labels[int(i)])))
            if classes:
                b, a = int(before[k].argmax()), int(after[k].argmax())
                what = (f"{html.escape(str(names[b]))} ({before[k, b]:.0%}) → {html.escape(str(names[a]))} "
                        f"({after[k, a]:.0%})")
            else:
                what = f"output moved by {float(np.linalg.norm(after[k] - before[k])):.3g}"
            among = (f"<td>{html.escape(str(label_of(result.neighbours_before[k])))} → "
                     f"{html.escape(str(label_of(result.neighbours_after[k])))}</td>" if near else "")
            rows.append(f"<tr><td>{int(i)}</td><td>{label}</td>{among}<td>{what}</td></tr>")
        more = f" (the first {LISTED} of {len(result.moved):,})" if len(result.moved) > LISTED else ""
        among_head = "<th>among</th>" if near else ""
        among_words = ", the class of its nearest samples in the layer" if near else ""
        return (f"<p class='muted'>Moved samples{more}: label{among_words}, the model's output before → after</p>"
                f"<table class='refine-moved'><tr><th>sample</th><th>label</th>{among_head}<th>output</th></tr>"
                f"{''.join(rows)}</table>")

    @staticmethod
    def _versions_html(refinements) -> str:
        if not refinements:
            return "<span class='muted refine-versions-list'>No refinement saved for this project yet.</span>"
        items = "".join(
            f"<li><b>{html.escape(r.path.name)}</b> from {html.escape(r.parent)} · layer {html.escape(r.layer)} · "
            f"{sum(len(m.get('ids', [])) for m in r.moves):,} samples in {len(r.moves)} move(s)</li>"
            for r in refinements)
        return (f"<p class='muted'>Refinements, oldest first (undo drops the last):</p>"
                f"<ul class='refine-versions-list'>{items}</ul>")

    def __panel__(self):
        return pn.Column(
            pn.FlexBox(self.mode, self.steps, self.last, self.go, self.stop, self.undo, margin=0,
                       sizing_mode="stretch_width"),
            self.status, self.why, self.outcome, self.versions, sizing_mode="stretch_width", margin=0)
