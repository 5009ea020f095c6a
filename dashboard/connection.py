"""What a page says when it loses its server (restarted, stopped, killed, or the network gone).

The session lived in the server's memory, so a page whose server went away cannot carry on: its clicks reach nobody.
Panel shows ``pn.config.disconnect_notification`` in a toast that stays when the websocket closes; ours says so and
offers a reload. The page's address holds its state (project, layer, model version, reducer and its parameters,
colouring, view range, tapped point: :mod:`dashboard.urlstate`), so the reloaded page, a new session of the restarted
server, opens where the lost one was.

A page can also stop hearing from a server that is up: while a session's Bokeh document is on hold, its changes are
collected and sent when the hold ends. A hold that never ends leaves the page still, every click handled on the
server and nothing shown. :class:`HoldWatch` says so in the server's log.
"""

from __future__ import annotations

import logging
import time

import panel as pn

__all__ = ["LOST", "HoldWatch", "notify_when_lost", "watch_holds"]

log = logging.getLogger(__name__)

#: The toast of a page whose connection closed: Notyf renders it as HTML. (``location.reload()`` loads the address the
#: page has now, which :class:`dashboard.urlstate.UrlState` keeps up to date.)
LOST = ("<span class='li-connection-lost'>The connection to the server is lost: nothing on this page is computed any "
        "more. Once the server is back, <a href='#' class='li-reload' style='color: inherit; font-weight: 600' "
        "onclick='window.location.reload(); return false'>reload the page</a>: it opens with the same project, "
        "layer, reducer, view and tapped point.</span>")


def notify_when_lost() -> None:
    """Show :data:`LOST` in the current session's page when its connection closes (call before the template is
    made: the template takes its notification area from ``pn.config.notifications``). Through ``pn.extension``,
    which also loads the toasts' script (Notyf) into the page; setting ``pn.config`` alone left it out, and the page
    failed to render."""
    pn.extension("notifications", notifications=True, disconnect_notification=LOST)


class HoldWatch:
    """Notices a document left on hold (``doc.hold()`` without its ``unhold()``): :meth:`check`, called every second
    or so, logs a warning once the hold has lasted ``after_s`` seconds, and again when it ends.

    Holds are short: Panel and HoloViews hold a document around one batch of changes, for milliseconds. HoloViews
    saves the hold in force and restores it after its batch, without a lock, and Panel runs a session's callbacks on
    several threads: across the end of another thread's hold, it restores a hold nobody will end, and what the
    document collects then never reaches the page. The warning names the session and the number of changes waiting,
    for the log of a page that went still.

    Example
    -------
    >>> from bokeh.document import Document
    >>> doc = Document(); watch = HoldWatch(doc, after_s=5)
    >>> doc.hold(); watch.check(now=0.0) is None and watch.check(now=6.0).startswith("session")
    True
    """

    def __init__(self, doc, after_s: float = 5.0, name: str = ""):
        self.doc, self.after_s, self.name = doc, after_s, name or f"document {id(doc):x}"
        self._since: float | None = None
        self._warned = False

    def check(self, now: float | None = None) -> str | None:
        """The warning logged by this call, if any."""
        now = time.monotonic() if now is None else now
        callbacks = self.doc.callbacks
        if not callbacks.hold_value:
            message = None
            if self._warned:
                message = f"session {self.name}: its document's hold ended after {now - self._since:.0f} s"
                log.warning(message)
            self._since, self._warned = None, False
            return message
        if self._since is None:
            self._since = now
        if self._warned or now - self._since < self.after_s:
            return None
        self._warned = True
        waiting = len(callbacks._held_events)
        message = (f"session {self.name}: its document has been on hold ({callbacks.hold_value!r}) for "
                   f"{now - self._since:.0f} s, {waiting} change(s) waiting: they have not reached the page")
        log.warning(message)
        return message


def watch_holds(period_ms: int = 1000) -> None:
    """Check the current session's document for a hold that does not end (:class:`HoldWatch`), every ``period_ms``
    on the server's event loop. Nothing outside a served session."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return
    watch = HoldWatch(doc, name=doc.session_context.id)
    # Bokeh's own periodic callback, on the server alone: Panel's marks the session busy on each call, and the page's
    # busy indicator would follow it every second.
    doc.add_periodic_callback(watch.check, period_ms)
