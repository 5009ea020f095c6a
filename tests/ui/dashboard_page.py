"""What the browser tests do with the dashboard page: open it, find the plot, click at data coordinates, read the
decode the page received.

The latent figure and the decoded-output figure are named Bokeh models (``latent-figure``, ``decoded-output``);
their views are found through ``Bokeh.index``, which maps data coordinates to pixels exactly as the page does.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np

LATENT = "latent-figure"
OUTPUT = "decoded-output"

_FIGURE_JS = """
(name) => {
  const views = [...Bokeh.index.all_views()];
  const view = views.find(v => v.model && v.model.name === name && v.frame != null);
  if (view == null) return null;
  const rect = view.canvas_view.el.getBoundingClientRect();
  const f = view.frame.bbox;
  const xr = view.frame.x_range, yr = view.frame.y_range;
  return {left: rect.left + f.left, top: rect.top + f.top, width: f.width, height: f.height,
          x0: xr.start, x1: xr.end, y0: yr.start, y1: yr.end,
          title: view.model.title ? view.model.title.text : ""};
}
"""

_TO_PAGE_JS = """
([name, x, y]) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === name && v.frame != null);
  const el = view.canvas_view.el, box = el.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) el.scrollIntoView({block: "center"});
  const rect = view.canvas_view.el.getBoundingClientRect();
  return [rect.left + view.frame.x_scale.compute(x), rect.top + view.frame.y_scale.compute(y)];
}
"""

# Times from each pointerdown to the first animation frame after the decoded-output source changed (the frame in
# which the browser paints the new image).
_LATENCY_JS = """
() => {
  if (window.__latency) return;
  const lat = window.__latency = {t0: null, samples: [], pending: false};
  document.addEventListener('pointerdown', () => { lat.t0 = performance.now(); lat.pending = true; }, true);
  for (const doc of Bokeh.documents) {
    doc.on_change((event) => {
      const model = event.model;
      if (!lat.pending || model == null || model.name !== 'decoded-output-source') return;
      lat.pending = false;
      const t0 = lat.t0;
      requestAnimationFrame(() => requestAnimationFrame(() => lat.samples.push(performance.now() - t0)));
    });
  }
}
"""


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def figure(page, name: str = LATENT):
    """Frame of a named figure in page pixels, with its data ranges and title; None if not rendered."""
    return page.evaluate(_FIGURE_JS, name)


def to_page(page, x: float, y: float, name: str = LATENT) -> tuple[float, float]:
    return tuple(page.evaluate(_TO_PAGE_JS, [name, x, y]))


def frame_pixels(page, name: str = LATENT) -> np.ndarray:
    """The figure's frame as an RGB array, from a screenshot of the page."""
    from PIL import Image

    f = figure(page, name)
    clip = {"x": f["left"], "y": f["top"], "width": f["width"], "height": f["height"]}
    png = page.screenshot(clip=clip)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def inked(pixels: np.ndarray) -> int:
    """Number of pixels that are not background (white or near-white)."""
    return int((pixels.astype(int).sum(axis=2) < 3 * 235).sum())


def open_dashboard(page, base: str, project: str, timeout: float = 240):
    """Open the page for ``project`` and wait until the latent plot shows points; returns the figure frame."""
    page.goto(f"{base}/app?project={project}")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    wait_until(lambda: (f := figure(page)) and "points" in f["title"], timeout, "the latent plot")
    wait_until(lambda: inked(frame_pixels(page)) > 200, 60, "points drawn in the latent plot")
    return figure(page)


def probe(page) -> dict | None:
    """What the page last received as decode: coordinates, digest, values (the server runs with the probe on)."""
    el = page.locator(".decode-probe")
    if el.count() == 0:
        return None
    attrs = {k: el.get_attribute(f"data-{k}") for k in ("seq", "x", "y", "shape", "sha", "values")}
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
    page.evaluate(_LATENCY_JS)


def latency_samples(page) -> list[float]:
    return page.evaluate("() => window.__latency ? window.__latency.samples.slice() : []")
