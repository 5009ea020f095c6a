"""One sample as a picture, by the project's view kind: what the CLI's PNGs and the thumbnails show.

``image`` samples are scaled to 0..255 grey or RGB; ``series`` are drawn as one line per channel; ``vector`` and
``probabilities`` as bars. Pure NumPy and PIL: no screen.
"""

from __future__ import annotations

import numpy as np

from .project import ViewSpec

#: Channel colours of series plots (Tableau 10).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def as_view_shape(sample, view: ViewSpec) -> np.ndarray:
    """``sample`` reshaped to the view's shape when it has one and the sizes agree."""
    a = np.asarray(sample, dtype=np.float32)
    if view.shape is not None and a.size == int(np.prod(view.shape)):
        return a.reshape(view.shape)
    return a


def to_image(sample, view: ViewSpec, size: int = 64) -> np.ndarray:
    """A ``size x size`` RGB uint8 picture of one sample.

    Example
    -------
    >>> to_image(np.zeros((28, 28)), ViewSpec("image", (28, 28)), size=32).shape
    (32, 32, 3)
    """
    from PIL import Image

    a = as_view_shape(sample, view)
    if view.kind == "image":
        img = _image(a)
        return np.asarray(Image.fromarray(img).resize((size, size), Image.NEAREST).convert("RGB"))
    if view.kind == "series" and a.ndim == 2:
        return _lines(a, size)
    return _bars(a.reshape(-1), size, fixed=(0.0, 1.0) if view.kind == "probabilities" else None)


def _image(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    lo, hi = float(a.min()), float(a.max())
    if 0.0 <= lo and hi <= 1.0:  # already in [0, 1] (sigmoid outputs): keep the absolute scale
        lo, hi = 0.0, 1.0
    elif 0.0 <= lo and hi <= 255.0 and hi > 1.0:
        lo, hi = 0.0, 255.0
    scaled = np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)
    return (scaled * 255).astype(np.uint8)


def _lines(a: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    t = np.linspace(1, size - 2, len(a))
    lo, hi = float(a.min()), float(a.max())
    span = max(hi - lo, 1e-12)
    for c in range(a.shape[1]):
        y = (size - 2) - (a[:, c] - lo) / span * (size - 3)
        draw.line(list(zip(t.tolist(), y.tolist())), fill=PALETTE[c % len(PALETTE)], width=1)
    return np.asarray(img)


def _bars(v: np.ndarray, size: int, fixed=None) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = fixed if fixed is not None else (min(float(v.min()), 0.0), max(float(v.max()), 0.0))
    span = max(hi - lo, 1e-12)
    zero = (size - 2) - (0 - lo) / span * (size - 3)
    width = (size - 2) / max(len(v), 1)
    for i, value in enumerate(v):
        top = (size - 2) - (value - lo) / span * (size - 3)
        x0 = 1 + i * width
        draw.rectangle([x0, min(top, zero), x0 + max(width - 1, 1), max(top, zero)], fill=PALETTE[0])
    return np.asarray(img)
