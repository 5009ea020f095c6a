"""Keyboard shortcuts and the first-visit hint of the page.

:class:`Shortcuts` is a small browser component: it listens to the page's keys (not while the user types in a
field) and sends the server what they ask for; ``?`` shows and hides the list of shortcuts, drawn in the browser.
The first time a browser opens the dashboard it shows a short hint of what to do (remembered in the browser's
local storage, so it is shown once), until it is closed or the user first clicks in the page.
"""

from __future__ import annotations

import panel as pn
import param
from panel.custom import JSComponent

__all__ = ["HINT", "SHORTCUTS", "Shortcuts"]

#: (key, what it does), as the ``?`` overlay lists them.
SHORTCUTS = (
    ("Escape", "clear the markers: the decoded point and the history (saved records stay)"),
    ("?", "show or hide this list"),
    ("Ctrl + wheel", "zoom the plot under the cursor (the wheel alone scrolls the page)"),
    ("drag", "pan the plot; the toolbar above it has box zoom and reset"),
)
#: What the first visit says.
HINT = ("Tap anywhere in the latent plot, even far from the data, to decode that point; hover to see the nearest "
        "sample. Press ? for the shortcuts.")


class Shortcuts(JSComponent):
    """The page's keyboard shortcuts (:data:`SHORTCUTS`) and the first-visit hint (:data:`HINT`).

    Parameters
    ----------
    on_escape : callable, optional
        Called on the server when the user presses Escape.
    """

    shortcuts = param.List(default=[list(s) for s in SHORTCUTS], doc="(key, meaning) rows of the ? overlay")
    hint = param.String(default=HINT, doc="The first visit's hint ('' for none)")

    _esm = """
    const CSS = `
      .li-keys { position: fixed; right: 24px; bottom: 24px; z-index: 1000; max-width: 420px;
                 background: #fff; border: 1px solid #c9d3e6; border-radius: 8px; padding: 12px 16px;
                 box-shadow: 0 4px 14px rgba(0,0,0,.18); font: 13px/1.45 sans-serif; color: #24324d; }
      .li-keys table { border-collapse: collapse; } .li-keys td { padding: 2px 10px 2px 0; vertical-align: top; }
      .li-keys kbd { white-space: nowrap; background: #eef1f7; border: 1px solid #c9d3e6; border-radius: 3px;
                     padding: 0 5px; }
      .li-keys button { float: right; margin: -4px -8px 0 8px; border: none; background: none; font-size: 16px;
                        cursor: pointer; color: #5a6b8c; }`;
    export function render({ model, el }) {
      const style = document.createElement("style"); style.textContent = CSS; el.appendChild(style);
      const box = document.createElement("div"); box.className = "li-keys"; box.style.display = "none";
      el.appendChild(box);
      const close = () => { box.style.display = "none"; };
      const show = (html, kind) => {
        box.innerHTML = "<button title='Close' aria-label='Close'>×</button>" + html;
        box.dataset.kind = kind; box.style.display = "block";
        box.querySelector("button").onclick = () => { close(); remember(); };
      };
      const remember = () => { try { localStorage.setItem("latent-inspector-hint", "seen"); } catch (e) {} };
      const rows = () => "<b>Keyboard shortcuts</b><table>" + model.shortcuts.map(
        ([k, v]) => `<tr><td><kbd>${k}</kbd></td><td>${v}</td></tr>`).join("") + "</table>";
      let seen = "seen";
      try { seen = localStorage.getItem("latent-inspector-hint"); } catch (e) {}
      if (model.hint && seen !== "seen") {
        show(`<b>Welcome.</b> ${model.hint}`, "hint");
        // the first click elsewhere in the page starts the work the hint describes: it goes, and the controls it
        // sits over (the corner of the cards below the plot) are free
        const started = (event) => {
          if (event.composedPath && event.composedPath().includes(box)) return;
          document.removeEventListener("pointerdown", started, true);
          if (box.dataset.kind === "hint") { close(); remember(); }
        };
        document.addEventListener("pointerdown", started, true);
      }
      const onKey = (event) => {
        const t = event.target, tag = (t && t.tagName || "").toLowerCase();
        const path = event.composedPath ? event.composedPath() : [];
        const typing = path.some((n) => n && (n.isContentEditable ||
          ["input", "textarea", "select"].includes((n.tagName || "").toLowerCase())));
        if (typing || ["input", "textarea", "select"].includes(tag)) return;
        if (event.key === "Escape") {
          if (box.style.display !== "none") { close(); remember(); }
          model.send_msg({key: "Escape"});
        } else if (event.key === "?") {
          if (box.style.display !== "none" && box.dataset.kind === "keys") close(); else show(rows(), "keys");
          remember();
        }
      };
      document.addEventListener("keydown", onKey);
      model.on("remove", () => document.removeEventListener("keydown", onKey));
    }
    """

    def __init__(self, on_escape=None, **params):
        super().__init__(**params)
        self._on_escape = on_escape
        self._doc = pn.state.curdoc if pn.state.curdoc is not None and pn.state.curdoc.session_context else None

    def _handle_msg(self, msg):
        """A key pressed in the page. The answer runs on the session's document, in its lock: a message is handled
        on whatever thread received it, and changes made from there may never reach the page."""
        if not (isinstance(msg, dict) and msg.get("key") == "Escape" and self._on_escape is not None):
            return
        if self._doc is not None:
            self._doc.add_next_tick_callback(self._on_escape)
        else:
            self._on_escape()
