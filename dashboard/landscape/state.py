"""The map layer under the latent plot's points: which layer, how opaque, over which view, and the layer's pixels.

:class:`MapLayer` follows an :class:`~dashboard.inspector.state.Inspector`. When a layer is chosen, or the view moves
(pan, zoom, resize), or the inspection or the probe changes, it asks the engine for the layer over the view
(:func:`engine.explore.landscape.landscape`, cells of about 8 pixels) on a worker, and colours it
(:func:`engine.render.landscape.to_rgba`). A newer request cancels the one under way between two batches of cells
(:class:`~engine.errors.Cancelled`, a result nobody sees), so a user panning across the map waits for the last view.
"""

from __future__ import annotations

import html
import threading

import param

from ..inspector.state import Follower

__all__ = ["LAYER_NAMES", "MapLayer"]

#: The layer menu: engine layer -> its name in the menu ("none" first: the plain plot).
LAYER_NAMES = {
    "none": "None",
    "decision": "Decision map",
    "uncertainty": "Uncertainty",
    "error": "Round-trip error",
    "distance": "Distance to the data",
    "gradient": "Gradient (folds, tears)",
    "atlas": "Decoded atlas",
}
#: Pixels per cell of the grid (100 x 100 cells over an 800 x 800 view).
CELL_PX = 8


class MapLayer(Follower):
    """The map layer of one session's latent plot.

    Example
    -------
    >>> layer = MapLayer(inspector=store)                                   # doctest: +SKIP
    >>> layer.param.update(view=((-3, 3), (-2, 2), 800, 600), layer="decision")   # doctest: +SKIP
    >>> layer.image["image"][0].shape                                       # doctest: +SKIP
    (75, 100)
    """

    layer = param.Selector(default="none", objects=list(LAYER_NAMES), doc="The layer drawn under the points")
    opacity = param.Number(default=0.75, bounds=(0.0, 1.0), doc="The layer's opacity")
    view = param.Parameter(default=None, doc="((x0, x1), (y0, y1), width_px, height_px) of the plot, None before "
                           "the plot reports it")
    image = param.Dict(default=None, allow_None=True, doc="The layer's pixels for Bokeh's image_rgba (image, x, y, "
                       "dw, dh), None when no layer is drawn")
    legend = param.String(default="", doc="What the layer's colours mean, as HTML")
    note = param.String(default="", doc="How the layer was computed, or why it cannot be")

    def __init__(self, **params):
        super().__init__(**params)
        self._token = 0
        # Panel runs a session's widget and stream callbacks on its thread pool, two at once when a pan's view and a
        # menu choice come together: the reading of the state, the token and the job's submission are one step, so
        # that the last job submitted is the last state's and its token is the current one.
        self._refreshing = threading.RLock()
        self.inspector.param.watch(self._refresh, ["inspection", "probe", "head"])

    @param.depends("layer", "view", watch=True)
    def _changed(self):
        self._refresh()

    def _refresh(self, *_):
        with self._refreshing:
            self._submit()

    def _submit(self):
        self._token += 1  # whatever is under way is for an older view, layer or inspection
        inspection = self.inspection
        if self.layer == "none" and self.image is None and not self.busy:
            return
        if self.layer == "none" or inspection is None:
            self.jobs.supersede("map")
            self.param.update(image=None, legend="", note="" if self.layer == "none" else
                              "The layer is drawn once the picture is ready.", error="")
            return
        x_range, y_range, width, height = self.view or (*_data_view(inspection), 800, 600)
        token, layer, probe, head = self._token, self.layer, self.inspector.probe, self.inspector.head or None

        def work(progress):
            from engine.explore.landscape import cells_for
            from engine.render.landscape import to_rgba

            cells = cells_for(int(width), int(height), CELL_PX)
            m = inspection.landscape(layer, x_range, y_range, cells=cells, probe=probe, head=head,
                                     cancel=lambda: token != self._token, progress=progress)
            return m, to_rgba(m)

        def apply(result):
            m, rgba = result
            (x0, x1), (y0, y1) = m.x_range, m.y_range
            self.param.update(image={"image": [rgba], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]},
                              legend=legend_html(m), note="")

        self.note = f"computing the {LAYER_NAMES[layer].lower()}…"
        self.jobs.submit("map", f"{LAYER_NAMES[layer]}", work, apply)


def _data_view(inspection):
    """The plot's first view: the embedding's box with the plot's 8 % padding."""
    from engine.reduce.metrics import data_box

    (x0, x1), (y0, y1) = data_box(inspection.box_corners)
    px, py = 0.08 * (x1 - x0), 0.08 * (y1 - y0)
    return (x0 - px, x1 + px), (y0 - py, y1 + py)


def _note(m) -> str:
    ny, nx = m.shape
    cells = "" if m.layer == "atlas" else f"{nx} x {ny} cells, "
    return f"{cells}{1000 * m.seconds:.0f} ms"


#: One line per layer under the menu: what a cell's colour is (the full meaning is the line's tooltip).
SHORT = {
    "decision": "colour: the class of the decoded point; paler: less sure",
    "uncertainty": "entropy of the prediction (0 sure, 1 uniform)",
    "error": "est. round-trip error / activation variance",
    "distance": "distance to the nearest sample / typical spacing",
    "gradient": "gradient of the inverse / its median: red ridges are folds and tears",
    "atlas": "the decoded output at each tile's centre",
}


def legend_html(m) -> str:
    """The legend of map layer ``m`` in one line (the classes' colours are the points' legend's): its colour bar and
    scale for a measure, what a colour means, this view's values, and the full meaning as the line's tooltip."""
    from engine.explore.landscape import LAYERS

    full = html.escape(LAYERS[m.layer] + (f"; classes from {m.source}" if m.source else ""), quote=True)
    what = SHORT[m.layer] + (" (probe)" if m.source.startswith("the probe") else
                             " (model)" if m.source else "")
    bar = ""
    if m.layer not in ("decision", "atlas"):
        from engine.render.landscape import colorbar

        colors, (lo, hi) = colorbar(m.layer, 24)
        bar = (f"<span class='end'>{html.escape(lo)}</span><span class='bar' style='background:linear-gradient(to "
               f"right, {', '.join(colors)})'></span><span class='end'>{html.escape(hi)}</span> ")
    view = f" · here: median {m.stats['median']:.3g}, max {m.stats['max']:.3g}" if m.stats else ""
    return (f"<div class='map-legend' data-layer='{m.layer}' title='{full}'>{bar}{html.escape(what)}"
            f"<span class='muted'>{html.escape(view)} · {html.escape(_note(m))}</span></div>")
