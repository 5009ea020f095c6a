"""Colours of a map layer (:mod:`engine.explore.landscape`): one RGBA pixel per cell, for the plot and for PNGs.

* decision: each class in the latent plot's colour of that class (:func:`~engine.render.color_key`), its opacity
  rising from 0 at chance (1 / classes) to ``max_alpha`` at certainty;
* the measures: colorcet's ``fire`` run backwards and stopped before black (white, yellow, orange, red, dark red), on
  a fixed scale per layer (:data:`SCALES`) so that two views or two maps compare by eye; ``log`` scales for
  quantities that span decades. Low values are pale, so the points stay readable where the map is sound, and the
  places to doubt stand out in red;
* the atlas: its picture.

Pixels are packed as Bokeh's ``image_rgba`` wants them: uint32 (R, G, B, A bytes), row 0 at the bottom (lowest y).
"""

from __future__ import annotations

import numpy as np

from engine.render.frame import color_key

__all__ = ["SCALES", "colorbar", "to_rgba"]

#: Per measure layer: (low, high, log?) of its colour scale; values beyond are clipped to the ends.
SCALES = {
    "uncertainty": (0.0, 1.0, False),
    "error": (0.01, 10.0, True),
    "distance": (1.0, 100.0, True),
    "gradient": (0.5, 50.0, True),  # over the map's median: 1 pale, the verdict's folds (3, 10) orange to red
}


def _hex_rgb(colors) -> np.ndarray:
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colors], dtype=np.uint8)


def _fire(n: int = 256) -> np.ndarray:
    import colorcet as cc

    ramp = cc.fire[::-1][: int(0.85 * len(cc.fire))]  # white to dark red, without the black end
    return _hex_rgb([ramp[i] for i in np.linspace(0, len(ramp) - 1, n).astype(int)])


def _pack(rgba: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgba, dtype=np.uint8).view(np.uint32).reshape(rgba.shape[:2])


def scaled(layer: str, values) -> np.ndarray:
    """``values`` of measure ``layer`` on its colour scale, 0..1 (NaN stays NaN)."""
    lo, hi, log = SCALES[layer]
    v = np.asarray(values, dtype=np.float64)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(np.maximum(v, lo * 1e-3))
        lo, hi = np.log10(lo), np.log10(hi)
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0)


def to_rgba(m, max_alpha: float = 0.85) -> np.ndarray:
    """The cells of :class:`~engine.explore.landscape.LandscapeMap` ``m`` as packed RGBA (uint32, shape
    ``m.shape``), row 0 at the bottom.

    Examples
    --------
    >>> from engine.explore.landscape import LandscapeMap
    >>> m = LandscapeMap("decision", (0, 1), (0, 1), np.array([[0, 1]], np.float32), np.array([[1.0, 0.5]]), ("a", "b"))
    >>> rgba = to_rgba(m).view(np.uint8).reshape(1, 2, 4)
    >>> rgba[0, 0, :3].tolist(), int(rgba[0, 0, 3]), int(rgba[0, 1, 3])   # class a's colour; certain; chance
    ([31, 119, 180], 217, 0)
    """
    if m.layer == "atlas":
        pic = np.asarray(m.picture)[::-1]
        rgba = np.concatenate([pic[..., :3], np.full((*pic.shape[:2], 1), 255, np.uint8)], axis=2)
        return _pack(rgba)
    v = np.asarray(m.values)
    rgba = np.zeros((*v.shape, 4), dtype=np.uint8)
    finite = np.isfinite(v)
    if m.layer == "decision":
        names = list(m.names)
        key = color_key(names)
        palette = _hex_rgb([key[str(n)] for n in names])
        rgba[..., :3] = palette[np.where(finite, v, 0).astype(int)]
        c = max(2, len(names))
        conf = np.clip((np.asarray(m.alpha, np.float64) - 1.0 / c) / (1.0 - 1.0 / c), 0.0, 1.0)
        rgba[..., 3] = np.where(finite, np.round(255 * max_alpha * conf), 0).astype(np.uint8)
        return _pack(rgba)
    fire = _fire()
    s = scaled(m.layer, v)
    idx = np.round(np.where(finite, s, 0) * (len(fire) - 1)).astype(int)
    rgba[..., :3] = fire[idx]
    rgba[..., 3] = np.where(finite, round(255 * max_alpha), 0)
    return _pack(rgba)


def colorbar(layer: str, width: int = 160) -> tuple[list[str], tuple[str, str]]:
    """The colours of measure ``layer``'s scale, left to right (hex), and the labels of its two ends."""
    lo, hi, _ = SCALES[layer]
    fire = _fire()
    colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in fire[np.linspace(0, len(fire) - 1, width).astype(int)]]
    if layer == "uncertainty":
        return colors, (f"{lo:g}", f"{hi:g}")
    return colors, (f"≤ {lo:g}", f"≥ {hi:g}")
