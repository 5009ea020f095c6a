"""The Explore and Linked views tabs in a real browser: drag a box on one view, see the other views follow.

The selection bar carries a hidden element with the count and the box as the server received them, so that the test
can ask the engine, in its own process, which samples that box holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dashboard_page import figure, frame_pixels, inked, open_dashboard, to_page, wait_until

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def mnist(engine_projects):
    """The engine's inspection of MNIST at the bottleneck with PCA, built in this process (as the server's)."""
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    return Inspection(load_project("mnist"), "bottleneck", method="pca")


def _open_tab(page, title: str):
    page.locator(".main-tabs .bk-tab", has_text=title).click()


def _drag(page, name: str, start, end):
    """Press at data point ``start`` of figure ``name``, move to ``end`` in steps, release."""
    x0, y0 = to_page(page, *(float(v) for v in start), name=name)
    x1, y1 = to_page(page, *(float(v) for v in end), name=name)
    page.mouse.move(x0, y0)
    page.mouse.down()
    for f in np.linspace(0.1, 1.0, 8):
        page.mouse.move(x0 + f * (x1 - x0), y0 + f * (y1 - y0))
    page.mouse.up()


def _selection(page, before: str | None = None) -> dict:
    """The selection the page shows once it differs from ``before`` (the bounds of the previous one)."""
    probe = page.locator(".selection-probe")

    def read():
        if probe.count() == 0:
            return None
        bounds = probe.get_attribute("data-bounds")
        if bounds == before:
            return None
        return {"count": int(probe.get_attribute("data-count")), "raw": bounds,
                "bounds": [float(v) for v in bounds.split(",")]}

    return wait_until(read, 30, "the selection to reach the page")


def _pixels(page, name: str) -> np.ndarray:
    """The figure's frame as on screen, scrolled into view first."""
    f = figure(page, name)
    to_page(page, (f["x0"] + f["x1"]) / 2, (f["y0"] + f["y1"]) / 2, name=name)  # scrolls it into view
    return frame_pixels(page, name)


def _shown_count(page) -> int:
    return int(page.locator(".selected-count").inner_text().replace(",", ""))


def _dark(pixels: np.ndarray) -> int:
    """Pixels drawn in the selection's near-black."""
    return int((pixels.astype(int).sum(axis=2) < 3 * 60).sum())


def test_box_on_the_latent_plot_lights_up_the_parallel_coordinates_and_back(page, server, mnist, output_path):
    from engine.explore.selection import select_axis_range, select_box
    from engine.render.parallel import parallel_axes

    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    open_dashboard(page, server, "mnist")
    _open_tab(page, "Linked views")
    wait_until(lambda: (f := figure(page, "selection-figure")) and "points" in f["title"], 60, "the latent plot")
    wait_until(lambda: inked(_pixels(page, "selection-figure")) > 200, 60, "points in the latent plot")
    wait_until(lambda: (f := figure(page, "parallel-figure")) and "10 units" in f["title"], 120,
               "the parallel coordinates")
    wait_until(lambda: inked(_pixels(page, "parallel-figure")) > 5000, 60, "lines in the parallel coordinates")
    page.wait_for_timeout(500)
    parallel_before = _pixels(page, "parallel-figure")
    page.screenshot(path=out / "linked_before.png")

    # A box over the ones' cluster of the latent plot, in data coordinates.
    emb, labels = np.asarray(mnist.embedding), np.asarray(mnist.labels)
    cx, cy = np.median(emb[labels == 1], axis=0)
    half = 0.1 * (emb.max(axis=0) - emb.min(axis=0))
    _drag(page, "selection-figure", (cx - half[0], cy + half[1]), (cx + half[0], cy - half[1]))

    box = _selection(page)
    x0, y0, x1, y1 = box["bounds"]
    frame = figure(page, "selection-figure")
    tol = 0.01 * np.array([frame["x1"] - frame["x0"], frame["y1"] - frame["y0"]])  # about a pixel or two
    assert np.all(np.abs(np.array([x0, y1]) - (np.array([cx, cy]) + [-1, 1] * half)) < tol)
    assert np.all(np.abs(np.array([x1, y0]) - (np.array([cx, cy]) + [1, -1] * half)) < tol)
    expected = select_box(emb, x0, x1, y0, y1)
    assert len(expected) > 100
    assert box["count"] == len(expected)
    wait_until(lambda: _shown_count(page) == len(expected), 10, "the count shown")
    wait_until(lambda: _dark(_pixels(page, "parallel-figure")) > _dark(parallel_before) + 500, 30,
               "the selected lines drawn in the parallel coordinates")
    page.screenshot(path=out / "linked_box.png")

    # A range on one axis of the parallel coordinates selects by that unit's value, drawn back on the latent plot.
    latent_before = _pixels(page, "selection-figure")
    _drag(page, "parallel-figure", (3.75, 0.85), (4.25, 0.45))
    axis = _selection(page, before=box["raw"])
    ax0, ay0, ax1, ay1 = axis["bounds"]
    axes = parallel_axes(mnist.activations)
    assert axes.basis == "units" and ax0 < 4 < ax1
    in_range = select_axis_range(axes.values[:, 4], axes.to_data(4, ay0), axes.to_data(4, ay1))
    assert 0 < len(in_range) < len(emb) and axis["count"] == len(in_range)
    wait_until(lambda: _shown_count(page) == len(in_range), 10, "the count shown")
    wait_until(lambda: not np.array_equal(_pixels(page, "selection-figure"), latent_before), 30,
               "the latent plot to show the new selection")
    page.screenshot(path=out / "linked_axis.png")


def test_explore_tab_interpolates_between_two_taps(page, server, mnist, output_path):
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    open_dashboard(page, server, "mnist")
    _open_tab(page, "Explore")
    wait_until(lambda: (f := figure(page, "explore-figure")) and "tap a point" in f["title"], 60, "the explore plot")
    wait_until(lambda: inked(_pixels(page, "explore-figure")) > 200, 60, "points in the explore plot")
    wait_until(lambda: page.locator(".edit-control").count() == 10, 60, "one slider per unit")

    emb, labels = np.asarray(mnist.embedding), np.asarray(mnist.labels)
    origin = page.locator(".edit-origin-text")
    for digit in (0, 1):
        px, py = to_page(page, *(float(v) for v in np.median(emb[labels == digit], axis=0)), name="explore-figure")
        shown = origin.inner_text() if origin.count() else ""
        page.mouse.click(px, py)
        # this tap's own origin, not the last one's: the button interpolates between the last two taps the
        # session has, and a click before the second landed asks to tap twice first (CI waited 90 s for steps)
        wait_until(lambda shown=shown: "tap at" in (text := origin.inner_text()) and text != shown, 20,
                   f"tap {digit + 1} in the editor")
    before = _pixels(page, "explore-figure")
    page.locator(".interpolate button").click()
    cards = page.locator(".path-strip .card")
    # a job: on the module's server it may queue behind work of the tests before (CI once waited over 30 s)
    wait_until(lambda: cards.count() == 8, 90, "eight decoded steps")
    wait_until(lambda: not np.array_equal(_pixels(page, "explore-figure"), before), 20, "the path on the plot")
    assert page.locator(".neighbors-strip .card").count() == 8
    page.screenshot(path=out / "explore.png")
