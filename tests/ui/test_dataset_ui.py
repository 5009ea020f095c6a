"""Labelling and saving decodes in a real browser, and the saved dataset surviving a server restart.

This module starts servers of its own (on the session's projects root) because it stops one and starts another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dashboard_page import click_and_decode, open_dashboard, wait_until
from dashboard_server import running_server

from benchmarks.browser import WaitTimeout

pytestmark = pytest.mark.ui

DATASET = "generated"  # the dashboard's default dataset name
NEW_LABEL = "not a number"

# The markers of every latent figure the page has a view of: an earlier figure, replaced when the plot was redrawn,
# may linger in Bokeh's index (no longer in the page) with a marker source of the same name.
_MARKERS_JS = """() => [...Bokeh.index.all_views()]
  .filter(v => v.model && v.model.name === 'latent-figure' && v.frame != null)
  .map(v => {
    const renderer = v.model.renderers.find(r => r.name === 'decode-markers');
    const d = renderer == null ? {x: [], y: [], marker: []} : renderer.data_source.data;
    return {id: v.model.id, source: renderer == null ? null : renderer.data_source.id, shown: v.el.isConnected,
            markers: renderer != null,
            x: [...d.x], y: [...d.y], marker: [...d.marker]};
  })"""


_FIGURE_IDS_JS = """() => [...Bokeh.index.all_views()]
  .filter(v => v.model && v.model.name === 'latent-figure' && v.frame != null).map(v => v.model.id)"""


def _stars(page) -> list[tuple[float, float]]:
    """The star markers (saved records) of the latent figure in the page (the last one shown, if several)."""
    shown = [f for f in page.evaluate(_MARKERS_JS) if f["shown"]]
    if not shown:
        return []
    data = shown[-1]
    return [(x, y) for x, y, m in zip(data["x"], data["y"], data["marker"]) if m == "star"]


def _wait_for_stars(page, timeout: float, what: str) -> list[tuple[float, float]]:
    try:
        return wait_until(lambda: _stars(page), timeout, what)
    except WaitTimeout as error:  # say what the page held: which figures, shown or not, with which markers
        figures, table = page.evaluate(_MARKERS_JS), _table_text(page)
        raise WaitTimeout(f"{error}; latent figures: {figures}; table: {table}") from None


def _table_text(page) -> str:
    cells = page.locator(".records-table .tabulator-cell")
    return " | ".join(cells.all_inner_texts())


def test_tap_label_save_shows_in_table_and_plot_and_survives_a_restart(page, projects_root, engine_projects,
                                                                        tmp_path, output_path):
    from engine.data.generated import GeneratedDataset
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    project = load_project("mnist")
    insp = Inspection(project, "bottleneck", method="pca")
    emb, labels = np.asarray(insp.embedding), np.asarray(insp.labels)
    x, y = (float(v) for v in np.median(emb[labels == 1], axis=0))  # among the ones
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    before = GeneratedDataset(project, DATASET).ids()

    with running_server(projects_root, tmp_path / "first.log") as base:
        open_dashboard(page, base, "mnist")
        first = page.evaluate(_FIGURE_IDS_JS)
        page.get_by_role("button", name="Train probe on this layer").click()
        wait_until(lambda: "Validation accuracy" in page.locator(".probe-summary").inner_text(), 120,
                   "the probe's validation accuracy")
        # the probe's predictions join the plot's table but not its picture: the figure stays, so a tap made now is
        # not dropped with a figure leaving the page (dashboard.inspector.views.same_picture)
        page.wait_for_timeout(1000)
        assert page.evaluate(_FIGURE_IDS_JS) == first
        decoded = click_and_decode(page, x, y)
        label_box = page.locator(".label-input input")
        predicted = wait_until(lambda: label_box.input_value(), 30, "the probe's label in the label box")
        assert predicted == insp.project.label_names()[int(labels[insp.nearest(x, y)])] or predicted.isdigit()
        assert predicted in page.locator(".probe-prediction").inner_text()

        label_box.fill(NEW_LABEL)
        label_box.press("Escape")  # close the completion menu without picking a class name
        page.get_by_role("button", name="Save", exact=True).click()
        wait_until(lambda: NEW_LABEL in _table_text(page), 30, "the saved record in the table")
        stars = _wait_for_stars(page, 30, "a star marker on the latent plot")
        assert stars[-1] == pytest.approx((decoded["x"], decoded["y"]))
        page.screenshot(path=out / "saved.png")
        card = page.locator(".records-table")
        card.scroll_into_view_if_needed()
        page.screenshot(path=out / "saved-table.png")
        # typed and saved at once, again and again: each record gets the label typed just before its click
        quick = [f"quick {i}" for i in range(6)]
        for label in quick:
            label_box.fill(label)
            label_box.press("Escape")
            page.get_by_role("button", name="Save", exact=True).click()
            wait_until(lambda label=label: label in _table_text(page), 30, f"the record labelled {label!r}")

    ids = GeneratedDataset(project, DATASET).ids()
    assert len(ids) == len(before) + 1 + len(quick)
    assert [GeneratedDataset(project, DATASET).load(i).user_label for i in ids[-len(quick):]] == quick
    record = GeneratedDataset(project, DATASET).load(ids[-len(quick) - 1])
    assert record.user_label == NEW_LABEL and record.probe_label == predicted
    assert record.xy == pytest.approx((decoded["x"], decoded["y"]))

    with running_server(projects_root, tmp_path / "second.log") as base:  # a new process: only the disk remembers
        open_dashboard(page, base, "mnist")
        wait_until(lambda: NEW_LABEL in _table_text(page), 60, "the saved record after the restart")
        stars = _wait_for_stars(page, 30, "the saved point's marker after the restart")
        assert (decoded["x"], decoded["y"]) in [pytest.approx(s) for s in stars]
        page.screenshot(path=out / "after-restart.png")
