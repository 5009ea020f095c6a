"""Probing the layer by hand around a point: the latent editor, interpolation between two points, and the nearest
samples, all in the layer's own full-dimensional space (the 2-D plane only shows where things land).

:class:`Explorer` is the state: the editor's start (a tap on a latent plot, a sample id, a step of a path), the
controls' values and what the engine makes of them (the edited activation, its decode, the controls outside the
data), the interpolation path and its projection onto the plane (:attr:`Explorer.path_xy`), and the current point's
nearest samples. Every number comes from the engine: :mod:`engine.edit`, :mod:`engine.interpolate`,
:mod:`engine.neighbors`. The views -- :class:`ExplorePlot`, :class:`EditorView`, :class:`InterpolationView`,
:class:`NeighborsView`, laid out by :class:`ExploreView` -- only show it.

The editor of an inspection is fitted once per process and shared by every session (like the plot's table in
:mod:`dashboard.state`). The explorer only works while its views are on screen (:attr:`Explorer.active`): a tap on
the main plot costs nothing more while the Explore tab is closed, and opening it loads the last tap.
"""

from __future__ import annotations

import base64
import html
import threading
import weakref
from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
import param

from engine.errors import InspectorError

from . import sample
from .background import Background
from .latent import embedding_raster
from .output import HistoryStrip
from .state import Inspector

#: The editor of each inspection alive, shared by every session of the process.
_EDITORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Colour of a slider whose value lies outside the data, and of one inside it.
FLAGGED, INSIDE = "#d62728", "#3b5b92"
#: Shade of a slider's track beyond the data's range, and within it.
TRACK_OUT, TRACK_IN = "#f6d6d6", "#e6ebf2"
PATH_COLOR = "#ff7f0e"
#: The thumbnails of a path or of the neighbours wrap onto several rows (the history strip scrolls sideways).
WRAP_CSS = ".strip { flex-wrap: wrap; overflow-x: hidden; overflow-y: auto; align-content: flex-start; }"
SLIDER_STEPS = 400
EXPLORE_CSS = """
:host .muted { color: #666; }
:host .flagged { color: #b02a37; font-weight: 600; }
:host .ok { color: #2c6e2f; }
"""


def latent_editor(inspection):
    """The engine's :class:`~engine.edit.LatentEditor` of ``inspection``, fitted once per process."""
    from engine.edit import LatentEditor

    editor = _EDITORS.get(inspection)
    if editor is None:
        editor = _EDITORS[inspection] = LatentEditor.from_inspection(inspection)
    return editor


def png_src(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class Explorer(param.Parameterized):
    """State of the Explore views of one session: editor, interpolation and neighbours around the current point.

    Parameters
    ----------
    store : Inspector

    Example
    -------
    >>> explorer = Explorer(store=store, active=True)                  # doctest: +SKIP
    >>> explorer.load_sample(12); explorer.set_control("unit", 3, 2.5)  # doctest: +SKIP
    >>> explorer.flags[3], explorer.output.shape                       # doctest: +SKIP
    (True, (28, 28, 1))
    """

    store = param.ClassSelector(class_=Inspector)
    active = param.Boolean(default=False, doc="The views are on screen: follow the taps and keep the editor ready")

    # -- the editor -------------------------------------------------------------------------------------------------
    editor = param.Parameter(default=None, doc="engine.edit.LatentEditor of the current inspection")
    start = param.Parameter(default=None, doc="engine.edit.EditStart the controls start from")
    origin = param.String(default="", doc="Where the start comes from, in words")
    start_output = param.Parameter(default=None, doc="The suffix's output for the start's own activation")
    values = param.Parameter(default=None, doc="The basis controls' values (ndarray)")
    scales = param.Parameter(default=None, doc="The channel controls' values (ndarray), None without channels")
    activation = param.Parameter(default=None, doc="The edited activation (the engine's, in the layer's shape)")
    output = param.Parameter(default=None, doc="The suffix's output for the edited activation")
    flags = param.Parameter(default=None, doc="Per control (basis, then channels): outside the data's range")
    edited = param.Boolean(default=False, doc="A control moved since the start was loaded")
    sample = param.Integer(default=0, bounds=(0, None), doc="Sample id to load into the editor")

    # -- interpolation ----------------------------------------------------------------------------------------------
    endpoints = param.Selector(default="last two taps", objects=["last two taps", "two samples"])
    from_sample = param.Integer(default=0, bounds=(0, None))
    to_sample = param.Integer(default=1, bounds=(0, None))
    steps = param.Integer(default=8, bounds=(2, 32), doc="Points of the path, both endpoints included")
    method = param.Selector(default="linear", objects=["linear", "spherical"])
    path = param.Parameter(default=None, doc="engine.interpolate.InterpolationPath, decoded and projected")
    path_xy = param.List(default=[], doc="The path projected onto the latent plot by the engine (the reducer's "
                         "transform): one (x, y) per step, [] when there is no path")

    # -- neighbours -------------------------------------------------------------------------------------------------
    k = param.Integer(default=8, bounds=(1, 64), doc="Nearest samples shown")
    metric = param.Selector(default="euclidean", objects=["euclidean", "cosine"])
    neighbors = param.Parameter(default=None, doc="engine.neighbors.Neighbors of the current point")
    query = param.String(default="", doc="What the neighbours are of, in words")

    status = param.String(default="")
    error = param.String(default="")

    def __init__(self, **params):
        super().__init__(**params)
        self.jobs = Background(self)
        self._query = None  # the neighbours' query: a sample id or an activation
        self._loaded = None  # the last tap loaded into the editor
        self._lock = threading.RLock()  # slider events may arrive on several threads: one edit at a time
        # after every other view of a tap (the decoded image first), and on the next tick
        self.store.param.watch(self._tapped, "decode", precedence=150)
        self.store.param.watch(self._reset, "inspection")

    @property
    def inspection(self):
        return self.store.inspection

    # -- preparing --------------------------------------------------------------------------------------------------

    def _reset(self, *_):
        self.param.update(editor=None, start=None, origin="", start_output=None, values=None, scales=None,
                          activation=None, output=None, flags=None, edited=False, path=None, path_xy=[],
                          neighbors=None, query="")
        self._query = None
        self.prepare()

    @param.depends("active", watch=True)
    def prepare(self):
        """Fit (or fetch) the editor of the current inspection, then load the current tap (else sample 0)."""
        inspection = self.inspection
        if not self.active or inspection is None:
            return
        if self.editor is not None:  # ready: catch up with a tap made while the views were closed
            if self.store.decode is not None and self.store.decode is not self._loaded:
                self.load_decode(self.store.decode)
            return

        def work(progress):
            from engine.neighbors import neighbor_index

            progress("fitting the controls", 0, 2)
            editor = latent_editor(inspection)
            progress("indexing the samples", 1, 2)
            neighbor_index(inspection.activations, self.metric)  # the row norms, once per activation array
            return editor

        def apply(editor):
            if self.inspection is not inspection:
                return
            self.editor = editor
            decode = self.store.decode
            if decode is not None:
                self.load_decode(decode)
            else:
                self.load_sample(min(self.sample, len(inspection.embedding) - 1))

        self.jobs.submit("editor", f"editor of {inspection.layer}", work, apply)

    def _tapped(self, event):
        if event.new is None or not self.active:
            return
        pn.state.execute(partial(self._follow, event.new), schedule=True)

    def _follow(self, decode):
        if self.editor is not None and decode is self.store.decode:
            self.load_decode(decode)

    # -- the editor's start -----------------------------------------------------------------------------------------

    def _label_of(self, sample_id: int) -> str | None:
        labels = self.inspection.labels
        if labels is None:
            return None
        names, code = self.store.class_names(), int(labels[int(sample_id)])
        return names[code] if code < len(names) else str(code)

    def load_sample(self, sample_id: int | None = None):
        """Load sample ``sample_id`` (default :attr:`sample`) into the editor: its activation, its neighbours."""
        if self.editor is None:
            return
        sample_id = self.sample if sample_id is None else int(sample_id)
        try:
            start = self.editor.start(sample_id)
        except InspectorError as exc:
            self.error = str(exc)
            return
        label = self._label_of(sample_id)
        self.sample = sample_id
        self._started(start, f"sample {sample_id}" + (f" (label {label})" if label is not None else ""))

    def load_decode(self, decode):
        """Load a tap's decoded activation into the editor."""
        if self.editor is None or decode is None:
            return
        x, y = decode.xy
        self._loaded = decode
        self._started(self.editor.start(decode.activation), f"tap at ({x:.3f}, {y:.3f})")

    def load_activation(self, activation, origin: str):
        """Load any activation of the layer (a step of a path, say) into the editor."""
        if self.editor is None:
            return
        try:
            start = self.editor.start(activation)
        except InspectorError as exc:
            self.error = str(exc)
            return
        self._started(start, origin)

    def _started(self, start, origin: str):
        output = self.inspection.decode_activation(start.activation)
        self.param.update(start=start, origin=origin, start_output=output, edited=False, error="")
        self.set_values(start.values, start.channel_scales, edited=False)

    # -- editing ----------------------------------------------------------------------------------------------------

    def set_control(self, kind: str, index: int, value: float):
        """Move one control: ``kind`` "unit" or "principal" (a basis control) or "channel", at ``index``."""
        with self._lock:
            if self.start is None:
                return
            values = np.array(self.values, copy=True)
            scales = None if self.scales is None else np.array(self.scales, copy=True)
            if kind == "channel":
                scales[index] = value
            else:
                values[index] = value
            self.set_values(values, scales)

    def set_values(self, values, scales=None, *, edited: bool = True):
        """Set every control at once; the engine rebuilds the activation, decodes it and flags the controls outside
        the data."""
        with self._lock:
            editor, start = self.editor, self.start
            if editor is None or start is None:
                return
            try:
                activation = editor.activation(values, scales, start=start)
                flags = editor.out_of_range(values, scales, start=start)
            except InspectorError as exc:
                self.error = str(exc)
                return
            output = self.inspection.decode_activation(activation)
            self.param.update(values=np.asarray(values), scales=None if scales is None else np.asarray(scales),
                              activation=activation, output=output, flags=flags, edited=edited)
        if not edited:
            self._query = start.sample if start.sample is not None else start.activation
            self.query = self.origin
            self.find_neighbors()

    def reset_edit(self):
        """Back to the start's own values."""
        if self.start is not None:
            self.set_values(self.start.values, self.start.channel_scales, edited=False)

    def flagged_controls(self) -> list:
        """The engine's controls whose value lies outside the data's range."""
        if self.editor is None or self.flags is None:
            return []
        controls = self.editor.controls(self.start)
        return [c for c, flag in zip(controls, self.flags) if flag]

    def save(self, label=None):
        """Save the edited activation to the store's dataset, like a decode (it is decoded by the engine first).

        Returns the record's id, or None (the reason is in the store's ``error``).
        """
        inspection, activation = self.inspection, self.activation
        if inspection is None or activation is None:
            return None
        from engine.edit import decode_edit

        try:
            decoded = decode_edit(inspection, activation)  # the reducer places it on the plane
        except InspectorError as exc:
            self.store.error = f"Not saved: {exc}"
            return None
        probe = self.store.probe
        suggestion = probe.predict_one(activation).name if probe is not None else None
        return self.store.save_decode(decoded, label, suggestion=suggestion)

    # -- neighbours -------------------------------------------------------------------------------------------------

    @param.depends("k", "metric", watch=True)
    def find_neighbors(self):
        """The nearest samples of the current point (the start, or the edited activation once a control moved)."""
        if self.inspection is None or self._query is None:
            return
        from engine.neighbors import neighbors_of

        try:
            found = neighbors_of(self.inspection, self._query, self.k, self.metric)
        except InspectorError as exc:
            self.error = str(exc)
            return
        self.neighbors = found

    def neighbors_of_edit(self):
        """Make the edited activation the neighbours' query (after a control was released)."""
        if self.activation is None:
            return
        if self.edited:
            self._query = self.activation
            self.query = f"the edit of {self.origin}"
        self.find_neighbors()

    # -- interpolation ----------------------------------------------------------------------------------------------

    def endpoints_now(self):
        """The two endpoints the current choice names: the last two taps, or two sample ids."""
        from engine.interpolate import Endpoint

        if self.endpoints == "two samples":
            return int(self.from_sample), int(self.to_sample)
        taps = self.store.history[-2:]
        if len(taps) < 2:
            raise InspectorError("tap two points on a latent plot first (or interpolate between two samples)")
        return tuple(Endpoint("tap", np.asarray(d.activation), None, tuple(d.xy)) for d in taps)

    def interpolate(self, *_):
        """Decode ``steps`` points between the endpoints in the layer's space; project the path onto the plane."""
        inspection = self.inspection
        if inspection is None:
            return
        try:
            a, b = self.endpoints_now()
        except InspectorError as exc:
            self.error = str(exc)
            return
        steps, method = self.steps, self.method

        def work(progress):
            from engine.interpolate import interpolation_path

            progress("decoding and projecting", 0, 1)
            return interpolation_path(inspection, a, b, steps, method)

        def apply(path):
            if self.inspection is inspection:
                self.param.update(path=path, path_xy=[(float(x), float(y)) for x, y in path.xy])

        self.jobs.submit("path", f"{method} path, {steps} steps", work, apply)

    def load_step(self, step: int):
        """Load step ``step`` of the path into the editor."""
        path = self.path
        if path is not None and 0 <= step < len(path.t):
            self.load_activation(path.activations[step], f"step {step} of the path (t = {path.t[step]:.2f})")

    @staticmethod
    def describe(endpoint) -> str:
        if endpoint.kind == "sample":
            return f"sample {endpoint.sample}"
        if endpoint.xy is not None:
            return f"tap ({endpoint.xy[0]:.3f}, {endpoint.xy[1]:.3f})"
        return "an activation"


# -- views -----------------------------------------------------------------------------------------------------------


class ExplorePlot(pn.viewable.Viewer):
    """The latent plot of the Explore tab: tap to load a point; the interpolation path and the neighbours drawn over
    the embedding."""

    explorer = param.ClassSelector(class_=Explorer)

    def __init__(self, **params):
        super().__init__(**params)
        store = self.explorer.store
        self.tap = hv.streams.Tap(x=None, y=None, transient=True)
        self.tap.add_subscriber(self._on_tap)
        self._pane = pn.pane.HoloViews(pn.bind(self._plot, store.param.points, store.param.color_by),
                                       sizing_mode="stretch_both", min_height=420, linked_axes=False)

    def _on_tap(self, x=None, y=None):
        if x is not None and y is not None:
            self.explorer.store.decode_at(x, y)

    def marks(self, path_xy, neighbors, decode):
        """The overlay: the path (line and steps), the neighbours (rings), the current tap (cross)."""
        inspection = self.explorer.inspection
        path = hv.Path([path_xy] if path_xy else [], ["x", "y"]).opts(color=PATH_COLOR, line_width=3)
        steps = hv.Points(path_xy, ["x", "y"]).opts(color=PATH_COLOR, size=8, line_color="white")
        near = []
        if neighbors is not None and inspection is not None:
            near = np.asarray(inspection.embedding)[neighbors.ids]
        rings = hv.Points(near, ["x", "y"]).opts(marker="circle", size=13, fill_alpha=0, line_color="black",
                                                  line_width=1.5)
        current = hv.Points([decode.xy] if decode is not None else [], ["x", "y"]).opts(
            marker="cross", size=18, color="black", line_width=2.5)
        return path * steps * rings * current

    def _plot(self, points, color_by):
        if points is None:
            return hv.Points([]).opts(responsive=True, xaxis=None, yaxis=None, toolbar=None)
        store, explorer = self.explorer.store, self.explorer
        raster = embedding_raster(points, color_by, store.param.spread)
        raster = raster.opts(tools=["crosshair"], active_tools=["wheel_zoom"])
        self.tap.source = raster
        marks = hv.DynamicMap(pn.bind(self.marks, explorer.param.path_xy, explorer.param.neighbors,
                                      store.param.decode))
        method = getattr(store.inspection, "method", store.method)
        title = f"{store.layer} · {method.upper()} · tap a point to explore it"
        return (raster * marks).opts(
            hv.opts.Overlay(responsive=True, title=title, xlabel=f"{method} 1", ylabel=f"{method} 2",
                            toolbar="above", backend_opts={"plot.toolbar.autohide": True},
                            hooks=[sample.name_models("explore-figure")]),
        )

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


class EditorView(pn.viewable.Viewer):
    """The latent editor: where it starts, one slider per control (ranges beyond the data, shaded), the start's and
    the edit's decodes side by side, the controls outside the data, and saving the edit to the dataset."""

    explorer = param.ClassSelector(class_=Explorer)
    on_unit = param.Callable(default=None, doc="on_unit(layer, unit, position): show what drives a unit (the Units "
                             "tab); without it the editor offers no such link")

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.explorer
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
                                    margin=(0, 10), stylesheets=[EXPLORE_CSS], sizing_mode="stretch_width",
                                    css_classes=["edit-origin"])
        self._basis = pn.Column(sizing_mode="stretch_width", scroll=True, height=265, margin=(0, 5))
        self._channels = pn.Card(title="Channel scales", collapsed=True, visible=False, sizing_mode="stretch_width",
                                 scroll=True, max_height=260, margin=(5, 5))
        self.start_image = pn.pane.PNG(None, width=130, height=130, margin=(0, 5), fixed_aspect=False)
        self.edit_image = pn.pane.PNG(None, width=130, height=130, margin=(0, 5), fixed_aspect=False)
        self.flags = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[EXPLORE_CSS], margin=(5, 10),
                                  css_classes=["edit-flags"])
        self.label = pn.widgets.TextInput(placeholder="label (default: the probe's prediction)", width=230)
        self.save = pn.widgets.Button(label="Save edit to the dataset", color="primary", width=190,
                                      disabled=ex.param.activation.rx.is_(None))
        self.save.on_click(lambda _e: ex.save(self.label.value or None))
        self.notice = pn.pane.HTML(pn.bind(lambda n: f"<span class='muted'>{html.escape(n)}</span>",
                                           ex.store.param.notice), stylesheets=[EXPLORE_CSS],
                                   sizing_mode="stretch_width", margin=(0, 10))
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
        widget.param.watch(lambda _e: self.explorer.neighbors_of_edit(), "value_throttled")
        return widget

    def _build(self, *_):
        editor = self.explorer.editor
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
        start = self.explorer.start
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
        editor, choice = self.explorer.editor, self.unit_pick.value
        if editor is None or choice is None or self.on_unit is None:
            return
        kind, index = choice
        shape = tuple(editor.latent_shape_)
        if kind == "channel" or len(shape) == 1:
            self.on_unit(self.explorer.store.layer, int(index), None)
            return
        *position, channel = (int(i) for i in np.unravel_index(int(index), shape))
        self.on_unit(self.explorer.store.layer, channel, tuple(position))

    def _moved(self, kind, index, event):
        if not self._syncing:
            self.explorer.set_control(kind, index, event.new)

    # -- what the edit gives ----------------------------------------------------------------------------------------

    def _show(self, *_):
        ex = self.explorer
        project = ex.store.project_obj
        if ex.output is None or project is None:
            self.start_image.object = self.edit_image.object = None
            self.flags.object = ""
            return
        spec, names = project.output_view, ex.store.class_names()
        self.start_image.object = sample.thumbnail(ex.start_output, spec, names, width=130, height=130)
        self.edit_image.object = sample.thumbnail(ex.output, spec, names, width=130, height=130)
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
            self.flags, images, pn.Row(self.label, self.save), self.notice,
            sizing_mode="stretch_width",
        )


class InterpolationView(pn.viewable.Viewer):
    """Interpolation between two taps or two samples in the layer's space: the decoded strip (click a step to load
    it into the editor)."""

    explorer = param.ClassSelector(class_=Explorer)

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.explorer
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
        self.strip = HistoryStrip(on_click=self._clicked, sizing_mode="stretch_width", height=280,
                                  stylesheets=[WRAP_CSS], css_classes=["path-strip"])
        self._about = pn.pane.HTML(pn.bind(self._about_html, p.path, p.endpoints), stylesheets=[EXPLORE_CSS],
                                   sizing_mode="stretch_width", margin=(0, 10))
        self._seq = 0
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
        self._seq += 1
        if path is None:
            self.strip.items = []
            return
        project = self.explorer.store.project_obj
        spec, names = project.output_view, self.explorer.store.class_names()
        self.strip.items = [
            {"key": f"{self._seq}-{i}", "src": png_src(sample.thumbnail(out, spec, names, width=96, height=96)),
             "caption": f"t = {t:.2f}"}
            for i, (t, out) in enumerate(zip(path.t, path.outputs))
        ]

    def _clicked(self, key: str):
        seq, step = key.split("-")
        if int(seq) == self._seq:
            self.explorer.load_step(int(step))

    def __panel__(self):
        return pn.Column(
            pn.Row(self.endpoints, self.from_sample, self.to_sample),
            pn.Row(self.steps, self.method, self.run),
            self._about, self.strip, sizing_mode="stretch_width",
        )


class NeighborsView(pn.viewable.Viewer):
    """The current point's nearest samples in the layer's full space: their inputs, labels and distances (click one
    to load it into the editor)."""

    explorer = param.ClassSelector(class_=Explorer)

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.explorer
        self.k = pn.widgets.IntInput.from_param(ex.param.k, label="k", width=80)
        self.metric = pn.widgets.RadioButtonGroup.from_param(ex.param.metric, color="primary", variant="outline",
                                                             margin=(22, 10, 5, 10))
        self.strip = HistoryStrip(on_click=self._clicked, sizing_mode="stretch_width", height=300,
                                  stylesheets=[WRAP_CSS], css_classes=["neighbors-strip"])
        self._about = pn.pane.HTML(pn.bind(self._about_html, ex.param.query, ex.param.neighbors),
                                   stylesheets=[EXPLORE_CSS], sizing_mode="stretch_width", margin=(0, 10))
        self._seq = 0
        ex.param.watch(self._sync, "neighbors")

    @staticmethod
    def _about_html(query, neighbors):
        if neighbors is None:
            return "<span class='muted'>Tap a point or load a sample: its nearest samples appear here.</span>"
        return (f"{len(neighbors.ids)} nearest samples of <b>{html.escape(query)}</b> "
                f"({neighbors.metric} distance in the layer) · <span class='muted'>click one to edit it</span>")

    def captions(self, neighbors) -> list[str]:
        """One caption per neighbour: id, label, distance (the engine's)."""
        names = self.explorer.store.class_names()
        out = []
        for i, (sid, dist) in enumerate(zip(neighbors.ids, neighbors.distances)):
            label = ""
            if neighbors.labels is not None:
                code = neighbors.labels[i]
                label = names[int(code)] if names and int(code) < len(names) else str(code)
                label = f" · <b>{html.escape(label)}</b>"
            out.append(f"#{int(sid)}{label}<br>d = {dist:.3g}")
        return out

    def _sync(self, event):
        neighbors = event.new
        self._seq += 1
        if neighbors is None:
            self.strip.items = []
            return
        project = self.explorer.store.project_obj
        inputs, spec, names = project.inputs(), project.input_view, self.explorer.store.class_names()
        self.strip.items = [
            {"key": f"{self._seq}-{int(sid)}",
             "src": png_src(sample.thumbnail(inputs[int(sid)], spec, names, width=96, height=96)), "caption": caption}
            for sid, caption in zip(neighbors.ids, self.captions(neighbors))
        ]

    def _clicked(self, key: str):
        seq, sid = key.split("-")
        if int(seq) == self._seq:
            self.explorer.load_sample(int(sid))

    def __panel__(self):
        return pn.Column(pn.Row(self.k, self.metric), self._about, self.strip, sizing_mode="stretch_width")


def titled(title, *objects):
    """A titled column: the default frame of the tab's parts (the dashboard passes its own cards)."""
    return pn.Column(pn.pane.HTML(f"<b>{html.escape(title)}</b>", margin=(5, 10)), *objects,
                     sizing_mode="stretch_both")


class ExploreView(pn.viewable.Viewer):
    """The Explore tab: the latent plot beside the editor; interpolation and neighbours below.

    Parameters
    ----------
    explorer : Explorer
    card : callable(title, *objects), optional
        Frames each part (default :func:`titled`).
    on_unit : callable(layer, unit, position), optional
        What the editor's "What drives it?" calls (the dashboard points it at the Units tab).
    """

    explorer = param.ClassSelector(class_=Explorer)
    card = param.Callable(default=titled)
    on_unit = param.Callable(default=None, doc="Passed to the editor: show what drives a unit")

    def __init__(self, **params):
        super().__init__(**params)
        ex = self.explorer
        self.plot = ExplorePlot(explorer=ex)
        self.editor = EditorView(explorer=ex, on_unit=self.on_unit)
        self.interpolation = InterpolationView(explorer=ex)
        self.neighbors = NeighborsView(explorer=ex)
        self.status = pn.pane.HTML(pn.bind(status_html, ex.param.status, ex.param.error),
                                   sizing_mode="stretch_width", margin=(0, 10), stylesheets=[EXPLORE_CSS])

    def __panel__(self):
        card = self.card
        grid = pn.GridSpec(sizing_mode="stretch_width", height=1250, mode="override")
        grid[0:9, 0:6] = card("Latent space · tap a point to edit it and see its neighbours", self.plot)
        grid[0:9, 6:12] = card("Latent editor · change the activation, the decode follows", self.editor)
        grid[9:15, 0:7] = card("Interpolation in the layer's space · the path is drawn on the plot", self.interpolation)
        grid[9:15, 7:12] = card("Nearest samples in the layer's full space", self.neighbors)
        return pn.Column(self.status, grid, sizing_mode="stretch_width")


def status_html(status: str, error: str) -> str:
    """The line above a tab: the work under way, or what went wrong."""
    if error:
        return f"<span class='flagged'>{html.escape(error)}</span>"
    return f"<span class='muted'>{html.escape(status)}</span>"
