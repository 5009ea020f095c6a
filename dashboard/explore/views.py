"""The Explore tab's views: the latent plot to tap, the latent editor, the interpolation strip and the nearest
samples, laid out by :class:`ExploreView`. They only show :class:`~dashboard.explore.state.Explorer`.
"""

from __future__ import annotations

import html
from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
import param

from engine.reduce.names import method_label

from .. import sample
from ..latent import blank_plot, click_streams, embedding_raster, plot_options, plot_tools
from ..widgets import NOTE_CSS, WRAP_CSS, PickStrip, View, card, error_pane, sample_caption, status_pane
from .state import Explorer

__all__ = ["EditorView", "ExplorePlot", "ExploreView", "ExplorerView", "InterpolationView", "NeighborsView"]

#: Colour of a slider whose value lies outside the data, and of one inside it.
FLAGGED, INSIDE = "#d62728", "#3b5b92"
#: Shade of a slider's track beyond the data's range, and within it.
TRACK_OUT, TRACK_IN = "#f6d6d6", "#e6ebf2"
PATH_COLOR = "#ff7f0e"
SLIDER_STEPS = 400
#: Options of the marks drawn over the map (see :meth:`ExploreView.marks`).
OVER = {"glyph_renderer.level": "overlay"}


class ExplorerView(View):
    """A view of the Explore tab's state."""

    store = param.ClassSelector(class_=Explorer, doc="The Explore tab's state")


class ExplorePlot(ExplorerView):
    """The latent plot of the Explore tab: tap to load a point; the interpolation path and the neighbours drawn over
    the embedding."""

    def __init__(self, **params):
        super().__init__(**params)
        inspector = self.store.inspector
        self.tap, self.press = click_streams(self._on_tap, self.store)
        self._pane = pn.pane.HoloViews(pn.bind(self._plot, inspector.param.points, inspector.param.color_by),
                                       sizing_mode="stretch_both", min_height=420, linked_axes=False)

    def _on_tap(self, x=None, y=None):
        if x is not None and y is not None:
            self.store.inspector.decode_at(x, y)

    def marks(self, path_xy, neighbors, decode):
        """The overlay: the path (line and steps), the neighbours (rings), the current tap (cross)."""
        inspection = self.store.inspection
        path = hv.Path([path_xy] if path_xy else [], ["x", "y"]).opts(color=PATH_COLOR, line_width=3)
        steps = hv.Points(path_xy, ["x", "y"]).opts(color=PATH_COLOR, size=8, line_color="white")
        near = []
        if neighbors is not None and inspection is not None:
            near = np.asarray(inspection.embedding)[neighbors.ids]
        rings = hv.Points(near, ["x", "y"]).opts(marker="circle", size=13, fill_alpha=0, line_color="black",
                                                  line_width=1.5)
        current = hv.Points([decode.xy] if decode is not None else [], ["x", "y"]).opts(
            marker="cross", size=18, color="black", line_width=2.5)
        # drawn at Bokeh's overlay level: a tap repaints them alone, not the raster under them (see
        # dashboard.inspector.views.LatentView._add_markers)
        return (path * steps * rings * current).opts(hv.opts.Path(backend_opts=OVER), hv.opts.Points(backend_opts=OVER))

    def _plot(self, points, color_by):
        if points is None:
            return blank_plot()
        inspector, explorer = self.store.inspector, self.store
        raster = embedding_raster(points, color_by, inspector.param.spread, inspector.inspection)
        raster = raster.opts(**plot_tools("crosshair"))
        self.tap.source = self.press.source = raster
        marks = hv.DynamicMap(pn.bind(self.marks, explorer.param.path_xy, explorer.param.neighbors,
                                      inspector.param.decode))
        method = getattr(inspector.inspection, "method", inspector.method)
        title = f"{inspector.layer} · {method_label(method)} · tap a point to explore it"
        return (raster * marks).opts(hv.opts.Overlay(**plot_options(title, method, "explore-figure")))

    def __panel__(self):
        return self._pane


def _track_css(control) -> str:
    """The slider's track marked beyond the data's range (the engine's ``observed`` within its ``range``): shaded,
    and underlined in red where the data never goes."""
    lo, hi = control.range
    span = hi - lo if hi > lo else 1.0
    a = 100 * (control.observed[0] - lo) / span
    b = 100 * (control.observed[1] - lo) / span
    bands = f"{{out}} 0 {a:.2f}%, {{inside}} {a:.2f}% {b:.2f}%, {{out}} {b:.2f}% 100%"
    return (f":host .noUi-target {{ background: linear-gradient(to right, "
            f"{bands.format(out=TRACK_OUT, inside=TRACK_IN)}); }}\n"
            ":host .noUi-base::after { content: ''; position: absolute; left: 0; right: 0; bottom: -6px; height: 3px; "
            f"pointer-events: none; background: linear-gradient(to right, "
            f"{bands.format(out=FLAGGED, inside='transparent')}); }}")


class EditorView(ExplorerView):
    """The latent editor: where it starts, one slider per control (ranges beyond the data, shaded), the start's and
    the edit's decodes side by side, the controls outside the data, and saving the edit to the dataset."""

    on_unit = param.Callable(default=None, doc="on_unit(layer, unit, position): show what drives a unit (the Units "
                             "tab); without it the editor offers no such link")

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.store
        self.sliders: list = []  # (control kind, index, widget), basis first then channels
        # a unit or channel of the editor -> the Units tab: its top dataset examples and optimized input
        self.unit_pick = pn.widgets.Select(options={}, width=170, margin=(5, 5, 5, 10), visible=False,
                                           css_classes=["edit-unit-pick"])
        self.drives = pn.widgets.Button(label="What drives it?", color="light", width=130, visible=False,
                                        css_classes=["edit-unit-drives"])
        self.drives.on_click(self._show_unit)
        self._syncing = False
        self.sample = pn.widgets.IntInput.from_param(ex.param.sample, label="Sample id", width=110)
        self.load = pn.widgets.Button(label="Load sample", width=110, margin=(23, 5, 5, 5))
        self.load.on_click(lambda _e: ex.load_sample())
        self.reset = pn.widgets.Button(label="Reset", color="light", width=80, margin=(23, 5, 5, 5),
                                       disabled=ex.param.edited.rx.not_())
        self.reset.on_click(lambda _e: ex.reset_edit())
        self._origin = pn.pane.HTML(pn.bind(self._origin_html, ex.param.origin, ex.param.editor),
                                    margin=(0, 10), stylesheets=[NOTE_CSS], sizing_mode="stretch_width",
                                    css_classes=["edit-origin"])
        self._basis = pn.Column(sizing_mode="stretch_width", scroll=True, height=265, margin=(0, 5))
        self._channels = pn.Card(title="Channel scales", collapsed=True, visible=False, sizing_mode="stretch_width",
                                 scroll=True, max_height=260, margin=(5, 5))
        self.start_image = pn.pane.PNG(None, width=130, height=130, margin=(0, 5), fixed_aspect=False)
        self.edit_image = pn.pane.PNG(None, width=130, height=130, margin=(0, 5), fixed_aspect=False)
        self.flags = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[NOTE_CSS], margin=(5, 10),
                                  css_classes=["edit-flags"])
        self.label = pn.widgets.TextInput(placeholder="label (empty: the probe's)", width=230)
        self.save = pn.widgets.Button(label="Save edit to the dataset", color="primary", width=190,
                                      disabled=ex.param.activation.rx.is_(None))
        self.save.on_click(lambda _e: ex.save(self.label.value or None))
        self.notice = pn.pane.HTML(pn.bind(lambda n: f"<span class='muted'>{html.escape(n)}</span>",
                                           ex.datasets.param.notice), stylesheets=[NOTE_CSS],
                                   sizing_mode="stretch_width", margin=(0, 10))
        self.save_error = error_pane(ex.datasets)  # a failed save says so here, beside its button
        ex.param.watch(self._build, "editor")
        ex.param.watch(self._load, "start")
        ex.param.watch(self._show, ["output", "flags"])
        self._build()
        self._load()
        self._show()

    def _origin_html(self, origin, editor):
        if editor is None:
            return "<span class='muted'>Open a projection; the editor is fitted on its activations.</span>"
        basis = ("one control per unit" if editor.basis_ == "units" else
                 f"the top {len(editor.controls_)} principal directions"
                 + (f" and {editor.n_channels_} channel scales" if editor.n_channels_ else ""))
        return (f"<span class='edit-origin-text'>start: <b>{html.escape(origin)}</b></span> · "
                f"<span class='muted'>{basis}; red underline: beyond the data</span>")

    # -- sliders ----------------------------------------------------------------------------------------------------

    def _slider(self, control):
        lo, hi = control.range
        widget = pn.widgets.FloatSlider(
            label=f"{control.name} · data {control.observed[0]:.3g} … {control.observed[1]:.3g}", start=lo, end=hi,
            value=float(np.clip(control.default, lo, hi)), step=(hi - lo) / SLIDER_STEPS if hi > lo else 0.01,
            bar_color=INSIDE, disabled=not control.active, format="0[.]000", sizing_mode="stretch_width",
            margin=(2, 10), stylesheets=[_track_css(control)], css_classes=["edit-control"],
        )
        widget.param.watch(partial(self._moved, control.kind, control.index), "value")
        widget.param.watch(lambda _e: self.store.neighbors_of_edit(), "value_throttled")
        return widget

    def _build(self, *_):
        editor = self.store.editor
        if editor is None:
            self.sliders = []
            self.unit_pick.visible = self.drives.visible = False
            self._basis.objects, self._channels.objects = [], []
            self._channels.visible = False
            return
        controls = editor.controls()
        self.sliders = [(c.kind, c.index, self._slider(c)) for c in controls]
        units = {c.name: (c.kind, c.index) for c in controls if c.kind in ("unit", "channel")}
        self.unit_pick.options = units
        self.unit_pick.visible = self.drives.visible = bool(units) and self.on_unit is not None
        basis = [w for kind, _, w in self.sliders if kind != "channel"]
        channels = [w for kind, _, w in self.sliders if kind == "channel"]
        self._basis.objects = basis
        self._channels.objects = channels
        self._channels.title = f"Channel scales ({len(channels)}: each multiplies one feature map)"
        self._channels.visible = bool(channels)

    def _load(self, *_):
        """Put the sliders at the start's values; a channel's range depends on the start."""
        start = self.store.start
        if start is None or not self.sliders:
            return
        self._syncing = True
        try:
            with pn.io.hold():
                for (_kind, _index, widget), control in zip(self.sliders, start.controls):
                    lo, hi = control.range
                    value = float(np.clip(control.default, lo, hi))
                    widget.param.update(start=lo, end=hi, value=value, disabled=not control.active,
                                        stylesheets=[_track_css(control)],
                                        label=f"{control.name} · data {control.observed[0]:.3g} … "
                                             f"{control.observed[1]:.3g}")
        finally:
            self._syncing = False

    def _show_unit(self, *_):
        """The chosen unit or channel in the Units tab: a unit of a feature map at its position, a channel averaged
        over space."""
        editor, choice = self.store.editor, self.unit_pick.value
        if editor is None or choice is None or self.on_unit is None:
            return
        kind, index = choice
        shape = tuple(editor.latent_shape_)
        if kind == "channel" or len(shape) == 1:
            self.on_unit(self.store.inspector.layer, int(index), None)
            return
        *position, channel = (int(i) for i in np.unravel_index(int(index), shape))
        self.on_unit(self.store.inspector.layer, channel, tuple(position))

    def _moved(self, kind, index, event):
        if not self._syncing:
            self.store.set_control(kind, index, event.new)

    # -- what the edit gives ----------------------------------------------------------------------------------------

    def _show(self, *_):
        ex = self.store
        project = ex.inspector.project_obj
        if ex.output is None or project is None:
            self.start_image.object = self.edit_image.object = None
            self.flags.object = ""
            return
        spec = project.output_view
        self.start_image.object = sample.thumbnail(ex.start_output, spec, width=130, height=130)
        self.edit_image.object = sample.thumbnail(ex.output, spec, width=130, height=130)
        with pn.io.hold():
            for (_kind, _index, widget), flag in zip(self.sliders, ex.flags):
                color = FLAGGED if flag else INSIDE
                if widget.bar_color != color:
                    widget.bar_color = color
        flagged = ex.flagged_controls()
        if flagged:
            names_ = ", ".join(html.escape(c.name) for c in flagged[:12]) + (" …" if len(flagged) > 12 else "")
            self.flags.object = (f"<span class='flagged'>⚠ {len(flagged)} of {len(ex.flags)} controls outside the "
                                 f"data:</span> {names_}. <span class='muted'>The suffix never saw such values: "
                                 "its decode is an extrapolation.</span>")
        else:
            self.flags.object = "<span class='ok'>Every control within the data's range.</span>"

    def __panel__(self):
        images = pn.Row(
            pn.Column(pn.pane.HTML("<b>start</b>", margin=(0, 10)), self.start_image),
            pn.Column(pn.pane.HTML("<b>edited</b>", margin=(0, 10)), self.edit_image),
        )
        return pn.Column(
            pn.Row(self.sample, self.load, self.reset), self._origin,
            self._basis, self._channels, pn.Row(self.unit_pick, self.drives, visible=self.drives.param.visible),
            self.flags, images, pn.Row(self.label, self.save), self.notice, self.save_error,
            sizing_mode="stretch_width",
        )


class InterpolationView(ExplorerView):
    """Interpolation between two taps or two samples in the layer's space: the decoded strip (click a step to load
    it into the editor)."""

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.store
        p = ex.param
        self.endpoints = pn.widgets.RadioButtonGroup.from_param(p.endpoints, color="primary", variant="outline",
                                                                margin=(5, 10))
        two = p.endpoints.rx() == "two samples"
        self.from_sample = pn.widgets.IntInput.from_param(p.from_sample, label="From sample", width=110,
                                                          visible=two)
        self.to_sample = pn.widgets.IntInput.from_param(p.to_sample, label="To sample", width=110, visible=two)
        self.steps = pn.widgets.IntSlider.from_param(p.steps, label="Steps", width=180)
        self.method = pn.widgets.RadioButtonGroup.from_param(p.method, color="primary", variant="outline",
                                                             margin=(22, 10, 5, 10))
        self.run = pn.widgets.Button(label="Interpolate", color="primary", width=120, margin=(22, 10, 5, 10),
                                     css_classes=["interpolate"])
        self.run.on_click(ex.interpolate)
        self.strip = PickStrip(ex.load_step, sizing_mode="stretch_width", height=280, stylesheets=[WRAP_CSS],
                               css_classes=["path-strip"])
        self._about = pn.pane.HTML(pn.bind(self._about_html, p.path, p.endpoints), stylesheets=[NOTE_CSS],
                                   sizing_mode="stretch_width", margin=(0, 10))
        ex.param.watch(self._sync, "path")

    def _about_html(self, path, endpoints):
        if path is None:
            hint = ("the last two points tapped on a latent plot" if endpoints == "last two taps"
                    else "the two samples")
            return f"<span class='muted'>Decodes a path between {hint}, in the layer's own space.</span>"
        return (f"{len(path.t)} steps, {path.method}, from <b>{Explorer.describe(path.start)}</b> to "
                f"<b>{Explorer.describe(path.end)}</b> · <span class='muted'>click a step to edit it</span>")

    def _sync(self, event):
        path = event.new
        if path is None:
            self.strip.show()
            return
        spec = self.store.inspector.project_obj.output_view
        self.strip.show((i, sample.thumbnail_src(out, spec, width=96, height=96), f"t = {t:.2f}")
                        for i, (t, out) in enumerate(zip(path.t, path.outputs)))

    def __panel__(self):
        return pn.Column(
            pn.Row(self.endpoints, self.from_sample, self.to_sample),
            pn.Row(self.steps, self.method, self.run),
            self._about, self.strip, sizing_mode="stretch_width",
        )


class NeighborsView(ExplorerView):
    """The current point's nearest samples in the layer's full space: their inputs, labels and distances (click one
    to load it into the editor)."""

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.store
        self.k = pn.widgets.IntInput.from_param(ex.param.k, label="k", width=80)
        self.metric = pn.widgets.RadioButtonGroup.from_param(ex.param.metric, color="primary", variant="outline",
                                                             margin=(22, 10, 5, 10))
        self.strip = PickStrip(ex.load_sample, sizing_mode="stretch_width", height=300, stylesheets=[WRAP_CSS],
                               css_classes=["neighbors-strip"])
        self._about = pn.pane.HTML(pn.bind(self._about_html, ex.param.query, ex.param.neighbors),
                                   stylesheets=[NOTE_CSS], sizing_mode="stretch_width", margin=(0, 10))
        ex.param.watch(self._sync, "neighbors")

    @staticmethod
    def _about_html(query, neighbors):
        if neighbors is None:
            return "<span class='muted'>Tap a point or load a sample: its nearest samples appear here.</span>"
        return (f"{len(neighbors.ids)} nearest samples of <b>{html.escape(query)}</b> "
                f"({neighbors.metric} distance in the layer) · <span class='muted'>click one to edit it</span>")

    def captions(self, neighbors) -> list[str]:
        """One caption per neighbour: id, label, distance (the engine's)."""
        labels = neighbors.labels
        label = self.store.inspector.label_of
        return [f"{sample_caption(sid, None if labels is None else label(labels[i]))}<br>d = {dist:.3g}"
                for i, (sid, dist) in enumerate(zip(neighbors.ids, neighbors.distances))]

    def _sync(self, event):
        neighbors = event.new
        if neighbors is None:
            self.strip.show()
            return
        project = self.store.inspector.project_obj
        inputs, spec = project.inputs(), project.input_view
        self.strip.show((sid, sample.thumbnail_src(inputs[int(sid)], spec, width=96, height=96), caption)
                        for sid, caption in zip(neighbors.ids, self.captions(neighbors)))

    def __panel__(self):
        return pn.Column(pn.Row(self.k, self.metric), self._about, self.strip, sizing_mode="stretch_width")


class ExploreView(ExplorerView):
    """The Explore tab: the latent plot beside the editor; interpolation and neighbours below.

    Parameters
    ----------
    store : Explorer
    on_unit : callable(layer, unit, position), optional
        What the editor's "What drives it?" calls (the dashboard points it at the Units tab).
    """

    on_unit = param.Callable(default=None, doc="Passed to the editor: show what drives a unit")

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.store
        self.plot = ExplorePlot(store=ex)
        self.editor = EditorView(store=ex, on_unit=self.on_unit)
        self.interpolation = InterpolationView(store=ex)
        self.neighbors = NeighborsView(store=ex)
        self.status = status_pane(ex)

    def __panel__(self):
        grid = pn.GridSpec(sizing_mode="stretch_width", height=1250, mode="override")
        grid[0:9, 0:6] = card("Latent space · tap a point to edit it and see its neighbours", self.plot)
        grid[0:9, 6:12] = card("Latent editor · change the activation, the decode follows", self.editor)
        grid[9:15, 0:7] = card("Interpolation in the layer's space · the path is drawn on the plot", self.interpolation)
        grid[9:15, 7:12] = card("Nearest samples in the layer's full space", self.neighbors)
        return pn.Column(self.status, grid, sizing_mode="stretch_width")
