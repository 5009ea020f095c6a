"""The first hour in a real browser: a link reproduces the view, hostile links are named, the shortcuts and the
first-visit hint, the mouse wheel scrolls the page, the verdict beside each decode, and a first UMAP picture while
the refined one is computed, with the progress on the plot.

This module serves the dashboard on its own, with an empty cache folder, so that a reducer's first fit really is a
first fit (numba's compiled code stays the machine's).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from dashboard_page import click_and_decode, every_card_drawn, figure, open_dashboard, probe, to_page, wait_until
from dashboard_server import running_server

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def cold_server(projects_root, tmp_path_factory):
    """The dashboard on the test projects, with a cache of its own: every projection is computed afresh."""
    cache = tmp_path_factory.mktemp("cold-cache")
    log = tmp_path_factory.mktemp("cold-server") / "server.log"
    with running_server(projects_root, log, env={"LATENT_INSPECTOR_CACHE": str(cache)}) as base:
        yield base


@pytest.fixture(scope="module")
def mnist(engine_projects):
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    return Inspection(load_project("mnist"), "bottleneck", method="pca")


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


BOXES_JS = """() => {
  const rect = (e) => { const r = e.getBoundingClientRect();
                        return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; };
  const find = (root, css) => {  // through Panel's shadow roots
    const hit = root.querySelector(css);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      const inner = el.shadowRoot && find(el.shadowRoot, css);
      if (inner) return inner;
    }
    return null;
  };
  const plot = find(document, '.latent-plot'), status = find(document, '.picture-status');
  const banner = status && ((status.shadowRoot && find(status.shadowRoot, '.banner')) || find(status, '.banner'));
  if (!plot || !banner || !banner.textContent.includes('refining') || banner.getBoundingClientRect().height === 0)
    return null;
  return {plot: rect(plot), banner: rect(banner)};
}"""


def _shot(page, output_path, name):
    from pathlib import Path

    Path(output_path).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(output_path) / name))


def test_a_link_reproduces_the_view_and_follows_the_session(context, cold_server, mnist, output_path):
    page = context.new_page()
    open_dashboard(page, cold_server, "mnist")
    assert page.locator(".li-keys[data-kind='hint']").is_visible()  # the first visit's hint
    page.locator(".li-keys button").click()
    # a tap, then the address holds the choices and the tapped point
    got = click_and_decode(page, 2.0, -3.0)
    wait_until(lambda: "tap" in _query(page), 10, "the tapped point in the address")
    q = _query(page)
    assert (q["project"], q["layer"], q["method"], q["color"]) == ("mnist", "bottleneck", "pca", "label")
    tx, ty = (float(v) for v in q["tap"].split(","))
    assert (tx, ty) == (got["x"], got["y"])
    assert "view" in q and len(q["view"].split(",")) == 4

    # the same address in a new page: same choices, the same point decoded, the same view range
    link = f"{cold_server}/app?project=mnist&layer=bottleneck&method=pca&color=none&tap={q['tap']}&view=-10,12,-9,11"
    page.close()
    page = context.new_page()  # a colleague's page, in the same browser (the hint was seen there)
    page.goto(link)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    wait_until(lambda: (p := probe(page)) and p["seq"] >= 1 and p, 120, "the link's tapped point decoded")
    restored = probe(page)
    assert (restored["x"], restored["y"]) == (got["x"], got["y"]) and restored["sha"] == got["sha"]
    wait_until(lambda: (f := figure(page)) and abs(f["x0"] + 10) < 1e-6 and abs(f["x1"] - 12) < 1e-6, 30,
               "the link's view range")
    assert page.locator(".li-keys[data-kind='hint']").count() == 0  # seen once, in this browser
    wait_until(lambda: _query(page).get("inverse") == "auto", 10, "the address written by the session")
    assert _query(page)["color"] == "none" and _query(page)["tap"] == q["tap"]
    _shot(page, output_path, "link_restored.png")

    # Escape clears the markers and the tapped point leaves the address; ? lists the shortcuts (once the page is
    # whole: the key's message waits behind the cards the server makes after the page's load)
    every_card_drawn(page)
    page.mouse.move(5, 5)
    page.keyboard.press("Escape")
    wait_until(lambda: page.locator(".decode-probe").count() == 0, 10, "the decode to be cleared")
    wait_until(lambda: "tap" not in _query(page), 10, "the tap to leave the address")
    page.keyboard.press("?")
    keys = page.locator(".li-keys[data-kind='keys']")
    wait_until(lambda: keys.is_visible(), 5, "the list of shortcuts")
    assert "Escape" in keys.inner_text() and "Ctrl" in keys.inner_text()
    box = keys.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
    _shot(page, output_path, "shortcuts.png")
    page.keyboard.press("?")
    wait_until(lambda: not keys.is_visible(), 5, "the list to close")


def test_a_hostile_link_opens_the_default_view_and_says_what_was_left_out(page, cold_server, output_path):
    page.goto(f"{cold_server}/app?project=mnist&layer=..%2F..%2Fetc%2Fpasswd&tap=nan,1&view=1,0,0,1"
              f"&method=%FF&n_neighbors=1e999&color=%3Cscript%3E")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    wait_until(lambda: (f := figure(page)) and "points" in f["title"], 120, "the default picture")
    alert = page.get_by_text("is not a layer of 'mnist'")
    wait_until(lambda: alert.count() > 0 and alert.first.is_visible(), 30, "the link's problems named")
    text = alert.first.inner_text()
    assert "tap='nan,1'" in text and "view='1,0,0,1'" in text and "method: not UTF-8" in text
    assert " bottleneck " in figure(page)["title"]
    _shot(page, output_path, "hostile_link.png")


def test_the_wheel_scrolls_the_page_and_zooms_only_with_ctrl(page, cold_server):
    open_dashboard(page, cold_server, "mnist")
    before = figure(page)
    px, py = to_page(page, 0.0, 0.0)
    # the first visit's hint goes at the first click in the page: it sat over the cards' controls until closed
    hint = page.locator(".li-keys[data-kind='hint']")
    wait_until(lambda: hint.is_visible(), 10, "the first visit's hint")
    page.locator(".picture").first.click(position={"x": 5, "y": 5})  # the plot card's corner: no tap on the data
    wait_until(lambda: not hint.is_visible(), 5, "the hint gone at the first click")
    page.mouse.move(px, py)
    scroll = page.evaluate("() => window.scrollY + (document.scrollingElement || document.body).scrollTop")
    page.mouse.wheel(0, 300)
    time.sleep(0.5)
    after = figure(page)
    assert (after["x0"], after["x1"]) == (before["x0"], before["x1"])  # not zoomed
    moved = page.evaluate("""() => Math.max(window.scrollY, ...[...document.querySelectorAll('*')]
        .filter(e => e.scrollTop > 0).map(e => e.scrollTop))""")
    assert moved > scroll  # the page (or its main area) scrolled
    px, py = to_page(page, 0.0, 0.0)
    page.mouse.move(px, py)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    wait_until(lambda: figure(page)["x1"] - figure(page)["x0"] < 0.95 * (before["x1"] - before["x0"]), 5,
               "Ctrl + wheel to zoom in")


def test_a_first_umap_picture_comes_before_the_refined_one(page, cold_server, output_path):
    """UMAP on a cold cache: the PCA picture is dimmed under a banner saying what is computed, then the first UMAP
    picture (default neighbourhood, k-NN inverse) shows and can be tapped while the refined one is computed."""
    open_dashboard(page, cold_server, "mnist")
    t0 = time.perf_counter()
    page.get_by_role("button", name="UMAP").click()
    banner = page.locator(".picture-status .banner")
    wait_until(lambda: banner.count() > 0 and banner.is_visible(), 30, "the progress banner on the plot")
    assert "showing PCA" in banner.inner_text() and "computing UMAP" in banner.inner_text()
    # the older picture is dimmed (its class may come in the message after the banner's)
    wait_until(lambda: page.locator(".picture.stale").count() == 1, 10, "the PCA picture dimmed")
    _shot(page, output_path, "computing_umap.png")
    wait_until(lambda: (f := figure(page)) and "UMAP, first picture" in f["title"], 240, "the first UMAP picture")
    first_picture_s = time.perf_counter() - t0
    assert page.locator(".picture.stale").count() == 0
    wait_until(lambda: "refining" in banner.inner_text(), 10, "the banner saying the picture is being refined")
    _shot(page, output_path, "first_picture.png")
    # the first picture is the one to look at: the banner sits at its foot, not over its top. Both boxes are read in
    # one evaluation: the banner's element is made anew at each progress update, and a locator's box of an element
    # replaced meanwhile is None
    boxes = wait_until(lambda: page.evaluate(BOXES_JS), 10, "the refining banner's box beside the plot's")
    plot, box = boxes["plot"], boxes["banner"]
    assert box["y"] > plot["y"] + plot["height"] / 2, (box, plot)
    assert box["y"] + box["height"] <= plot["y"] + plot["height"], (box, plot)
    f = figure(page)
    got = click_and_decode(page, (f["x0"] + f["x1"]) / 2, (f["y0"] + f["y1"]) / 2)
    assert got["seq"] >= 1
    print(f"first UMAP picture in the browser after {first_picture_s:.1f} s (cold projection cache)")
    assert np.isfinite(got["x"])
