"""The server restarted under an open page: the page says that its connection is lost and offers a reload, which,
once the server is back on its port, opens a new session where the lost one was (the address holds the project,
layer, reducer, colouring, view range and tapped point).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from dashboard_page import click_and_decode, figure, probe, wait_until

from benchmarks.load import Server, plot_ready_js

pytestmark = [pytest.mark.ui, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_a_page_whose_server_restarted_says_so_and_its_reload_restores_the_view(page, tmp_path, output_path):
    root = tmp_path / "projects"
    shutil.copytree(REPO / "projects" / "mnist", root / "mnist", ignore=shutil.ignore_patterns("generated"))
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    server = Server(root, "mnist", tmp_path / "server.log")
    try:
        base = server.start()
        page.goto(f"{base}/app?project=mnist&layer=bottleneck&method=pca&color=none&view=-10,12,-9,11")
        page.wait_for_function(plot_ready_js(), timeout=240_000, polling=250)
        wait_until(lambda: (f := figure(page)) and abs(f["x0"] + 10) < 1e-6 and abs(f["x1"] - 12) < 1e-6, 60,
                   "the link's view range")
        tapped = click_and_decode(page, 2.0, -3.0, timeout=60)  # state made on the page, not by the link
        wait_until(lambda: "tap" in _query(page), 10, "the tapped point in the address")
        before = _query(page)
        lost = page.locator(".li-connection-lost")
        assert lost.count() == 0  # nothing said while connected

        port = server.port
        server.kill()
        wait_until(lambda: lost.count() > 0 and lost.first.is_visible(), 30, "the page saying its server is gone")
        assert "connection to the server is lost" in lost.first.inner_text()
        page.wait_for_timeout(1500)  # the toast's slide-in
        page.screenshot(path=str(out / "connection_lost.png"))
        assert _query(page) == before  # the address still holds the state

        server.start(port=port)
        page.locator(".li-reload").click()
        page.wait_for_function(plot_ready_js(), timeout=240_000, polling=250)
        wait_until(lambda: (p := probe(page)) and p["seq"] >= 1 and p, 120, "the tapped point decoded again")
        restored = probe(page)
        assert (restored["x"], restored["y"]) == (tapped["x"], tapped["y"]) and restored["sha"] == tapped["sha"]
        wait_until(lambda: (f := figure(page)) and abs(f["x0"] + 10) < 1e-6 and abs(f["x1"] - 12) < 1e-6, 60,
                   "the view range restored")
        q = _query(page)
        assert (q["project"], q["layer"], q["method"], q["color"], q["tap"]) == (
            "mnist", "bottleneck", "pca", "none", before["tap"])
        assert page.locator(".li-connection-lost").count() == 0  # a new, connected session
        page.screenshot(path=str(out / "reloaded.png"))
    finally:
        server.stop()
