"""A small box that follows the pointer over a named Bokeh figure: the hover preview of the latent plot.

The box is placed by the browser alone: a pointer listener moves it to the cursor while the cursor is over the
figure's frame and hides it elsewhere (and while the page scrolls), so moving the mouse sends nothing more to the
server and re-renders nothing. The
server only replaces what the box says (:attr:`PointerTip.content`, an HTML snippet) when the sample under the
cursor changes, one small message.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

__all__ = ["PointerTip"]


class PointerTip(JSComponent):
    """A tooltip at the cursor over the Bokeh figure named :attr:`figure`, showing :attr:`content`.

    Parameters
    ----------
    figure : str
        The figure's model name (see :func:`dashboard.widgets.name_models`).
    content : str
        HTML of the box ('' hides it).

    Example
    -------
    >>> tip = PointerTip(figure="latent-figure", width=0, height=0, margin=0)     # doctest: +SKIP
    >>> tip.content = "<b>sample 12</b>"                                          # doctest: +SKIP
    """

    figure = param.String(default="", doc="Model name of the figure the box follows the pointer over")
    content = param.String(default="", doc="HTML of the box ('' hides it)")

    _esm = """
    export function render({ model, el }) {
      const tip = document.createElement("div");
      tip.className = "hover-tip";
      tip.style.display = "none";
      let view = null, over = false, at = null;
      function figureView() {
        if (view != null && view.canvas_view != null && view.canvas_view.el.isConnected) return view;
        if (!window.Bokeh || !Bokeh.index) return null;
        view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === model.figure && v.frame != null
                                                      && v.canvas_view.el.isConnected) || null;
        return view;
      }
      function show() {
        if (!over || !model.content || at == null) { tip.style.display = "none"; return; }
        tip.style.display = "flex";
        const w = tip.offsetWidth, h = tip.offsetHeight;
        const x = at[0] + 16 + w > window.innerWidth ? at[0] - 12 - w : at[0] + 16;
        const y = at[1] + 16 + h > window.innerHeight ? at[1] - 12 - h : at[1] + 16;
        tip.style.left = `${x}px`;
        tip.style.top = `${y}px`;
      }
      function moved(event) {
        const v = figureView();
        if (v == null) { over = false; show(); return; }
        const box = v.canvas_view.el.getBoundingClientRect(), f = v.frame.bbox;
        const sx = event.clientX - box.left, sy = event.clientY - box.top;
        over = sx >= f.left && sx <= f.right && sy >= f.top && sy <= f.bottom;
        at = [event.clientX, event.clientY];
        show();
      }
      function away() { over = false; show(); }  // the page scrolled under a still pointer: the box goes
      document.addEventListener("pointermove", moved, {passive: true, capture: true});
      window.addEventListener("scroll", away, {passive: true, capture: true});
      window.addEventListener("wheel", away, {passive: true, capture: true});
      model.on("content", () => { tip.innerHTML = model.content; show(); });
      model.on("remove", () => {
        document.removeEventListener("pointermove", moved, {capture: true});
        window.removeEventListener("scroll", away, {capture: true});
        window.removeEventListener("wheel", away, {capture: true});
      });
      tip.innerHTML = model.content;
      return tip;
    }
    """

    _stylesheets = ["""
    .hover-tip { position: fixed; z-index: 1000; pointer-events: none; display: flex; gap: 8px; align-items: center;
                 background: rgba(255, 255, 255, 0.96); border: 1px solid #c9d3e6; border-radius: 5px;
                 padding: 5px 8px; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.15); font: 12px sans-serif; color: #24324d;
                 white-space: nowrap; }
    .hover-tip img { width: 64px; height: 64px; image-rendering: pixelated; border: 1px solid #e3e7ef; }
    """]
