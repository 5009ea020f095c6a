"""The Units tab: what drives one unit of any layer, from the data and by optimization, side by side.

:class:`Units` is the state: the layer and unit (a dense unit, or a convolutional channel averaged over space or
read at one position), the dataset's top and bottom examples of it (:func:`engine.featurevis.top_examples`), and an
activation maximization run (:func:`engine.featurevis.maximize`): its objective, regularizer weights, steps,
learning rate, seed and start, the input as it is being optimized, and the result beside the best dataset example.
:class:`UnitsView` shows it. Every number comes from :mod:`engine.featurevis`; the pictures are the engine's
(:func:`engine.views.to_image` for images, the dashboard's thumbnails for series and vectors).

Long work (ranking the dataset, the optimization) runs on the process's worker through
:class:`dashboard.background.Background`. The optimization streams: the engine's progress callback leaves the latest
input in a slot, and while the run lasts a periodic callback of the session shows it, so the picture changes as it
optimizes; *Cancel* stops it after the current step. Like the explorer, nothing is computed while the tab is closed
(:attr:`Units.active`). Another view can point the tab at a unit with :meth:`UnitsView.show_unit`.
"""

from __future__ import annotations

import base64
import html
import io
import threading

import panel as pn
import param

from engine.errors import InspectorError

from . import sample
from .background import Background
from .state import Inspector, in_server_session

OBJECTIVES = {
    "this unit": "unit",
    "class output (the model's output)": "output",
    "DeepDream (this layer)": "deepdream",
    "weighted sum of this layer's units": "sum",
}
STARTS = {"noise (seeded)": "noise", "the top example": "top", "a sample": "sample"}
REDUCE = {"mean over space": "mean", "at one position": "position"}
#: How often the page is shown the input being optimized, while a run lasts (ms).
LIVE_PERIOD_MS = 250
THUMB = 96
UNITS_CSS = """
:host .muted { color: #666; }
:host .flagged { color: #b02a37; font-weight: 600; }
:host .ex-strip { display: flex; flex-wrap: wrap; gap: 6px; align-content: flex-start; }
:host figure.ex { margin: 0; display: flex; flex-direction: column; align-items: center; padding: 3px;
                  border: 1px solid #d9dee7; border-radius: 4px; background: white; font: 11px sans-serif; }
:host figure.ex img { image-rendering: pixelated; background: #fafafa; }
:host figure.ex figcaption { text-align: center; line-height: 1.3; color: #333; }
:host .ex-title { font-weight: 600; color: #2c3e63; margin: 4px 0; }
:host .live { display: flex; gap: 14px; align-items: flex-start; }
:host .live img { image-rendering: pixelated; border: 1px solid #e3e7ef; background: #fafafa; }
:host .live figure { margin: 0; text-align: center; font: 12px sans-serif; color: #444; }
:host .outcome { font-size: 13px; line-height: 1.6; }
:host .outcome .above { color: #2c6e2f; font-weight: 600; }
:host .outcome .below { color: #b02a37; font-weight: 600; }
:host .params { color: #555; font-size: 12px; }
"""


def picture(array, spec, class_names=None, size: int = THUMB) -> str:
    """A ``data:`` URL of one sample drawn small: an image by :func:`engine.views.to_image` (absolute grey levels, so
    an optimized input and a dataset example compare), anything else by :func:`dashboard.sample.thumbnail`."""
    if getattr(spec, "kind", None) == "image":
        from PIL import Image

        from engine.views import to_image

        out = io.BytesIO()
        Image.fromarray(to_image(array, spec, size=size)).save(out, format="PNG")
        png = out.getvalue()
    else:
        png = sample.thumbnail(array, spec, class_names, width=2 * size, height=size)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def parse_weights(text: str) -> list[tuple[int, float]]:
    """``"3:1, 5:-0.5"`` -> ``[(3, 1.0), (5, -0.5)]``: the units (channels) of a weighted-sum objective."""
    pairs = []
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        unit, _, weight = part.partition(":")
        try:
            pairs.append((int(unit), float(weight) if weight.strip() else 1.0))
        except ValueError:
            raise InspectorError(f"weighted sum: {part!r} is not 'unit:weight' (such as '3:1, 5:-0.5')") from None
    if not pairs:
        raise InspectorError("weighted sum: list the units and their weights, such as '3:1, 5:-0.5'")
    return pairs


class Units(param.Parameterized):
    """State of the Units tab of one session.

    Parameters
    ----------
    store : Inspector

    Example
    -------
    >>> units = Units(store=store, active=True)                  # doctest: +SKIP
    >>> units.show_unit("bottleneck", 3); units.examples.top.indices  # doctest: +SKIP
    >>> units.optimize(); units.result.activation, units.examples.best  # doctest: +SKIP
    """

    store = param.ClassSelector(class_=Inspector)
    active = param.Boolean(default=False, doc="The tab is on screen: rank the dataset for the chosen unit")

    # -- the unit -----------------------------------------------------------------------------------------------
    layer = param.Selector(default=None, objects=[], allow_None=True, doc="Any layer of the model")
    unit = param.Integer(default=0, bounds=(0, None), doc="The unit (flat layer) or channel (convolutional layer)")
    reduce = param.Selector(default="mean", objects=REDUCE, doc="A channel averaged over space, or at one position")
    position = param.Parameter(default=(), doc="The spatial position (a tuple) when reduce is 'position'")
    k = param.Integer(default=8, bounds=(1, 32), doc="Examples shown at each end")
    shape = param.Parameter(default=(), doc="The layer's activation shape (the engine's, a tuple), no batch axis")

    # -- the optimization ---------------------------------------------------------------------------------------
    objective = param.Selector(default="unit", objects=OBJECTIVES)
    output_index = param.Integer(default=0, bounds=(0, None), doc="Flat index into the model's output")
    weights = param.String(default="", doc="'unit:weight, ...' of the weighted sum, in this layer")
    start = param.Selector(default="noise", objects=STARTS)
    sample = param.Integer(default=0, bounds=(0, None), doc="Sample id to start from")
    steps = param.Integer(default=512, bounds=(1, 20_000))
    lr = param.Number(default=0.1, bounds=(1e-4, 10.0), doc="Step size, in units of the data's spread")
    seed = param.Integer(default=0, bounds=(0, None))
    l2 = param.Number(default=0.0, bounds=(0, None), doc="L2 decay weight")
    tv = param.Number(default=0.5, bounds=(0, None), doc="Total variation weight")
    jitter = param.Integer(default=2, bounds=(0, 16), doc="Random shift per step, pixels / time steps")
    blur_every = param.Integer(default=0, bounds=(0, None), doc="Blur every this many steps (0: never)")
    blur_sigma = param.Number(default=0.5, bounds=(0, 10))
    clip = param.Boolean(default=True, doc="Keep the input within the data's range")

    # -- what the engine made of it -----------------------------------------------------------------------------
    examples = param.Parameter(default=None, doc="engine.featurevis.UnitExamples of the chosen unit")
    result = param.Parameter(default=None, doc="engine.featurevis.Optimized of the last run")
    compared = param.Parameter(default=None, doc="UnitExamples (k=1) of the last run's objective over the dataset")
    live = param.Parameter(default=None, doc="(step, steps, input, activation) of the run under way")
    running = param.Boolean(default=False)
    status = param.String(default="")
    error = param.String(default="")

    def __init__(self, **params):
        super().__init__(**params)
        self.jobs = Background(self)
        self._cancel = threading.Event()
        self._slot_lock = threading.Lock()
        self._slot = None
        self._periodic = None
        self._frames = []  # the live frames of the last run shown outside a server (what tests look at)
        self._quiet = False  # set while several choices change at once: one ranking at the end
        self.store.param.watch(self._layers, "layers")
        self.store.param.watch(self._follow, "layer")
        self.store.param.watch(lambda *_: self.param.update(examples=None, result=None, compared=None), "project_obj")
        self._layers()

    # -- the unit -------------------------------------------------------------------------------------------------

    def _layers(self, *_):
        names = [info.name for info in self.store.layers if not isinstance(info.output_shape[0], tuple)]
        self._quiet = True
        try:
            project = self.store.project_obj
            default = getattr(project, "default_layer", None)
            fallback = names[-1] if names else None
            want = next((n for n in (self.layer, self.store.layer, default) if n in names), fallback)
            self.param.layer.objects = names  # (a Select showing it may pick its first option meanwhile)
            self.layer = want
            self._shape()  # the same name may be another layer in a new project
        finally:
            self._quiet = False
        self.refresh()

    def _follow(self, event):
        """The layer chosen in the sidebar is shown here too."""
        if event.new is not None and event.new in self.param.layer.objects:
            self.layer = event.new

    @param.depends("layer", watch=True, on_init=True)
    def _shape(self):
        project = self.store.project_obj
        if project is None or self.layer is None:
            self.shape = ()
            return
        from engine.featurevis import layer_shape

        try:
            shape = layer_shape(project.model(), self.layer)
        except InspectorError as exc:
            self.error = str(exc)
            return
        self.param.update(shape=shape, position=tuple(d // 2 for d in shape[:-1]) if len(shape) > 1 else ())

    @property
    def spatial(self) -> bool:
        """The layer has spatial axes: a unit is a channel."""
        return len(self.shape) > 1

    def target(self):
        """The engine's :class:`~engine.featurevis.Unit` for the current choices (checked against the layer)."""
        from engine.featurevis import Unit

        position = tuple(self.position) if self.spatial and self.reduce == "position" else None
        return Unit(self.layer, self.unit, position).check(self.shape)

    def show_unit(self, layer: str, unit: int, position=None):
        """Point the tab at ``unit`` of ``layer`` (a channel averaged over space for a convolutional layer, unless a
        ``position`` is given): what a click on a unit elsewhere (the latent editor) calls."""
        if layer not in self.param.layer.objects:
            known = ", ".join(map(str, self.param.layer.objects))
            self.error = f"no layer {layer!r} in this model; layers are: {known}"
            return
        self._quiet = True
        try:
            self.layer = layer
            update = {"unit": int(unit), "reduce": "position" if position is not None else "mean"}
            if position is not None:
                update["position"] = tuple(int(p) for p in position)
            self.param.update(error="", **update)
        finally:
            self._quiet = False
        self.refresh()

    @param.depends("active", "layer", "unit", "reduce", "position", "k", watch=True)
    def refresh(self):
        """Rank the dataset by the chosen unit (on the worker): its top-k and bottom-k examples."""
        project = self.store.project_obj
        if self._quiet or not self.active or project is None or self.layer is None or not self.shape:
            return
        try:
            target = self.target()
        except InspectorError as exc:
            self.param.update(examples=None, error=str(exc))
            return
        if self.examples is not None and self.examples.target == target and len(self.examples.top.indices) == min(
                self.k, self.examples.n):
            return
        k = self.k

        def work(progress):
            from engine.featurevis import top_examples

            return top_examples(project, target, k, progress=lambda done, total: progress("activations", done, total))

        def apply(examples):
            if self.store.project_obj is project:
                self.examples = examples

        self.jobs.submit("examples", f"ranking {len(project.inputs()):,} samples by {target.describe(self.shape)}",
                         work, apply)

    # -- the optimization -----------------------------------------------------------------------------------------

    def objective_(self):
        """The engine's :class:`~engine.featurevis.Objective` for the current choices."""
        from engine.featurevis import DeepDream, Objective, Unit, layer_shape, unit_at

        if self.objective == "output":
            shape = layer_shape(self.store.project_obj.model(), None)
            return Objective.sum([(1.0, unit_at(None, shape, self.output_index))])
        if self.objective == "deepdream":
            return Objective.sum([(1.0, DeepDream(self.layer))])
        if self.objective == "sum":
            position = tuple(self.position) if self.spatial and self.reduce == "position" else None
            return Objective.sum([(w, Unit(self.layer, u, position).check(self.shape))
                                  for u, w in parse_weights(self.weights)])
        return Objective.sum([(1.0, self.target())])

    def regularizers(self):
        from engine.featurevis import Regularizers

        return Regularizers(l2=float(self.l2), tv=float(self.tv), jitter=int(self.jitter),
                            blur_every=int(self.blur_every), blur_sigma=float(self.blur_sigma), clip=bool(self.clip))

    def _start(self):
        if self.start == "noise":
            return "noise"
        if self.start == "top":
            if self.examples is None:
                raise InspectorError("no top example yet: wait for the dataset examples, or start from noise")
            return int(self.examples.top.indices[0])
        return int(self.sample)

    def optimize(self, *_):
        """Run activation maximization for the current objective on the worker; the input streams to :attr:`live`."""
        project = self.store.project_obj
        if project is None or self.layer is None:
            return
        try:
            objective, regularizers, start = self.objective_(), self.regularizers(), self._start()
        except InspectorError as exc:
            self.error = str(exc)
            return
        self._cancel.set()  # a run still under way stops: this one replaces it
        cancel = self._cancel = threading.Event()
        steps, lr, seed = int(self.steps), float(self.lr), int(self.seed)
        examples = self.examples
        server = in_server_session()
        self._frames = []

        def progress_cb(tracker):
            def report(step, total, x, activation):
                tracker("step", step, total)
                frame = (step, total, x, activation)
                if server:
                    with self._slot_lock:
                        self._slot = frame
                else:
                    self._frames.append(frame)
                    self.live = frame
            return report

        def work(tracker):
            from engine.featurevis import maximize, top_examples

            result = maximize(project, objective, start=start, steps=steps, lr=lr, seed=seed,
                              regularizers=regularizers, progress=progress_cb(tracker), every=4, cancel=cancel)
            single = objective.terms[0][1] if len(objective.terms) == 1 and objective.terms[0][0] == 1.0 else None
            if examples is not None and single is not None and examples.target == single:
                compared = examples
            else:  # the objective's best over the dataset, for the comparison
                tracker("the dataset's best", 0, 1)
                compared = top_examples(project, objective, 1)
            return result, compared

        def apply(outcome):
            self._stop_periodic()
            if self.store.project_obj is not project:  # another project was opened meanwhile
                self.param.update(running=False, live=None)
                return
            result, compared = outcome
            self.param.update(result=result, compared=compared, running=False, live=None)

        self.param.update(running=True, result=None, compared=None, live=None)
        self.jobs.submit("optimize", "optimizing", work, apply)
        if server and "optimize" in self.jobs.running:
            self._stop_periodic()
            self._periodic = pn.state.add_periodic_callback(self._pull, period=LIVE_PERIOD_MS)
        elif "optimize" not in self.jobs.running:  # ran synchronously and failed
            self.running = False

    def _pull(self):
        """Show the latest input of the run under way (a periodic callback of the session, only while it runs)."""
        with self._slot_lock:
            frame, self._slot = self._slot, None
        if frame is not None:
            self.live = frame
        if "optimize" not in self.jobs.running:  # done, failed or superseded
            self._stop_periodic()
            self.running = False

    def _stop_periodic(self):
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None

    def cancel(self, *_):
        """Stop the run under way after its current step; the result shows the steps done."""
        self._cancel.set()


# -- the view ----------------------------------------------------------------------------------------------------------


def titled(title, *objects):
    return pn.Column(pn.pane.HTML(f"<b>{html.escape(title)}</b>", margin=(5, 10)), *objects,
                     sizing_mode="stretch_both")


class UnitsView(pn.viewable.Viewer):
    """The Units tab: pick a layer and unit; its top and bottom dataset examples beside the optimized input.

    Parameters
    ----------
    units : Units
    card : callable(title, *objects), optional
        Frames each part (the dashboard passes its cards).
    """

    units = param.ClassSelector(class_=Units)
    card = param.Callable(default=titled)
    reveal = param.Callable(default=None, allow_None=True, doc="Brings the tab on screen (set by the dashboard)")

    def __init__(self, **params):
        super().__init__(**params)
        u = self.units
        p = u.param
        self.layer = pn.widgets.Select.from_param(p.layer, label="Layer", width=200, css_classes=["units-layer"])
        self.unit = pn.widgets.IntInput.from_param(p.unit, label="Unit", width=110, css_classes=["units-unit"])
        self.reduce = pn.widgets.RadioButtonGroup.from_param(p.reduce, color="primary", variant="outline",
                                                             margin=(24, 10, 5, 10))
        self.k = pn.widgets.IntInput.from_param(p.k, label="Examples (k)", width=100)
        self._position = pn.Row(margin=0)
        self._about = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10))
        self.status = pn.pane.HTML(pn.bind(self._status_html, p.status, p.error), stylesheets=[UNITS_CSS],
                                   sizing_mode="stretch_width", margin=(0, 10), css_classes=["units-status"])
        self._examples = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                      css_classes=["units-examples"])

        self.objective = pn.widgets.Select.from_param(p.objective, label="Objective", width=250)
        self.output_index = pn.widgets.IntInput.from_param(p.output_index, label="Output index", width=110,
                                                           visible=p.objective.rx() == "output")
        self.weights = pn.widgets.TextInput.from_param(p.weights, label="Units:weights", width=200,
                                                       placeholder="3:1, 5:-0.5", visible=p.objective.rx() == "sum")
        self.start = pn.widgets.Select.from_param(p.start, label="Start from", width=150)
        self.sample = pn.widgets.IntInput.from_param(p.sample, label="Sample", width=100,
                                                     visible=p.start.rx() == "sample")
        self.steps = pn.widgets.IntInput.from_param(p.steps, label="Steps", width=90, css_classes=["units-steps"])
        self.lr = pn.widgets.FloatInput.from_param(p.lr, label="Learning rate", width=100, step=0.01)
        self.seed = pn.widgets.IntInput.from_param(p.seed, label="Seed", width=80)
        self.l2 = pn.widgets.FloatInput.from_param(p.l2, label="L2 decay", width=90, step=0.1)
        self.tv = pn.widgets.FloatInput.from_param(p.tv, label="Total variation", width=110, step=0.1)
        self.jitter = pn.widgets.IntInput.from_param(p.jitter, label="Jitter", width=80)
        self.blur_every = pn.widgets.IntInput.from_param(p.blur_every, label="Blur every", width=90)
        self.blur_sigma = pn.widgets.FloatInput.from_param(p.blur_sigma, label="Blur sigma", width=90, step=0.1)
        self.clip = pn.widgets.Checkbox.from_param(p.clip, label="clip to the data's range", margin=(28, 10, 5, 10))
        self.run = pn.widgets.Button(label="Optimize", color="primary", width=110, margin=(22, 10, 5, 10),
                                     css_classes=["units-run"], disabled=p.running)
        self.run.on_click(u.optimize)
        self.stop = pn.widgets.Button(label="Cancel", color="light", width=90, margin=(22, 10, 5, 10),
                                      css_classes=["units-cancel"], disabled=p.running.rx.not_())
        self.stop.on_click(u.cancel)
        self._plan = pn.pane.HTML(pn.bind(self._plan_html, p.objective, p.steps, p.lr, p.seed, p.start, p.sample),
                                  stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["units-plan"])
        self._live = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["units-live"])
        self._outcome = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                     css_classes=["units-outcome"])

        u.param.watch(self._build_position, "shape")
        u.param.watch(self._describe, ["shape", "reduce", "examples"])
        u.param.watch(self._show_examples, "examples")
        u.param.watch(self._show_live, "live")
        u.param.watch(self._show_result, ["result", "compared", "running"])
        self._build_position()
        self._describe()
        self._show_examples()
        self._show_result()

    # -- public -------------------------------------------------------------------------------------------------

    def show_unit(self, layer: str, unit: int, position=None):
        """Show ``unit`` of ``layer`` here (and bring the tab on screen): the entry point for a click on a unit in
        another view, such as the latent editor."""
        if self.reveal is not None:
            self.reveal()
        self.units.show_unit(layer, unit, position)

    # -- the unit -----------------------------------------------------------------------------------------------

    @staticmethod
    def _status_html(status, error):
        if error:
            return f"<span class='flagged'>{html.escape(error)}</span>"
        return f"<span class='muted'>{html.escape(status)}</span>"

    def _build_position(self, *_):
        u = self.units
        shape = u.shape
        self.reduce.visible = u.spatial
        if not u.spatial:
            self._position.objects = []
            return
        names = ("Row", "Column") if len(shape) == 3 else ("Time",) if len(shape) == 2 else tuple(
            f"Axis {i}" for i in range(len(shape) - 1))
        widgets = []
        for axis, (name, size) in enumerate(zip(names, shape[:-1])):
            w = pn.widgets.IntInput(label=f"{name} (0..{size - 1})", value=int(u.position[axis]), start=0,
                                    end=int(size) - 1, width=110, visible=u.param.reduce.rx() == "position")
            w.param.watch(self._moved, "value")
            widgets.append(w)
        self._position.objects = widgets

    def _moved(self, *_):
        self.units.position = tuple(int(w.value) for w in self._position.objects)

    def _describe(self, *_):
        u = self.units
        if not u.shape:
            self._about.object = ""
            return
        shape = "×".join(map(str, u.shape))
        if u.spatial:
            what = (f"{u.shape[-1]} channels over {'×'.join(map(str, u.shape[:-1]))} positions; a unit is a channel, "
                    + ("averaged over space" if u.reduce == "mean" else "read at one position"))
            self.unit.label = f"Channel (0..{u.shape[-1] - 1})"
        else:
            what = f"{u.shape[0]} units"
            self.unit.label = f"Unit (0..{u.shape[0] - 1})"
        self._about.object = (f"<b>{html.escape(str(u.layer))}</b> · activations {shape} · "
                              f"<span class='muted'>{what}</span>")

    def _strip(self, examples, title: str, css: str) -> str:
        project = self.units.store.project_obj
        spec, names = project.input_view, self.units.store.class_names()
        cards = []
        for i, (sid, act) in enumerate(zip(examples.indices, examples.activations)):
            label = ""
            if examples.labels is not None:
                code = int(examples.labels[i])
                label = f" · <b>{html.escape(names[code] if code < len(names) else str(code))}</b>"
            cards.append(f"<figure class='ex'><img src='{picture(examples.inputs[i], spec, names)}'>"
                         f"<figcaption>#{int(sid)}{label}<br>{float(act):.4g}</figcaption></figure>")
        return f"<div class='ex-title'>{title}</div><div class='ex-strip {css}'>{''.join(cards)}</div>"

    def _show_examples(self, *_):
        ex = self.units.examples
        if ex is None:
            self._examples.object = ("<span class='muted'>The dataset samples that drive the unit highest and lowest "
                                     "appear here.</span>")
            return
        note = ""
        if ex.constant:
            note = (f"<p class='flagged'>Every sample gives {ex.best:.4g}: this unit never changes on the data "
                    "(a dead unit).</p>")
        self._examples.object = (
            f"<p>{html.escape(ex.describe())} over {ex.n:,} samples: highest <b>{ex.best:.4g}</b>, mean "
            f"{ex.mean:.4g}, lowest {float(ex.bottom.activations[0]):.4g} "
            f"<span class='muted'>(ranked in {1000 * ex.seconds:.0f} ms)</span></p>{note}"
            + self._strip(ex.top, f"Top {len(ex.top.indices)}: drive it highest", "units-top")
            + self._strip(ex.bottom, f"Bottom {len(ex.bottom.indices)}: drive it lowest", "units-bottom")
        )

    # -- the optimization ---------------------------------------------------------------------------------------

    @staticmethod
    def _plan_html(objective, steps, lr, seed, start, sample_id):
        name = next(k for k, v in OBJECTIVES.items() if v == objective)
        origin = {"noise": f"seeded noise (seed {seed})", "top": "the top example",
                  "sample": f"sample {sample_id}"}[start]
        return (f"<span class='muted'>Optimize <b>{html.escape(name)}</b>: {steps} steps of lr {lr:g} from "
                f"{origin}.</span>")

    def _show_live(self, event):
        frame = event.new
        if frame is None:
            return
        step, total, x, activation = frame
        project = self.units.store.project_obj
        src = picture(x, project.input_view, self.units.store.class_names(), size=200)
        self._live.object = (f"<div class='live'><figure><img src='{src}'><figcaption>step {step} of {total} · "
                             f"activation <b>{activation:.4g}</b></figcaption></figure></div>")

    def _show_result(self, *_):
        u = self.units
        result, compared = u.result, u.compared
        if u.running:
            self._outcome.object = "<span class='muted'>optimizing…</span>"
            return
        if result is None:
            self._outcome.object = ("<span class='muted'>Gradient ascent on the input (the network fixed) to drive "
                                    "the objective up, from seeded noise or a sample; the input appears here as it "
                                    "is optimized.</span>")
            return
        project = u.store.project_obj
        names = u.store.class_names()
        src = picture(result.input, project.input_view, names, size=200)
        start = picture(result.start_input, project.input_view, names, size=200)
        best_html = ""
        if compared is not None:
            best = compared.best
            verdict = "above" if result.activation > best else "below"
            word = "higher than" if verdict == "above" else "lower than"
            best_html = (f"activation reached <b class='{verdict} units-reached' "
                         f"data-activation='{result.activation!r}' data-best='{best!r}'>{result.activation:.4g}</b> "
                         "vs best dataset example "
                         f"<b>{best:.4g}</b> (#{int(compared.top.indices[0])}): {word} any sample<br>")
        cancelled = (f"<span class='flagged'>cancelled after {result.steps_done} of {result.steps} steps</span><br>"
                     if result.cancelled else "")
        params = result.params()
        reg = ", ".join(f"{k} {params[k]:g}" for k in ("l2", "tv", "jitter", "blur_every", "blur_sigma"))
        self._live.object = (
            f"<div class='live'><figure><img src='{start}' width='200'><figcaption>start: "
            f"{html.escape(result.start)}<br>activation {result.start_activation:.4g}</figcaption></figure>"
            f"<figure><img src='{src}' width='200'><figcaption>optimized<br>activation "
            f"<b>{result.activation:.4g}</b></figcaption></figure></div>"
        )
        self._outcome.object = (
            f"<div class='outcome' data-steps-done='{result.steps_done}' data-cancelled='{int(result.cancelled)}'>"
            f"{cancelled}{best_html}<b>{html.escape(result.description)}</b> · {result.steps_done} steps in "
            f"{result.seconds:.2f} s ({result.steps_per_second:.0f} steps/s)<br>"
            f"<span class='params'>lr {result.lr:g}, seed {result.seed}, {reg}, clip "
            f"{'on' if result.regularizers.clip else 'off'}; optimized in the model's input space</span></div>"
        )

    def __panel__(self):
        card = self.card
        pick = pn.Column(
            pn.Row(self.layer, self.unit, self.reduce, self._position, self.k, margin=0),
            self._about, sizing_mode="stretch_width",
        )
        optimize = pn.Column(
            pn.FlexBox(self.objective, self.output_index, self.weights, self.start, self.sample, margin=0,
                       sizing_mode="stretch_width"),
            pn.FlexBox(self.steps, self.lr, self.seed, self.l2, self.tv, self.jitter, self.blur_every,
                       self.blur_sigma, self.clip, self.run, self.stop, margin=0, sizing_mode="stretch_width"),
            self._plan, self._live, self._outcome, sizing_mode="stretch_width",
        )
        grid = pn.GridSpec(sizing_mode="stretch_width", height=860, mode="override")
        grid[0:1, 0:6] = card("Dataset examples · from the cached activations",
                              pn.Column(self._examples, scroll=True, sizing_mode="stretch_both"))
        grid[0:1, 6:12] = card("Optimized input · activation maximization", optimize)
        head = pn.Column(card("Unit · any layer; a convolutional unit is a channel", pick), height=140,
                         sizing_mode="stretch_width")
        return pn.Column(self.status, head, grid, sizing_mode="stretch_width")
