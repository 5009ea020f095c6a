"""The dashboard: one session's states and their views, wired into a ``pn.template`` (served) or a plain layout
(notebook).

The states of a session, each in its tab's package (``state`` and ``views`` modules): the choices and inspection
(:mod:`dashboard.inspector`), the generated datasets and the probe (:mod:`dashboard.datasets`), fine-tuning and the
model versions (:mod:`dashboard.finetune`), and the Explore, Linked views and Units tabs (:mod:`dashboard.explore`,
:mod:`dashboard.linked`, :mod:`dashboard.units`). The shared widgets and CSS are :mod:`dashboard.widgets`.
"""

from __future__ import annotations

import holoviews as hv
import panel as pn
import param

from . import threadsafe
from .datasets.state import Datasets
from .datasets.views import DatasetView, LabelBox, ProbeView
from .explore.state import Explorer
from .explore.views import ExploreView
from .finetune.state import FineTuning
from .finetune.views import FineTuneView
from .gestures import Gestures
from .inspector.controls import Controls
from .inspector.state import Inspector
from .inspector.views import CursorView, HistoryView, LatentView, OutputView, PictureStatus
from .jobs import in_server_session
from .keys import Shortcuts
from .landscape.state import MapLayer
from .landscape.views import MapLayerView
from .linked.state import Linked
from .linked.views import LinkedView
from .refine.state import Refining
from .refine.views import RefineView
from .search.state import Search
from .search.views import SearchView
from .selection.state import Selection
from .selection.views import SelectionView
from .units.state import Units
from .units.views import UnitsView
from .upload.state import Uploads, uploads_enabled  # New project form (dashboard.upload)
from .upload.views import NewProjectView  # New project form (dashboard.upload)
from .urlstate import UrlState
from .widgets import ACCENT, PAGE_CSS, ErrorAlert, Fast, card

# Panel runs a session's callbacks on several threads: Param's and HoloViews' constant toggles are not safe there
threadsafe.install()

__all__ = ["TITLE", "Dashboard", "bokeh_backend", "extension"]

TITLE = "Latent Inspector"
#: The main area's tabs, in order.
TABS = ("Inspect", "Explore", "Linked views", "Units")


class Dashboard(pn.viewable.Viewer):
    """Latent Inspector for one session: sidebar controls, latent space, decoded output, cursor and history, the
    probe and the generated dataset; the Explore, Linked views and Units tabs.

    Parameters
    ----------
    project : str, optional
        Project to open first (default: ``mnist`` when present, else the first project).
    link : dashboard.urlstate.Query, optional
        The choices, view and tapped point of the page's address (:func:`dashboard.urlstate.read_query`).

    Example
    -------
    In a notebook, ``Dashboard(project="mnist")`` displays inline; ``panel serve dashboard/app.py`` serves
    :meth:`template`.
    """

    store = param.ClassSelector(class_=Inspector, doc="The session's choices and inspection")

    def __init__(self, project=None, link=None, **params):
        bokeh_backend()
        page_design()  # before any component exists: each takes its design and theme when made
        # In a served page, the project opens once every view following the store is made (see the end)
        opens_here = "store" not in params and in_server_session()
        if "store" not in params:
            params["store"] = Inspector(project=project, link=link, opens_later=opens_here)
        super().__init__(**params)
        store = self.store
        # the session's other states, each following the inspection
        self.datasets = Datasets(inspector=store)
        self.finetuning = FineTuning(inspector=store, datasets=self.datasets)
        self.explorer = Explorer(inspector=store, datasets=self.datasets)
        self.linked = Linked(inspector=store)
        self.units = Units(inspector=store)
        # the Inspect tab
        self.controls = Controls(store=store, others=[self.datasets, self.finetuning])
        self.search = Search(inspector=store)  # search and selection on the latent plot (issue 17)
        self.selection = Selection(inspector=store, datasets=self.datasets, search=self.search)
        self.search_view = SearchView(store=self.search)
        self.selection_view = SelectionView(store=self.selection)
        # a box or lasso on the Inspect tab's plot is the linked views' selection too
        self.selection.param.watch(lambda e: self.linked.follow(e.new, self.selection.how), "ids")
        self.map_layer = MapLayer(inspector=store)  # the decoded landscape under the points (issue 18)
        self.map_view = MapLayerView(store=self.map_layer)
        # moving the selection to refine the model (issue 21): a handle on the plot, a card below
        self.refining = Refining(inspector=store, selection=self.selection,
                                 on_versions=self.finetuning.refresh_versions)
        self.refine_view = RefineView(store=self.refining)
        self.latent = LatentView(store=store, datasets=self.datasets, search=self.search, selection=self.selection,
                                 map_layer=self.map_view, overlays=[self.refine_view.add_to_plot])
        self.picture = PictureStatus(store=store, plot=self.latent)
        self.address = UrlState(store=store, plot=self.latent)  # the page's address follows the choices
        self.keys = Shortcuts(on_escape=store.clear_markers, width=0, height=0, margin=0)
        self.gestures = Gestures(width=0, height=0, margin=0, css_classes=["gestures"])
        self.output = OutputView(store=store)
        self.cursor = CursorView(store=store)
        self.history = HistoryView(store=store)
        self.label = LabelBox(store=self.datasets)
        self.probe = ProbeView(store=self.datasets)
        self.tuning = FineTuneView(store=self.finetuning)
        self.dataset = DatasetView(store=self.datasets, tuning=self.tuning)
        # the banner over the page: errors with no control of their own (a project that does not open, a link's
        # values); the probe's, the dataset's and fine-tuning's errors show beside the buttons that asked
        self.errors = ErrorAlert(states=[store, self.search, self.selection])
        self._alert = self.errors.alert
        # the other tabs
        self.units_view = UnitsView(store=self.units)
        self.explore = ExploreView(store=self.explorer, on_unit=self.units_view.show_unit)
        self.linked_views = LinkedView(store=self.linked)
        # -- New project form (dashboard.upload): only where the server allows uploads --
        self.uploads = Uploads(inspector=store) if uploads_enabled() else None
        self.new_project = NewProjectView(store=self.uploads) if self.uploads is not None else None
        # -- end New project form --
        if opens_here:
            # Everything that follows the store is made: open the project now. Held in this process already, it is
            # opened at once and its cached picture drawn into the page's first document.
            store.open()

    def main(self):
        """The main area: the Inspect grid of cards, and the Explore, Linked views and Units tabs."""
        # The first screen: the plot, the decoded output, the search and the nearest sample (75 px a row).
        grid = pn.GridSpec(sizing_mode="stretch_width", height=900, mode="override", margin=0)
        grid[0:9, 0:7] = card("Latent space · tap to decode, hover to inspect, box or lasso to select",
                              self.map_view, self.picture, self.latent.tip)
        grid[0:9, 7:12] = card("Decoded output · label it and save it to the dataset", self.label, self.output)
        grid[9:12, 0:7] = card("Search · by label, prediction or metadata", self.search_view, clip=False)
        grid[9:12, 7:12] = card("Nearest sample under the cursor", self.cursor)
        # Below it, made in a served page once the page has loaded, in one piece (BelowTheFold).
        clear = pn.widgets.Button(label="Clear history", color="light", width=110, margin=(0, 5))
        clear.on_click(lambda _e: self.store.clear_history())
        below = pn.GridSpec(sizing_mode="stretch_width", height=1500, mode="override", margin=0)
        below[0:3, 0:12] = card("History · click a decode to show it again", self.history, clear)
        below[3:8, 0:12] = card("Selection · the samples boxed or lassoed on the plot", self.selection_view)
        below[8:14, 0:4] = card("Probe classifier", self.probe)
        below[8:14, 4:12] = card("Generated dataset · saved decodes, ready to train on", self.dataset)
        below[14:20, 0:12] = card("Refine · move the selection on the plot, fine-tune the layers before the cut",
                                  self.refine_view)
        inspect = pn.Column(grid, BelowTheFold()(below, height=1500), sizing_mode="stretch_width", margin=0)
        # Only the open tab is rendered, and the explorer, linked views and units work only while theirs is open.
        tabs = pn.Tabs(*zip(TABS, (inspect, self.explore, self.linked_views, self.units_view)), dynamic=True,
                       sizing_mode="stretch_width", css_classes=["main-tabs"])

        def opened(event):
            self.explorer.active, self.linked.active, self.units.active = (event.new == i for i in (1, 2, 3))

        self.units_view.reveal = lambda: setattr(tabs, "active", TABS.index("Units"))
        tabs.param.watch(opened, "active")
        return pn.Column(self.errors, tabs, sizing_mode="stretch_width")

    def template(self) -> pn.template.BaseTemplate:
        """The served page: controls in the sidebar, the tabs in the main area."""
        return LightPage(
            title=TITLE, sidebar=[*filter(None, [self.new_project]), self.controls],  # (the New project form first)
            main=[self.main()], accent=ACCENT, sidebar_width=330,
            # the keys, the gesture timing and the page's address: nothing to see, laid out once
            header=[self.keys, self.gestures, self.address.address],
            main_layout=None, raw_css=[PAGE_CSS], design=Fast,
            # No dark-mode toggle: Panel's toggle reloads the page as a new session (the choices and the history
            # are lost), and the cards, the plots' labels and markers are drawn for a light page.
            theme_toggle=False, theme="default",
            # No busy spinner in the header: Panel turned it on before each tap's decoded image and off some 0.6 s
            # later, each time restyling the page in the browser; the page's work shows its own bar and status.
            busy_indicator=None,
        )

    def __panel__(self):
        return pn.Row(pn.Column(self.controls, self.keys, self.gestures, width=320), self.main(),
                      sizing_mode="stretch_width", min_height=800)


class BelowTheFold:
    """What lies below the first screen of a served page, made once the page has loaded: a new page's first document
    holds the plot and the cards in view, not the history, selection, probe, dataset and refine cards (a quarter of
    its models), so it is built sooner on the server and drawn sooner in the browser. In a notebook or a test, each
    view is itself.

    They come in one document change, made on the session's event loop under the document's lock, and the cards as
    one grid: one patch and one new layout for the page. (Panel's ``defer_load`` on each card built each on its own
    thread of the pool, at once with the others and with the session's callbacks, and the page laid itself out again
    after each: seconds of the browser's time on a machine without a GPU.)

    Example
    -------
    >>> page = pn.Column(first_screen, BelowTheFold()(below, height=1500))    # doctest: +SKIP
    """

    def __init__(self):
        self._slots: list = []
        self._doc = pn.state.curdoc if in_server_session() else None
        if self._doc is not None:
            pn.state.onload(self._page_loaded)  # (held by Panel until the page loads, or its session ends)

    def __call__(self, view, height: int):
        """``view`` once the page has loaded, a box of ``height`` pixels with Panel's spinner until then."""
        if self._doc is None:
            return view
        slot = pn.Column(sizing_mode="stretch_width", height=height, margin=0, loading=True)
        self._slots.append((slot, view))
        return slot

    def _page_loaded(self):
        """Panel calls this on the page's ready event, on a thread of its pool: the cards are made on the loop."""
        self._doc.add_next_tick_callback(self._fill)

    def _fill(self):
        from panel.io.state import set_curdoc

        slots, self._slots = self._slots, []
        with set_curdoc(self._doc), pn.io.hold(self._doc):
            for slot, view in slots:
                slot.param.update(objects=[view], loading=False)


class LightPage(pn.template.FastListTemplate):
    """Panel's FastListTemplate in its light theme only: Panel's Fast templates take the theme of a ``?theme=`` query
    argument over the one they are given (:func:`page_design`)."""

    @staticmethod
    def _get_theme_from_query_args():
        return None

    def _init_doc(self, doc=None, comm=None, title=None, notebook=False, location=True):
        """Panel's, with the document's set of models computed once, at the end. Panel adds the page's roots one at
        a time, and Bokeh walks the whole model graph again after each (a dozen walks of some 600 models): about
        0.4 of the 1.4 s a new session's page took to build (1M points, 2 cores)."""
        document = doc if doc is not None else pn.state.curdoc
        if document is None:
            return super()._init_doc(doc, comm, title, notebook, location)
        with document.models.freeze():
            return super()._init_doc(document, comm, title, notebook, location)


def page_design():
    """The light theme and the page's (Fast) design for this session, whatever its address says; a notebook's
    settings are left alone. Set in a server session before its components are made: each takes its design and
    theme when made.

    The theme: Panel follows a ``?theme=dark`` query argument (``pn.config.theme`` and the Fast templates read the
    session's arguments): the page came out half dark, the page and the text dark-themed and the cards still white,
    so white text on white cards (issue 17, defect 3). The page itself is a :class:`LightPage`.

    The design: the template styles every component with its Fast design when the page is rendered, but a
    component made before that keeps the design of its making (Panel's Native when none is set), and Panel sends a
    pane's whole style again on each update: the Native theme's style sheet in place of the Fast one. So each card's
    first update in a session (the hover card, the trust card, the probe) sent new style-sheet models, and Bokeh
    recomputed the whole document's model graph for it: the first tap's image waited about half a second behind it
    (issue 20). Made with the page's design, a component's updates send the style it already has.
    """
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.config.theme = "default"  # this session's settings (Panel keeps them per document)
        pn.config.design = Fast


def bokeh_backend():
    """HoloViews' Bokeh backend loaded and current, with its option builders (``hv.opts.Bars`` and the rest), without
    the notebook's JS (see :func:`extension`). Importing ``holoviews.plotting.bokeh`` alone registers the renderer
    but builds no options: a process that did so first (a library, a test) then failed every view's styling with
    "No entry for 'Bars' registered"."""
    hv.renderer("bokeh")
    if hv.Store.current_backend != "bokeh" or not hasattr(hv.opts, "Points"):
        hv.Store.set_current_backend("bokeh")


def extension():
    """Load the Bokeh/HoloViews front-end once per process."""
    hv.extension("bokeh", logo=False)
    uploads = ["filedropper"] if uploads_enabled() else []  # the New project form's file pickers (dashboard.upload)
    pn.extension("tabulator", *uploads, raw_css=[PAGE_CSS])
