"""The dashboard: one store, its views, wired into a ``pn.template`` (served) or a plain layout (notebook)."""

from __future__ import annotations

import holoviews as hv
import panel as pn
import param

from .controls import Controls
from .dataset import DatasetView, LabelBox, ProbeView
from .latent import LatentView
from .output import CursorView, HistoryView, OutputView
from .state import Inspector

TITLE = "Latent Inspector"


class Fast(pn.theme.Fast):
    """Panel's Fast design without its one resource from the internet, the Open Sans web font from Google: the page
    is often served where there is no internet (a GPU node), and should not tell a third party who opens it. Text
    falls back to the system's sans-serif.

    Named as Panel's: Panel finds a design's bundled files (``fast/js/...``) under its class name.
    """

    _resources = {kind: value for kind, value in pn.theme.Fast._resources.items() if kind != "font"}

ACCENT = "#3b5b92"

CARD_STYLE = {"border": "1px solid #d9dee7", "border-radius": "6px", "background": "white",
              "box-shadow": "0 1px 3px rgba(0,0,0,0.06)", "overflow": "hidden"}
CARD_TITLE_CSS = """
.li-card-title { font-size: 14px; font-weight: 600; color: #2c3e63; padding: 7px 12px; background: #f3f5f9;
                 border-bottom: 1px solid #e3e7ef; }
"""

CSS = """
.decode-probe-pane { display: none; }
"""


def _card(title, *objects):
    """A titled panel of the grid."""
    header = pn.pane.HTML(f"<div class='li-card-title'>{title}</div>", sizing_mode="stretch_width", margin=0,
                          stylesheets=[CARD_TITLE_CSS])
    return pn.Column(header, *objects, sizing_mode="stretch_both", margin=5, styles=CARD_STYLE)


class Dashboard(pn.viewable.Viewer):
    """Latent Inspector for one session: sidebar controls, latent space, decoded output, cursor and history.

    Parameters
    ----------
    project : str, optional
        Project to open first (default: ``mnist`` when present, else the first project).

    Example
    -------
    In a notebook, ``Dashboard(project="mnist")`` displays inline; ``panel serve dashboard/app.py`` serves
    :meth:`template`.
    """

    store = param.ClassSelector(class_=Inspector)

    def __init__(self, project=None, **params):
        if "bokeh" not in hv.Store.renderers:  # plotting backend, without the notebook's JS (see extension())
            hv.renderer("bokeh")
        if "store" not in params:
            params["store"] = Inspector(project=project)
        super().__init__(**params)
        store = self.store
        self.controls = Controls(store=store)
        self.latent = LatentView(store=store)
        self.output = OutputView(store=store)
        self.cursor = CursorView(store=store)
        self.history = HistoryView(store=store)
        self._alert = pn.pane.Alert(
            pn.bind(lambda e: f"**Error.** {e}" if e else "", store.param.error), alert_type="danger",
            visible=pn.bind(bool, store.param.error), sizing_mode="stretch_width", margin=(5, 5, 0, 5),
        )
        dismiss = pn.widgets.Button(label="Dismiss", color="light", visible=pn.bind(bool, store.param.error),
                                    width=90, margin=(5, 5, 0, 5))
        dismiss.on_click(store.dismiss_error)
        self._errors = pn.Row(self._alert, dismiss, sizing_mode="stretch_width")
        self.label = LabelBox(store=store)
        self.probe = ProbeView(store=store)
        self.dataset = DatasetView(store=store)
        from .explore import Explorer, ExploreView
        from .linked import Linked, LinkedView

        self.explorer = Explorer(store=store)
        self.linked = Linked(store=store)
        from .units import Units, UnitsView

        self.units = Units(store=store)
        self.units_view = UnitsView(units=self.units, card=_card)
        self.explore = ExploreView(explorer=self.explorer, card=_card, on_unit=self.units_view.show_unit)
        self.linked_views = LinkedView(linked=self.linked, card=_card)

    def main(self):
        """The main area: the Inspect grid of cards, and the Explore, Linked views and Units tabs."""
        grid = pn.GridSpec(sizing_mode="stretch_width", height=1350, mode="override")
        grid[0:9, 0:7] = _card("Latent space · tap to decode, hover to inspect", self.latent)
        grid[0:9, 7:12] = _card("Decoded output · label it and save it to the dataset", self.label, self.output)
        clear = pn.widgets.Button(label="Clear history", color="light", width=110, margin=(0, 5))
        clear.on_click(lambda _e: self.store.clear_history())
        grid[9:12, 0:8] = _card("History · click a decode to show it again", self.history, clear)
        grid[9:12, 8:12] = _card("Nearest sample under the cursor", self.cursor)
        grid[12:18, 0:4] = _card("Probe classifier", self.probe)
        grid[12:18, 4:12] = _card("Generated dataset · saved decodes, ready to train on", self.dataset)
        # Only the open tab is rendered, and the explorer and linked views work only while theirs is open.
        tabs = pn.Tabs(("Inspect", grid), ("Explore", self.explore), ("Linked views", self.linked_views),
                       ("Units", self.units_view),
                       dynamic=True, sizing_mode="stretch_width", css_classes=["main-tabs"])

        def opened(event):
            self.explorer.active, self.linked.active = event.new == 1, event.new == 2
            self.units.active = event.new == 3

        self.units_view.reveal = lambda: setattr(tabs, "active", 3)

        tabs.param.watch(opened, "active")
        return pn.Column(self._errors, tabs, sizing_mode="stretch_width")

    def template(self) -> pn.template.BaseTemplate:
        """The served page: controls in the sidebar, the grid in the main area."""
        template = pn.template.FastListTemplate(
            title=TITLE, sidebar=[self.controls], main=[self.main()], accent=ACCENT, sidebar_width=330,
            main_layout=None, raw_css=[CSS], design=Fast,
        )
        return template

    def __panel__(self):
        return pn.Row(pn.Column(self.controls, width=320), self.main(), sizing_mode="stretch_width", min_height=800)


def extension():
    """Load the Bokeh/HoloViews front-end once per process."""
    hv.extension("bokeh", logo=False)
    pn.extension("tabulator", raw_css=[CSS])
