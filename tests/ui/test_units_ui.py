"""The Units tab in a real browser on the bundled MNIST project: pick a unit, see its top dataset examples drawn, run
an optimization and watch the input change until it is done."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from dashboard_page import open_dashboard, wait_until

pytestmark = pytest.mark.ui

STEPS = 600


def _pixels(locator) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("L"), dtype=np.float64)


def _set(page, css: str, value) -> None:
    box = page.locator(f"{css} input")
    box.fill(str(value))
    box.press("Enter")


def test_units_tab_shows_top_examples_and_streams_an_optimization(page, server, engine_projects, output_path):
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    try:
        _units_tab(page, server, out)
    except Exception:
        page.screenshot(path=out / "failure.png", full_page=True)  # what the page showed when it failed
        raise


def _units_tab(page, server, out: Path):
    from engine.data.project import load_project
    from engine.explore.featurevis import Unit, top_examples

    open_dashboard(page, server, "mnist")
    page.locator(".main-tabs .bk-tab", has_text="Units").click()
    top = page.locator(".units-top img")
    wait_until(lambda: top.count() == 8, 120, "the top examples of bottleneck unit 0")

    _set(page, ".units-unit", 3)
    summary = page.locator(".units-examples p").first
    wait_until(lambda: "bottleneck unit 3 over 10,000 samples" in summary.inner_text(), 120, "unit 3's examples")
    expected = top_examples(load_project("mnist"), Unit("bottleneck", 3), k=8)
    shown = [int(m) for m in re.findall(r"#(\d+)", page.locator(".units-top").inner_text())]
    assert shown == expected.top.indices.tolist()
    for i in range(8):  # digits drawn, not blank squares
        pixels = _pixels(top.nth(i))
        assert pixels.std() > 30 and (pixels > 128).mean() > 0.05, f"top example {i} looks blank"

    _set(page, ".units-steps", STEPS)
    plan = page.locator(".units-plan span")
    wait_until(lambda: f"{STEPS} steps" in plan.inner_text(), 30, "the server to take the number of steps")
    page.locator(".units-run button").click()
    live = page.locator(".units-live")
    caption = live.locator("figcaption").first

    def in_progress():
        text = caption.inner_text() if caption.count() else ""
        m = re.search(rf"step (\d+) of {STEPS}", text)
        return m is not None and int(m.group(1)) < STEPS and int(m.group(1))

    partial = wait_until(in_progress, 120, "the input shown while it is optimized")
    assert 0 < partial < STEPS
    reached = page.locator(".units-reached")
    wait_until(lambda: reached.count() == 1, 180, "the optimization to finish")
    assert page.locator(".units-outcome .outcome").get_attribute("data-steps-done") == str(STEPS)
    activation = float(reached.get_attribute("data-activation"))
    assert float(reached.get_attribute("data-best")) == pytest.approx(expected.best, rel=1e-5)
    assert np.isfinite(activation)
    images = live.locator("img")
    assert images.count() == 2  # the start beside the optimized input
    optimized = _pixels(images.nth(1))
    assert optimized.std() > 10, "the optimized input looks blank"

    page.locator(".units-outcome").scroll_into_view_if_needed()
    shot = out / "units_tab.png"
    page.screenshot(path=shot, full_page=True)
    shutil.copy(shot, "/tmp/units_tab.png")
