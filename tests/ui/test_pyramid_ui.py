"""The pyramid of counts in a real browser: a million points, a server told to draw every view it can from a
pyramid from 100,000 points (by default only views with more points than cells, about ten million here). The first
picture comes from the points (the pyramid is built in the background); a pan after it is drawn from the pyramid,
over the view snapped to its lattice (the image covers the view, a little beyond it); zoomed in past the pyramid's
base cell, the points again, over the view itself. Each state is screenshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dashboard_page import figure, frame_pixels, inked, open_dashboard, wait_until
from dashboard_server import running_server

pytestmark = [pytest.mark.ui, pytest.mark.slow]

# The latent figure's shaded image on screen: its left, right, bottom and top in data coordinates.
_IMAGE_JS = """
() => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  const r = view && view.model.renderers.find(r => r.glyph && r.glyph.type === 'ImageRGBA'
                                                   && r.data_source.get_length() && r.name !== 'map-layer');
  if (r == null) return null;
  const d = r.data_source.data;
  return [d.x[0], d.x[0] + d.dw[0], d.y[0], d.y[0] + d.dh[0]];
}
"""


@pytest.fixture(scope="module")
def pyramid_server(projects_root, tmp_path_factory):
    env = {"LATENT_INSPECTOR_PYRAMID_POINTS": "100000", "LATENT_INSPECTOR_PYRAMID": "always"}
    with running_server(projects_root, tmp_path_factory.mktemp("pyramid") / "server.log", project="million",
                        env=env) as base:
        yield base


def _pan(page, frame: dict, fx: float):
    cx, cy = frame["left"] + frame["width"] / 2, frame["top"] + frame["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    for f in np.linspace(0.1, 1.0, 6):
        page.mouse.move(cx + f * fx * frame["width"], cy)
    page.mouse.up()


def _image_covers(image, frame) -> tuple[bool, bool]:
    """(the image covers the view, the image's edges are the view's own)."""
    span = max(frame["x1"] - frame["x0"], frame["y1"] - frame["y0"])
    view = (frame["x0"], frame["x1"], frame["y0"], frame["y1"])
    tol = 1e-6 * span
    covers = image[0] <= view[0] + tol and image[1] >= view[1] - tol and image[2] <= view[2] + tol \
        and image[3] >= view[3] - tol
    return covers, all(abs(a - b) <= tol for a, b in zip(image, view))


def test_zoomed_out_views_come_from_the_pyramid_and_zoomed_in_ones_from_the_points(page, pyramid_server, output_path):
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    open_dashboard(page, pyramid_server, "million", timeout=420)
    first = figure(page)
    points_ink = inked(frame_pixels(page))
    assert points_ink > 1000
    page.screenshot(path=str(out / "first_picture.png"))

    # pan until a view is drawn from the pyramid: an image past the view's own edges, covering it
    def snapped():
        frame = figure(page)
        _pan(page, frame, 0.05)
        page.wait_for_timeout(1500)
        frame, image = figure(page), page.evaluate(_IMAGE_JS)
        covers, own = _image_covers(image, frame)
        return covers and not own and (frame, image)

    frame, image = wait_until(snapped, 120, "a view drawn from the pyramid", interval=0.5)
    assert frame["x0"] != first["x0"]
    ink = inked(frame_pixels(page))
    assert ink > 0.5 * points_ink  # the same clusters, not a blank or clipped picture
    page.screenshot(path=str(out / "from_the_pyramid.png"))

    # zoomed in far with the box zoom (a box of 12 x 12 pixels, past BokehJS's 5 px move threshold; its pixels
    # finer than the pyramid's base cell): from the points, over the view itself
    page.evaluate("""() => {
      const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                       && v.canvas_view.el.isConnected);
      view.model.toolbar.tools.find(t => t.type === 'BoxZoomTool').active = true;
    }""")
    cx, cy = frame["left"] + frame["width"] / 2, frame["top"] + frame["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    for step in (3, 6, 9, 12):
        page.mouse.move(cx + step, cy + step)
    page.mouse.up()
    wait_until(lambda: (f := figure(page)) and f["x1"] - f["x0"] < 0.05 * (frame["x1"] - frame["x0"]), 30,
               "the box zoom")

    def own_edges():
        frame, image = figure(page), page.evaluate(_IMAGE_JS)
        return image is not None and _image_covers(image, frame)[1]

    wait_until(own_edges, 60, "the zoomed-in view drawn over its own edges")
    page.screenshot(path=str(out / "zoomed_in_points.png"))
