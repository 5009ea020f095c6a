"""The caches a long-running server fills have limits: whatever sessions ask, the process holds a bounded number of
inspections and of their locks (see also ``tests/ui/test_load_ui.py``: many sessions against one real server)."""

from __future__ import annotations

import contextlib
import gc
import shutil
import threading
import time
import weakref
from pathlib import Path

import pytest
from bokeh_client import ClientThread

from dashboard import shared
from dashboard.shared import Request
from engine.memo import Memo

REPO = Path(__file__).resolve().parents[1]


class Built:
    """What the cache holds: an object that remembers its request."""

    def __init__(self, request):
        self.request = request


@pytest.fixture
def inspections(monkeypatch):
    """``use(build, max_items)``: the process's inspections (``dashboard.shared.inspection``) kept in a memo of
    ``max_items``, each built by ``build(request, progress)``; returns the memo."""

    def use(build, max_items):
        monkeypatch.setattr(shared, "build", build)
        monkeypatch.setattr(shared, "INSPECTIONS", Memo(max_items, name="inspections"))
        return shared.INSPECTIONS

    return use


def test_inspections_are_evicted_least_recently_used_first(inspections):
    built = []

    def build(request, progress, snapshot=None):
        built.append(request)
        return Built(request)

    cache = inspections(build, max_items=3)
    requests = [Request("root", "p", f"layer{i}") for i in range(10)]
    for r in requests[:3]:
        shared.inspection(r)
    shared.inspection(requests[0])  # used again: now the most recent
    for r in requests[3:]:
        shared.inspection(r)
        assert len(cache) <= 3 and len(cache.building) <= 3
    assert [r for r in requests if cache.peek(r) is not None] == requests[-3:]
    assert len(built) == 10
    shared.inspection(requests[1])  # evicted: built again
    assert len(built) == 11


def test_one_build_per_request_however_many_sessions_ask(inspections):
    started, release = threading.Event(), threading.Event()
    builds = []

    def build(request, progress, snapshot=None):
        builds.append(request)
        started.set()
        release.wait(10)
        return Built(request)

    inspections(build, max_items=2)
    request = Request("root", "p", "layer")
    got = []
    threads = [threading.Thread(target=lambda: got.append(shared.inspection(request))) for _ in range(8)]
    for t in threads:
        t.start()
    assert started.wait(10)
    release.set()
    for t in threads:
        t.join(10)
    assert len(builds) == 1 and len(got) == 8 and all(g is got[0] for g in got)


def test_failed_builds_keep_nothing(inspections):
    def build(request, progress, snapshot=None):
        raise RuntimeError(f"cannot build {request.layer}")

    cache = inspections(build, max_items=2)
    for i in range(50):
        with pytest.raises(RuntimeError):
            shared.inspection(Request("root", "p", f"layer{i}"))
    assert len(cache) == 0 and not cache.building


def test_probes_kept_are_the_most_recent_few(monkeypatch):
    from dashboard.shared import remember_probe, shared_probe

    probes = Memo(4, name="probes")
    monkeypatch.setattr(shared, "PROBES", probes)
    for i in range(10):
        remember_probe(("root", "p", "", f"layer{i}"), f"probe {i}")
        assert len(probes) <= 4
    assert shared_probe(("root", "p", "", "layer6")) == "probe 6"  # used: now the most recent
    remember_probe(("root", "p", "", "layer10"), "probe 10")
    assert [shared_probe(("root", "p", "", f"layer{i}")) for i in (6, 7, 8, 9, 10)] == [
        "probe 6", None, "probe 8", "probe 9", "probe 10"]


@contextlib.contextmanager
def served_app(tmp_path, monkeypatch, before_serving=None, **server_options):
    """The real app on a real server in this process, over a copy of MNIST; yields ``(root, stores, open_session)``:
    the stores the server makes (held weakly) and ``open_session()``, which opens a session with Bokeh's own client
    and returns ``(client, session)``. ``before_serving()`` runs before the server starts."""
    import panel as pn
    from bokeh.client import pull_session

    from dashboard.inspector.state import Inspector
    from dashboard.serve import APP, ROUTE, free_port

    root = tmp_path / "projects"
    shutil.copytree(REPO / "projects" / "mnist", root / "mnist", ignore=shutil.ignore_patterns("generated"))
    monkeypatch.setenv("LATENT_INSPECTOR_PROJECTS", str(root))
    monkeypatch.setenv("LATENT_INSPECTOR_WARMUP", "0")
    monkeypatch.setattr(pn.config, "nthreads", pn.config.nthreads)  # the app sets it for the process: restored after
    # The stores the server makes, held weakly. (Not found with gc.get_objects(): on CPython 3.11 that can hand out a
    # tuple another thread is still building, which then fails there with a SystemError.)
    stores = []
    init = Inspector.__init__

    def recording_init(self, **params):
        init(self, **params)
        stores.append(weakref.ref(self))

    monkeypatch.setattr(Inspector, "__init__", recording_init)
    if before_serving is not None:
        before_serving()
    port = free_port()
    server = pn.serve({ROUTE: str(APP)}, port=port, address="127.0.0.1", show=False, threaded=True, print=False,
                      websocket_origin=[f"127.0.0.1:{port}"], **server_options)
    client = ClientThread()

    def open_session():
        deadline = time.monotonic() + 60
        while True:
            try:
                return client, client(pull_session, url=f"http://127.0.0.1:{port}/{ROUTE}",
                                      arguments={"project": "mnist"})
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    try:
        yield root, stores, open_session
    finally:
        client.close()
        server.stop()
        # stop() only asks the server's loop to stop: until its thread ends, a callback of a session of this test may
        # still be running, and Bokeh's curdoc() (a global, not a thread's) is then that session's document in every
        # thread. A later test's dashboard made meanwhile took itself for a served page and opened its project in
        # the background (CI: four tests of three later modules found their project still opening).
        server.join(60)
        assert not server.is_alive(), "the test's server still runs 60 s after it was stopped"
        assert pn.state.curdoc is None, "a session's document of the stopped server is still Bokeh's current one"


def test_a_closed_session_releases_its_store_and_drops_its_queued_work(tmp_path, monkeypatch):
    """A session of the real app on a real server: once its connection closes and the server discards it, its store
    (and with it its views, plots and decodes) is freed at once, although the work it asked for is still queued
    behind other sessions' work; that work is dropped, not run for nobody."""
    import engine.model
    from dashboard.jobs import workers
    from dashboard.shared import INSPECTIONS

    other_work, ran = threading.Event(), []
    pool = workers()

    def hold_the_worker():
        pool.submit(other_work.wait, 120)  # another session's long work holds the one worker

    try:
        with served_app(tmp_path, monkeypatch, hold_the_worker, check_unused_sessions_milliseconds=250,
                        unused_session_lifetime_milliseconds=250) as (root, stores, open_session):
            client, session = open_session()
            assert len(stores) == 1 and stores[0]().busy  # the session's store, built with its page, waiting its turn
            client(session.close)
            deadline = time.monotonic() + 30
            while stores[0]() is not None and time.monotonic() < deadline:
                time.sleep(0.25)
                gc.collect()
            assert stores[0]() is None, "the closed session's store is still alive"
            assert not other_work.is_set()  # freed while its work was still queued
            other_work.set()
            pool.submit(ran.append, True).result(timeout=120)  # the worker has run whatever was left in its queue
            assert ran
            loaded = [key for key in engine.model.LOADED_MODELS.keys() if key[0].startswith(str(root.resolve()))]
            built = [r for r in [*INSPECTIONS.keys(), *INSPECTIONS.building]
                     if Path(r.root).resolve() == root.resolve()]
            assert not loaded and not built, f"the closed session's work was run: {loaded or built}"
    finally:
        other_work.set()


def test_no_result_reaches_a_session_before_its_page_holds_the_document(tmp_path, monkeypatch):
    """The stuck page of the load tests, at its cause. BokehJS drops a patch that arrives before the page has pulled
    its document (it assumes the document it will receive holds the change), and Panel writes a patch straight to the
    socket, where it can overtake a PULL-DOC-REPLY serialized before it: the page then never learns of the figures
    the patch made. So a job's result waits until the page says it is ready (Panel's onload). Bokeh's own client
    pulls the document but never says so: the session's inspection, built on the worker, stays pending (the
    session's document unchanged); once the page is ready, the result lands in the document."""
    import panel as pn

    from dashboard.jobs import PAGE_LOADED

    PAGE_LOADED.clear()  # (a page of an earlier test in this process may have set it)
    with served_app(tmp_path, monkeypatch) as (root, stores, open_session):
        client, session = open_session()
        store = stores[0]()
        doc = store.jobs._doc
        served = {m.id for m in doc.models}
        deadline = time.monotonic() + 300
        while not store.jobs._waiting and time.monotonic() < deadline:  # the worker has built the inspection
            time.sleep(0.25)
        assert store.jobs._waiting, "the inspection was never built"
        time.sleep(1.0)
        assert store.inspection is None and not store.jobs.loaded and not PAGE_LOADED.is_set()
        assert {m.id for m in doc.models} == served  # the document is as the page received it
        doc.add_next_tick_callback(lambda: pn.state._on_load(doc))  # what the page's ready event does
        deadline = time.monotonic() + 60
        while doc.get_model_by_name("latent-figure") is None and time.monotonic() < deadline:
            time.sleep(0.25)
        assert store.inspection is not None and store.jobs.loaded and not store.jobs._waiting
        assert doc.get_model_by_name("latent-figure") is not None  # the picture drawn into the page's document
        assert PAGE_LOADED.is_set()  # what the server's background warm-up waits for
        client(session.close)


def _wait_for(predicate, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)


def test_a_page_of_a_project_held_in_memory_comes_with_its_picture(tmp_path, monkeypatch):
    """A session whose project the process holds already (its model, inputs and labels read by an earlier session)
    and whose inspection is cached opens it at once, without the worker: the document the page pulls holds the plot
    with its points, rather than the page asking for it once loaded and the plot being made then. The cards below
    the first screen are left out of that document and come once the page has loaded."""
    import panel as pn
    from bokeh.document import without_document_lock
    from bokeh.models import Button

    def buttons(doc):
        return {model.label for model in doc.select({"type": Button})}

    def page_loads(doc):  # what the page's ready event does
        doc.add_next_tick_callback(lambda: pn.state._on_load(doc))

    with served_app(tmp_path, monkeypatch) as (root, stores, open_session):
        client, first_session = open_session()
        first = stores[0]()
        assert first.inspection is None  # read from disk: in the background, and drawn once the page has loaded
        page_loads(first.jobs._doc)
        _wait_for(lambda: first.inspection is not None, "the first session's inspection")

        client, second_session = open_session()
        second = stores[1]()
        doc = second.jobs._doc
        assert second.inspection is first.inspection and not second.jobs.loaded
        figure = doc.get_model_by_name("latent-figure")
        assert figure is not None and "10,000 points" in figure.title.text
        assert "Train probe on this layer" not in buttons(doc)

        # The page shows its plot before the server has read its ready event: a tap then, made as HoloViews makes it
        # (its stream's callback on the event loop, without the document's lock), is decoded and its image sent.
        raised, x, y = [], *map(float, second.inspection.embedding[0])

        @without_document_lock
        def tap():
            try:
                second.decode_at(x, y)
            except Exception as exc:  # noqa: BLE001 (what the server would log, and the page would never see)
                raised.append(exc)

        sent = []
        doc.get_model_by_name("decoded-output-source").on_change("data", lambda attr, old, new: sent.append(new))
        doc.add_next_tick_callback(tap)
        _wait_for(lambda: raised or sent, "the tap's decoded image")
        assert not raised, raised
        page_loads(doc)
        _wait_for(lambda: "Train probe on this layer" in buttons(doc), "the probe's card once the page has loaded")
        assert doc.get_model_by_name("latent-figure") is figure  # drawn once, with the page's first document
        client(first_session.close)
        client(second_session.close)
