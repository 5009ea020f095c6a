"""The glyph plot in a real browser: MNIST's 10,000 points (under :data:`dashboard.glyphs.GLYPH_LIMIT`) drawn by the
browser as glyphs in the engine's colours, with a legend; a pan redraws them without the server sending the points
again; a tap decodes and is marked, a box selects the engine's samples and highlights them over the dimmed glyphs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dashboard_page import (
    beyond_the_page,
    click_and_decode,
    count_point_paints,
    figure,
    frame_pixels,
    inked,
    open_dashboard,
    point_paints,
    to_page,
    wait_until,
)

pytestmark = pytest.mark.ui

# The points' renderer of the latent figure on screen: its glyph's type, rows, colours (the palette and range of its
# colour mapper) and its legend: each entry's label and the colour code of the point it is drawn like.
_GLYPHS_JS = """
() => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  if (view == null) return null;
  const r = view.model.renderers.find(r => r.data_source && r.data_source.name === 'latent-figure-source');
  if (r == null) return null;
  const mapper = r.glyph.fill_color.transform, codes = r.data_source.get_column(r.glyph.fill_color.field);
  const m = view.model, legend = [...m.right, ...m.center, ...m.left, ...m.above, ...m.below].find(a => a.items);
  return {type: r.glyph.type, rows: r.data_source.get_length(), palette: [...mapper.palette], low: mapper.low,
          high: mapper.high, legend: legend ? legend.items.map(i => [i.label.value, codes[i.index]]) : []};
}
"""

# Counts the changes the server sends to the points' source from now on (window.__pointsSent).
_COUNT_SENT_JS = """
() => {
  window.__pointsSent = 0;
  for (const doc of Bokeh.documents)
    doc.on_change((event) => {
      if (event.model && event.model.name === 'latent-figure-source') window.__pointsSent += 1;
    });
}
"""

# Data coordinates of page pixels in the latent figure (the inverse of dashboard_page.to_page).
_TO_DATA_JS = """
([px, py]) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  const rect = view.canvas_view.el.getBoundingClientRect();
  return [view.frame.x_scale.invert(px - rect.left), view.frame.y_scale.invert(py - rect.top)];
}
"""

# Rows of a named source of the latent figure on screen.
_ROWS_JS = """
(name) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  const renderer = view && view.model.renderers.find(r => r.name === name);
  return renderer ? renderer.data_source.get_length() : null;
}
"""


@pytest.fixture(scope="module")
def mnist(engine_projects):
    """The engine's inspection of MNIST at the bottleneck with PCA (the page's first picture), in this process."""
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    return Inspection(load_project("mnist"), "bottleneck", method="pca")


def _pixel(page, x: float, y: float) -> tuple[int, int]:
    px, py = to_page(page, x, y)
    return round(px), round(py)


def test_mnist_is_drawn_as_glyphs_that_pan_in_the_browser_tap_and_select(page, server, mnist, output_path):
    from dashboard.glyphs import GLYPH_LIMIT
    from dashboard.latent import category_colors
    from engine.explore.selection import select_box

    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    errors = []
    done = ["opening the page"]  # what the test had done when the page reported an error
    page.on("pageerror", lambda e: errors.append(f"{e} (after {done[-1]})"))
    open_dashboard(page, server, "mnist")
    names = mnist.project.label_names()
    assert len(mnist.embedding) < GLYPH_LIMIT

    done.append("the page open")
    # -- every point a glyph, in the raster's colours, with a legend ------------------------------------------------
    glyphs = wait_until(lambda: page.evaluate(_GLYPHS_JS), 30, "the points' renderer")
    assert glyphs["type"] == "Scatter" and glyphs["rows"] == len(mnist.embedding)
    assert glyphs["palette"] == category_colors(names) and (glyphs["low"], glyphs["high"]) == (-0.5, len(names) - 0.5)
    assert glyphs["legend"] == [[str(n), k] for k, n in enumerate(names)]  # each entry in its category's colour
    pixels = frame_pixels(page)
    assert inked(pixels) > 0.02 * pixels.shape[0] * pixels.shape[1]
    ink = pixels.reshape(-1, 3)[pixels.reshape(-1, 3).sum(axis=1) < 600]
    assert len({tuple(c) for c in ink // 32}) >= 5  # several classes' colours on screen
    page.screenshot(path=out / "glyphs.png")

    done.append("the glyphs checked")
    # -- a pan: the browser redraws the glyphs, the server sends no points ---------------------------------------
    page.evaluate(_COUNT_SENT_JS)
    before = figure(page)
    cx, cy = before["left"] + before["width"] / 2, before["top"] + before["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 0.2 * before["width"], cy, steps=8)
    page.mouse.up()
    after = figure(page)
    assert after["x0"] > before["x0"] + 0.15 * (before["x1"] - before["x0"])  # the view moved right
    page.wait_for_timeout(1500)  # what the server would send for the new view has come by now
    assert page.evaluate("() => window.__pointsSent") == 0
    assert inked(frame_pixels(page)) > 200
    page.mouse.move(cx - 0.2 * before["width"], cy)  # and back to the whole embedding
    page.mouse.down()
    page.mouse.move(cx, cy, steps=8)
    page.mouse.up()
    wait_until(lambda: abs(figure(page)["x0"] - before["x0"]) < 1e-3 * (before["x1"] - before["x0"]), 10,
               "the view back")

    done.append("the pans")
    # -- a tap decodes and is marked ----------------------------------------------------------------------------
    emb, labels = np.asarray(mnist.embedding), np.asarray(mnist.labels)
    tx, ty = (float(v) for v in np.median(emb[labels == 1], axis=0))
    page.mouse.move(*to_page(page, tx, ty), steps=4)  # the pointer over the plot first: its toolbar shows
    page.wait_for_timeout(500)
    assert count_point_paints(page) == 1
    got = click_and_decode(page, tx, ty)
    width, height = before["x1"] - before["x0"], before["y1"] - before["y0"]
    assert abs(got["x"] - tx) < 0.01 * width and abs(got["y"] - ty) < 0.01 * height
    expected = mnist.decode(got["x"], got["y"]).output
    np.testing.assert_allclose(got["values"], np.asarray(expected, np.float32).reshape(got["values"].shape),
                               rtol=1e-4, atol=1e-5)
    wait_until(lambda: page.evaluate(_ROWS_JS, "decode-markers") >= 2, 10, "the decode's marker")
    # the marker is drawn over the points without painting them again (10,000 glyphs: ~200 ms of a software
    # canvas per tap, when the markers were at the glyphs' level)
    page.wait_for_timeout(300)
    assert point_paints(page) == 0

    done.append("the decode")
    # -- a box selects the engine's samples; they are highlighted over the dimmed glyphs --------------------------
    sx, sy = (float(v) for v in np.median(emb[labels == 7], axis=0))
    px, py = _pixel(page, sx, sy)
    page.mouse.move(px, py)  # the toolbar shows while the pointer is over the plot
    page.locator(".bk-tool-icon-box-select").first.click()
    corners = (px - 30, py - 20), (px + 30, py + 20)
    x0, y0 = page.evaluate(_TO_DATA_JS, list(corners[0]))
    x1, y1 = page.evaluate(_TO_DATA_JS, list(corners[1]))
    ids = select_box(emb, x0, x1, y0, y1)
    assert 10 < len(ids) < 2000, len(ids)
    page.mouse.move(*corners[0])
    page.mouse.down()
    page.mouse.move(*corners[1], steps=8)
    page.mouse.up()
    wait_until(lambda: page.evaluate(_ROWS_JS, "selection-highlight") == len(ids), 20, "the selection drawn")
    assert page.locator(".selection-count").first.get_attribute("data-count") == str(len(ids))
    assert page.evaluate(_ROWS_JS, "context-cover") == 1  # the other glyphs dimmed
    assert page.evaluate(_GLYPHS_JS)["rows"] == len(mnist.embedding)  # a box selects no glyph: all are drawn
    page.mouse.move(px + 200, py + 200)  # the pointer off the selection: no hover box over it
    page.wait_for_timeout(500)
    assert not beyond_the_page(page), f"wider than the page: {beyond_the_page(page)}"
    page.screenshot(path=out / "glyphs_decode_and_selection.png")
    f = figure(page)
    page.screenshot(path=out / "glyph_plot.png", clip={"x": f["left"] - 70, "y": f["top"] - 60,
                                                        "width": f["width"] + 170, "height": f["height"] + 130})
    assert not errors, errors

