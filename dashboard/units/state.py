"""The Units tab's state: what drives one unit of any layer, from the data and by optimization.

:class:`Units` holds the layer and unit (a dense unit, or a convolutional channel averaged over space or read at one
position), the dataset's top and bottom examples of it (:func:`engine.explore.featurevis.top_examples`), and an
activation maximization run (:func:`engine.explore.featurevis.maximize`): its objective, regularizer weights, steps,
learning rate, seed and start, the input as it is being optimized, and the result beside the best dataset example.
Every number comes from :mod:`engine.explore.featurevis`.

Long work (ranking the dataset, the optimization) runs on the process's worker (:mod:`dashboard.jobs`). The
optimization streams: the engine's ``on_step`` callback leaves the latest input in a slot, and while the run lasts a
periodic callback of the session shows it, so the picture changes as it optimizes; *Cancel* stops it after the
current step. Like the explorer, nothing is computed while the tab is closed (:attr:`Units.active`).
"""

from __future__ import annotations

import threading

import panel as pn
import param

from engine.errors import InspectorError

from ..inspector.state import TabState
from ..jobs import in_server_session

__all__ = ["OBJECTIVES", "REDUCE", "STARTS", "Units", "parse_weights"]

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




class Units(TabState):
    """State of the Units tab of one session.

    Parameters
    ----------
    inspector : Inspector

    Example
    -------
    >>> units = Units(inspector=store, active=True)                  # doctest: +SKIP
    >>> units.show_unit("bottleneck", 3); units.examples.top.indices  # doctest: +SKIP
    >>> units.optimize(); units.result.activation, units.examples.best  # doctest: +SKIP
    """


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
    examples = param.Parameter(default=None, doc="engine.explore.featurevis.UnitExamples of the chosen unit")
    result = param.Parameter(default=None, doc="engine.explore.featurevis.Optimized of the last run")
    compared = param.Parameter(default=None, doc="UnitExamples (k=1) of the last run's objective over the dataset")
    live = param.Parameter(default=None, doc="(step, steps, input, activation) of the run under way")
    running = param.Boolean(default=False, doc="An optimization is under way")
    no_gradients = param.String(default="", doc="Why the model's input cannot be optimized ('' when it can)")

    def __init__(self, **params):
        super().__init__(**params)
        self._cancel = threading.Event()
        self._slot_lock = threading.Lock()
        self._slot = None  # (run, frame): the latest input of the run under way, left by the worker
        self._run = 0  # the run whose frames are shown; a run dropped for another unit is no longer it
        self._periodic = None
        self._frames = []  # the live frames of the last run shown outside a server (what tests look at)
        self._quiet = False  # set while several choices change at once: one ranking at the end
        self.inspector.param.watch(self._layers, "layers")
        self.inspector.param.watch(self._follow, "layer")
        self.inspector.param.watch(self._forget, "project_obj")
        self._layers()
        self._forget()

    def _forget(self, *_):
        """Another project: nothing shown belongs to it; say now if its framework has no gradients (ONNX)."""
        from engine.errors import ModelError
        from engine.model import framework_for

        project = self.inspector.project_obj
        why = ""
        try:
            framework = framework_for(project.model_path) if project is not None else None
        except ModelError:
            framework = None
        if framework is not None and not framework.gradients:
            why = (f"{framework.title} models carry no gradients, so the input cannot be optimized; the top dataset "
                   "examples work. Open the Keras or PyTorch model the file was exported from to optimize.")
        self.param.update(examples=None, result=None, compared=None, no_gradients=why)

    # -- the unit -------------------------------------------------------------------------------------------------

    def _layers(self, *_):
        names = [info.name for info in self.inspector.layers if not isinstance(info.output_shape[0], tuple)]
        self._quiet = True
        try:
            project = self.inspector.project_obj
            default = getattr(project, "default_layer", None)
            fallback = names[-1] if names else None
            want = next((n for n in (self.layer, self.inspector.layer, default) if n in names), fallback)
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
        project = self.inspector.project_obj
        if project is None or self.layer is None:
            self.shape = ()
            return
        from engine.explore.featurevis import unit_shape

        try:
            shape = unit_shape(project.model(), self.layer)
        except InspectorError as exc:
            self.error = str(exc)
            return
        self.param.update(shape=shape, position=tuple(d // 2 for d in shape[:-1]) if len(shape) > 1 else ())

    @property
    def spatial(self) -> bool:
        """The layer has spatial axes: a unit is a channel."""
        return len(self.shape) > 1

    def target(self):
        """The engine's :class:`~engine.explore.featurevis.Unit` for the current choices (checked against the layer)."""
        from engine.explore.featurevis import Unit

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

    def prepare(self):
        """The tab opened: rank the dataset for the chosen unit."""
        self.refresh()

    @param.depends("layer", "unit", "reduce", "position", watch=True)
    def _another_unit(self):
        """Another unit: the optimized input of the previous one goes, and a run still under way for it is stopped
        and its result dropped (it would show beside the new unit's examples)."""
        if self.running or self.result is not None or self.live is not None:
            self._cancel.set()
            self.jobs.supersede("optimize")
            self._stop_periodic()
            idle = {} if self.jobs.running else {"status": "the optimization of the previous unit was dropped"}
            with self._slot_lock:  # (a frame being shown by _pull on another thread lands before this, not after)
                self._run += 1
                self._slot = None
                self.param.update(running=False, result=None, compared=None, live=None, **idle)

    @param.depends("layer", "unit", "reduce", "position", "k", watch=True)
    def refresh(self):
        """Rank the dataset by the chosen unit (on the worker): its top-k and bottom-k examples."""
        project = self.inspector.project_obj
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
            from engine.explore.featurevis import top_examples

            return top_examples(project, target, k, progress=progress)

        def apply(examples):
            if self.inspector.project_obj is project:
                self.examples = examples

        self.jobs.submit("examples", f"ranking {len(project.inputs()):,} samples by {target.describe(self.shape)}",
                         work, apply)

    # -- the optimization -----------------------------------------------------------------------------------------

    def objective_(self):
        """The engine's :class:`~engine.explore.featurevis.Objective` for the current choices."""
        from engine.explore.featurevis import DeepDream, Objective, Unit, unit_at, unit_shape

        if self.objective == "output":
            shape = unit_shape(self.inspector.project_obj.model(), None)
            return Objective.sum([(1.0, unit_at(None, shape, self.output_index))])
        if self.objective == "deepdream":
            return Objective.sum([(1.0, DeepDream(self.layer))])
        if self.objective == "sum":
            position = tuple(self.position) if self.spatial and self.reduce == "position" else None
            return Objective.sum([(w, Unit(self.layer, u, position).check(self.shape))
                                  for u, w in parse_weights(self.weights)])
        return Objective.sum([(1.0, self.target())])

    def regularizers(self):
        from engine.explore.featurevis import Regularizers

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
        project = self.inspector.project_obj
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
        with self._slot_lock:
            run = self._run = self._run + 1

        def show(step, total, x, activation):
            frame = (step, total, x, activation)
            if server:
                with self._slot_lock:
                    self._slot = (run, frame)
            else:
                self._frames.append(frame)
                self.live = frame

        def work(tracker):
            from engine.explore.featurevis import maximize, top_examples

            result = maximize(project, objective, start=start, steps=steps, lr=lr, seed=seed,
                              regularizers=regularizers, progress=tracker, on_step=show, every=4, cancel=cancel)
            single = objective.terms[0][1] if len(objective.terms) == 1 and objective.terms[0][0] == 1.0 else None
            if examples is not None and single is not None and examples.target == single:
                compared = examples
            else:  # the objective's best over the dataset, for the comparison
                tracker("the dataset's best", 0, 1)
                compared = top_examples(project, objective, 1)
            return result, compared

        def apply(outcome):
            self._stop_periodic()
            if self.inspector.project_obj is not project:  # another project was opened meanwhile
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
            taken, self._slot = self._slot, None
            if taken is not None and taken[0] == self._run:  # not a frame of a run dropped meanwhile
                self.live = taken[1]
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
