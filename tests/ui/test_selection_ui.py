"""Search, selection and the hover preview of the Inspect tab in a real browser, each checked against the engine run
in this process on the same data: the search's count, the box's samples, the saved dataset and the exported ids,
the sample named at the cursor; and a tap still decodes with the select tools there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dashboard_page import beyond_the_page, click_and_decode, figure, open_dashboard, to_page, wait_until

pytestmark = pytest.mark.ui

DATASET = "selection-ui"

# Data coordinates of page pixels in the latent figure: the inverse of dashboard_page.to_page, by the figure's own
# scales (those the select tools use).
_TO_DATA_JS = """
([px, py]) => {
  const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'latent-figure' && v.frame != null
                                                   && v.canvas_view.el.isConnected);
  const rect = view.canvas_view.el.getBoundingClientRect();
  return [view.frame.x_scale.invert(px - rect.left), view.frame.y_scale.invert(py - rect.top)];
}
"""

# Rows of a named data source of the latent figure on screen.
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


def _data(page, px: int, py: int) -> tuple[float, float]:
    return tuple(page.evaluate(_TO_DATA_JS, [px, py]))


def _attr(page, selector: str, name: str):
    el = page.locator(selector)
    return el.first.get_attribute(name) if el.count() else None


def test_search_select_save_export_hover_and_tap(page, server, mnist, output_path):
    from engine.data.generated import GeneratedDataset
    from engine.explore.search import match, match_all, sample_table
    from engine.explore.selection import load_ids, select_box

    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    project = mnist.project
    table = sample_table(mnist.frame, project.metadata())
    open_dashboard(page, server, "mnist")
    frame = figure(page)
    page.screenshot(path=out / "loaded.png")

    # -- search: label = 3, then AND split = test (a metadata column) -----------------------------------------------
    page.locator(".search-value button", has_text="3").first.click()
    expected = int(match(table, "label", "one of", ["3"]).sum())
    wait_until(lambda: _attr(page, ".search-count", "data-count") == str(expected), 20, "the search's count")
    assert page.locator(".search-count").inner_text() == f"{expected:,} of {len(table):,} match"
    wait_until(lambda: page.evaluate(_ROWS_JS, "search-highlight") == expected, 10, "the matches drawn")
    page.screenshot(path=out / "search_label_3.png")
    page.locator(".search-and button").click()
    page.locator(".search-column select").select_option("split")
    page.locator(".search-value button", has_text="test").first.click()
    both = int(match_all(table, [("label", "one of", ["3"]), ("split", "one of", ["test"])]).sum())
    wait_until(lambda: _attr(page, ".search-count", "data-count") == str(both), 20, "the count of both conditions")
    page.locator(".search-isolate input").check()
    page.screenshot(path=out / "search_isolated.png")
    page.locator(".search-clear button").click()
    wait_until(lambda: page.evaluate(_ROWS_JS, "search-highlight") == 0, 10, "the search cleared")

    # -- box select: the toolbar's tool, a drag; the samples are the engine's select_box of the same range ----------
    emb = np.asarray(mnist.embedding)
    cx, cy = (float(v) for v in np.median(emb, axis=0))
    px, py = _pixel(page, cx, cy)
    page.mouse.move(px, py)  # the toolbar shows while the pointer is over the plot
    page.locator(".bk-tool-icon-box-select").first.click()
    corners = (px - 20, py - 14), (px + 22, py + 16)
    (x0, y0), (x1, y1) = (_data(page, *c) for c in corners)
    ids = select_box(emb, x0, x1, y0, y1)
    assert 10 < len(ids) < 1000, len(ids)
    page.mouse.move(*corners[0])
    page.mouse.down()
    page.mouse.move(*corners[1], steps=8)
    page.mouse.up()
    wait_until(lambda: _attr(page, ".selection-count", "data-count") == str(len(ids)), 20, "the selection's count")
    wait_until(lambda: page.evaluate(_ROWS_JS, "selection-highlight") == len(ids), 10, "the selection drawn")
    page.screenshot(path=out / "selected.png")
    card = page.locator(".selection-strip")
    card.scroll_into_view_if_needed()
    wait_until(lambda: page.locator(".selection-strip .card").count() == min(len(ids), 48), 20, "the thumbnails")
    page.screenshot(path=out / "selection_card.png")

    # -- export the ids; save the selection as a dataset -------------------------------------------------------------
    with page.expect_download() as download:
        page.locator(".selection-ids button").click()
    exported = Path(download.value.path())
    np.testing.assert_array_equal(load_ids(exported.rename(exported.with_suffix(".csv"))), ids)
    page.locator(".selection-name input").fill(DATASET)
    page.wait_for_timeout(300)  # the typed name reaches the server before the click
    page.locator(".selection-save button").click()
    wait_until(lambda: page.locator(".selection-notice").count() and "Saved" in
               page.locator(".selection-notice").inner_text(), 60, "the dataset saved")
    records = GeneratedDataset(project, DATASET).records()
    names = project.label_names()
    assert sorted((int(np.argmin(np.linalg.norm(emb - r.xy, axis=1))), r.user_label) for r in records) == \
        [(int(i), names[int(mnist.labels[i])]) for i in ids]
    page.screenshot(path=out / "saved_as_dataset.png")

    # -- hover: the box at the cursor names the nearest sample ------------------------------------------------------
    x_lo, x_hi = sorted((frame["x0"], frame["x1"]))
    y_lo, y_hi = sorted((frame["y0"], frame["y1"]))
    inside = np.flatnonzero((emb[:, 0] > x_lo + 0.1 * (x_hi - x_lo)) & (emb[:, 0] < x_hi - 0.3 * (x_hi - x_lo))
                            & (emb[:, 1] > y_lo + 0.1 * (y_hi - y_lo)) & (emb[:, 1] < y_hi - 0.1 * (y_hi - y_lo)))
    target = int(inside[len(inside) // 3])
    hx, hy = _pixel(page, *(float(v) for v in emb[target]))
    page.mouse.move(hx - 30, hy - 30)
    page.mouse.move(hx, hy, steps=5)
    nearest = mnist.nearest(*_data(page, hx, hy))
    label = names[int(mnist.labels[nearest])]
    tip = page.locator(".hover-tip")
    wait_until(lambda: tip.is_visible() and _attr(page, ".hover-tip .hover-text", "data-index") == str(nearest),
               20, f"the hover preview of sample {nearest}")
    assert _attr(page, ".hover-tip .hover-text", "data-label") == label
    assert f"sample {nearest:,}" in tip.inner_text() and f"label {label}" in tip.inner_text()
    box = tip.bounding_box()
    assert box["x"] > hx and box["y"] > hy and tip.locator("img").count() == 1  # beside the cursor, with the input
    page.screenshot(path=out / "hover.png")

    # -- a tap still decodes, the box select tool active ------------------------------------------------------------
    tx, ty = (float(v) for v in np.median(emb[mnist.labels == 1], axis=0))
    got = click_and_decode(page, tx, ty)
    assert abs(got["x"] - tx) < 0.01 * (x_hi - x_lo) and abs(got["y"] - ty) < 0.01 * (y_hi - y_lo)
    assert _attr(page, ".selection-count", "data-count") == str(len(ids))  # a tap is no selection
    assert not beyond_the_page(page), f"wider than the page: {beyond_the_page(page)}"
    page.screenshot(path=out / "tap.png")


# Each option of the open list of a search value: its name, whether it lies whole within the list's box and the window,
# and whether the page shows it at its centre (the element there is the option or inside it) rather than a card's
# edge cutting it off.
_OPTIONS_SHOWN_JS = """
() => {
  function* walk(root) {
    for (const el of root.querySelectorAll('*')) { yield el; if (el.shadowRoot) yield* walk(el.shadowRoot); }
  }
  const list = [...walk(document)].find(e => e.classList && e.classList.contains('choices__list--dropdown')
                                               && e.classList.contains('is-active'));
  if (list == null) return null;
  const deepest = (x, y) => {
    let el = document.elementFromPoint(x, y);
    while (el && el.shadowRoot) {
      const inner = el.shadowRoot.elementFromPoint(x, y);
      if (!inner || inner === el) break;
      el = inner;
    }
    return el;
  };
  return [...list.querySelectorAll('.choices__item--choice')].map(o => {
    const r = o.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
    const box = list.getBoundingClientRect();  // (the list scrolls: options below its box are not shown yet)
    const inside = r.height > 0 && r.top >= Math.max(0, box.top) - 1
                   && r.bottom <= Math.min(window.innerHeight, box.bottom) + 1;
    const at = inside ? deepest(x, y) : null;
    return [o.textContent.trim(), inside, at != null && (at === o || o.contains(at))];
  });
}
"""


def test_a_search_values_list_opens_whole_over_the_cards_above(page, server, mnist, output_path):
    """MNIST's digit names are too long for a row of buttons: the value is picked from a list, which opens upward
    near the window's bottom edge, over the plot's card; none of its options is cut off by the search card's edge
    (they were: the cards clip what overflows them)."""
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    open_dashboard(page, server, "mnist")
    page.locator(".search-column select").select_option("digit_name")
    field = page.locator(".search-value input[type=search]")
    field.wait_for(timeout=20_000)
    assert page.locator(".search-value button").count() == 0  # a list, not buttons that ran past the card
    field.click()
    wait_until(lambda: page.evaluate(_OPTIONS_SHOWN_JS), 10, "the list of values open")
    page.screenshot(path=out / "search_values_open.png")
    options = page.evaluate(_OPTIONS_SHOWN_JS)
    assert sorted(name for name, _, _ in options) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    in_window = [(name, shown) for name, inside, shown in options if inside]
    assert len(in_window) >= 5 and all(shown for _, shown in in_window), options
    page.locator(".choices__item--choice", has_text="seven").first.click()
    sevens = int((mnist.labels == 7).sum())  # (the digit names follow the labels: tests/test_metadata.py)
    wait_until(lambda: _attr(page, ".search-count", "data-count") == str(sevens), 20, "the search by the picked name")
