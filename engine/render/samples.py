"""One sample as a picture, by the project's view kind: what the CLI's PNGs, the dashboard's thumbnails and the
Units tab's strips show.

``image`` samples become grey or RGB pixels by one rule (:func:`to_pixels`): values already in ``[0, 1]`` or in
``[0, 255]`` keep their absolute brightness, so a half-bright output stays half bright and an optimized input
compares with a dataset example; any other range is stretched to the full scale. ``series`` are drawn as one line
per channel, ``vector`` and ``probabilities`` as bars (probabilities on a fixed ``[0, 1]`` scale). Pure NumPy and
PIL: no screen.
"""

from __future__ import annotations

import numpy as np

from engine.errors import RenderError

__all__ = ["PALETTE", "sample_picture", "to_image", "to_pixels", "to_rgb_array", "view_shape"]

#: Channel colours of series and bars (category10, the latent plot's class colours).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def view_shape(view, array) -> tuple[str, tuple[int, ...]]:
    """The view kind and the shape to draw ``array`` with: the view's (a :class:`~engine.data.project.ViewSpec`)
    when its size agrees, else the array's own without its unit axes (an image that is not 2-D is drawn as a
    vector; a one-axis series as one channel).

    Example
    -------
    >>> from engine.data.project import ViewSpec
    >>> view_shape(ViewSpec("image", (28, 28)), np.zeros(784))
    ('image', (28, 28))
    """
    kind = getattr(view, "kind", None) or "vector"
    shape = tuple(view.shape) if getattr(view, "shape", None) else None
    size = int(np.prod(np.shape(array)))
    if shape is None or int(np.prod(shape)) != size:
        shape = tuple(d for d in np.shape(array) if d != 1) or (size,)
        if kind == "image" and len(shape) == 1:
            kind = "vector"
        if kind == "series" and len(shape) == 1:
            shape = (shape[0], 1)
    return kind, shape


def to_pixels(values) -> np.ndarray:
    """Values as 8-bit levels, by the one rule of every picture: ``uint8`` kept; values in ``[0, 1]`` times 255;
    values in ``[0, 255]`` (above 1) kept; any other range stretched from its minimum to its maximum. NaN is 0.

    Example
    -------
    >>> to_pixels(np.array([0.0, 0.5, 1.0])).tolist(), to_pixels(np.array([-2.0, 2.0])).tolist()
    ([0, 127, 255], [0, 255])
    """
    a = np.asarray(values)
    if a.dtype == np.uint8:
        return a
    a = np.nan_to_num(a.astype(np.float64), nan=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
    if 0.0 <= lo and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif 0.0 <= lo and hi <= 255.0:
        lo, hi = 0.0, 255.0
    scaled = np.clip((a - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return (scaled * 255).astype(np.uint8)


def to_rgb_array(image) -> np.ndarray:
    """An image sample (2-D grey, (H, W, 1), RGB or RGBA; any numeric range) as an (H, W, 3) uint8 array, scaled by
    :func:`to_pixels`.

    Raises
    ------
    RenderError
        Not an image shape.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise RenderError(f"an image sample is 2-D or (H, W, 3|4), got shape {a.shape}")
    a = to_pixels(a[..., :3] if a.ndim == 3 else a)
    return np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a


def sample_picture(sample, view, width: int = 64, height: int | None = None) -> np.ndarray:
    """A ``height x width`` RGB uint8 picture of one sample, drawn as ``view`` says (:func:`view_shape`).

    An image keeps its aspect ratio within the box (pixels repeated when enlarged, smoothed when reduced); series,
    vectors and probabilities fill it.

    Example
    -------
    >>> from engine.data.project import ViewSpec
    >>> sample_picture(np.zeros((28, 28)), ViewSpec("image", (28, 28)), 56).shape
    (56, 56, 3)
    """
    from PIL import Image

    height = width if height is None else height
    a = np.asarray(sample, dtype=np.float32)
    kind, shape = view_shape(view, a)
    data = a.reshape(shape)
    if kind == "image":
        img = Image.fromarray(to_rgb_array(data))
        scale = min(width / img.width, height / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
        return np.asarray(img)
    if kind == "series":
        return _lines(data, width, height)
    if kind == "probabilities":
        names = getattr(view, "class_names", None)
        return _bars(data.reshape(-1), width, height, fixed=(0.0, 1.0), names=names)
    return _bars(data.reshape(-1), width, height)


def to_image(sample, view, size: int = 64) -> np.ndarray:
    """A ``size x size`` RGB uint8 picture of one sample (:func:`sample_picture` in a square).

    Example
    -------
    >>> from engine.data.project import ViewSpec
    >>> to_image(np.zeros((28, 28)), ViewSpec("image", (28, 28)), size=32).shape
    (32, 32, 3)
    """
    return sample_picture(sample, view, size, size)


def _span(values, fixed=None) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo, hi = fixed if fixed is not None else ((float(finite.min()), float(finite.max())) if finite.size else (0, 1))
    return lo, (hi - lo if hi > lo else 1.0)


def _lines(a: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    t = np.linspace(1, width - 2, len(a))
    lo, span = _span(a)
    for c in range(a.shape[1]):
        y = (height - 2) - (np.nan_to_num(a[:, c], nan=lo) - lo) / span * (height - 3)
        draw.line(list(zip(t.tolist(), y.tolist())), fill=PALETTE[c % len(PALETTE)], width=1)
    return np.asarray(img)


def _bars(v: np.ndarray, width: int, height: int, fixed=None, names=None) -> np.ndarray:
    """Bars from zero (``fixed``: on that value range); with ``names`` (probabilities), the most probable class and
    its value are written in the top left corner, so a small tile still says what it shows."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    lo, span = _span(v, fixed)
    if fixed is None:  # bars grow from zero
        lo, span = min(lo, 0.0), max(lo + span, 0.0) - min(lo, 0.0) or 1.0

    def y_of(value):
        return (height - 2) - (float(np.nan_to_num(value, nan=lo)) - lo) / span * (height - 3)

    zero = y_of(0.0)
    step = (width - 2) / max(len(v), 1)
    for i, value in enumerate(v):
        top = y_of(value)
        x0 = 1 + i * step
        draw.rectangle([x0, min(top, zero), x0 + max(step - 1, 1), max(top, zero)], fill=PALETTE[0])
    if fixed is not None and len(v) and np.isfinite(v).any():
        top = int(np.nanargmax(v))
        name = names[top] if names is not None and top < len(names) else str(top)
        draw.text((2, 1), f"{name} {float(v[top]):.2f}", fill="black")
    return np.asarray(img)
