"""The bundled PyTorch (``.pt2``) and ONNX projects in a real browser: the same residual classifier in two frameworks,
served by one dashboard; a tap decodes through each framework's suffix, and the page shows what the engine computes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from dashboard_page import OUTPUT, beyond_the_page, click_and_decode, figure, open_dashboard, wait_until
from dashboard_server import running_server

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.ui
pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

PROJECTS = {"mnist_torch": "embedding", "mnist_onnx": "/embedding/embedding.1/Relu"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("frameworks")
    for name in PROJECTS:
        if not (REPO / "projects" / name / "project.toml").is_file():
            pytest.skip(f"projects/{name} is not built")
        shutil.copytree(REPO / "projects" / name, root / name, ignore=shutil.ignore_patterns("build", "__pycache__"))
    mp = pytest.MonkeyPatch()
    mp.setenv("LATENT_INSPECTOR_PROJECTS", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def server(root, tmp_path_factory):
    with running_server(root, tmp_path_factory.mktemp("server") / "server.log", project="mnist_torch") as base:
        yield base


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_a_tap_decodes_through_the_frameworks_suffix(page, server, root, name, output_path):
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    open_dashboard(page, server, name)
    frame = figure(page)
    assert f" {PROJECTS[name]} " in frame["title"]
    insp = Inspection(load_project(name), PROJECTS[name], method="pca")
    emb, labels = np.asarray(insp.embedding), np.asarray(insp.labels)
    cx, cy = np.median(emb[labels == 1], axis=0)
    got = click_and_decode(page, float(cx), float(cy))
    expected = insp.decode(got["x"], got["y"]).output
    np.testing.assert_allclose(got["values"].ravel(), np.asarray(expected, np.float32).ravel(), rtol=1e-4, atol=1e-5)
    assert got["values"].size == 10 and abs(float(got["values"].sum()) - 1) < 1e-4  # class probabilities
    wait_until(lambda: figure(page, OUTPUT), 30, "the decoded output")
    assert not beyond_the_page(page), f"wider than the page: {beyond_the_page(page)}"
    page.screenshot(path=out / f"{name}.png")
    elsewhere = [url for url in requested if not url.startswith((server, f"blob:{server}", "data:"))]
    assert requested and not elsewhere, f"the page asked another host for: {elsewhere}"


def test_units_tab_optimizes_a_torch_unit_and_says_why_onnx_cannot(page, server, root, output_path):
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    open_dashboard(page, server, "mnist_torch")
    page.locator(".main-tabs .bk-tab", has_text="Units").click()
    top = page.locator(".units-top img")
    wait_until(lambda: top.count() == 8, 120, "the top examples of embedding unit 0")
    steps = page.locator(".units-steps input")
    steps.fill("60")
    steps.press("Enter")
    wait_until(lambda: "60 steps" in page.locator(".units-plan span").inner_text(), 30, "60 steps taken")
    page.locator(".units-run button").click()
    reached = page.locator(".units-reached")
    wait_until(lambda: reached.count() == 1, 180, "the optimization of a PyTorch unit to finish")
    assert page.locator(".units-outcome .outcome").get_attribute("data-steps-done") == "60"
    assert float(reached.get_attribute("data-activation")) > 0  # a ReLU unit driven up from noise
    page.locator(".units-outcome").scroll_into_view_if_needed()
    page.screenshot(path=out / "units_torch.png", full_page=True)

    open_dashboard(page, server, "mnist_onnx")
    page.locator(".main-tabs .bk-tab", has_text="Units").click()
    wait_until(lambda: page.locator(".units-top img").count() == 8, 120, "the top examples of an ONNX unit")
    plan = page.locator(".units-plan span")
    wait_until(lambda: "ONNX models carry no gradients" in plan.inner_text(), 30, "why ONNX cannot optimize")
    assert page.locator(".units-run button").is_disabled()
    # the reason sits beside the button that would have run it, in view
    button, note = page.locator(".units-run button").bounding_box(), plan.bounding_box()
    assert abs(note["y"] - (button["y"] + button["height"])) < 150
    page.screenshot(path=out / "units_onnx.png", full_page=True)
