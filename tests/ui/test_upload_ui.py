"""The New project form in a real browser: a model, its data and labels sent from the page make a project that the
session opens at once; a zip bomb sent as the model is refused beside the model's field, and a file over the limit
is refused by the browser before it is sent, with the limit in words.

The server is this module's own, on a projects root of its own (a project appears in it), with small limits.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dashboard_page import beyond_the_page, figure, frame_pixels, inked, open_dashboard, wait_until
from dashboard_server import running_server
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.ui

LIMITS = {"LATENT_INSPECTOR_UPLOAD_MAX_MODEL": "2MB", "LATENT_INSPECTOR_UPLOAD_MAX_DATA": "100KB"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small labelled Keras autoencoder project to serve first (``seed``), and the files to send."""
    from builders import blobs, build_models, write_project

    here = tmp_path_factory.mktemp("upload-ui")
    root = here / "projects"
    model, _ = build_models()["sequential"]  # 12 inputs, a 4-unit bottleneck
    x, y = blobs(3, 100, 12, spread=0.4)
    write_project(root, "seed", model, x, y)
    sent = here / "sent"
    sent.mkdir()
    model.save(sent / "autoencoder.keras")
    np.save(sent / "clusters.npy", x)
    np.save(sent / "classes.npy", y)
    bomb = io.BytesIO()  # 20 MB of zeros in one member: about 20 KB sent
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z, z.open("model.weights.h5", "w") as member:
        for _ in range(20):
            member.write(bytes(10**6))
    (sent / "bomb.keras").write_bytes(bomb.getvalue())
    np.save(sent / "big.npy", np.zeros((300, 100), np.float32))  # 120 KB: over the 100 KB data limit
    return root, sent


@pytest.fixture(scope="module")
def server(files, tmp_path_factory):
    root, _ = files
    with running_server(root, tmp_path_factory.mktemp("server") / "server.log", project="seed", env=LIMITS) as base:
        yield base


def _open_form(page):
    page.locator(".new-project-toggle button", has_text="New project…").click()
    page.locator(".upload-name input").wait_for(state="visible", timeout=10_000)


#: What a field's drop zone holds, for a failure's message: FilePond's root classes and whether it has a file input.
_DROP_ZONE_JS = """role => { const found = [];
  const walk = root => { for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains('upload-' + role)) {
        const pond = el.shadowRoot && el.shadowRoot.querySelector('.filepond--root');
        found.push({pond: pond ? pond.className : null, disabled: pond ? pond.dataset.disabled || null : null,
                    inputs: el.shadowRoot ? el.shadowRoot.querySelectorAll('input[type=file]').length : 0});
      }
      if (el.shadowRoot) walk(el.shadowRoot);
  } };
  walk(document); return found; }"""


def _send(page, role: str, path: Path):
    field = page.locator(f".upload-{role} input[type=file]")
    try:
        field.wait_for(state="attached", timeout=30_000)
    except PlaywrightTimeout:
        raise AssertionError(f"no file input for {role}: {page.evaluate(_DROP_ZONE_JS, role)}") from None
    field.set_input_files(str(path))


def _text(page, selector: str) -> str:
    """The text of the elements ``selector`` finds ('' when there is none yet; no waiting)."""
    found = page.locator(selector)
    return " ".join(found.nth(i).inner_text() for i in range(found.count()))


def _on_screen(page, locator) -> bool:
    box = locator.bounding_box()
    view = page.viewport_size
    return bool(box and box["width"] > 0 and 0 <= box["x"] and box["x"] + box["width"] <= view["width"] + 1
                and 0 <= box["y"] and box["y"] + box["height"] <= view["height"] + 1)


def test_a_project_sent_from_the_page_opens_and_a_hostile_one_is_refused_beside_its_field(page, server, files,
                                                                                         output_path):
    root, sent = files
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    page.set_default_navigation_timeout(120_000)  # a first page of a fresh server, on two busy cores
    open_dashboard(page, server, "seed", timeout=120)
    # no drop zone until the form opens, and FilePond's painter held back meanwhile: no frame asked for 60 times a
    # second by an idle page (dashboard.upload.FilePondGate)
    assert page.evaluate(_DROP_ZONE_JS, "model") == []
    assert page.evaluate("window.__latentInspectorFilePondGate") == {"zones": 0, "parked": True}
    _open_form(page)
    wait_until(lambda: page.evaluate("window.__latentInspectorFilePondGate") == {"zones": 3, "parked": False}, 30,
               "the form's three drop zones made, and FilePond's painter running for them")
    page.locator(".upload-name input").fill("clusters")
    _send(page, "model", sent / "autoencoder.keras")
    _send(page, "inputs", sent / "clusters.npy")
    _send(page, "labels", sent / "classes.npy")
    for role, name in (("model", "autoencoder.keras"), ("inputs", "clusters.npy"), ("labels", "classes.npy")):
        wait_until(lambda r=role, n=name: f"received: {n}" in _text(page, f".upload-{r}-note span"), 30,
                   f"the {role} file received")
    page.screenshot(path=out / "form-filled.png")
    create = page.locator(".create-project button")
    wait_until(lambda: create.is_enabled(), 10, "Create project enabled")
    create.click()
    page.screenshot(path=out / "making.png")  # (the file slots greyed while the project is made)

    # the session switches to the new project, and its plot shows points
    wait_until(lambda: (f := figure(page)) and f["title"].startswith("clusters ·") and "points" in f["title"], 120,
               "the new project's latent plot")
    wait_until(lambda: inked(frame_pixels(page)) > 200, 60, "points drawn in the new project's plot")
    assert "300 points" in figure(page)["title"]
    assert page.locator(".project-select select").input_value() == "clusters"
    wait_until(lambda: "Project 'clusters' made from autoencoder.keras, clusters.npy and classes.npy" in
               _text(page, ".upload-notice span"), 10, "the form saying what it made")
    assert sorted(p.name for p in (root / "clusters").iterdir()) == ["model.keras", "project.toml", "x.npy", "y.npy"]
    assert not beyond_the_page(page), f"wider than the page: {beyond_the_page(page)}"
    page.screenshot(path=out / "created.png")

    # a zip bomb as the model: refused, next to the model's field; nothing is written
    before = sorted(p.name for p in root.iterdir())
    page.locator(".upload-name input").fill("bomb")
    _send(page, "model", sent / "bomb.keras")
    _send(page, "inputs", sent / "clusters.npy")
    wait_until(lambda: "received: bomb.keras" in _text(page, ".upload-model-note span"), 30, "the bomb received")
    wait_until(lambda: "received: clusters.npy" in _text(page, ".upload-inputs-note span"), 30, "the data received")
    wait_until(lambda: create.is_enabled(), 10, "Create project enabled")
    create.click()
    model_note = page.locator(".upload-model-note .field-error")
    wait_until(lambda: "zip bomb" in _text(page, ".upload-model-note .field-error"), 60, "the bomb refused")
    assert "'bomb.keras'" in model_note.inner_text()
    assert "see the model file above" in _text(page, ".upload-summary span")
    model_note.scroll_into_view_if_needed()
    assert _on_screen(page, model_note), "the model's error is off-screen"
    assert sorted(p.name for p in root.iterdir()) == before
    assert figure(page)["title"].startswith("clusters ·")  # the session stays on its project
    page.screenshot(path=out / "refused-bomb.png")

    # a labels file over the 100 KB limit: the browser refuses it before sending, saying the limit
    _send(page, "labels", sent / "big.npy")
    too_large = page.locator(".upload-labels .filepond--file-status-main")  # FilePond's words on the file
    wait_until(lambda: "File is too large" in _text(page, ".upload-labels .filepond--file-status-main"), 10,
               "the browser refusing the labels file")
    assert _text(page, ".upload-labels .filepond--file-status-sub") == "Maximum file size is 100 KB"
    assert "received" not in _text(page, ".upload-labels-note span")
    too_large.scroll_into_view_if_needed()
    assert _on_screen(page, too_large), "the browser's refusal is off-screen"
    page.screenshot(path=out / "refused-size.png")
