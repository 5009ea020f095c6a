"""The map layers in a real browser on the bundled MNIST project: the menu above the plot draws each layer under the
points; the pixels the page holds are the engine's for the view the page shows; a pan brings the layer of the new
view; the legend explains the colours. Screenshots of every layer go to the test's output folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dashboard_page import drag, figure, frame_pixels, open_dashboard, wait_until

from benchmarks.browser import WaitTimeout

pytestmark = pytest.mark.ui

# The map layer's image as the page holds it: its cells (row 0 at the bottom), their shape, and where they lie.
_LAYER_JS = """
() => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  const r = view && view.model.renderers.find(r => r.name === 'map-layer');
  const d = r && r.data_source.data;
  if (!d || !d.image || d.image.length === 0) return null;
  const img = d.image[0];
  const shape = img.shape || [d.image[0].length, d.image[0][0].length];
  const flat = img.shape ? Array.from(img) : [].concat(...img.map(row => Array.from(row)));
  return {shape: shape, cells: flat, x: d.x[0], y: d.y[0], dw: d.dw[0], dh: d.dh[0], alpha: r.glyph.global_alpha};
}
"""


@pytest.fixture(scope="module")
def mnist(engine_projects):
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    return Inspection(load_project("mnist"), "bottleneck", method="pca")


def _choose(page, label: str, layer: str):
    page.locator(".map-layer-select select").select_option(label=label)
    try:
        wait_until(lambda: page.locator(f".map-legend[data-layer='{layer}']").count() > 0, 60, f"the {label} legend")
    except WaitTimeout as exc:  # what the page says instead (a note, an error) is the clue
        shown = page.locator(".map-legend-pane").inner_text(timeout=5000)
        chosen = page.locator(".map-layer-select select").input_value(timeout=5000)
        raise WaitTimeout(f"{exc}; the menu shows {chosen!r}, the line under it {shown!r}") from exc


def _layer(page, previous=None):
    def ready():
        got = page.evaluate(_LAYER_JS)
        return got if got and (previous is None or got["x"] != previous["x"] or got["cells"] != previous["cells"]) \
            else None

    return wait_until(ready, 60, "the map layer's image")


def _shot(page, output_path, name):
    Path(output_path).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(output_path) / name))


def test_each_layer_is_drawn_under_the_points_for_the_view_on_screen(page, server, mnist, output_path):
    from engine.render.landscape import to_rgba

    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_dashboard(page, server, "mnist")
    plain = frame_pixels(page)
    _choose(page, "Decision map", "decision")
    got = _layer(page)
    ny, nx = got["shape"]
    assert 40 <= nx <= 160 and 30 <= ny <= 160  # about 8 pixels per cell
    f = figure(page)
    assert got["x"] == pytest.approx(f["x0"], abs=1e-6 * abs(f["x1"] - f["x0"]) + 1e-9)  # the view on screen
    assert got["x"] + got["dw"] == pytest.approx(f["x1"], rel=1e-6, abs=1e-6)
    m = mnist.landscape("decision", (got["x"], got["x"] + got["dw"]), (got["y"], got["y"] + got["dh"]),
                        cells=(nx, ny))
    cells = np.asarray(got["cells"], dtype=np.uint64).astype(np.uint32).reshape(ny, nx)
    page_rgba, engine_rgba = (a.view(np.uint8).reshape(ny, nx, 4).astype(int) for a in (cells, to_rgba(m)))
    # The class of each cell is the engine's (but for float rounding at a class boundary), and so is its opacity,
    # the probe's confidence, to a level of 255 or two: the server's probe and this process's are fitted apart, and
    # their probabilities may differ in the last digits.
    same_class = np.mean((page_rgba[..., :3] == engine_rgba[..., :3]).all(axis=2))
    alpha_off = np.abs(page_rgba[..., 3] - engine_rgba[..., 3])
    assert same_class > 0.999 and np.mean(alpha_off <= 2) > 0.999, (
        f"{same_class:.2%} of the cells have the engine's class, {np.mean(alpha_off == 0):.2%} its opacity, "
        f"{np.mean(alpha_off <= 2):.2%} within 2 levels (largest difference {alpha_off.max()})")
    legend = page.locator(".map-legend")
    assert "(probe)" in legend.inner_text() and "classes from the probe" in legend.get_attribute("title")
    drawn = frame_pixels(page)
    coloured = lambda px: np.ptp(px.astype(int), axis=2) > 40  # noqa: E731 (saturated pixels)
    empty = plain.min(axis=2) > 235  # the white space between the points (glyphs or raster)
    assert empty.mean() > 0.2 and coloured(drawn)[empty].mean() > 0.5  # is coloured now
    _shot(page, output_path, "layer_decision.png")

    # a pan: the layer of the new view replaces the old one
    drag(page, "latent-figure", (f["x0"] + 0.6 * (f["x1"] - f["x0"]), 0.5 * (f["y0"] + f["y1"])),
         (f["x0"] + 0.3 * (f["x1"] - f["x0"]), 0.5 * (f["y0"] + f["y1"])))
    f2 = figure(page)
    assert f2["x0"] > f["x0"] + 0.1 * (f["x1"] - f["x0"])  # the view moved right
    wait_until(lambda: (m2 := page.evaluate(_LAYER_JS)) and abs(m2["x"] - f2["x0"]) < 1e-6 * (f2["x1"] - f2["x0"])
               + 1e-9, 60, "the layer of the panned view")

    for label, layer in [("Uncertainty", "uncertainty"), ("Round-trip error", "error"),
                         ("Distance to the data", "distance"), ("Gradient (folds, tears)", "gradient"),
                         ("Decoded atlas", "atlas")]:
        before = page.evaluate(_LAYER_JS)
        _choose(page, label, layer)
        _layer(page, before)
        _shot(page, output_path, f"layer_{layer}.png")
    assert not errors, errors
