"""The Inspect tab's state: what the user chose to inspect, and what the engine made of it.

:class:`Inspector` holds the choices (project, layer, model version, reducer, inverse map and their parameters,
colouring) and the engine's answers the views depend on: the project, its layers, the inspection, the plot's table,
the current decode, the history of decodes, what lies under the cursor, and the probe of the layer (trained by
:class:`dashboard.datasets.state.Datasets`; its predictions colour the plot). It computes nothing itself: every
number comes from an :class:`engine.explore.inspection.Inspection`, built on the process's worker
(:mod:`dashboard.jobs`) and shared by every session (:mod:`dashboard.shared`).
"""

from __future__ import annotations

import os

import param

from engine.errors import InspectorError
from engine.reduce.names import INVERSES, METHOD_PARAMS, METHODS, method_label

from .. import shared
from ..jobs import JobState
from ..shared import PROBE_COLORS, Request, output_colors, plot_table, probe_key

__all__ = ["HISTORY_LENGTH", "Follower", "Inspector", "TabState"]

#: Decodes kept in the history strip.
HISTORY_LENGTH = 16


def _labelled(names: dict) -> dict:
    """``{label: name}`` of the engine's ``{name: label}`` table: a menu's options."""
    return {label: name for name, label in names.items()}


class Inspector(JobState):
    """State of one session's inspection: the choices and the engine's answers.

    Parameters
    ----------
    project : str, optional
        Name of a project folder under the projects root; default the project ``latent-inspector serve`` opens,
        else ``mnist`` when there, else the first. An unknown name opens the default and sets :attr:`error`.
    projects : list of str, optional
        The projects offered; default :func:`engine.data.project.list_projects`.

    Example
    -------
    >>> store = Inspector(project="mnist")                  # doctest: +SKIP
    >>> store.decode_at(0.5, -1.0).output.shape             # doctest: +SKIP
    (28, 28, 1)
    """

    # -- choices ------------------------------------------------------------------------------------------------
    project = param.Selector(default=None, objects=[], allow_None=True, doc="Project folder under the projects root")
    layer = param.Selector(default=None, objects=[], allow_None=True, doc="Layer where the model is cut")
    model_version = param.Selector(default="", objects=[""], doc="Model file: '' for the project's own model, else "
                                   "a fine-tuned version's path relative to the project folder (the versions are "
                                   "listed by dashboard.finetune.state.FineTuning)")
    method = param.Selector(default="pca", objects=_labelled(METHODS), doc="2-D reducer")
    inverse = param.Selector(default="auto", objects=_labelled(INVERSES), doc="Map from the plane back to the layer")
    n_neighbors = param.Selector(default="auto", objects=["auto", 5, 10, 15, 30, 50, 100, 200],
                                 doc="UMAP: neighbours per point ('auto': the engine tunes it)")
    min_dist = param.Number(default=0.1, bounds=(0.0, 0.99), step=0.05, doc="UMAP: minimum distance in the plane")
    perplexity = param.Selector(default="auto", objects=["auto", 5, 10, 30, 50, 100],
                                doc="t-SNE: perplexity ('auto': the engine tunes it)")
    color_by = param.Selector(default="label", objects=["label", "none"], doc="Colour of the points")
    head = param.Selector(default=None, objects=[None], allow_None=True,
                          doc="For a model with several outputs: the output a decode shows first (and saves)")
    several_heads = param.Boolean(default=False, doc="The model has several outputs (the head choice is shown)")
    spread = param.Integer(default=3, bounds=(0, 8), doc="Point size: maximum spread in pixels in sparse areas")
    live = param.Boolean(default=False, doc="Decode continuously under the cursor")

    # -- what the engine answered --------------------------------------------------------------------------------
    project_obj = param.Parameter(default=None, doc="engine.data.project.Project of the current project")
    layers = param.List(default=[], doc="engine.model.LayerInfo of every layer")
    inspection = param.Parameter(default=None, doc="engine.explore.inspection.Inspection of the current choice")
    probe = param.Parameter(default=None, doc="engine.explore.probe.Probe trained on the current layer, or None")
    points = param.DataFrame(default=None, allow_None=True, doc="The plot's table: embedding, labels and, with a "
                             "probe, its predictions (dashboard.shared.plot_table)")
    decode = param.Parameter(default=None, doc="The current engine Decode")
    history = param.List(default=[], doc="The last decodes, oldest first")
    hovered = param.Dict(default=None, allow_None=True, doc="The sample nearest to the cursor")
    quality = param.Parameter(default=None, doc="The engine's QualityReport of the inspection shown, once computed "
                              "(after the picture: it never delays it)")
    # -- what the plot shows while work goes on ----------------------------------------------------------------------
    shown = param.String(default="", doc="What the plot shows, in words ('' before the first picture)")
    pending = param.String(default="", doc="The picture being computed, in words ('' when none): the plot shows an "
                           "older one meanwhile")
    moving = param.Boolean(default=False, doc="The plot shows a layout still being optimised (t-SNE's iterations): "
                           "no inverse map yet, so taps wait")

    view = param.NumericTuple(default=None, allow_None=True, length=4, doc="The plot's view range (x0, x1, y0, "
                              "y1) a link asked for, applied to the first picture of its choices")

    def __init__(self, **params):
        projects = params.pop("projects", None)
        wanted = params.pop("project", None)
        self._held = params.pop("opens_later", False)  # opened by open(), once the views following the store exist
        self._link = params.pop("link", None)  # a dashboard.urlstate.Query: the choices of the page's address
        if self._link is not None:
            wanted = self._link.choices.pop("project", None) or wanted
        super().__init__(**params)
        from engine.data.project import list_projects

        objects = list(projects) if projects is not None else list_projects()
        self.param.project.objects = objects
        self._opening = False
        served = os.environ.get("LATENT_INSPECTOR_PROJECT")  # the project `latent-inspector serve PROJECT` opens
        default = next((p for p in (served, "mnist") if p in objects), objects[0] if objects else None)
        project, problem = wanted or default, None
        if project is not None and project not in objects:
            problem = f"No project {project!r}; projects available: {', '.join(objects) or 'none'}"
            project = default  # show what there is, and say what went wrong
        # what the project's opening says joins these (a job clears the error when it starts)
        self._notices = ([problem] if problem else []) + (list(self._link.problems) if self._link is not None else [])
        if project is not None:
            self.project = project  # triggers the load
        if self._notices:
            self.error = "; ".join(self._notices)

    # -- project and layer -----------------------------------------------------------------------------------------

    def open(self):
        """Open the project chosen, for a store made with ``opens_later=True``: the dashboard does so once every
        state and view following the store is made, so that they see the opening, whether it takes a job or is done
        at once (:meth:`_open_from_memory`)."""
        self._held = False
        self._open_project()

    @param.depends("project", watch=True)
    def _open_project(self):
        name = self.project
        if name is None or self._held:
            return

        def work(progress, project=None):
            from engine.data.project import load_project
            from engine.model import list_layers

            progress("loading the model", 0, 1)
            project = project or load_project(name)
            project.inputs()
            project.labels()
            return project, list_layers(project.model())

        opened = self._open_from_memory(name, work)
        if opened is not None:  # nothing to read: opened now, so a new page's document holds its picture
            self.jobs.supersede("inspection")
            self.error = ""  # as a job clears it when it starts
            self._project_opened(opened)
            return
        self.jobs.submit("inspection", f"opening {name}", work, self._project_opened)

    @staticmethod
    def _open_from_memory(name, work):
        """``work``'s result for project ``name`` when this process holds its model, inputs and labels (another
        session opened it): milliseconds, without the worker. A server session opened so, whose inspection is
        cached too, is made with its picture: the page's first document holds it, rather than the page asking for
        it once loaded (a second round trip, and the plot made on the event loop after the page's load). Else
        None: the opening is a job, which also reports what fails."""
        from engine.data.project import load_project

        try:
            project = load_project(name)
            if not project.in_memory():
                return None
            return work(lambda *_: None, project)
        except InspectorError:  # said by the job, beside the project menu
            return None

    def _project_opened(self, result):
        project, layers = result
        valid = [info.name for info in layers if info.valid_cut]
        link, problems = self._link, []
        asked = link.choices.pop("layer", None) if link is not None else None
        if asked is not None and asked not in valid:
            problems.append(f"the link's layer {asked!r} is not a layer of {project.name!r} that can be cut")
            asked = None
        layer = asked or (self.layer if self.layer in valid else project.default_layer)
        if layer not in valid:
            try:
                layer = project.inferred_layer()
            except InspectorError:
                layer = valid[len(valid) // 2] if valid else None
        self._opening = True  # one inspection for the new project and layer, not one per parameter set below
        try:
            self.param.layer.objects = [info.name for info in layers]
            # (the states that follow the project list its model versions and datasets on project_obj)
            # (the layer with its project's layers: the layer menu takes both at once, see Controls)
            self.param.update(project_obj=project, layers=layers, layer=layer, inspection=None, probe=None,
                              points=None, decode=None, history=[], hovered=None, quality=None, shown="",
                              moving=False)
            problems += self._follow_link()
        finally:
            self._opening = False
        problems, self._notices = self._notices + problems, []
        if problems:
            self.error = "; ".join(problems)
        if layer is None:
            self.error = f"project {project.name!r}: the model has no layer where it can be cut"
        else:
            self._inspect(clear_error=False)

    def _follow_link(self) -> list[str]:
        """Apply the choices of the page's address (reducer, parameters, inverse map, model version) once the project
        is open; the colouring and the tapped point wait for the picture. Returns what could not be applied."""
        link = self._link
        if link is None:
            return []
        problems = []
        for name in ("model_version", "method", "inverse", "n_neighbors", "min_dist", "perplexity"):
            if name not in link.choices:
                continue
            value = link.choices.pop(name)
            try:
                setattr(self, name, value)
            except ValueError:
                problems.append(f"the link's {name.replace('_', ' ')} {value!r} is not one of the choices")
        self.view = link.view
        link.view = None
        return problems

    def reload_project(self):
        """Read the current project's folder again (a fine-tuned version was saved in it), keeping the choices."""
        from engine.data.project import load_project

        project = self.project_obj
        if project is not None:
            self.project_obj = load_project(project.name, project.path.parent)

    @param.depends("layer", "method", "inverse", "n_neighbors", "min_dist", "perplexity", "model_version",
                   watch=True)
    def _inspect(self, clear_error: bool = True):
        if self._opening or self.project_obj is None or self.layer is None or self.project_obj.name != self.project:
            return
        info = next((i for i in self.layers if i.name == self.layer), None)
        if info is not None and not info.valid_cut:
            self.error = f"cannot cut at {info.name!r}: {info.reason}"
            return
        request = self.request()
        cached = shared.INSPECTIONS.peek(request)
        if cached is not None:  # built before, by this session or another: no work, no progress to show
            self.jobs.supersede("inspection")
            self.param.update(status=f"{method_label(request.method)} of {request.layer}: ready (cached)",
                              **({"error": ""} if clear_error else {}))
            self._inspected(cached)
            return
        # A first picture in seconds, then the refined one: engine.explore.stages says how (for UMAP and t-SNE: the
        # default neighbourhood size and the k-NN inverse first; self-tuning and the learned inverse after).
        try:
            plan = self.plan()
        except InspectorError as exc:  # a choice the engine refuses (t-SNE has no native inverse): said, not raised
            self.error = str(exc)
            return
        *early, (final_stage, _) = plan
        for stage, stage_request in reversed(early):
            shown = shared.INSPECTIONS.peek(stage_request)
            if shown is not None:  # that picture exists: show it now, refine after
                self._inspected(shown, stage)
                self._refine(final_stage, request, clear_error=clear_error)
                return
        if not early:
            self._refine(final_stage, request, clear_error=clear_error)
            return
        stage, stage_request = early[0]
        label = f"{method_label(request.method)} of {request.layer}, first picture"
        snapshots = shared.Snapshots()

        def work(progress):
            return shared.inspection(stage_request, progress, snapshot=snapshots)

        def first(inspection):
            self._inspected(inspection, stage)
            self._refine(final_stage, request, clear_error=False)

        self.pending = self._words(request.method, stage.words)
        self.jobs.submit("inspection", label, work, first, clear_error=clear_error,
                         on_poll=lambda: self._show_snapshot(snapshots, request))

    def plan(self) -> list:
        """``[(engine Stage, Request), ...]`` of the current choices: the quick first picture (when there is one),
        then the picture asked for (:func:`engine.explore.stages.stages`)."""
        from engine.explore.stages import stages

        request = self.request()
        out = []
        for stage in stages(request.method, request.inverse, dict(request.params)):
            out.append((stage, Request.make(request.project, request.layer, request.method, stage.inverse,
                                            stage.params, root=request.root, model=request.model)))
        out[-1] = (out[-1][0], request)
        return out

    def _words(self, method: str, words: str = "") -> str:
        return f"{method_label(method)} of {self.layer}" + (f" ({words})" if words else "")

    def _refine(self, stage, request, clear_error=True):
        self.pending = self._words(request.method, stage.words if self.shown else "")
        label = f"{method_label(request.method)} of {request.layer}" + (", refining" if self.shown and
                                                                         self.inspection is not None else "")
        self.jobs.submit("inspection", label, lambda progress: shared.inspection(request, progress),
                         lambda inspection: self._inspected(inspection, stage), clear_error=clear_error)

    def _show_snapshot(self, snapshots, request):
        """Draw t-SNE's layout as its optimisation goes (the rows fitted so far, coloured by label); taps wait."""
        taken = snapshots.take()
        if taken is None or self.project_obj is None:
            return
        embedding, index, done, total = taken
        labels = self.project_obj.labels()
        self.param.update(moving=True, decode=None, hovered=None,
                          shown=f"{method_label(request.method)} optimising, iteration {done:,} of {total:,}",
                          points=shared.snapshot_table(embedding, index, labels, self.class_names()))
    def request(self) -> Request:
        """The engine request for the current choices."""
        params = {name: getattr(self, name) for name in METHOD_PARAMS[self.method]}
        params = {k: v for k, v in params.items() if v != "auto"}  # absent: the engine tunes it
        root = self.project_obj.path.parent if self.project_obj is not None else None
        return Request.make(self.project, self.layer, self.method, self.inverse, params, root=root,
                            model=self.model_version)

    def _inspected(self, inspection, stage=None):
        final = stage is None or stage.name != "first picture"
        method = method_label(inspection.method)
        self.param.update(moving=False, pending="" if final else self.pending,
                          shown=method if final else f"{method}, first picture",
                          quality=None)
        probe = shared.shared_probe(probe_key(inspection))  # trained on this layer before, by this session or another
        heads = list(inspection.heads)
        self.param.head.objects = heads
        if self.head not in heads:
            self.head = heads[0]
        self.several_heads = len(heads) > 1
        # One update for the table and its colouring: the plot is drawn once (a second figure replacing the first
        # would drop a tap made on the first one in between).
        self.param.update(inspection=inspection, probe=probe, points=plot_table(inspection, probe), decode=None,
                          hovered=None, color_by=self._colors(inspection, probe))
        if final:
            self._measure(inspection)
            if self.view is not None and self._link is None:  # another picture than the link's: its own range
                self.view = None
        link = self._link
        if final and link is not None and self.pending == "":
            self._link = None  # followed once: from now on the page's address follows the session
            if link.tap is not None:
                self.decode_at(*link.tap)

    @param.depends("busy", "error", watch=True)
    def _idle(self):
        """The inspection's work ended without a picture (it failed): no banner, and no half-optimised layout."""
        if not self.pending or "inspection" in self.jobs.running:
            return
        moving = self.moving
        self.param.update(pending="", moving=False)
        if moving:  # back to the picture of the inspection the session has
            self.show_again()

    def show_again(self):
        """The plot back to the picture of the inspection the session has, after a layout in motion (t-SNE's
        optimisation, a refinement's points moving) that ended without a new one."""
        inspection = self.inspection
        self.param.update(moving=False, shown=method_label(inspection.method) if inspection is not None else "",
                          points=plot_table(inspection, self.probe) if inspection is not None else None)

    def _measure(self, inspection):
        """The quality report of the inspection shown, computed after its picture (and after any refining)."""
        def apply(report):
            if self.inspection is inspection:
                self.quality = report

        self.jobs.submit("quality", "quality report", lambda progress: shared.quality(inspection, progress), apply,
                         clear_error=False)

    def show_probe(self, inspection, probe):
        """Keep ``probe``, trained on the layer of ``inspection``, for every session; show it when that inspection
        is still the current one (its predictions join the plot's colourings)."""
        shared.remember_probe(probe_key(inspection), probe)
        if self.inspection is inspection:
            self.param.update(probe=probe, points=plot_table(inspection, probe),
                              color_by=self._colors(inspection, probe))

    def _colors(self, inspection, probe) -> str:
        """Offer the colourings of ``inspection`` (with ``probe``'s predictions); the one to show: the link's, else
        the current one while offered, else the first. The caller sets it with the table it colours."""
        colors = ["label", "none"] if inspection.labels is not None else ["none"]
        colors[-1:-1] = list(output_colors(inspection))
        if probe is not None:
            colors[-1:-1] = list(PROBE_COLORS) if inspection.labels is not None else [PROBE_COLORS[0]]
        self.param.color_by.objects = colors
        asked = self._link.choices.get("color_by") if self._link is not None else None
        if asked is not None and asked in colors:
            self._link.choices.pop("color_by")
            return asked
        return self.color_by if self.color_by in colors else colors[0]

    def class_names(self) -> list[str]:
        """The project's class names ([] without labels)."""
        if self.project_obj is None:
            return []
        names = self.project_obj.label_names()
        return list(names) if names is not None else []

    def label_of(self, code) -> str:
        """The name of class ``code`` (its number when the project names fewer classes)."""
        names = self.class_names()
        return names[int(code)] if int(code) < len(names) else str(code)

    # -- decoding ----------------------------------------------------------------------------------------------------

    def decode_at(self, x, y, record: bool = True):
        """Decode the point (x, y) of the plane: inverse map, then the model's suffix. Returns the engine's Decode.

        ``record`` appends it to the history (a tap does, a live hover does not).
        """
        if self.inspection is None or x is None or y is None or self.moving:
            return None
        try:
            decoded = self.inspection.decode(float(x), float(y), head=self.head)
        except InspectorError as exc:
            self.error = str(exc)
            return None
        if record:
            self.param.update(decode=decoded, history=(self.history + [decoded])[-HISTORY_LENGTH:])
        else:
            self.decode = decoded
        return decoded

    @param.depends("head", watch=True)
    def _head_changed(self):
        """Another output chosen: the current decode shows it (the point is decoded again, not recorded)."""
        if self.decode is not None:
            self.decode_at(*self.decode.xy, record=False)

    def restore(self, decode):
        """Show an earlier decode of the history again."""
        if any(decode is d for d in self.history):
            self.decode = decode

    def clear_markers(self):
        """Forget the current decode and the history: the plot's markers go (saved records stay)."""
        self.param.update(decode=None, history=[])

    def clear_history(self):
        """Forget the history of decodes (saved records stay: they are the dataset's)."""
        self.param.update(history=[])

    def hover_at(self, x, y):
        """Record the sample nearest to (x, y), and decode there in live mode."""
        if self.inspection is None or x is None or y is None or self.moving:
            return
        if self.live:
            self.decode_at(x, y, record=False)
        index = int(self.inspection.nearest(float(x), float(y)))
        if self.hovered is not None and self.hovered["index"] == index:
            return
        labels = self.inspection.labels
        label = None if labels is None else self.label_of(labels[index])
        ex, ey = (float(v) for v in self.inspection.embedding[index])
        self.hovered = {"index": index, "label": label, "x": ex, "y": ey}


class Follower(JobState):
    """Base of a session's other states: each follows the session's :class:`Inspector` (its project, inspection
    and decodes)."""

    inspector = param.ClassSelector(class_=Inspector, doc="The session's choices and inspection")

    @property
    def inspection(self):
        """The inspection the session shows (None while there is none)."""
        return self.inspector.inspection


class TabState(Follower):
    """Base of the state of a tab beside the Inspect tab: its work runs only while the tab is on screen, so that a
    tap on the main plot costs nothing more while the tab is closed."""

    active = param.Boolean(default=False, doc="The tab is on screen: its work runs")

    def on_screen(self):
        """The inspection to work on while the tab is on screen; None while it is closed or there is none."""
        return self.inspection if self.active else None

    @param.depends("active", watch=True)
    def _opened(self):
        self.prepare()

    def prepare(self):
        """Get ready to show the current inspection: called when the tab opens (subclasses start their work)."""
