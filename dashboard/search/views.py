"""The search box of the Inspect tab: a column, a value widget that fits the column's kind, and how many match.

A category column offers its values to pick (buttons for a few, a list to type into for more), a number column a
range, a text column a box whose text the values must contain. The matches are highlighted on the latent plot
(:class:`dashboard.inspector.views.LatentView`), the other points dimmed, or hidden with *Show only matches*.
"""

from __future__ import annotations

import html

import panel as pn
import param

from ..widgets import NOTE_CSS, View
from .state import OP_OF_KIND, Search

__all__ = ["SearchView"]

#: A category of at most this many values is offered as buttons; more, as a list to type into...
BUTTONS_UP_TO = 12
#: ... and only while their names are short enough for one row of buttons in the search card: a name's characters
#: and two for its button's padding (about 7.5 pixels each) within the 430 pixels the card leaves at 1,500 pixels
#: of window. MNIST's digits fit (30); its digit names ("zero" ... "nine", 60) ran past the card's edge.
BUTTON_CHARS = 56


def as_buttons(choices) -> bool:
    """Whether a category with the values ``choices`` is offered as a row of buttons (else as a list to type into)."""
    choices = list(choices)
    return len(choices) <= BUTTONS_UP_TO and sum(len(str(c)) + 2 for c in choices) <= BUTTON_CHARS


SEARCH_CSS = """
:host .conditions { color: #444; font-size: 12px; }
:host .search-count { font-weight: 600; color: #2c3e63; }
"""


class SearchView(View):
    """The search box: column chooser, value widget, *AND another*, *Show only matches*, *Clear*, and the count."""

    store = param.ClassSelector(class_=Search, doc="The session's search")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.column = pn.widgets.Select.from_param(store.param.column, name="", width=170, margin=(5, 10, 5, 10),
                                                   css_classes=["search-column"])
        self._value = pn.Column(margin=0, sizing_mode="stretch_width", min_height=40)
        self.more = pn.widgets.Button(label="AND another condition", color="light", width=170, margin=(5, 10),
                                      css_classes=["search-and"])
        self.more.on_click(store.keep)
        self.isolate = pn.widgets.Checkbox.from_param(store.param.isolate, name="Show only matches", margin=(12, 10),
                                                      css_classes=["search-isolate"])
        self.clear = pn.widgets.Button(label="Clear search", color="light", width=110, margin=(5, 10),
                                       css_classes=["search-clear"])
        self.clear.on_click(store.clear)
        self._count = pn.pane.HTML(self._count_html(), sizing_mode="stretch_width", margin=(0, 10),
                                   stylesheets=[NOTE_CSS, SEARCH_CSS])
        store.param.watch(self._rebuild, ["column", "columns"])
        store.param.watch(self._reset, "value")
        store.param.watch(self._show_count, ["table", "summary", "kept", "matches", "error"])
        self._rebuild()

    # -- the value widget ------------------------------------------------------------------------------------------

    def _rebuild(self, *_):
        column = self.store.described()
        self._value.objects = [] if column is None else [self._widget(column)]

    def _reset(self, event):
        if event.new is None:  # kept or cleared: a fresh widget for the next condition
            self._rebuild()

    def _widget(self, column):
        op = OP_OF_KIND[column.kind]
        common = dict(margin=(5, 10), css_classes=["search-value"])
        if op == "one of" and as_buttons(column.choices):
            widget = pn.widgets.CheckButtonGroup(options=list(column.choices), value=[], button_type="primary",
                                                 button_style="outline", **common)
        elif op == "one of":
            widget = pn.widgets.MultiChoice(options=list(column.choices), value=[], placeholder="pick values…",
                                            sizing_mode="stretch_width", **common)
        elif op == "range" and column.lo is not None and column.hi > column.lo:
            widget = pn.widgets.EditableRangeSlider(start=column.lo, end=column.hi, value=(column.lo, column.hi),
                                                    step=(column.hi - column.lo) / 100, sizing_mode="stretch_width",
                                                    **common)
        elif op == "range":
            return pn.pane.HTML("<span class='muted'>a single value: nothing to search by</span>",
                                stylesheets=[NOTE_CSS], margin=(12, 10))
        else:
            widget = pn.widgets.TextInput(placeholder=f"{column.name} contains… (Enter)", sizing_mode="stretch_width",
                                          **common)
        widget.param.watch(lambda event: setattr(self.store, "value", event.new), "value")
        return widget

    # -- the count -------------------------------------------------------------------------------------------------

    def _count_html(self) -> str:
        store = self.store
        if store.matches is None:
            if store.table is None:
                return "<span class='muted'>The search opens once the picture is ready.</span>"
            return ("<span class='muted'>Pick a column and a value: the matching samples are highlighted on the "
                    "plot.</span>")
        words = " AND ".join(html.escape(w) for w in store.conditions_words())
        return (f"<span class='search-count' data-count='{len(store.matches)}' data-total='{len(store.table)}'>"
                f"{html.escape(store.summary)}</span> <span class='conditions'>· {words}</span>")

    def _show_count(self, *_):
        self._count.object = self._count_html()

    def __panel__(self):
        return pn.Column(
            pn.Row(self.column, self._value, margin=0, sizing_mode="stretch_width"),
            pn.Row(self.more, self.isolate, self.clear, margin=0, sizing_mode="stretch_width"),
            self._count, sizing_mode="stretch_both", margin=0,
        )
