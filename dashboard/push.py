"""Data pushed straight into a Bokeh source: the per-decode updates that must not wait for a HoloViews re-render.

A HoloViews update ends by recomputing the references of every model of the page (Bokeh's ``freeze`` context),
about 40 ms on this page and machine, on each decode; the tap-to-image budget is 100 ms. The figures are still built
by HoloViews; what changes on every decode (the decoded image, the markers over the latent plot) is written into
their ``ColumnDataSource`` directly, which Bokeh sends to the browser as one small patch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from functools import partial

import panel as pn

__all__ = ["Live", "document_of", "later", "on_event_loop", "push"]


def push(source, data: dict, *, delay_ms: int = 0) -> None:
    """Replace ``source.data`` with ``data``, under the rules Panel follows for its own models: on the server's
    event loop, dispatched at once (``pn.io.unlocked``); from another thread, scheduled under the document lock.

    ``delay_ms`` sends it that much later (on a server), so that a more urgent update is painted first.
    """
    doc = source.document
    in_server = doc is not None and doc.session_context is not None
    if in_server and delay_ms > 0:
        schedule = partial(doc.add_timeout_callback, partial(_set, source, data), delay_ms)
        if on_event_loop():
            schedule()
        else:
            doc.add_next_tick_callback(schedule)
        return
    if in_server and not on_event_loop():
        doc.add_next_tick_callback(partial(_set, source, data))
        return
    _set(source, data)


def on_event_loop() -> bool:
    """True on the thread that runs the server's event loop (the main thread of ``panel serve``; the server's own
    thread in a threaded server), False on the threads of Panel's pool."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _set(source, data: dict, locked: bool = False) -> None:
    """``source.data = data`` through Panel's dispatch (``pn.io.unlocked``), on the server's event loop.

    Panel may hold messages it serialized earlier (a new figure among them) and write them a moment later; a change
    written by Bokeh's own path can overtake them: the page then applies it to a model it does not know yet
    ("reference pNNNN isn't known"), or the held message, written after it, puts the older data back (a saved
    record's star that never showed). Through Panel's dispatch, a change is written in order behind those.

    Until Panel has seen the page's ready event its dispatch is off (``pn.io.unlocked`` does nothing), yet a page
    whose first document holds the plot can be tapped before the server has read that event; HoloViews runs a tap's
    stream callback without the document's lock, and Bokeh refuses a change made so (a RuntimeError: the tap was
    lost). The change is then made on the next tick, under the lock (``locked``), by Bokeh's own path.
    """
    from panel.io.state import set_curdoc

    doc = source.document
    if doc is None:
        source.data = data
        return
    with set_curdoc(doc):
        if not locked and doc.session_context is not None and not pn.state.loaded:
            doc.add_next_tick_callback(partial(_set, source, data, locked=True))
            return
        with pn.io.unlocked():
            source.data = data


def document_of(*viewables):
    """The Bokeh document the models of the Panel ``viewables`` (panes, layouts) are in on this page, or None
    before they are on one."""
    for viewable in viewables:
        for model, _ in getattr(viewable, "_models", {}).values():
            if model.document is not None:
                return model.document
    return None


def later(fn, delay_ms: int, doc=None) -> None:
    """Call ``fn()`` ``delay_ms`` later on the server's event loop, under the lock of ``doc`` (the document of the
    models ``fn`` changes; default Panel's current one), so that an urgent update sent before it (the decoded image)
    reaches the browser and is painted first; at once outside a server.

    Panel's updates made by ``fn`` (a pane's new text, say) then travel in a message of their own: laid out by the
    browser after the image's frame, not before it. Give ``doc`` where it is known: the current document is a
    context variable of the thread, and a callback scheduled on another session's document (one whose page has
    closed, say) would never run for this one.
    """
    current = pn.state.curdoc
    if doc is None:
        doc = current
    elif current is not None and current is not doc and current.session_context is not None:
        logging.getLogger(__name__).warning("an update of one session was asked for in another session's context")
    if doc is None or doc.session_context is None:
        fn()
        return
    schedule = partial(doc.add_timeout_callback, fn, delay_ms)
    if on_event_loop():
        schedule()
    else:
        doc.add_next_tick_callback(schedule)


class Live:
    """The data sources, added by a plot hook to the figure now on the page, that a view updates in place.

    Panel runs callbacks on a pool of threads (``pn.config.nthreads``), so a plot can be redrawn on one thread (its
    hook reading the state into new sources) while the state changes on another (its watcher pushing the change into
    the sources it holds). Unordered, the push reaches the figure leaving the page and the new one keeps the state of
    before: a saved record's star missing after a restart. Both go through one lock here, and each reads the state
    inside it, so whichever comes second sees the other's work.

    ``attach(make)`` stores ``make()`` (a dict of sources built from the current state) as the current figure's;
    ``update(data, key)`` pushes ``data()`` into the source ``key`` (every source when None).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._sources: dict = {}

    def attach(self, make) -> None:
        with self._lock:
            self._sources = dict(make())

    def update(self, data, key=None, *, delay_ms: int = 0) -> None:
        with self._lock:
            for name, source in self._sources.items():
                if key is None or name == key:
                    push(source, data(name), delay_ms=delay_ms)

    def __getitem__(self, key):
        return self._sources[key]

    def __contains__(self, key) -> bool:
        return key in self._sources
