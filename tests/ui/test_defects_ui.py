"""What a new user hit in the dashboard (issue 17), in Chromium at 1500x950 on the bundled MNIST project: the refit
of the probe after saving one record of a new label, an error shown only in the banner off-screen, the records
table's delete column past the card's edge, the fine-tune explanation cut off at the window's edge, light buttons
that looked like text and disabled ones like buttons, a unit's optimized input left beside another unit's examples,
and Undo taking back another session's save.

One page of a server of this module's own serves every test here, in order (each leaves the page as the next
expects it); records go to datasets of their own, which no other test reads. Screenshots go to each test's
output folder.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dashboard_page import beyond_the_page, click_and_decode, open_dashboard, open_tab, wait_until

from benchmarks.browser import WaitTimeout

pytestmark = pytest.mark.ui

#: Where this module's records go: one saved by "another session" (the engine, here), and one of another layer.
OTHERS = "issue17"
WRONG_LAYER = "issue17-layer"
NEW_LABEL = "one of a kind"


@pytest.fixture(scope="module")
def own_server(projects_root, tmp_path_factory):
    """A server of this module's own: the refit below leaves a probe with a class of its own in the server's memory,
    which the session's server would show to every later test of the worker."""
    from dashboard_server import running_server

    with running_server(projects_root, tmp_path_factory.mktemp("defects-server") / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def dash(browser, browser_context_args, own_server, engine_projects):
    """The page, opened once, with another session's record in :data:`OTHERS` and a record of another layer in
    :data:`WRONG_LAYER`; where to tap (the middle of the ones)."""
    from engine.data.generated import GeneratedDataset, record_from_decode
    from engine.data.project import load_project
    from engine.explore.inspection import Inspection

    project = load_project("mnist")
    insp = Inspection(project, "bottleneck", method="pca")
    emb, labels = np.asarray(insp.embedding), np.asarray(insp.labels)
    ones = tuple(float(v) for v in np.median(emb[labels == 1], axis=0))
    record = record_from_decode(insp, insp.decode(*ones), "3", None)
    GeneratedDataset(project, OTHERS).save(record)
    GeneratedDataset(project, WRONG_LAYER).save(dataclasses.replace(record, layer="another-layer"))

    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    open_dashboard(page, own_server, "mnist")
    hint = page.locator(".li-keys button")  # the first visit's hint, closed as a person would
    if hint.count() and hint.is_visible():
        hint.click()
    yield SimpleNamespace(page=page, project=project, ones=ones)
    context.close()


def _out(output_path) -> Path:
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _labels(page) -> list[str]:
    """The label column of the records table, newest first."""
    return page.locator(".records-table .tabulator-cell[tabulator-field='user_label']").all_inner_texts()


def _choose_dataset(page, name: str, labels: list[str]):
    """Type ``name`` into the dataset box and send it with Enter; wait for the table to show ``labels``.

    Escape first: Enter in Bokeh's AutocompleteInput takes the highlighted completion when its menu is open, and
    the menu reflects the box's text when it was last opened or typed into, not the text ``fill`` put there."""
    box = page.locator(".dataset-name input")
    box.fill(name)
    box.press("Escape")
    box.press("Enter")
    try:
        wait_until(lambda: _labels(page) == labels, 30, f"the records of {name!r}: {labels}")
    except WaitTimeout as exc:
        errors = page.locator(".records-error").all_inner_texts()
        raise WaitTimeout(f"{exc}; the table shows {_labels(page)}, the box holds {box.input_value()!r}, "
                          f"the records' error: {errors}") from None


def _save(page, label: str):
    box = page.locator(".label-input input")
    box.fill(label)
    box.press("Escape")  # close the completion menu without picking a class name
    page.get_by_role("button", name="Save", exact=True).click()


def _inside(box: dict, frame: tuple[float, float, float, float], slack: float = 1.0) -> bool:
    left, top, right, bottom = frame
    return (box["x"] >= left - slack and box["y"] >= top - slack and box["x"] + box["width"] <= right + slack
            and box["y"] + box["height"] <= bottom + slack)


def _viewport(page) -> tuple[float, float, float, float]:
    size = page.viewport_size
    return 0, 0, size["width"], size["height"]


_CARD_JS = """(el) => {
  let n = el;
  while (n && !(n.classList && n.classList.contains('li-card')))
    n = n.parentNode instanceof ShadowRoot ? n.parentNode.host : n.parentNode;
  const r = n.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
}"""


def _show_card(locator) -> None:
    """Scroll the page so that the card holding ``locator``'s element is in the middle of the window."""
    locator.evaluate(_CARD_JS.replace("const r = n.getBoundingClientRect();",
                                      "n.scrollIntoView({block: 'center'}); const r = n.getBoundingClientRect();"))


def _card(locator) -> tuple[float, float, float, float]:
    """The frame of the card (:func:`dashboard.widgets.card`) holding ``locator``'s element."""
    return tuple(locator.evaluate(_CARD_JS))


def test_undo_takes_back_this_sessions_own_save_never_another_sessions(dash, output_path):
    from engine.data.generated import GeneratedDataset

    page, out = dash.page, _out(output_path)
    undo = page.locator(".undo-save button")
    _choose_dataset(page, OTHERS, ["3"])  # saved by another session
    assert undo.is_disabled(), "Undo is enabled on a fresh page: it would take back another session's save"

    click_and_decode(page, *dash.ones)
    _save(page, NEW_LABEL)
    wait_until(lambda: _labels(page) == [NEW_LABEL, "3"], 30, "this session's record in the table")
    wait_until(lambda: undo.is_enabled(), 10, "Undo enabled after this session's save")
    undo.click()
    wait_until(lambda: _labels(page) == ["3"], 30, "this session's record taken back")
    wait_until(lambda: undo.is_disabled(), 10, "Undo disabled again: nothing of this session's is left")
    assert [r.user_label for r in GeneratedDataset(dash.project, OTHERS).records()] == ["3"]
    page.locator(".records-table").scroll_into_view_if_needed()
    page.screenshot(path=out / "undo.png")


def test_refit_with_one_record_of_a_new_label_says_on_how_many_samples_it_was_scored(dash, output_path):
    page, out = dash.page, _out(output_path)
    _save(page, NEW_LABEL)  # ONE record of a label no class has
    wait_until(lambda: _labels(page) == [NEW_LABEL, "3"], 30, "the new label's record in the table")
    refit = page.locator(".refit-probe button")
    refit.click()
    notice = page.locator(".finetune-notice")
    wait_until(lambda: notice.count() and "Probe refitted" in notice.inner_text(), 120, "the refitted probe")

    # held out: a fifth of the project's samples and the record labelled "3"; the single new-label record is trained on
    held_out = math.ceil(0.2 * (len(dash.project.labels()) + 1))
    text = notice.inner_text()
    assert f"on {held_out:,} held-out samples" in text, text
    assert f"class '{NEW_LABEL}' is trained on, not validated" in text, text
    assert page.locator(".probe-summary .probe-held-out").inner_text() == f"{held_out:,}"
    assert NEW_LABEL in page.locator(".probe-summary .probe-unvalidated").inner_text()
    assert page.locator(".finetune-status .state-error").count() == 0
    status = page.locator(".finetune-status span")
    wait_until(lambda: status.count() and "done" in status.inner_text(), 10, "the refit done, beside its button")
    page.locator(".finetune-notice").scroll_into_view_if_needed()
    page.screenshot(path=out / "refit.png")


def test_an_error_shows_beside_the_button_that_asked_for_the_work(dash, output_path):
    page, out = dash.page, _out(output_path)
    _choose_dataset(page, WRONG_LAYER, ["3"])
    refit = page.locator(".refit-probe button")
    wait_until(lambda: refit.is_enabled(), 30, "the refit button")
    _show_card(refit)  # the card on screen, as a person who reads it before clicking has it
    refit.click()
    error = page.locator(".finetune-status .state-error")
    wait_until(lambda: error.count() == 1 and error.is_visible(), 60, "the error beside the refit button")
    assert "holds activations of layer 'another-layer'" in error.inner_text()
    box, button = error.bounding_box(), refit.bounding_box()
    assert _inside(box, _viewport(page)), f"the error at {box} is off-screen"
    assert _inside(box, _card(error)), "the error lies outside its card"
    assert 0 < box["y"] - button["y"] < 120, f"the error at {box} is not under the button at {button}"
    page.screenshot(path=out / "error_beside_refit.png")


def _columns_reachable(page) -> list[str]:
    """The records table's columns that are never inside the card, whether the table is scrolled fully left or
    fully right (a column wider than the card would need more; none is)."""
    table = page.locator(".records-table")
    table.scroll_into_view_if_needed()
    card = _card(table)
    holder = page.locator(".records-table .tabulator-tableholder")
    columns = page.locator(".records-table .tabulator-col[tabulator-field]")
    fields = [f for f in columns.evaluate_all("cs => cs.map(c => c.getAttribute('tabulator-field'))") if f]
    seen = set()
    for position in ("0", "e.scrollWidth"):
        holder.evaluate(f"e => {{ e.scrollLeft = {position}; }}")
        page.wait_for_timeout(150)  # Tabulator moves the header with the rows on the scroll event
        frame = table.bounding_box()
        visible = (max(frame["x"], card[0]), frame["y"], min(frame["x"] + frame["width"], card[2]),
                   frame["y"] + frame["height"])
        for field in fields:
            box = page.locator(f".records-table .tabulator-col[tabulator-field='{field}']").bounding_box()
            if box and box["width"] > 1 and _inside(box, visible):
                seen.add(field)
    holder.evaluate("e => { e.scrollLeft = 0; }")
    assert holder.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    return [f for f in fields if f not in seen and f != "_index"]


def test_every_records_column_is_inside_the_card_the_delete_column_always(dash, output_path):
    page, out = dash.page, _out(output_path)
    _choose_dataset(page, OTHERS, [NEW_LABEL, "3"])
    for width, height in ((1500, 950), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        table = page.locator(".records-table")
        wait_until(lambda t=table, w=width: (b := t.bounding_box()) and b["x"] + b["width"] <= w, 10,
                   "the table relaid")
        page.wait_for_timeout(300)
        assert not _columns_reachable(page), f"columns never inside the card at {width}x{height}"
        delete = page.locator(".records-table .tabulator-col[tabulator-field='delete']")
        assert _inside(delete.bounding_box(), _card(table)), f"the delete column is past the card at {width}"
        cross = page.locator(".records-table .tabulator-cell[tabulator-field='delete']").first
        assert cross.inner_text() == "✕" and _inside(cross.bounding_box(), _viewport(page))
        assert not beyond_the_page(page), f"wider than the page at {width}: {beyond_the_page(page)}"
        page.screenshot(path=out / f"records_{width}.png")
    page.set_viewport_size({"width": 1500, "height": 950})


def test_why_fine_tuning_is_disabled_is_said_in_full_under_the_button(dash, output_path):
    page, out = dash.page, _out(output_path)
    tune = page.locator(".finetune-suffix button")
    why = page.locator(".finetune-why span")
    why.scroll_into_view_if_needed()
    assert tune.is_disabled()  # the MNIST model's output is an image: its suffix cannot learn labels
    assert "class probabilities" in why.inner_text() and "Refit the probe" in why.inner_text()
    box = why.bounding_box()
    assert _inside(box, _viewport(page)), f"the explanation at {box} is cut off by the window"
    assert _inside(box, _card(why)), f"the explanation at {box} is cut off by its card"
    assert tune.get_attribute("title") in (None, "")  # no tooltip to be cut off at the window's edge
    page.screenshot(path=out / "finetune_why.png")


_STYLE_JS = """(b) => {
  const s = getComputedStyle(b);
  return {border: s.borderTopColor, width: parseFloat(s.borderTopWidth), opacity: parseFloat(s.opacity),
          background: s.backgroundColor, cursor: s.cursor, events: s.pointerEvents};
}"""


def test_light_buttons_look_clickable_and_disabled_ones_look_disabled(dash, output_path):
    page, out = dash.page, _out(output_path)
    _choose_dataset(page, WRONG_LAYER, ["3"])  # no save of this session there: Undo is disabled
    enabled = page.get_by_role("button", name="Clear history")
    disabled = page.locator(".undo-save button")
    assert enabled.is_enabled() and disabled.is_disabled()
    page.mouse.move(0, 0)
    on, off = enabled.evaluate(_STYLE_JS), disabled.evaluate(_STYLE_JS)
    assert on["border"] not in ("rgba(0, 0, 0, 0)", "transparent") and on["width"] >= 1, on  # an outline
    assert on["opacity"] == 1 and on["cursor"] == "pointer", on
    assert off["opacity"] <= 0.6 and off["cursor"] == "not-allowed" and off["events"] != "none", off
    assert off["background"] in ("rgba(0, 0, 0, 0)", "transparent"), off  # not a grey button

    export = page.locator(".export-npz button").evaluate(_STYLE_JS)  # a download drawn as a light button too
    assert export["border"] == on["border"] and export["background"] == on["background"], export

    enabled.hover()
    hovered = wait_until(lambda: (s := enabled.evaluate(_STYLE_JS))["background"] != on["background"] and s, 5,
                         "a tint under the cursor")
    assert hovered["border"] != on["border"]
    disabled.hover()
    page.wait_for_timeout(300)
    assert disabled.evaluate(_STYLE_JS) == off  # nothing happens under the cursor
    disabled.scroll_into_view_if_needed()
    page.screenshot(path=out / "buttons.png")


def _set(page, css: str, value) -> None:
    box = page.locator(f"{css} input")
    box.fill(str(value))
    box.press("Enter")


def test_another_unit_clears_the_optimized_input_and_drops_a_run_under_way(dash, output_path):
    page, out = dash.page, _out(output_path)
    open_tab(page, "Units")
    summary = page.locator(".units-examples p").first
    wait_until(lambda: page.locator(".units-top img").count() == 8, 120, "the top examples of unit 0")
    live, reached = page.locator(".units-live img"), page.locator(".units-reached")
    _set(page, ".units-steps", 40)
    wait_until(lambda: "40 steps" in page.locator(".units-plan span").inner_text(), 30, "the number of steps taken")
    page.locator(".units-run button").click()
    wait_until(lambda: reached.count() == 1, 120, "unit 0's optimization to finish")
    assert live.count() == 2
    page.screenshot(path=out / "units_unit0_optimized.png")

    _set(page, ".units-unit", 3)
    wait_until(lambda: "unit 3 over" in summary.inner_text(), 120, "unit 3's examples")
    assert live.count() == 0 and reached.count() == 0, "unit 0's optimized input is still shown beside unit 3"
    page.screenshot(path=out / "units_unit3.png")

    # a run still under way for unit 3 when unit 4 is chosen: stopped, and its result never shows
    _set(page, ".units-steps", 5000)
    wait_until(lambda: "5000 steps" in page.locator(".units-plan span").inner_text(), 30, "the number of steps taken")
    page.locator(".units-run button").click()
    caption = page.locator(".units-live figcaption").first
    wait_until(lambda: caption.count() and re.search(r"step \d+ of 5000", caption.inner_text()), 120,
               "unit 3's optimization under way")
    _set(page, ".units-unit", 4)
    wait_until(lambda: "unit 4 over" in summary.inner_text(), 120, "unit 4's examples")
    wait_until(lambda: live.count() == 0 and page.locator(".units-run button").is_enabled(), 30,
               "the run for unit 3 dropped")
    page.wait_for_timeout(1500)
    assert live.count() == 0 and reached.count() == 0, "unit 3's run showed beside unit 4"
    page.screenshot(path=out / "units_unit4_dropped.png")
    open_tab(page, "Inspect")
