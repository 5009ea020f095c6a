"""Data pushed straight into a Bokeh source: the per-decode updates that must not wait for a HoloViews re-render.

A HoloViews update ends by recomputing the references of every model of the page (Bokeh's ``freeze`` context),
about 40 ms on this page and machine, on each decode; the tap-to-image budget is 100 ms. The figures are still built
by HoloViews; what changes on every decode (the decoded image, the markers over the latent plot) is written into
their ``ColumnDataSource`` directly, which Bokeh sends to the browser as one small patch.
"""

from __future__ import annotations

import threading
from functools import partial

import panel as pn

__all__ = ["later", "push"]


def push(source, data: dict, *, delay_ms: int = 0) -> None:
    """Replace ``source.data`` with ``data``, under the rules Panel follows for its own models: on the server's
    event loop, dispatched at once (``pn.io.unlocked``); from another thread, scheduled under the document lock.

    ``delay_ms`` sends it that much later (on a server), so that a more urgent update is painted first.
    """
    doc = source.document
    in_server = doc is not None and doc.session_context is not None
    if in_server and delay_ms > 0:
        schedule = partial(doc.add_timeout_callback, partial(setattr, source, "data", data), delay_ms)
        if threading.current_thread() is threading.main_thread():
            schedule()
        else:
            doc.add_next_tick_callback(schedule)
        return
    if in_server and threading.current_thread() is not threading.main_thread():
        doc.add_next_tick_callback(partial(setattr, source, "data", data))
        return
    with pn.io.unlocked():
        source.data = data


def later(fn, delay_ms: int) -> None:
    """Call ``fn()`` ``delay_ms`` later on the server's event loop, under the document lock, so that an urgent
    update sent before it (the decoded image) reaches the browser and is painted first; at once outside a server.

    Panel's updates made by ``fn`` (a pane's new text, say) then travel in a message of their own: laid out by the
    browser after the image's frame, not before it.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        fn()
        return
    schedule = partial(doc.add_timeout_callback, fn, delay_ms)
    if threading.current_thread() is threading.main_thread():
        schedule()
    else:
        doc.add_next_tick_callback(schedule)
