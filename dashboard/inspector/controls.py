"""The sidebar of the page: what to inspect and how, the progress of the work under way, the quality of the current
projection."""

from __future__ import annotations

import html
import textwrap

import panel as pn
import param

from engine.reduce.names import METHOD_PARAMS

from ..jobs import JobState
from ..widgets import WorkProgress
from .views import InspectorView

__all__ = ["Controls", "quality_rows"]


def _text(text: str) -> str:
    return html.escape(str(text), quote=False)


def _shape(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape[1:]) + ")"


def quality_rows(report) -> list[tuple[str, str]]:
    """(question, answer) rows of the engine's quality report in plain words, each with the measure's name and
    value, for a user who has not met trustworthiness or round-trip errors before."""
    from engine.reduce.names import INVERSES, method_label

    k = report.n_neighbors
    rows = [("map", f"{method_label(report.method)} of {report.n_samples:,} activations of {report.n_features:,} "
                    f"features ({report.backend.upper()})")]
    if report.explained_variance_ratio is not None:
        total = sum(report.explained_variance_ratio)
        rows.append(("variance shown", f"the 2 axes keep {total:.0%} of the activations' variance"))
    rows.append(("neighbours on the map", f"{report.trustworthiness:.3f} of 1: points close on the map are close in "
                                          f"the layer (trustworthiness, {k} neighbours)"))
    rows.append(("neighbours in the layer", f"{report.continuity:.3f} of 1: points close in the layer stay close on "
                                            f"the map (continuity)"))
    if report.inverse_error is not None:
        name = INVERSES.get(report.inverse, report.inverse)
        rows.append(("decoding a real sample", f"back within {report.inverse_error:.0%} of the activations' spread "
                                               f"(round-trip error of the {name} inverse, "
                                               f"{report.inverse_holdout:,} held-out samples)"))
    else:
        rows.append(("decoding", "no inverse map"))
    if report.output_error is not None:
        rows.append(("decoded outputs", f"within {report.output_error:.0%} of the outputs' spread of the real ones"))
    if report.consistency is not None:
        rows.append(("decoded samples keep their class", f"{report.consistency:.0%} of held-out samples, decoded from "
                                                         f"the map, get their own class back (Cons_d; classes from "
                                                         f"{report.classes_from})"))
    if report.decoded_accuracy is not None:
        rows.append(("decoded samples classified right", f"{report.decoded_accuracy:.0%} get their true label "
                                                         "(ACC_M)"))
    if report.class_stability is not None:
        rows.append(("classes over round trips", f"{report.class_stability:.0%} keep their class over "
                                                 f"{report.stability_rounds} map-and-decode round trips"))
    if report.gradient:
        g = report.gradient
        rows.append(("folds of the map", f"{g['steep_share']:.0%} of the map changes over {g['steep_factor']:g}x "
                                         f"faster than its median (gradient map: median {g['median']:.3g}, max "
                                         f"{g['max']:.3g}); the Gradient map layer shows where"))
    if report.seconds_per_point is not None:
        rows.append(("decoding speed", f"{report.seconds_per_point * 1e6:.3g} µs per point in a batch"))
    if report.tuning:
        t = report.tuning
        tried = ", ".join(str(v) for v in t["scores"])
        rows.append(("chosen for you", f"{t['param']} = {t['chosen']} (best of {tried} by trustworthiness)"))
    if report.fit_seconds is not None:
        rows.append(("computed in", f"{report.fit_seconds:.1f} s" + (" (read from the cache)" if report.cache_hit
                                                                    else "")))
    rows += [("note", note) for note in report.notes]
    return rows


class Controls(InspectorView):
    """Project, layer (with output shapes; invalid cuts disabled, with the reason), reducer and inverse map with
    their parameters, colouring, point size, live decoding, progress and the quality report.

    Parameters
    ----------
    store : Inspector
    others : list of JobState, optional
        Further states whose work shows in the sidebar's progress line (the probe's, fine-tuning's).
    """

    others = param.List(default=[], item_type=JobState, doc="Further states whose work the progress line shows")

    def __init__(self, **params):
        super().__init__(**params)
        p = self.store.param
        self.project = pn.widgets.Select.from_param(p.project, label="Project", sizing_mode="stretch_width",
                                                 css_classes=["project-select"])
        # The layer menu is not linked to the layer's parameter (Select.from_param): a link gives it the new
        # project's layer names alone, before the layer and the uncuttable layers, so that it took the first layer
        # (which the page's menu sometimes kept showing) or refused the old project's uncuttable layers ("Cannot
        # disable non existing options"). :meth:`_layers_changed` gives it all three at once.
        self.layer = pn.widgets.Select(label="Layer (output shape)", description=textwrap.dedent(p.layer.doc).strip(),
                                       sizing_mode="stretch_width", css_classes=["layer-select"])
        self.layer.param.watch(self._layer_chosen, "value")
        self.model_version = pn.widgets.Select.from_param(
            p.model_version, label="Model version",
            sizing_mode="stretch_width", css_classes=["model-select"],
        )
        self.method = pn.widgets.RadioButtonGroup.from_param(p.method, label="Reducer", sizing_mode="stretch_width",
                                                             color="primary", variant="outline")
        self.inverse = pn.widgets.Select.from_param(p.inverse, label="Inverse map", sizing_mode="stretch_width")
        # a refit takes seconds: the reducer's slider applies when released (throttled), not while it moves
        self.n_neighbors = pn.widgets.Select.from_param(p.n_neighbors, label="UMAP neighbours",
                                                        sizing_mode="stretch_width")
        self.min_dist = pn.widgets.FloatSlider.from_param(p.min_dist, label="UMAP min distance",
                                                          sizing_mode="stretch_width", throttled=True)
        self.perplexity = pn.widgets.Select.from_param(p.perplexity, label="t-SNE perplexity",
                                                       sizing_mode="stretch_width")
        self.color_by = pn.widgets.Select.from_param(p.color_by, label="Colour by", sizing_mode="stretch_width")
        self.head = pn.widgets.Select.from_param(p.head, label="Model output shown", sizing_mode="stretch_width",
                                                 visible=p.several_heads)
        self.spread = pn.widgets.IntSlider.from_param(p.spread, label="Point size (spread, px)",
                                                      sizing_mode="stretch_width", throttled=True)
        self.live = pn.widgets.Checkbox.from_param(p.live, label="Live decoding under the cursor",
                                                   margin=(12, 10, 6, 10), css_classes=["live-toggle"])
        self.progress = WorkProgress(states=[self.store, *self.others])
        self.store.param.watch(self._layers_changed, ["layers", "layer"])
        self._layers_changed()

    def _layers_changed(self, *_):
        layers, layer = self.store.layers, self.store.layer
        if not layers:
            return
        options = {f"{i.name}  {_shape(i.output_shape)}": i.name for i in layers}
        value = layer if layer in options.values() else None
        self.layer.param.update(options=options, disabled_options=[i.name for i in layers if not i.valid_cut],
                                value=value)

    def _layer_chosen(self, event):
        if event.new is not None and event.new != self.store.layer:
            self.store.layer = event.new

    def _method_params(self, method):
        widgets = [getattr(self, name) for name in METHOD_PARAMS[method]]
        return pn.Column(*widgets, sizing_mode="stretch_width", margin=0)

    def _invalid_cuts(self, layers):
        bad = [i for i in layers if not i.valid_cut]
        if not bad:
            return None
        items = "\n".join(f"- **{_text(i.name)}**: {_text(i.reason or '')}" for i in bad)
        return pn.Card(pn.pane.Markdown(items, sizing_mode="stretch_width"),
                       title=f"{len(bad)} layer{'s' if len(bad) > 1 else ''} cannot be cut", collapsed=True,
                       sizing_mode="stretch_width", header_background="transparent")

    def _quality(self, report):
        if report is None:
            return None
        rows = quality_rows(report)
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        table = pn.pane.HTML(f"<table class='quality'>{body}</table>", sizing_mode="stretch_width",
                             stylesheets=[":host table th {text-align:left; vertical-align:top; padding-right:0.8em;"
                                          " font-weight:500; color:#555;} :host table {font-size:12px;}"])
        return pn.Column(pn.pane.Markdown("#### Projection quality", margin=(10, 10, 0, 10)), table,
                         sizing_mode="stretch_width")

    def _project_info(self, project):
        if project is None:
            return None
        text = f"**{html.escape(project.title or project.name)}**"
        if project.description:
            text += f"  \n<small>{html.escape(project.description)}</small>"
        return pn.pane.Markdown(text, sizing_mode="stretch_width", margin=(0, 10))

    def __panel__(self):
        s = self.store.param
        return pn.Column(
            self.project,
            pn.bind(self._project_info, s.project_obj),
            self.layer,
            pn.bind(self._invalid_cuts, s.layers),
            self.model_version,
            pn.pane.Markdown("Reducer", margin=(5, 10, -10, 10)),
            self.method,
            pn.bind(self._method_params, s.method),
            self.inverse,
            self.head,
            self.color_by,
            self.spread,
            self.live,
            self.progress,
            pn.bind(self._quality, s.quality),
            sizing_mode="stretch_width",
        )
