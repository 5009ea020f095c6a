"""The map layer's controls (above the latent plot: the layer, its opacity, its legend) and its drawing under the
points (a Bokeh ``image_rgba`` renderer added to the latent plot's figure by a hook, updated in place).
"""

from __future__ import annotations

import html

import panel as pn
import param
from bokeh.models import ColumnDataSource

from ..push import Live
from ..widgets import NOTE_CSS, View
from .state import LAYER_NAMES, MapLayer

__all__ = ["MapLayerView"]

LEGEND_CSS = """
:host .map-legend, :host .map-note { font-size: 11.5px; color: #333; line-height: 1.4; white-space: nowrap;
                                     overflow: hidden; text-overflow: ellipsis; }
:host .map-legend .bar { display: inline-block; width: 90px; height: 9px; margin: 0 4px; vertical-align: -1px;
                         border-radius: 2px; }
"""
EMPTY = {"image": [], "x": [], "y": [], "dw": [], "dh": []}


class MapLayerView(View):
    """The layer menu, the opacity slider, the legend and how the layer was computed (or why it cannot be)."""

    store = param.ClassSelector(class_=MapLayer, doc="The session's map layer")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.menu = pn.widgets.Select.from_param(store.param.layer, name="", options={v: k for k, v in
                                                 LAYER_NAMES.items()}, width=190, margin=(2, 6),
                                                 css_classes=["map-layer-select"])
        self.opacity = pn.widgets.FloatSlider.from_param(store.param.opacity, name="", width=120,
                                                         margin=(8, 6, 0, 6), step=0.05, show_value=False,
                                                         css_classes=["map-opacity"])
        self.legend = pn.pane.HTML(pn.bind(self._legend_html, store.param.legend, store.param.note,
                                           store.param.error, store.param.layer),
                                   sizing_mode="stretch_width", height=20, margin=(0, 10),
                                   stylesheets=[NOTE_CSS, LEGEND_CSS], css_classes=["map-legend-pane"])
        self._sources = Live()  # the current figure's layer source
        self._renderers = []
        store.param.watch(self._draw, "image")
        store.param.watch(self._fade, "opacity")

    @staticmethod
    def _legend_html(legend, note, error, layer):
        if layer == "none":
            return ""
        if error:
            return f"<div class='map-note flagged'>{html.escape(error)}</div>"
        return legend or (f"<div class='map-note muted'>{html.escape(note)}</div>" if note else "")

    # -- drawing --------------------------------------------------------------------------------------------------

    def add_to_plot(self, plot, element):
        """Plot hook of the latent plot: the layer's renderer, under every other (the points' raster included)."""
        figure = plot.state
        if any(r.name == "map-layer" for r in figure.renderers):
            return

        def make():
            source = ColumnDataSource(self.store.image or EMPTY, name="map-layer-source")
            renderer = figure.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=source,
                                         global_alpha=self.store.opacity, name="map-layer", level="image")
            figure.renderers.remove(renderer)
            figure.renderers.insert(0, renderer)  # drawn first: the points' raster lies over it
            self._renderers = [renderer]  # the current figure's: an older one left the page
            return {"layer": source}

        self._sources.attach(make)

    def _draw(self, event):
        self._sources.update(lambda _: self.store.image or EMPTY)

    def _fade(self, event):
        for renderer in self._renderers:
            with pn.io.unlocked():
                renderer.glyph.global_alpha = event.new

    def controls(self):
        """The row above the plot: the menu, the opacity, the legend."""
        return pn.Column(
            pn.Row(pn.pane.HTML("<b>Map layer</b>", margin=(8, 4, 0, 10)), self.menu,
                   pn.pane.HTML("opacity", margin=(8, 0, 0, 6), styles={"color": "#555"}), self.opacity,
                   sizing_mode="stretch_width", margin=0, height=40),
            self.legend, sizing_mode="stretch_width", margin=0, css_classes=["map-controls"],
        )

    def __panel__(self):
        return self.controls()
