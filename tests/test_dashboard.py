"""The dashboard without a browser: drive its state and streams, check what its views now hold.

A small real project (a dense autoencoder with a residual block, so that one layer is not a valid cut) is written
to a temporary projects root; the dashboard runs on it in-process, the engine computes, nothing is mocked.
Outside a server the store's long work runs synchronously, so every assertion follows the action directly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import event_loop
import numpy as np
import pytest
from builders import blobs, projects_root

pn = pytest.importorskip("panel")

REPO = Path(__file__).resolve().parent.parent

CLASSES = ["red", "green", "blue"]


def _build_tiny(path):
    import keras
    from keras import layers

    path.mkdir()
    x, y = blobs(3, 100, 8, spread=0.5)
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="x")
    enc = layers.Dense(6, activation="tanh", name="enc")(inp)
    inner = layers.Dense(6, activation="tanh", name="inner")(enc)
    block = layers.Add(name="add")([enc, inner])
    code = layers.Dense(3, name="bottleneck")(block)
    out = layers.Dense(8, name="output")(layers.Dense(6, activation="tanh", name="dec")(code))
    keras.Model(inp, out).save(path / "model.keras")
    (path / "project.toml").write_text(
        'title = "Tiny"\nmodel = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "bottleneck"\n'
        f"class_names = {CLASSES!r}\n".replace("'", '"')
        + '[input_view]\nkind = "vector"\n[output_view]\nkind = "vector"\n'
    )


def _build_tiny_images(path):
    """4 x 4 grey images of two kinds, and a dense autoencoder with a 2-unit bottleneck."""
    import keras
    from keras import layers

    path.mkdir()
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), 60)
    x = np.stack([np.eye(4), np.fliplr(np.eye(4))])[y] + rng.normal(scale=0.1, size=(120, 4, 4))
    np.save(path / "x.npy", x.astype(np.float32))
    np.save(path / "y.npy", y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4, 4)), layers.Flatten(name="flat"), layers.Dense(2, name="bottleneck"),
        layers.Dense(16, activation="sigmoid", name="dec"), layers.Reshape((4, 4), name="image"),
    ])
    model.save(path / "model.keras")
    (path / "project.toml").write_text(
        'model = "model.keras"\ninputs = "x.npy"\nlabels = "y.npy"\ndefault_layer = "bottleneck"\n'
        '[input_view]\nkind = "image"\nshape = [4, 4]\n[output_view]\nkind = "image"\nshape = [4, 4]\n'
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    yield from projects_root(tmp_path_factory, tiny=_build_tiny, images=_build_tiny_images)


@pytest.fixture
def app(root):
    from dashboard.template import Dashboard

    dash = Dashboard(project="tiny")
    assert dash.store.error == "", dash.store.error
    assert dash.store.inspection is not None
    return dash


def _source_values(model, name="decoded-output-source"):
    """The values the rendered output figure holds (what Bokeh would send to the browser)."""
    source = model.select_one({"name": name})
    assert source is not None, f"no Bokeh model named {name!r}"
    return source


def test_tap_puts_the_engine_decode_in_the_output_view_and_marks_the_plot(app):
    store = app.store
    root_model = pn.panel(app.output).get_root()
    x, y = (float(v) for v in np.asarray(store.inspection.embedding)[5] + 0.25)

    app.latent.tap.event(x=x, y=y)

    assert store.decode.xy == (x, y)
    expected = store.inspection.decode(x, y).output
    np.testing.assert_allclose(store.decode.output, expected, rtol=1e-6)
    element = app.output.plot[()]  # what the output view's DynamicMap draws now
    np.testing.assert_allclose(element.dimension_values("value"), np.ravel(expected), rtol=1e-6)
    source = _source_values(root_model)
    np.testing.assert_allclose(np.asarray(source.data["value"], dtype=float), np.ravel(expected), rtol=1e-5)
    assert store.history[-1] is store.decode
    markers = app.latent.marker_data()
    assert (markers["x"][-1], markers["y"][-1]) == (x, y)  # the current point, drawn over the raster

@pytest.mark.parametrize("tab", ["inspect", "explore"])
def test_a_press_up_decodes_like_a_tap_on_both_plots(app, tab):
    """BokehJS sends a press-up, not a tap, for a button held past 300 ms: the Inspect and Explore plots decode it."""
    store = app.store
    plot = app.latent if tab == "inspect" else app.explore.plot
    x, y = (float(v) for v in np.asarray(store.inspection.embedding)[9] - 0.5)
    before = len(store.history)
    plot.press.event(x=x, y=y)
    assert store.decode.xy == (x, y) and len(store.history) == before + 1
    assert (plot.press.x, plot.press.y) == (None, None)  # transient: the same place pressed again decodes again


def test_a_hold_that_outlives_its_holders_is_said_in_the_log_once_and_when_it_ends(caplog):
    """HoloViews saves a document's hold before a plot update and restores it after: on a thread of Panel's pool,
    across the end of the event loop's own hold, it restores a hold nobody will end. HoldWatch says so."""
    from bokeh.document import Document
    from holoviews.plotting.bokeh.util import hold_policy

    from dashboard.connection import HoldWatch

    doc = Document()
    watch = HoldWatch(doc, after_s=5, name="s1")
    doc.hold("combine")  # the event loop's hold (Panel's unlocked)
    update = hold_policy(doc, "collect", server=True)
    update.__enter__()  # a plot update on another thread saves "combine"
    doc.unhold()  # the loop's hold ends, its changes are sent
    update.__exit__(None, None, None)  # the update restores the hold it saved
    assert doc.callbacks.hold_value == "combine"
    doc.add_root(pn.pane.Markdown("a change").get_root(doc))  # collected, never sent
    assert watch.check(now=100.0) is None and watch.check(now=104.0) is None
    with caplog.at_level("WARNING", logger="dashboard.connection"):
        warned = watch.check(now=106.0)
        assert watch.check(now=107.0) is None  # once per hold
    assert warned.startswith("session s1: its document has been on hold ('combine') for 6 s")
    assert f"{len(doc.callbacks._held_events)} change(s) waiting" in warned and doc.callbacks._held_events
    assert [r.getMessage() for r in caplog.records] == [warned]
    doc.unhold()
    assert watch.check(now=110.0) == "session s1: its document's hold ended after 10 s"
    assert watch.check(now=111.0) is None


def test_a_tap_that_fails_shows_its_error_and_the_next_tap_decodes(app):
    """A tap goes through HoloViews' callback of the rendered plot, which handles a plot's events of one kind one batch
    at a time: a subscriber's exception used to end that loop with the kind still marked busy, and every later tap
    was queued, never decoded. The failure is now the store's error, and the next tap decodes."""
    import asyncio

    from bokeh.events import Tap
    from holoviews.plotting.bokeh.callbacks import TapCallback

    store, view = app.store, app.latent
    pn.panel(view).get_root()  # the plot rendered into a document, with its callbacks
    (plot, _), = view._pane._plots.values()
    callbacks = [c for p in plot.traverse(lambda p: p.callbacks) for c in p if isinstance(c, TapCallback)]
    (callback,) = [c for c in callbacks if view.tap in c.streams]
    figure = callback.plot.state
    failures = []

    def fails_once(event):
        if not failures:
            failures.append(event.new.xy)
            raise RuntimeError("a view failed to draw the decode")

    store.param.watch(fails_once, "decode")
    emb = np.asarray(store.inspection.embedding)
    first, second = (tuple(float(v) for v in emb[i] + 0.1) for i in (3, 7))

    async def tap_twice():
        for x, y in (first, second):
            await callback.on_event(Tap(figure, x=x, y=y))
            for _ in range(100):  # HoloViews handles the event on the loop, a few ms later
                await asyncio.sleep(0.02)
                if store.decode is not None and store.decode.xy == (x, y):
                    break

    event_loop.run(tap_twice())
    assert failures == [first]
    assert store.decode is not None and store.decode.xy == second  # the next tap was decoded
    assert store.error == "RuntimeError: a view failed to draw the decode", store.error


def test_image_decodes_reach_the_figure_upright(root):
    from dashboard.template import Dashboard

    app = Dashboard(project="images")
    assert app.store.error == "", app.store.error
    root_model = pn.panel(app.output).get_root()
    x, y = (float(v) for v in np.asarray(app.store.inspection.embedding)[7])
    app.latent.tap.event(x=x, y=y)
    expected = app.store.inspection.decode(x, y).output.reshape(4, 4)
    image = np.asarray(_source_values(root_model).data["image"][0])
    np.testing.assert_allclose(np.flipud(image), expected, rtol=1e-6)  # Bokeh's first row is the bottom one


def test_tap_far_from_the_data_warns(app):
    emb = np.asarray(app.store.inspection.embedding)
    far = emb.max(axis=0) + 50 * (emb.max(axis=0) - emb.min(axis=0))
    app.latent.tap.event(x=float(far[0]), y=float(far[1]))
    decode = app.store.decode
    assert bool(np.asarray(decode.trust.out_of_bounds).ravel()[0])
    assert "far outside</b>" in app.output._trust.object and "data-level='3'" in app.output._trust.object
    emb = np.asarray(app.store.inspection.embedding)
    app.latent.tap.event(x=float(emb[3, 0]), y=float(emb[3, 1]))  # on a sample: no warning
    assert not bool(np.asarray(app.store.decode.trust.out_of_bounds).ravel()[0])
    assert "among the data</b>" in app.output._trust.object and "data-level='0'" in app.output._trust.object


def test_the_verdict_quotes_the_maps_quality_once_measured_and_never_waits_for_it(app):
    """Once the quality report is there (outside a server it is computed right after the picture), the verdict of a
    decode among the data quotes its Cons_d; before, it says the map is not measured yet and does not compute it."""
    from dashboard.inspector.views import verdict_html
    from engine.reduce.verdict import NOT_MEASURED

    inspection = app.store.inspection
    report = app.store.quality
    assert report is not None and report.consistency is not None and report is inspection.quality
    emb = np.asarray(inspection.embedding)
    app.latent.tap.event(x=float(emb[3, 0]), y=float(emb[3, 1]))
    shown = app.output._trust.object
    assert "data-level='0'" in shown and f"{100 * report.consistency:.3g}% keep their class when decoded (Cons_d)" \
        in shown and NOT_MEASURED not in shown
    fields = app.store.decode.trust.record(0)
    saved = vars(inspection).pop("quality")  # as before the report's job has run
    try:
        before = verdict_html(fields, inspection)
        assert "quality" not in vars(inspection)  # read only once computed: the tap never waits for the report
    finally:
        vars(inspection)["quality"] = saved
    assert NOT_MEASURED in before and "Cons_d" not in before

    # a tap before the report: the verdict says so, and is judged again when the report comes
    vars(inspection).pop("quality")
    app.store.quality = None
    app.latent.tap.event(x=float(emb[3, 0]), y=float(emb[3, 1]))
    assert NOT_MEASURED in app.output._trust.object
    vars(inspection)["quality"] = saved
    app.store.quality = saved  # what the report's job does when it ends
    assert NOT_MEASURED not in app.output._trust.object and "(Cons_d)" in app.output._trust.object


def test_taps_stream_into_the_history_strip_and_restore(app):
    store = app.store
    emb = np.asarray(store.inspection.embedding)
    for i in (0, 120, 250):
        app.latent.tap.event(x=float(emb[i, 0]), y=float(emb[i, 1]))
    assert [d.xy for d in store.history] == [tuple(map(float, emb[i])) for i in (0, 120, 250)]
    items = app.history.strip.items
    assert [item["caption"] for item in items] == ["({:.2f}, {:.2f})".format(*d.xy) for d in store.history]
    assert all(item["src"].startswith("data:image/png;base64,") for item in items)
    app.history.strip._handle_msg({"key": items[0]["key"]})  # what a click on the first thumbnail sends
    assert store.decode is store.history[0]


def test_pointer_names_the_nearest_sample_and_live_mode_streams_decodes(app):
    store = app.store
    emb = np.asarray(store.inspection.embedding)
    x, y = float(emb[42, 0]), float(emb[42, 1])
    app.latent.pointer.event(x=x, y=y)
    assert store.hovered["index"] == store.inspection.nearest(x, y)
    assert store.hovered["label"] == CLASSES[int(store.inspection.labels[store.hovered["index"]])]
    assert store.decode is None  # hovering does not decode unless live

    store.live = True
    app.latent.pointer.event(x=x + 0.1, y=y)
    assert store.decode.xy == (x + 0.1, y)
    np.testing.assert_allclose(store.decode.output, store.inspection.decode(x + 0.1, y).output, rtol=1e-6)
    assert store.history == []  # live decodes are not recorded; taps are


def test_invalid_cut_is_disabled_with_its_reason(app):
    controls = app.controls
    assert "inner" in controls.layer.disabled_options
    assert "bottleneck" not in controls.layer.disabled_options
    assert any(label.startswith("bottleneck") and "(3)" in label for label in controls.layer.options)
    info = next(i for i in app.store.layers if i.name == "inner")
    card = controls._invalid_cuts(app.store.layers)
    assert info.reason in card.objects[0].object

    from dashboard.inspector.state import Inspector

    store = Inspector(project="tiny")  # without the widget, which refuses a disabled option by itself
    store.layer = "inner"
    assert "inner" in store.error and info.reason in store.error
    assert store.inspection is not None  # the last good projection stays


def test_bad_project_is_an_alert_and_the_app_stays_usable(root):
    from dashboard.template import Dashboard

    dash = Dashboard(project="nope")
    assert "nope" in dash.store.error and "tiny" in dash.store.error
    assert dash._alert.visible
    dash.store.project = "tiny"
    assert dash.store.error == "" and dash.store.inspection is not None
    assert not dash._alert.visible


def test_an_unknown_project_in_the_url_falls_back_to_the_served_project(root, monkeypatch):
    from dashboard.inspector.state import Inspector

    monkeypatch.setenv("LATENT_INSPECTOR_PROJECT", "images")  # what `latent-inspector serve images` sets
    store = Inspector(project="nope")
    assert store.error.startswith("No project 'nope'")
    assert store.project == "images" and store.project_obj.name == "images"


def test_failed_fit_is_an_alert_and_the_previous_projection_stays(app):
    store = app.store
    before = store.inspection
    store.param.update(method="tsne", inverse="native")  # t-SNE has no native inverse: the engine refuses
    assert "native" in store.error
    assert store.inspection is before and not store.busy  # still showing the last good projection
    assert app._alert.visible
    store.param.update(method="pca", inverse="auto")
    assert store.error == "" and store.inspection is not None


def test_inspections_are_shared_across_sessions(root):
    from dashboard.inspector.state import Inspector

    a, b = Inspector(project="tiny"), Inspector(project="tiny")
    assert a.inspection is b.inspection


def test_latent_plot_renders_a_named_figure_with_the_points_and_markers(app):
    model = pn.panel(app.latent).get_root()
    figure = model.select_one({"name": "latent-figure"})
    assert figure is not None
    assert "300 points" in figure.title.text
    assert app.store.points["label"].cat.categories.tolist() == CLASSES
    x, y = (float(v) for v in np.asarray(app.store.inspection.embedding)[9])
    app.latent.tap.event(x=x, y=y)
    markers = model.select_one({"name": "decode-markers-source"})
    assert (markers.data["x"][-1], markers.data["y"][-1]) == (x, y)


def test_the_axes_name_the_reducer_as_its_button_does(app):
    from dashboard.latent import plot_options
    from engine.reduce.names import method_label

    figure = pn.panel(app.latent).get_root().select_one({"name": "latent-figure"})
    assert figure.xaxis[0].axis_label == f"{method_label(app.store.inspection.method)} 1"
    assert plot_options("t", "tsne", "f")["ylabel"] == "t-SNE 2"  # not "tsne 2"


def test_every_light_download_button_is_drawn_light(app):
    """Panel draws a FileDownload(color="light") as a default (grey, filled) button: each one the page has carries
    the class that makes it look light (dashboard.widgets.BUTTON_CSS)."""
    files = pn.panel(app).select(pn.widgets.FileDownload)
    assert len(files) >= 2, "the page's download buttons"
    lacking = [w.label for w in files if w.button_type == "light" and "li-light" not in w.css_classes]
    assert lacking == [], lacking


def test_a_probe_trained_keeps_the_figure_a_tap_may_be_on(app):
    """Training a probe adds its predictions to the plot's table: the picture is the same, so the figure stays (a new
    figure in the page drops a tap made on the old one meanwhile: CI lost one so). A new colouring draws a new one."""
    from engine.explore.probe import train_probe

    root = pn.panel(app.latent).get_root()
    figure = root.select_one({"name": "latent-figure"})
    store = app.store
    table = store.points
    store.show_probe(store.inspection, train_probe(store.inspection))
    assert store.points is not table and len(store.points.columns) > len(table.columns)  # the predictions joined
    assert root.select_one({"name": "latent-figure"}) is figure
    x, y = (float(v) for v in np.asarray(store.inspection.embedding)[4])
    app.latent.tap.event(x=x, y=y)
    assert store.decode is not None and store.decode.nearest == 4
    others = [c for c in store.param.color_by.objects if c != store.color_by]
    store.color_by = others[0]
    assert root.select_one({"name": "latent-figure"}) is not figure


def test_quality_report_is_shown(app):
    assert app.store.quality is app.store.inspection.quality  # measured after the picture, then shown
    quality = app.controls._quality(app.store.quality)
    assert quality is not None and "<table" in quality.objects[1].object
    assert "points close on the map are close in the layer" in quality.objects[1].object


def test_the_app_displays_inline_as_in_a_notebook(app):
    model = pn.panel(app).get_root()  # what a notebook cell showing `app` renders
    assert model.select_one({"name": "latent-figure"}) is not None
    assert model.select_one({"name": "decoded-output-source"}) is not None or app.output.plot is not None


def test_search_offers_buttons_only_for_values_whose_names_fit_one_row_of_the_card():
    from dashboard.search.views import as_buttons

    assert as_buttons([str(i) for i in range(10)]) and as_buttons(["train", "test"])
    assert as_buttons(["Standing", "Running", "Walking", "Badminton"])
    assert not as_buttons([f"class {i}" for i in range(10)])  # ran past the card's edge as buttons
    assert not as_buttons(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])  # too
    assert not as_buttons(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    assert not as_buttons([str(i) for i in range(13)])


def test_serve_allows_only_its_own_origin():
    from dashboard.serve import own_hosts

    assert own_hosts("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert own_hosts("10.1.2.3") == ["10.1.2.3"]


def test_the_servers_warm_up_waits_for_the_first_page_or_a_minute_without_one():
    """The reducers' background warm-up does not share the CPU with the first page: it starts once a page has
    loaded (``dashboard.jobs.PAGE_LOADED``), or after a while when no page comes."""
    import threading

    from dashboard.serve import _warm_reducers_in_background

    page = threading.Event()
    thread = _warm_reducers_in_background(methods=("pca",), page=page, after_s=0.0, without_page_s=120)
    thread.join(1.0)
    assert thread.is_alive()  # no page yet: waiting
    page.set()
    thread.join(60)
    assert not thread.is_alive()
    alone = _warm_reducers_in_background(methods=("pca",), page=threading.Event(), without_page_s=0.2)
    alone.join(60)
    assert not alone.is_alive()  # no page came: it warmed up anyway


def test_the_server_leaves_its_libraries_out_of_full_collections_and_collects_what_it_makes_later(root):
    """The server freezes what its libraries made before it opens a project (so a full collection no longer walks
    them at every few sessions), and a cycle made afterwards, as a session's or a dropped inspection's, is still
    collected."""
    import gc
    import sys
    import weakref

    from dashboard.serve import _freeze_libraries

    class Node:
        pass

    try:
        _freeze_libraries("tiny")
        assert gc.get_freeze_count() > 100_000 and "keras" in sys.modules
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is None
    finally:
        gc.unfreeze()


def test_the_server_imports_the_reducers_it_warms_up_before_it_freezes_its_libraries():
    """UMAP's and t-SNE's libraries, imported for the warm-up after the freeze, doubled what a full collection walked
    (139-277 ms pauses of the taps after the first page): they are imported before it. In a fresh process, where
    neither has been imported yet; no project's framework is imported for a project that does not exist."""
    code = """if True:
        import gc, sys
        assert "umap" not in sys.modules and "openTSNE" not in sys.modules
        from dashboard.serve import _freeze_libraries
        _freeze_libraries("no-such-project", reducers=("umap", "tsne"))
        import openTSNE, umap
        frozen = {id(umap.UMAP), id(openTSNE.TSNE)}
        print(sum(id(o) in frozen for o in gc.get_objects()), gc.get_freeze_count())
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    walked, frozen = map(int, done.stdout.split())
    assert walked == 0 and frozen > 100_000  # both classes out of the collections' reach, with what made them


def test_serve_refuses_an_unknown_project_before_serving(root):
    from dashboard.serve import serve
    from engine.errors import ProjectError

    with pytest.raises(ProjectError, match="nope"):
        serve("nope", port=0)


def test_the_decodes_later_updates_are_scheduled_on_the_document_their_panes_are_in():
    """The trust card and the probe are updated a moment after the image, on the document of their own panes,
    not on whichever document is current in the thread that decoded (another session's, possibly closed)."""
    from bokeh.document import Document

    from dashboard.push import document_of

    trust, elsewhere = pn.pane.HTML("trust"), pn.pane.HTML("not on a page")
    doc = Document()
    doc.add_root(pn.Column(trust).get_root(doc))
    assert document_of(trust) is doc and document_of(elsewhere, trust) is doc
    assert document_of(elsewhere) is None


def test_a_new_projects_layer_menu_goes_straight_to_its_layer(app):
    """Given a project whose layers do not hold the chosen one, the layer menu (its page model drawn) goes straight
    to the new project's layer: given the new layers alone it took the first one, and the page's menu sometimes
    kept showing that one while the plot showed the project's layer."""
    store, menu = app.store, app.controls.layer
    menu.get_root()  # the menu's page model: Panel fits the value to new choices when it updates the model
    store.layer = "enc"  # a layer of "tiny" that "images" lacks
    seen = []
    menu.param.watch(lambda event: seen.append(event.new), "value")
    store.project = "images"
    assert store.error == "", store.error
    assert store.layer == "bottleneck" and menu.value == "bottleneck"
    assert seen == ["bottleneck"], seen


def test_views_are_styled_after_another_import_made_the_bokeh_renderer_first():
    """``import holoviews.plotting.bokeh`` alone registers Bokeh's renderer and builds none of ``hv.opts``: the
    dashboard's views, made after it in one process, styled nothing and failed with "No entry for 'Bars'" (seen when
    the suite ran a rendering test before the dashboard's in one worker). A fresh process, as such a user has."""
    import subprocess
    import sys
    from pathlib import Path

    script = ("import holoviews as hv, holoviews.plotting.bokeh\n"
              "from pathlib import Path\nfrom engine.data.manifest import view_spec\n"
              "from dashboard import sample\nfrom dashboard.template import bokeh_backend\n"
              "bokeh_backend()\n"
              "spec = view_spec({'kind': 'probabilities'}, Path('.'), 'output_view', ['a', 'b'])\n"
              "print(type(sample.options(spec, sample.blank(spec, (2,)))[0]).__name__)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "Options"
