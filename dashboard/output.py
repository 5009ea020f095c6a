"""Views of what the engine decoded: the output, its trust, the sample under the cursor, the history strip.

:class:`OutputView` draws the current decode as the project's ``[output_view]`` says and, beside it, the engine's
trust measures for that point (out-of-bounds warning, distance to the data, round-trip error estimate).
:class:`CursorView` names the sample nearest to the cursor and draws its input. :class:`HistoryView` is the strip of
the last decodes, appended one card at a time, each clickable to show that decode again.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import os
from functools import partial

import holoviews as hv
import numpy as np
import panel as pn
import param
from panel.custom import JSComponent

from . import sample
from .push import later, push
from .state import Inspector

#: How long after the decoded image its trust table follows: the image is what the user waits for, and the table's
#: layout in the browser (a few ms to tens of ms) would otherwise come before the image's first painted frame.
TRUST_DELAY_MS = 40

#: Set by the browser tests: the output view then also carries the decoded values (base64 float32) in a hidden
#: element, so that a test can compare them with the engine's decode in its own process.
PROBE_VALUES = os.environ.get("LATENT_INSPECTOR_PROBE") == "1"

TRUST_CSS = """
:host table th { text-align: left; padding-right: 1em; font-weight: 500; color: #555; }
:host .outside { background: #fff3cd; border: 1px solid #ffe69c; color: #664d03; border-radius: 4px;
                 padding: 6px 10px; margin-bottom: 6px; }
"""
WARNING = ("<div class='outside'><b>Outside the data.</b> The inverse map extrapolates here: the decode may show "
           "something the model never produced for a real sample.</div>")
CURSOR_CSS = """
:host .cursor { display: flex; gap: 12px; align-items: flex-start; }
:host .cursor img { image-rendering: pixelated; border: 1px solid #e3e7ef; }
:host .text { line-height: 1.5; }
"""


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    if isinstance(value, np.ndarray) and value.size <= 4:
        return ", ".join(_fmt(v) for v in value.ravel())
    return html.escape(str(value))


def trust_fields(trust) -> dict:
    """The trust measures of one decode as {name: plain value}."""
    if trust is None:
        return {}
    if hasattr(trust, "record"):
        return trust.record(0)
    if dataclasses.is_dataclass(trust):
        fields = dataclasses.asdict(trust)
    else:
        fields = dict(trust) if isinstance(trust, dict) else dict(vars(trust))
    return {k: (np.asarray(v).ravel()[0].item() if np.size(v) == 1 else v) for k, v in fields.items()}


def trust_rows(fields: dict) -> list[tuple[str, str]]:
    """(label, text) rows of the trust table, the engine's measures in words."""
    rows, done = [], set()
    if "distance" in fields:
        text = _fmt(fields["distance"])
        if "relative_distance" in fields:
            text += f" ({_fmt(fields['relative_distance'])} × the typical spacing)"
        rows.append(("distance to data", text))
        done |= {"distance", "relative_distance"}
    if "error" in fields:
        text = _fmt(fields["error"])
        if "relative_error" in fields:
            text += f" (relative {_fmt(fields['relative_error'])})"
        rows.append(("round-trip error (est.)", text))
        done |= {"error", "relative_error"}
    outside = {"outside_hull": "the convex hull", "outside_support": "the density support"}
    if any(key in fields for key in outside):
        where = [text for key, text in outside.items() if fields.get(key)]
        rows.append(("outside", " and ".join(where) if where else "no: among the data"))
        done |= set(outside)
    done.add("out_of_bounds")
    rows += [(k.replace("_", " "), _fmt(v)) for k, v in fields.items() if k not in done]
    return rows


class OutputView(pn.viewable.Viewer):
    """The decoded output at the current point, with its trust measures."""

    store = param.ClassSelector(class_=Inspector)
    HINT = "<i>Tap anywhere in the plot, even far from the data, to decode that point.</i>"

    def __init__(self, **params):
        super().__init__(**params)
        self.plot = None  # the HoloViews object of the decoded output, once an inspection is ready
        self._decodes = 0
        # One element of fixed size, rewritten per decode: the trust measures never move the rest of the page.
        self._trust = pn.pane.HTML(self.HINT, margin=(0, 10), stylesheets=[TRUST_CSS], sizing_mode="stretch_width",
                                   height=195)
        self._probe = pn.pane.HTML("", visible=False, css_classes=["decode-probe-pane"], margin=0)
        self._image_source = self._image_spec = None
        self.store.param.watch(self._push_image, "decode")  # first: the image is what the user waits for
        self.store.param.watch(lambda e: later(partial(self._show_trust, e), TRUST_DELAY_MS), "decode", precedence=20)
        # last: after the image and the table have changed
        self.store.param.watch(lambda e: later(partial(self._update_probe, e), TRUST_DELAY_MS), "decode",
                               precedence=100)
        self._layout = pn.Column(
            pn.bind(self._view, self.store.param.inspection),
            self._trust, self._probe,
            sizing_mode="stretch_both",
        )

    def _view(self, inspection):
        self._image_source = self._image_spec = None
        if inspection is None:
            return pn.pane.Markdown("*The decoded output appears here once the projection is ready.*")
        spec = self.store.project_obj.output_view
        names = self.store.class_names()
        shape = tuple(inspection.output_shape)
        custom = sample.custom_view(self.store.project_obj, spec)
        if custom is not None:  # the project draws its outputs itself
            return pn.panel(pn.bind(lambda d: custom(d.output) if d is not None else None, self.store.param.decode),
                            sizing_mode="stretch_both")

        blank = sample.blank(spec, shape)
        kind, _ = sample.kind_and_shape(spec, blank)
        styles = sample.options(spec, blank, name="decoded-output")
        if kind == "image":
            # Built once by HoloViews, empty (transparent) and visible from the start; each decode is then pushed
            # into its source (see dashboard.push), and the colour bar follows the data in the browser.
            empty = sample.element(sample.blank(spec, shape, transparent=True), spec, names)
            empty = empty.redim.range(**{empty.vdims[0].name: (0.0, 1.0)})  # no range to compute from an empty image
            plot = empty.opts(*styles).opts(responsive=True, hooks=[sample.name_models("decoded-output"),
                                                                     sample.weakly(self._capture_image)])
            self._image_spec = spec
            self.plot = plot
            return pn.pane.HoloViews(plot, sizing_mode="stretch_both", min_height=200)

        def draw(decode):  # the same element type before the first decode, so the plot updates in place
            return sample.element(blank if decode is None else decode.output, spec, names)

        plot = self.plot = hv.DynamicMap(pn.bind(draw, self.store.param.decode)).opts(*styles).opts(
            framewise=True, responsive=True)
        # hidden until the first decode (a Column: toggling a HoloViews pane's own visibility upsets Panel 1.9)
        return pn.Column(pn.pane.HoloViews(plot, sizing_mode="stretch_both", min_height=200),
                         visible=self.store.param.decode.rx.is_not(None), sizing_mode="stretch_both")

    def _capture_image(self, plot, element):
        self._image_source = plot.handles["source"]
        mapper = plot.handles.get("color_mapper")
        if mapper is not None:
            mapper.update(low=None, high=None)
        if self.store.decode is not None:
            self._image_source.data = sample.image_data(self.store.decode.output, self._image_spec)

    def _push_image(self, event):
        if event.new is not None and self._image_source is not None and self._image_spec is not None:
            push(self._image_source, sample.image_data(event.new.output, self._image_spec))

    def _show_trust(self, event):
        decode = event.new
        if decode is None:
            self._trust.object = self.HINT
            return
        fields = trust_fields(decode.trust)
        x, y = decode.xy
        rows = [("point", f"({x:.4f}, {y:.4f})")] + trust_rows(fields)
        if getattr(decode, "seconds", None) is not None:
            rows.append(("decoded in", f"{1000 * decode.seconds:.1f} ms (server)"))
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
        warning = WARNING if fields.get("out_of_bounds") else ""
        self._trust.object = f"{warning}<table class='trust'>{body}</table>"

    def _update_probe(self, event):
        """Fill the hidden element the browser tests read: coordinates, a digest and optionally the values."""
        decode = event.new
        if decode is None:
            self._probe.object = ""
            return
        out = np.ascontiguousarray(decode.output, dtype=np.float32)
        x, y = decode.xy
        digest = hashlib.sha256(out.tobytes()).hexdigest()[:16]
        self._decodes += 1
        values = f" data-values='{base64.b64encode(out.tobytes()).decode()}'" if PROBE_VALUES else ""
        self._probe.object = (f"<div class='decode-probe' data-seq='{self._decodes}' "
                              f"data-x='{float(x)!r}' data-y='{float(y)!r}' "
                              f"data-shape='{','.join(map(str, out.shape))}' data-sha='{digest}'{values}></div>")

    def __panel__(self):
        return self._layout


class CursorView(pn.viewable.Viewer):
    """The sample nearest to the cursor: its number, label and position, and its input drawn small.

    One HTML element of fixed size, rewritten on every new sample: the pointer moves often, and nothing else on the
    page has to be laid out again.
    """

    store = param.ClassSelector(class_=Inspector)
    HINT = "<i>Move the cursor over the plot to see the nearest sample.</i>"

    def __init__(self, **params):
        super().__init__(**params)
        self._html = pn.pane.HTML(self.HINT, sizing_mode="stretch_width", height=130, margin=(5, 10),
                                  stylesheets=[CURSOR_CSS])
        self._custom = pn.Column(margin=0, visible=False)
        self.store.param.watch(self._show, "hovered")

    def _show(self, event):
        hovered, project = event.new, self.store.project_obj
        if hovered is None or project is None:
            self._html.object = self.HINT
            return
        index = hovered["index"]
        lines = [f"<b>sample {index:,}</b>"]
        if hovered.get("label") is not None:
            lines.append(f"label <b>{html.escape(str(hovered['label']))}</b>")
        lines.append(f"at ({hovered['x']:.3f}, {hovered['y']:.3f})")
        spec, x = project.input_view, project.inputs()[index]
        if sample.custom_view(project, spec) is not None:  # the project draws its inputs itself
            self._custom.objects = [sample.draw(project, spec, x, self.store.class_names())]
            self._custom.visible = True
            self._html.object = "<div class='text'>" + "<br>".join(lines) + "</div>"
            return
        width = 110 if spec.kind == "image" else 220
        png = sample.thumbnail(x, spec, self.store.class_names(), width=width, height=110)
        src = "data:image/png;base64," + base64.b64encode(png).decode()
        self._html.object = (f"<div class='cursor'><img src='{src}' width='{width}' height='110'>"
                             f"<div class='text'>{'<br>'.join(lines)}</div></div>")

    def __panel__(self):
        return pn.Column(self._custom, self._html, sizing_mode="stretch_width")


class HistoryStrip(JSComponent):
    """A horizontal strip of thumbnails with captions; a click sends the item's key back to Python.

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


class HistoryView(pn.viewable.Viewer):
    """The last decodes as a strip of thumbnails with their coordinates; click one to show it again."""

    store = param.ClassSelector(class_=Inspector)

    def __init__(self, **params):
        super().__init__(**params)
        self._by_key: dict[str, object] = {}
        self._items: dict[str, dict] = {}
        self.strip = HistoryStrip(on_click=self.restore, sizing_mode="stretch_width", height=150)
        # after every other view of a decode, and on the next tick: the strip must not delay the decoded image
        self.store.param.watch(lambda event: pn.state.execute(partial(self._sync, event), schedule=True), "history",
                               precedence=200)

    def _sync(self, event):
        """Thumbnails for new decodes, none for those that left the history: the strip is appended to."""
        history = event.new
        project = self.store.project_obj
        items = []
        for decode in history:
            key = f"{id(decode):x}"
            if key not in self._items:
                png = sample.thumbnail(decode.output, project.output_view, self.store.class_names(), width=96,
                                       height=96)
                x, y = decode.xy
                self._items[key] = {"key": key, "src": "data:image/png;base64," + base64.b64encode(png).decode(),
                                    "caption": f"({x:.2f}, {y:.2f})"}
                self._by_key[key] = decode
            items.append(self._items[key])
        keep = {item["key"] for item in items}
        for key in [k for k in self._items if k not in keep]:
            del self._items[key], self._by_key[key]
        self.strip.items = items

    def restore(self, key: str):
        """Show the decode of history item ``key`` again."""
        decode = self._by_key.get(key)
        if decode is not None:
            self.store.restore(decode)

    def __panel__(self):
        return self.strip
