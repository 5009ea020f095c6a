"""What the browser tests do with the dashboard page: open it, find the plot, click at data coordinates, read the
decode the page received.

The latent figure and the decoded-output figure are named Bokeh models (``latent-figure``, ``decoded-output``);
their views are found through ``Bokeh.index``, which maps data coordinates to pixels exactly as the page does. The
page JavaScript is shared with the browser benchmarks (:mod:`benchmarks.browser`).
"""

from __future__ import annotations

import base64
import io

import numpy as np

from benchmarks.browser import FIGURE_JS, TAP_JS, TO_PAGE_JS, wait_until  # noqa: F401 (wait_until: for the tests)

LATENT = "latent-figure"
OUTPUT = "decoded-output"


def figure(page, name: str = LATENT):
    """Frame of a named figure in page pixels, with its data ranges and title; None if not rendered."""
    return page.evaluate(FIGURE_JS, name)


def to_page(page, x: float, y: float, name: str = LATENT) -> tuple[float, float]:
    """Page pixels of data coordinates ``(x, y)`` in the named figure (scrolled into view first)."""
    return tuple(page.evaluate(TO_PAGE_JS, [name, x, y]))


def frame_pixels(page, name: str = LATENT) -> np.ndarray:
    """The figure's frame as an RGB array, from a screenshot of the page."""
    from PIL import Image

    f = figure(page, name)
    clip = {"x": f["left"], "y": f["top"], "width": f["width"], "height": f["height"]}
    png = page.screenshot(clip=clip)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


#: The text and page box of the first shown element of a locator's matches, read in one step of the page.
_SHOWN_JS = """(els) => {
  const el = els.find(e => { const r = e.getBoundingClientRect();
                             return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; });
  if (el == null) return null;
  const r = el.getBoundingClientRect();
  return {text: el.innerText, box: {x: r.left, y: r.top, width: r.width, height: r.height}};
}"""


def shown(locator) -> dict | None:
    """``{"text", "box"}`` of the first of ``locator``'s elements that is shown, None when none is, without waiting.
    (``count()``, then ``is_visible()``, then ``inner_text()`` are three reads: an element that leaves the page
    between them, as a banner does when its work ends, makes the last one wait for it its whole timeout.)"""
    return locator.evaluate_all(_SHOWN_JS)


def inked(pixels: np.ndarray) -> int:
    """Number of pixels that are not background (white or near-white)."""
    return int((pixels.astype(int).sum(axis=2) < 3 * 235).sum())


# The page box of the named figure's colour bar, right of its bar (ticks and labels), up to the canvas's right edge.
_COLOUR_BAR_JS = """(name) => {
  const bar = [...Bokeh.index.all_views()].find(v => v.model && v.model.type === 'ColorBar'
                                                  && v.parent && v.parent.model.name === name);
  if (bar == null) return null;
  const canvas = bar.parent.canvas_view.el.getBoundingClientRect(), frame = bar._frame_view.bbox;
  return {x: canvas.left + frame.x1 + 1, y: canvas.top + frame.y0, width: canvas.width - frame.x1 - 1,
          height: frame.height};
}"""


def colour_bar_labels(page, name: str) -> np.ndarray | None:
    """The named figure's colour-bar ticks and labels as an RGB array, from the right of the bar to the right edge
    of the figure's canvas (so a label cut off by that edge has ink in the last columns); None without a colour
    bar."""
    from PIL import Image

    clip = page.evaluate(_COLOUR_BAR_JS, name)
    if clip is None:
        return None
    return np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"))


def open_dashboard(page, base: str, project: str, timeout: float = 240):
    """Open the page for ``project`` and wait until the latent plot shows points; returns the figure frame."""
    page.goto(f"{base}/app?project={project}")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    wait_until(lambda: (f := figure(page)) and "points" in f["title"], timeout, "the latent plot")
    wait_until(lambda: inked(frame_pixels(page)) > 200, 60, "points drawn in the latent plot")
    every_card_drawn(page)
    return figure(page)


#: Titles of the cards a served page makes once it has loaded (dashboard.template.below_the_fold), in its order.
BELOW_THE_FOLD = ("History", "Selection", "Probe classifier", "Generated dataset", "Refine")


def every_card_drawn(page, timeout: float = 60) -> None:
    """Wait for the cards below the first screen: the server makes them once the page has loaded, on the session's
    event loop, so a key or a click sent before they are drawn waits behind them (seconds on a busy machine)."""
    def drawn():
        titles = page.locator(".li-card-title").all_inner_texts()
        return all(any(t.startswith(title) for t in titles) for title in BELOW_THE_FOLD)

    wait_until(drawn, timeout, "the cards below the first screen", interval=0.1)


_OUTSIDE_JS = """() => {
  const out = [];
  const walk = (view) => {
    if (view == null || view.el == null) return;
    const r = view.el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.right > window.innerWidth + 1)
      out.push(`${view.model.type} ${view.model.name || ''} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
    for (const child of view.child_views || []) walk(child);
  };
  for (const root of Bokeh.index.roots || []) walk(root);
  return out;
}"""


def beyond_the_page(page) -> list[str]:
    """The shown components that reach past the right edge of the window (a layout that is wider than the page)."""
    return page.evaluate(_OUTSIDE_JS)


def probe(page) -> dict | None:
    """What the page last received as decode: coordinates, digest, values (the server runs with the probe on)."""
    el = page.locator(".decode-probe")
    if el.count() == 0:
        return None
    # One read of all the attributes: while decodes stream, the element is replaced between separate reads, and a
    # decode's coordinates would be paired with the next one's values.
    attrs = el.evaluate("e => Object.fromEntries(['seq', 'x', 'y', 'shape', 'sha', 'values']"
                        ".map(k => [k, e.getAttribute('data-' + k)]))")
    shape = tuple(int(d) for d in attrs["shape"].split(","))
    values = None if attrs["values"] is None else np.frombuffer(base64.b64decode(attrs["values"]), np.float32)
    values = None if values is None else values.reshape(shape)
    return {"seq": int(attrs["seq"]), "x": float(attrs["x"]), "y": float(attrs["y"]), "sha": attrs["sha"],
            "values": values}


def click_and_decode(page, x: float, y: float, timeout: float = 30) -> dict:
    """Click the latent plot at data coordinates (x, y); wait for the page to receive the decode; return it."""
    before = probe(page)
    seq = before["seq"] if before else 0
    px, py = to_page(page, x, y)
    page.mouse.click(px, py)
    return wait_until(lambda: (p := probe(page)) and p["seq"] > seq and p, timeout, f"the decode of ({x}, {y})")


def install_latency_probe(page):
    """Time each tap from pointerdown to the decoded image painted (see ``benchmarks.browser.TAP_JS``)."""
    page.evaluate(TAP_JS)


def latency_samples(page) -> list[float]:
    return page.evaluate("() => window.__latency ? window.__latency.samples.slice() : []")


# Counts the paints of the points' renderer from now on (window.__pointsPainted). First it waits for the plot to be
# still: a pan or zoom leaves repaints behind it, as Bokeh's level of detail repaints the whole plot 500 ms after each
# paint made during the interaction (lod_timeout in BokehJS's PlotView._actual_paint), and a loaded machine delays
# them further: the document out of its interaction and no paint of the points for a second, or an error after 15 s.
# Then it repaints the points once to check that the count sees a paint (the count after two frames is 1).
_COUNT_PAINTS_JS = """
async () => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  const r = view.model.renderers.find(r => r.data_source && r.data_source.name === 'latent-figure-source');
  const rv = view.renderer_views.get(r);
  const doc = view.model.document;
  let last = performance.now();
  window.__pointsPainted = 0;
  const paint = rv.paint.bind(rv);
  rv.paint = (...args) => { window.__pointsPainted += 1; last = performance.now(); return paint(...args); };
  const start = performance.now();
  while (doc.interactive_duration() >= 0 || performance.now() - last < 1000) {
    if (performance.now() - start > 15000)
      throw new Error(`the latent plot still repainting after 15 s: ${window.__pointsPainted} paints of its points`);
    await new Promise((done) => setTimeout(done, 100));
  }
  window.__pointsPainted = 0;
  view.request_paint(rv);
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const seen = window.__pointsPainted;
  window.__pointsPainted = 0;
  return seen;
}
"""


def count_point_paints(page) -> int:
    """Wait for the latent plot to be still, then count the paints of its points from now on (read with
    :func:`point_paints`); the count one forced repaint made, which is 1 when the count works."""
    return page.evaluate(_COUNT_PAINTS_JS)


def point_paints(page) -> int:
    """Paints of the latent plot's points since :func:`count_point_paints`."""
    return page.evaluate("() => window.__pointsPainted")


# -- Tabs and drags, for the tests that visit every tab (issue 17) -----------------------------------------------------
def open_tab(page, title: str):
    """Bring the main area's tab ``title`` (Inspect, Explore, Linked views, Units) on screen."""
    page.locator(".main-tabs .bk-tab", has_text=title).click()


def drag(page, name: str, start, end, steps: int = 8):
    """Press at data point ``start`` of figure ``name``, move to ``end`` in steps, release (a box select)."""
    x0, y0 = to_page(page, *(float(v) for v in start), name=name)
    x1, y1 = to_page(page, *(float(v) for v in end), name=name)
    page.mouse.move(x0, y0)
    page.mouse.down()
    for f in np.linspace(1 / steps, 1.0, steps):
        page.mouse.move(x0 + f * (x1 - x0), y0 + f * (y1 - y0))
    page.mouse.up()
# -- end Tabs and drags ------------------------------------------------------------------------------------------------
