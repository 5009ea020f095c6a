"""The Units tab's view: pick a layer and unit; its top and bottom dataset examples beside the optimized input.

:class:`UnitsView` only shows :class:`~dashboard.units.state.Units`. The pictures are the engine's
(:func:`engine.render.samples.sample_picture`: absolute grey levels for images, so that an optimized input and a
dataset example compare). Another view can point the tab at a unit with :meth:`UnitsView.show_unit`.
"""

from __future__ import annotations

import html

import panel as pn
import param

from .. import sample
from ..widgets import NOTE_CSS, View, card, error_pane, sample_caption, status_pane
from .state import OBJECTIVES, Units

__all__ = ["UnitsView", "picture"]

THUMB = 96
UNITS_CSS = NOTE_CSS + """
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


def picture(array, spec, size: int = THUMB) -> str:
    """A ``data:`` URL of one sample drawn small: an image in a ``size`` square, anything else twice as wide."""
    width = size if getattr(spec, "kind", None) == "image" else 2 * size
    return sample.thumbnail_src(array, spec, width=width, height=size)


class UnitsView(View):
    """The Units tab: pick a layer and unit; its top and bottom dataset examples beside the optimized input.

    Parameters
    ----------
    store : Units
    """

    store = param.ClassSelector(class_=Units, doc="The Units tab's state")
    reveal = param.Callable(default=None, allow_None=True, doc="Brings the tab on screen (set by the dashboard)")

    def __init__(self, **params):
        super().__init__(**params)
        u = self.store
        p = u.param
        self.layer = pn.widgets.Select.from_param(p.layer, label="Layer", width=200, css_classes=["units-layer"])
        self.unit = pn.widgets.IntInput.from_param(p.unit, label="Unit", width=110, css_classes=["units-unit"])
        self.reduce = pn.widgets.RadioButtonGroup.from_param(p.reduce, color="primary", variant="outline",
                                                             margin=(24, 10, 5, 10))
        self.k = pn.widgets.IntInput.from_param(p.k, label="Examples (k)", width=100)
        self._position = pn.Row(margin=0)
        self._about = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10))
        self.status = status_pane(u, css_classes=["units-status"])
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
                                     css_classes=["units-run"],
                                     disabled=pn.bind(lambda running, why: bool(running or why), p.running,
                                                      p.no_gradients))
        self.run.on_click(u.optimize)
        self.stop = pn.widgets.Button(label="Cancel", color="light", width=90, margin=(22, 10, 5, 10),
                                      css_classes=["units-cancel"], disabled=p.running.rx.not_())
        self.stop.on_click(u.cancel)
        self._plan = pn.pane.HTML(pn.bind(self._plan_html, p.objective, p.steps, p.lr, p.seed, p.start, p.sample,
                                          p.no_gradients),
                                  stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["units-plan"])
        self._live = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                  css_classes=["units-live"])
        self._outcome = pn.pane.HTML("", stylesheets=[UNITS_CSS], sizing_mode="stretch_width", margin=(0, 10),
                                     css_classes=["units-outcome"])
        self.error = error_pane(u, css_classes=["units-error"])  # beside Optimize: the top line may be scrolled away

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
        self.store.show_unit(layer, unit, position)

    # -- the unit -----------------------------------------------------------------------------------------------

    def _build_position(self, *_):
        u = self.store
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
        self.store.position = tuple(int(w.value) for w in self._position.objects)

    def _describe(self, *_):
        u = self.store
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
        inspector = self.store.inspector
        spec = inspector.project_obj.input_view
        labels = examples.labels
        cards = [f"<figure class='ex'><img src='{picture(examples.inputs[i], spec)}'><figcaption>"
                 f"{sample_caption(sid, None if labels is None else inspector.label_of(labels[i]))}<br>"
                 f"{float(act):.4g}</figcaption></figure>"
                 for i, (sid, act) in enumerate(zip(examples.indices, examples.activations))]
        return f"<div class='ex-title'>{title}</div><div class='ex-strip {css}'>{''.join(cards)}</div>"

    def _show_examples(self, *_):
        ex = self.store.examples
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
    def _plan_html(objective, steps, lr, seed, start, sample_id, no_gradients=""):
        if no_gradients:
            return f"<span class='flagged'>{html.escape(no_gradients)}</span>"
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
        src = picture(x, self.store.inspector.project_obj.input_view, size=200)
        self._live.object = (f"<div class='live'><figure><img src='{src}'><figcaption>step {step} of {total} · "
                             f"activation <b>{activation:.4g}</b></figcaption></figure></div>")

    def _show_result(self, *_):
        u = self.store
        result, compared = u.result, u.compared
        if u.running:
            self._outcome.object = "<span class='muted'>optimizing…</span>"
            if u.live is None:  # the previous run's input goes until this run's first step
                self._live.object = ""
            return
        if result is None:  # nothing optimized for this unit yet (another unit's input never stays beside it)
            self._live.object = ""
            self._outcome.object = ("<span class='muted'>Gradient ascent on the input (the network fixed) to drive "
                                    "the objective up, from seeded noise or a sample; the input appears here as it "
                                    "is optimized.</span>")
            return
        spec = u.inspector.project_obj.input_view
        src = picture(result.input, spec, size=200)
        start = picture(result.start_input, spec, size=200)
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
        pick = pn.Column(
            pn.Row(self.layer, self.unit, self.reduce, self._position, self.k, margin=0),
            self._about, sizing_mode="stretch_width",
        )
        optimize = pn.Column(
            pn.FlexBox(self.objective, self.output_index, self.weights, self.start, self.sample, margin=0,
                       sizing_mode="stretch_width"),
            pn.FlexBox(self.steps, self.lr, self.seed, self.l2, self.tv, self.jitter, self.blur_every,
                       self.blur_sigma, self.clip, self.run, self.stop, margin=0, sizing_mode="stretch_width"),
            self.error, self._plan, self._live, self._outcome, sizing_mode="stretch_width",
        )
        grid = pn.GridSpec(sizing_mode="stretch_width", height=860, mode="override")
        grid[0:1, 0:6] = card("Dataset examples · from the cached activations",
                              pn.Column(self._examples, scroll=True, sizing_mode="stretch_both"))
        grid[0:1, 6:12] = card("Optimized input · activation maximization", optimize)
        head = pn.Column(card("Unit · any layer; a convolutional unit is a channel", pick), height=140,
                         sizing_mode="stretch_width")
        return pn.Column(self.status, head, grid, sizing_mode="stretch_width")
