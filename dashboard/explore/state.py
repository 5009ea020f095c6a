"""The Explore tab's state: probing the layer by hand around a point -- the latent editor, interpolation between two
points, and the nearest samples, all in the layer's own full-dimensional space (the 2-D plane only shows where
things land).

:class:`Explorer` holds the editor's start (a tap on a latent plot, a sample id, a step of a path), the controls'
values and what the engine makes of them (the edited activation, its decode, the controls outside the data), the
interpolation path and its projection onto the plane (:attr:`Explorer.path_xy`), and the current point's nearest
samples. Every number comes from the engine: :mod:`engine.explore.edit`, :mod:`engine.explore.interpolate`,
:mod:`engine.explore.neighbors`. The editor's directions are the inspection's own
(:attr:`engine.explore.inspection.Inspection.editor`), fitted once per process and shared by every session.

The explorer only works while its views are on screen (:attr:`Explorer.active`): a tap on the main plot costs
nothing more while the Explore tab is closed, and opening it loads the last tap.
"""

from __future__ import annotations

import threading
from functools import partial

import numpy as np
import panel as pn
import param

from engine.errors import InspectorError

from ..datasets.state import Datasets
from ..inspector.state import TabState

__all__ = ["Explorer"]


class Explorer(TabState):
    """State of the Explore views of one session: editor, interpolation and neighbours around the current point.

    Parameters
    ----------
    inspector : Inspector
        The session's inspection: its taps load into the editor.
    datasets : Datasets
        Where an edit is saved.

    Example
    -------
    >>> explorer = Explorer(inspector=store, datasets=datasets, active=True)  # doctest: +SKIP
    >>> explorer.load_sample(12); explorer.set_control("unit", 3, 2.5)  # doctest: +SKIP
    >>> explorer.flags[3], explorer.output.shape                       # doctest: +SKIP
    (True, (28, 28, 1))
    """

    datasets = param.ClassSelector(class_=Datasets, doc="The session's generated datasets")

    # -- the editor -------------------------------------------------------------------------------------------------
    editor = param.Parameter(default=None, doc="engine.explore.edit.LatentEditor of the current inspection")
    start = param.Parameter(default=None, doc="engine.explore.edit.EditStart the controls start from")
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
    path = param.Parameter(default=None, doc="engine.explore.interpolate.InterpolationPath, decoded and projected")
    path_xy = param.List(default=[], doc="The path projected onto the latent plot by the engine (the reducer's "
                         "transform): one (x, y) per step, [] when there is no path")

    # -- neighbours -------------------------------------------------------------------------------------------------
    k = param.Integer(default=8, bounds=(1, 64), doc="Nearest samples shown")
    metric = param.Selector(default="euclidean", objects=["euclidean", "cosine"])
    neighbors = param.Parameter(default=None, doc="engine.explore.neighbors.Neighbors of the current point")
    query = param.String(default="", doc="What the neighbours are of, in words")

    def __init__(self, **params):
        super().__init__(**params)
        self._query = None  # the neighbours' query: a sample id or an activation
        self._loaded = None  # the last tap loaded into the editor
        self._lock = threading.RLock()  # slider events may arrive on several threads: one edit at a time
        # after every other view of a tap (the decoded image first), and on the next tick
        self.inspector.param.watch(self._tapped, "decode", precedence=150)
        self.inspector.param.watch(self._reset, "inspection")

    # -- preparing --------------------------------------------------------------------------------------------------

    def _reset(self, *_):
        self.param.update(editor=None, start=None, origin="", start_output=None, values=None, scales=None,
                          activation=None, output=None, flags=None, edited=False, path=None, path_xy=[],
                          neighbors=None, query="")
        self._query = None
        self.prepare()

    def prepare(self):
        """Fit (or fetch) the editor of the current inspection, then load the current tap (else sample 0)."""
        inspection = self.on_screen()
        if inspection is None:
            return
        if self.editor is not None:  # ready: catch up with a tap made while the views were closed
            if self.inspector.decode is not None and self.inspector.decode is not self._loaded:
                self.load_decode(self.inspector.decode)
            return

        metric = self.metric

        def work(progress):
            progress("fitting the controls", 0, 2)
            editor = inspection.editor
            progress("indexing the samples", 1, 2)
            inspection.neighbor_index(metric)  # the row norms, once per inspection
            return editor

        def apply(editor):
            if self.inspection is not inspection:
                return
            self.editor = editor
            decode = self.inspector.decode
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
        if self.editor is not None and decode is self.inspector.decode:
            self.load_decode(decode)

    # -- the editor's start -----------------------------------------------------------------------------------------

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
        labels = self.inspection.labels
        label = None if labels is None else self.inspector.label_of(labels[sample_id])
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
        """Save the edited activation to the current dataset, like a decode (it is decoded by the engine first).

        Returns the record's id, or None (the reason is in the datasets' ``error``).
        """
        inspection, activation = self.inspection, self.activation
        if inspection is None or activation is None:
            return None
        from engine.explore.edit import decode_edit

        try:
            decoded = decode_edit(inspection, activation)  # the reducer places it on the plane
        except InspectorError as exc:
            self.datasets.error = f"Not saved: {exc}"
            return None
        probe = self.inspector.probe
        suggestion = probe.predict_one(activation).name if probe is not None else None
        return self.datasets.save_decode(decoded, label, suggestion=suggestion)

    # -- neighbours -------------------------------------------------------------------------------------------------

    @param.depends("k", "metric", watch=True)
    def find_neighbors(self):
        """The nearest samples of the current point (the start, or the edited activation once a control moved)."""
        if self.inspection is None or self._query is None:
            return
        from engine.explore.neighbors import neighbors_of

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
        from engine.explore.interpolate import Endpoint

        if self.endpoints == "two samples":
            return int(self.from_sample), int(self.to_sample)
        taps = self.inspector.history[-2:]
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
            from engine.explore.interpolate import interpolation_path

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
