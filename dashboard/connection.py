"""What a page says when it loses its server (restarted, stopped, killed, or the network gone).

The session lived in the server's memory, so a page whose server went away cannot carry on: its clicks reach nobody.
Panel shows ``pn.config.disconnect_notification`` in a toast that stays when the websocket closes; ours says so and
offers a reload. The page's address holds its state (project, layer, model version, reducer and its parameters,
colouring, view range, tapped point: :mod:`dashboard.urlstate`), so the reloaded page, a new session of the restarted
server, opens where the lost one was.
"""

from __future__ import annotations

import panel as pn

__all__ = ["LOST", "notify_when_lost"]

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
