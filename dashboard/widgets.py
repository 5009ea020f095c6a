"""The pieces every tab of the dashboard shares: the base view, cards and status lines, the error alert, the
progress line, the thumbnail strip, the page's CSS and its theme.

A view shows one state: :class:`View` declares it as ``store``, and each state type names its class once, in a
subclass (``class ExplorerView(View): store = param.ClassSelector(class_=Explorer)``) that its views derive from.
"""

from __future__ import annotations

import html
import weakref

import panel as pn
import param
from panel.custom import JSComponent

__all__ = [
    "ACCENT",
    "BUTTON_CSS",
    "CARD_STYLE",
    "CARD_TITLE_CSS",
    "NOTE_CSS",
    "PAGE_CSS",
    "WRAP_CSS",
    "ErrorAlert",
    "Fast",
    "HistoryStrip",
    "PickStrip",
    "View",
    "WorkProgress",
    "any_busy",
    "card",
    "error_html",
    "error_pane",
    "name_models",
    "sample_caption",
    "status_html",
    "status_pane",
    "weakly",
]

#: The page's accent colour (header, primary buttons).
ACCENT = "#3b5b92"
#: Frame of a card of a tab's grid.
CARD_STYLE = {"border": "1px solid #d9dee7", "border-radius": "6px", "background": "white",
              "box-shadow": "0 1px 3px rgba(0,0,0,0.06)", "overflow": "hidden"}
CARD_TITLE_CSS = """
.li-card-title { font-size: 14px; font-weight: 600; color: #2c3e63; padding: 7px 12px; background: #f3f5f9;
                 border-bottom: 1px solid #e3e7ef; }
"""
#: Words in grey (hints), in red (what is wrong or beyond the data), in green (what is fine).
NOTE_CSS = """
:host .muted { color: #666; }
:host .flagged { color: #b02a37; font-weight: 600; }
:host .ok { color: #2c6e2f; }
"""
# -- Buttons that look like what they are (issue 17) ------------------------------------------------------------------
#: Buttons in every component: a secondary ("light") button has an outline and a tint under the cursor (Bokeh's was
#: borderless, like plain text); a disabled one is faded and flat, shows a not-allowed cursor and does nothing under
#: it (Bokeh's disabled light button looked like a grey button). Part of :data:`PAGE_CSS`, which Panel adds to every
#: component's shadow root before the design's and Bokeh's own rules: hence ``:host`` and the extra classes, which
#: outrank them. A disabled button takes the pointer itself, so that its cursor shows, and its content none, so that
#: no click reaches a link inside it (a download). Panel 1.9 draws a ``FileDownload(color="light")`` as a default
#: button (it never sends the colour to the page): give it the class ``li-light`` to look light.
BUTTON_CSS = """
:host .bk-btn.bk-btn-light:not([disabled]), :host(.li-light) .bk-btn.bk-btn-default:not([disabled]) {
  background-color: #ffffff; border-color: #9aa8bf; color: #2c3e63; }
:host .bk-btn.bk-btn-light:not([disabled]):hover, :host(.li-light) .bk-btn.bk-btn-default:not([disabled]):hover {
  background-color: #e9eef7; border-color: #3b5b92; }
:host .bk-btn.bk-btn-light[disabled], :host .bk-btn.bk-btn-light[disabled]:hover,
:host(.li-light) .bk-btn.bk-btn-default[disabled], :host(.li-light) .bk-btn.bk-btn-default[disabled]:hover {
  background-color: transparent; border-color: #dfe3ea; color: #8a93a3; opacity: 0.55; box-shadow: none; }
:host .bk-btn.bk-btn[disabled] { cursor: not-allowed; pointer-events: auto !important; }
:host .bk-btn.bk-btn[disabled] > * { pointer-events: none; }
:host(.outline) .bk-btn.bk-btn-primary[disabled]:hover { border-color: var(--accent-fill-rest);
  color: var(--neutral-foreground-rest); }
"""
# -- end Buttons -------------------------------------------------------------------------------------------------------
#: The page's own CSS: the hidden elements the browser tests read stay out of the layout; the buttons.
PAGE_CSS = """
.decode-probe-pane { display: none; }
""" + BUTTON_CSS
#: A thumbnail strip that wraps onto several rows (the history strip scrolls sideways).
WRAP_CSS = ".strip { flex-wrap: wrap; overflow-x: hidden; overflow-y: auto; align-content: flex-start; }"


class Fast(pn.theme.Fast):
    """Panel's Fast design without its one resource from the internet, the Open Sans web font from Google: the page
    is often served where there is no internet (a GPU node), and should not tell a third party who opens it. Text
    falls back to the system's sans-serif.

    Named as Panel's: Panel finds a design's bundled files (``fast/js/...``) under its class name.
    """

    _resources = {kind: value for kind, value in pn.theme.Fast._resources.items() if kind != "font"}


class View(pn.viewable.Viewer):
    """A view of one state (a ``param.Parameterized`` store): it shows the state and calls its methods, and holds
    nothing the state would need.

    Subclass it once per state type, narrowing ``store`` to that type; the views of the state derive from that
    subclass.

    Example
    -------
    >>> class ExplorerView(View):                                   # doctest: +SKIP
    ...     store = param.ClassSelector(class_=Explorer, doc="The Explore tab's state")
    """

    store = param.ClassSelector(class_=param.Parameterized, doc="The state this view shows")


def card(title: str, *objects, clip: bool = True):
    """A titled panel of a tab's grid; ``clip=False`` for one whose list of choices (a MultiChoice, which opens
    upward near the window's bottom edge) must show beyond its edge rather than be cut off by it."""
    header = pn.pane.HTML(f"<div class='li-card-title'>{title}</div>", sizing_mode="stretch_width", margin=0,
                          stylesheets=[CARD_TITLE_CSS])
    styles = CARD_STYLE if clip else {**CARD_STYLE, "overflow": "visible"}
    return pn.Column(header, *objects, sizing_mode="stretch_both", margin=5, styles=styles, css_classes=["li-card"])


def any_busy(*states):
    """True while any of ``states`` (each with a ``busy`` parameter) works, as a reactive value for a widget's
    ``disabled``: the buttons that start more work wait."""
    return pn.bind(lambda *busy: any(busy), *(state.param.busy for state in states))


def sample_caption(sample_id, label=None) -> str:
    """A sample's caption under its thumbnail: ``#id``, and its label in bold when there is one."""
    return f"#{int(sample_id)}" + (f" · <b>{html.escape(str(label))}</b>" if label is not None else "")


def status_html(status: str, error: str) -> str:
    """The line above a tab or beside a control: the work under way, or what went wrong."""
    if error:
        return f"<span class='flagged state-error'>{html.escape(error)}</span>"
    return f"<span class='muted'>{html.escape(status)}</span>"


def status_pane(state, **params) -> pn.pane.HTML:
    """A line following ``status`` and ``error`` of ``state`` (:func:`status_html`)."""
    params = {"sizing_mode": "stretch_width", "margin": (0, 10), **params}
    return pn.pane.HTML(pn.bind(status_html, state.param.status, state.param.error), stylesheets=[NOTE_CSS],
                        **params)


# -- Errors beside their controls (issue 17) ---------------------------------------------------------------------------
def error_html(error: str, error_at: str = "", at: str | None = None) -> str:
    """What went wrong, in red, when it concerns the controls ``at``: an error of no particular controls
    (``error_at`` '') concerns every place that shows the state's errors."""
    if not error or (at is not None and error_at not in ("", at)):
        return ""
    return f"<span class='flagged state-error'>{html.escape(error)}</span>"


def error_pane(state, at: str | None = None, **params) -> pn.pane.HTML:
    """The error of ``state`` beside the controls that asked for the work, where a person who clicked sees it (the
    banner over the page may be scrolled away). A state whose controls sit in several places says which asked for
    the failed work in ``error_at``; ``at`` names the controls beside this line (None: every error of the state).
    """
    params = {"sizing_mode": "stretch_width", "margin": (0, 10), **params}
    at_param = state.param.error_at if "error_at" in state.param else ""
    return pn.pane.HTML(pn.bind(error_html, state.param.error, at_param, at), stylesheets=[NOTE_CSS], **params)
# -- end Errors beside their controls ----------------------------------------------------------------------------------


class ErrorAlert(pn.viewable.Viewer):
    """The errors of some states as one alert over the page, with a button that dismisses them all.

    Parameters
    ----------
    states : list of param.Parameterized
        Each with a string parameter ``error`` ('' when nothing went wrong).
    """

    states = param.List(default=[], item_type=param.Parameterized)

    def __init__(self, **params):
        super().__init__(**params)
        errors = [state.param.error for state in self.states]
        shown = pn.bind(self._any, *errors)
        self.alert = pn.pane.Alert(pn.bind(self._text, *errors), alert_type="danger", visible=shown,
                                   sizing_mode="stretch_width", margin=(5, 5, 0, 5))
        self.dismiss = pn.widgets.Button(label="Dismiss", color="light", visible=shown, width=90, margin=(5, 5, 0, 5))
        self.dismiss.on_click(self._dismiss)

    @staticmethod
    def _any(*errors) -> bool:
        return any(errors)

    @staticmethod
    def _text(*errors) -> str:
        shown = [e for e in errors if e]
        return f"**Error.** {'  '.join(shown)}" if shown else ""

    def _dismiss(self, *_):
        for state in self.states:
            state.error = ""

    def __panel__(self):
        return pn.Row(self.alert, self.dismiss, sizing_mode="stretch_width")


class WorkProgress(pn.viewable.Viewer):
    """The work of some states (each with ``busy``, ``progress`` and ``status``), as a bar and a line: the state that
    last started or reported work.

    One bar and one line, updated in place: progress reports arrive four times a second while work runs.
    """

    states = param.List(default=[], item_type=param.Parameterized)

    def __init__(self, **params):
        super().__init__(**params)
        self._shown = self.states[0] if self.states else None
        self._bar = pn.indicators.Progress(value=-1, max=100, active=False, visible=False, bar_color="primary",
                                           height=12, sizing_mode="stretch_width")
        self._line = pn.pane.Markdown("", margin=(0, 10), sizing_mode="stretch_width")
        for state in self.states:
            state.param.watch(self._changed, ["busy", "progress", "status"])
        self._show()

    def _changed(self, *events):
        for event in events:
            if event.name == "status" or event.obj.busy:
                self._shown = event.obj
        self._show()

    def _show(self):
        state = self._shown
        if state is None:
            return
        busy = state.busy
        value = -1 if state.progress is None else int(100 * state.progress)
        self._bar.param.update(visible=busy, active=busy, value=value if busy else -1)
        self._line.object = f"<small>{html.escape(state.status)}</small>" if state.status else ""

    def __panel__(self):
        return pn.Column(self._bar, self._line, sizing_mode="stretch_width", margin=0)


class HistoryStrip(JSComponent):
    """A strip of thumbnails with captions; a click sends the item's key back to Python.

    Drawn by the browser in one element of fixed height: adding an item appends one ``<img>`` and lays out
    nothing else on the page (a row of Panel columns per item cost ~250 ms of browser layout per decode).
    """

    items = param.List(default=[], doc="[{key, src (data: URL), caption}], oldest first")

    _esm = """
    export function render({ model, el }) {
      const strip = document.createElement("div");
      strip.className = "strip";
      const shown = new Map();
      function sync() {
        const keys = new Set(model.items.map(item => item.key));
        for (const [key, node] of shown) {
          if (!keys.has(key)) { node.remove(); shown.delete(key); }
        }
        for (const item of model.items) {
          if (shown.has(item.key)) continue;
          const card = document.createElement("button");
          card.className = "card";
          card.title = "show this decode again";
          card.innerHTML = `<img src="${item.src}"><span>${item.caption}</span>`;
          card.addEventListener("click", () => model.send_msg({key: item.key}));
          strip.appendChild(card);
          shown.set(item.key, card);
        }
        strip.scrollLeft = strip.scrollWidth;
      }
      model.on("items", sync);
      sync();
      return strip;
    }
    """
    _stylesheets = ["""
    .strip { display: flex; gap: 8px; overflow-x: auto; overflow-y: hidden; height: 100%; align-items: flex-start;
             padding: 4px 2px; box-sizing: border-box; }
    .card { flex: none; display: flex; flex-direction: column; align-items: center; gap: 3px; padding: 4px;
            border: 1px solid #d9dee7; border-radius: 4px; background: white; cursor: pointer; font: 12px sans-serif;
            color: #333; }
    .card:hover { border-color: #3b5b92; box-shadow: 0 0 0 1px #3b5b92; }
    .card img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; background: #fafafa; }
    """]

    def __init__(self, on_click=None, **params):
        super().__init__(**params)
        self._on_click = on_click

    def _handle_msg(self, msg):
        if self._on_click is not None:
            self._on_click(msg["key"])


class PickStrip(HistoryStrip):
    """A thumbnail strip whose items are replaced as a whole (the steps of a path, the nearest samples); a click on
    an item of the set shown calls ``on_pick(its id)`` (a click on a set already replaced does nothing)."""

    def __init__(self, on_pick, **params):
        super().__init__(on_click=self._clicked, **params)
        self._on_pick, self._shown = on_pick, 0

    def show(self, entries=()):
        """Show ``entries``, (id, src, caption) each: a new set, whose ids the clicks name."""
        self._shown += 1
        self.items = [{"key": f"{self._shown}-{int(i)}", "src": src, "caption": caption} for i, src, caption in entries]

    def _clicked(self, key: str):
        shown, ident = key.split("-")
        if int(shown) == self._shown:
            self._on_pick(int(ident))


def name_models(name: str):
    """A plot hook naming the Bokeh figure ``name`` and its data source ``name-source``, so that the page (and a
    browser test) can find them: ``Bokeh.index.query_one(v => v.model.name == name)``."""

    def hook(plot, element):
        plot.state.name = name
        source = plot.handles.get("source")
        if source is not None:
            source.name = f"{name}-source"

    return hook


def weakly(method):
    """A callback calling the bound ``method`` (with whatever it is called with) while its object lives, and nothing
    once it is gone.

    For callbacks kept by something that outlives a session: HoloViews keeps every plot's options, hooks included, in
    its global options store; Panel keeps a button's JavaScript arguments, and with them their watchers; a document
    keeps its session-destroyed callbacks. A bound method there would keep its view, the session's state and
    everything it shows alive after the session closed.
    """
    ref = weakref.WeakMethod(method)

    def callback(*args):
        bound = ref()
        if bound is not None:
            bound(*args)

    return callback
