"""The page's state in its URL: a link reproduces the view.

The query of the page's address carries the project, layer, model version, reducer and its parameters, the inverse
map, the colouring, the plot's view range and the last tapped point, e.g.
``/app?project=mnist&layer=bottleneck&method=umap&n_neighbors=15&color=label&view=-3.1,4.2,-2,5.5&tap=0.5,1.25``.
:func:`read_query` reads it when the page opens (every value checked: an unknown name, a number that is not one, an
overlong or undecodable value is left out and named in :attr:`Query.problems`); :class:`UrlState` writes it back as
the user works (the browser's address is replaced, not pushed: the back button leaves the page, as it would
anywhere else).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

import param
from panel.custom import JSComponent

from .jobs import subscribe

__all__ = ["MAX_VALUE", "Address", "Query", "UrlState", "read_query"]

#: Longest value read from the query: a project, layer or file name is far shorter.
MAX_VALUE = 300
#: Query name -> Inspector parameter, for the choices kept as text.
CHOICES = {"project": "project", "layer": "layer", "model": "model_version", "method": "method",
           "inverse": "inverse", "n_neighbors": "n_neighbors", "min_dist": "min_dist", "perplexity": "perplexity",
           "color": "color_by"}
NUMBERS = ("min_dist",)
WHOLE = ("n_neighbors", "perplexity")


@dataclass
class Query:
    """What the page's query asks for, checked.

    Attributes
    ----------
    choices : dict
        Inspector parameter -> value (text, or a number for the reducers' parameters).
    view : tuple of 4 floats or None
        ``(x0, x1, y0, y1)`` of the plot, each finite, x0 < x1 and y0 < y1.
    tap : tuple of 2 floats or None
        The point to decode once the picture is ready.
    problems : list of str
        The values left out, and why.
    """

    choices: dict = field(default_factory=dict)
    view: tuple | None = None
    tap: tuple | None = None
    problems: list = field(default_factory=list)


def _text(name: str, raw, problems: list) -> str | None:
    value = raw[0] if isinstance(raw, (list, tuple)) and raw else raw
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{name}: not UTF-8 text")
            return None
    value = str(value).strip()
    if len(value) > MAX_VALUE:
        problems.append(f"{name}: {len(value)} characters (at most {MAX_VALUE})")
        return None
    if any(ord(c) < 32 for c in value):
        problems.append(f"{name}: contains control characters")
        return None
    return value or None


def _numbers(name: str, text: str, count: int, problems: list) -> tuple | None:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) and abs(v) < 1e12 for v in values):
        what = "a finite number" if count == 1 else f"{count} finite numbers separated by commas"
        problems.append(f"{name}={text[:40]!r}: expected {what}")
        return None
    return values


def read_query(args: dict) -> Query:
    """The checked :class:`Query` of a page's query arguments (``pn.state.session_args``: name -> list of bytes).

    Example
    -------
    >>> q = read_query({"method": [b"umap"], "n_neighbors": [b"30"], "view": [b"0,1,nan,2"], "tap": [b"1,2"]})
    >>> q.choices, q.view, q.tap
    ({'method': 'umap', 'n_neighbors': 30}, None, (1.0, 2.0))
    >>> q.problems
    ["view='0,1,nan,2': expected 4 finite numbers separated by commas"]
    """
    query, problems = Query(), []
    for name, target in CHOICES.items():
        if name not in args:
            continue
        text = _text(name, args[name], problems)
        if text is None:
            continue
        if target in NUMBERS + WHOLE and text != "auto":
            number = _numbers(name, text, 1, problems)
            if number is None:
                continue
            value = number[0]
            if target in WHOLE:
                if value != int(value):
                    problems.append(f"{name}={text!r}: expected a whole number")
                    continue
                value = int(value)
            query.choices[target] = value
        else:
            query.choices[target] = text
    if "view" in args and (text := _text("view", args["view"], problems)):
        view = _numbers("view", text, 4, problems)
        if view is not None and not (view[0] < view[1] and view[2] < view[3]):
            problems.append(f"view={text!r}: expected x0,x1,y0,y1 with x0 < x1 and y0 < y1")
            view = None
        query.view = view
    if "tap" in args and (text := _text("tap", args["tap"], problems)):
        query.tap = _numbers("tap", text, 2, problems)
    query.problems = problems
    return query


def _fmt(v: float) -> str:
    return f"{v:.6g}"


class Address(JSComponent):
    """The page's address in the browser: ``search`` (the query, ``?a=b&...``) replaces the address's query with
    ``history.replaceState`` (no reload, no new history entry), whenever it changes and when the page renders."""

    search = param.String(default="", doc="The query the page's address shows ('' leaves it as it is)")

    _esm = """
    export function render({ model }) {
      const apply = () => {
        const search = model.search;
        if (!search || window.location.search === search) return;
        window.history.replaceState(window.history.state, "", window.location.pathname + search + window.location.hash);
      };
      apply();
      model.on("search", apply);
    }
    """


class UrlState(param.Parameterized):
    """Writes a session's state into its page's address as the user works (see the module's docstring).

    Parameters
    ----------
    store : dashboard.inspector.state.Inspector
    plot : dashboard.inspector.views.LatentView
        Its ``range`` stream reports the view range.
    """

    store = param.Parameter(doc="The session's Inspector")
    plot = param.Parameter(doc="The session's LatentView")

    def __init__(self, **params):
        super().__init__(**params)
        self._query: dict[str, str] = {}
        self.address = Address(width=0, height=0, margin=0)  # the browser side: put it on the page
        self.store.param.watch(self._choices_changed, list(CHOICES.values()))
        # after the decoded image is sent (the address is no part of what the user waits for)
        self.store.param.watch(self._decoded, "decode", precedence=30)
        subscribe(self.plot.range, self._range_changed, self.store)

    def _write(self, **values):
        changed = {k: v for k, v in values.items() if self._query.get(k) != v}
        if changed:
            self._query.update(changed)
            self._publish()

    def _publish(self):
        # replaced whole: a value set to None leaves the address
        self.address.search = "?" + urlencode({k: v for k, v in self._query.items() if v is not None}, safe=",")

    def _choices_changed(self, *_):
        store = self.store
        values = {name: None if getattr(store, target) in (None, "") else str(getattr(store, target))
                  for name, target in CHOICES.items()}
        values = {k: v for k, v in values.items() if not (k in ("n_neighbors", "perplexity") and v == "auto")}
        # the view and the tapped point belong to the picture they were taken on
        if any(values.get(k) != self._query.get(k) for k in ("project", "layer", "method", "model")):
            values.update(view=None, tap=None)
        self._write(**values)

    def _decoded(self, event):
        decode = event.new
        # exactly (the shortest text that reads back as the same float): the link decodes the very same point
        self._write(tap=None if decode is None else ",".join(repr(float(v)) for v in decode.xy))

    def _range_changed(self, x_range=None, y_range=None):
        if x_range is None or y_range is None or self.store.moving:
            return
        self._write(view=",".join(_fmt(v) for v in (*x_range, *y_range)))
