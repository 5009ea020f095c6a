"""How long a button may stay down before BokehJS calls it a press: longer than Bokeh's 300 ms, on every page.

BokehJS turns a button held still for 300 ms (``UIGestures.press_threshold``) into a *press*: the release is then
no tap, and a move after it no drag (``_pointer_move`` ignores moves while pressing). No tool of the dashboard uses
presses, so the 300 ms only lost work: a slow click decoded nothing, a drag begun after a short pause neither panned
nor selected, and on a loaded machine a quick click or drag whose events reached the page late did the same (the
load test lost a tap whose button-up came 310 ms after its button-down). :class:`Gestures` raises the threshold for
the page to :data:`PRESS_MS`; a click held longer still decodes through its press-up
(:func:`dashboard.latent.click_streams`).
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

__all__ = ["PRESS_MS", "Gestures"]

#: Milliseconds a still button may stay down and still be a tap, or the start of a drag.
PRESS_MS = 1500


class Gestures(JSComponent):
    """Sets BokehJS's press threshold for every figure of the page to :attr:`press_ms` (an invisible component:
    place it once on the page, at no size).

    Example
    -------
    >>> Gestures(width=0, height=0, margin=0)   # doctest: +SKIP
    """

    press_ms = param.Integer(default=PRESS_MS, bounds=(300, None), doc="Milliseconds before a still button is a "
                             "press (BokehJS's default: 300)")

    _esm = """
    export function render({ model, el }) {
      const apply = () => {
        const gestures = window.Bokeh && window.Bokeh.require && window.Bokeh.require("core/ui_gestures");
        if (gestures && gestures.UIGestures) gestures.UIGestures.press_threshold = model.press_ms;
        el.dataset.pressMs = gestures && gestures.UIGestures ? gestures.UIGestures.press_threshold : "";
      };
      apply();
      model.on("press_ms", apply);
    }
    """
