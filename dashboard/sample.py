"""How one sample (an input, or a decoded output) is drawn, as the project's manifest says.

``[input_view]`` and ``[output_view]`` name a kind: ``image`` (grayscale or RGB, any size), ``series``
(multichannel lines), ``probabilities`` (bars with class names) or ``vector`` (bars, or a heatmap when long). A
project can draw its own: its ``hooks.py`` maps a kind to ``draw(sample)`` returning anything Panel can show
(``views = {"spectrogram": draw}``; the engine loads the hooks; see :func:`custom_view`).

Drawing only: the values drawn are the engine's, reshaped to the manifest's shape.
"""

from __future__ import annotations

import io
import weakref

import holoviews as hv
import numpy as np

#: Line colours of a series' channels (category10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")

#: Vectors longer than this are drawn as a one-row heatmap instead of bars.
MAX_BARS = 96


def kind_and_shape(spec, array) -> tuple[str, tuple[int, ...]]:
    """The view kind and the shape to draw ``array`` with (the manifest's, else the array's own)."""
    kind = getattr(spec, "kind", None) or "vector"
    shape = tuple(spec.shape) if getattr(spec, "shape", None) else None
    size = int(np.prod(np.shape(array)))
    if shape is None or int(np.prod(shape)) != size:
        squeezed = tuple(d for d in np.shape(array) if d != 1) or (size,)
        shape = squeezed
        if kind == "image" and len(shape) == 1:
            kind = "vector"
        if kind == "series" and len(shape) == 1:
            shape = (shape[0], 1)
    return kind, shape


def name_models(name: str):
    """A plot hook naming the Bokeh figure ``name`` and its data source ``name-source``, so that the page (and a
    browser test) can find them: ``Bokeh.index.query_one(v => v.model.name == name)``."""

    def hook(plot, element):
        plot.state.name = name
        source = plot.handles.get("source")
        if source is not None:
            source.name = f"{name}-source"

    return hook


def weakly(method):
    """A callback calling the bound ``method`` (with whatever it is called with) while its object lives, and nothing
    once it is gone.

    For callbacks kept by something that outlives a session: HoloViews keeps every plot's options, hooks included, in
    its global options store; Panel keeps a button's JavaScript arguments, and with them their watchers; a document
    keeps its session-destroyed callbacks. A bound method there would keep its view, the session's store and
    everything it shows alive after the session closed.
    """
    ref = weakref.WeakMethod(method)

    def callback(*args):
        bound = ref()
        if bound is not None:
            bound(*args)

    return callback


def element(array, spec, class_names=None):
    """A HoloViews element holding ``array`` as ``spec`` (an ``engine.project.ViewSpec``) says to draw it, without
    options: :func:`options` styles them once, on the DynamicMap that yields one per decode (options set per element
    cost more than the rest of the update)."""
    array = np.asarray(array)
    kind, shape = kind_and_shape(spec, array)
    data = array.reshape(shape)
    if kind == "image":
        h, w = shape[:2]
        if len(shape) == 3 and shape[2] in (3, 4):
            return hv.RGB(data, bounds=(0, 0, w, h))
        return hv.Image(data.reshape(h, w), bounds=(0, 0, w, h), vdims=["value"])
    if kind == "series":
        t, c = shape
        names = list(getattr(spec, "channels", None) or [])
        names += [f"channel {i}" for i in range(len(names), c)]
        return hv.NdOverlay({names[i]: hv.Curve((np.arange(t), data[:, i]), "t", "value") for i in range(c)},
                            kdims="channel")
    flat = data.reshape(-1)
    if kind == "probabilities" or len(flat) <= MAX_BARS:
        names = list(getattr(spec, "class_names", None) or class_names or [])
        labels = [names[i] if i < len(names) else str(i) for i in range(len(flat))]
        return hv.Bars((labels, flat), "class" if kind == "probabilities" else "unit", "value")
    return hv.Image(flat[None, :], bounds=(0, 0, len(flat), 1), kdims=["unit", "row"], vdims=["value"])


def image_data(array, spec) -> dict:
    """The columns of a Bokeh ``image`` (grey, colour-mapped in the browser) or ``image_rgba`` source drawing one
    image sample, as HoloViews lays them out (Bokeh's first row is the bottom one): what
    :class:`dashboard.output.OutputView` pushes on every decode."""
    from engine.render import to_rgb_array

    array = np.asarray(array)
    _, shape = kind_and_shape(spec, array)
    data = array.reshape(shape)
    h, w = shape[:2]
    if len(shape) == 3 and shape[2] in (3, 4):
        rgb = to_rgb_array(data)
        rgba = np.dstack([rgb, np.full((h, w), 255, np.uint8)])
        image = np.ascontiguousarray(np.flipud(rgba)).view(np.uint32).reshape(h, w)
    else:
        image = np.ascontiguousarray(np.flipud(data.reshape(h, w)), dtype=np.float32)
    return {"image": [image], "x": [0.0], "y": [0.0], "dw": [float(w)], "dh": [float(h)]}


def options(spec, array, *, name: str | None = None) -> list:
    """The options drawing :func:`element`'s output for ``spec``: grey images with a colour bar, coloured series
    with a legend, bars (probabilities on [0, 1]), long vectors as a diverging one-row heatmap. ``name`` names the
    Bokeh figure (see :func:`name_models`)."""
    kind, shape = kind_and_shape(spec, np.asarray(array))
    common = dict(toolbar="above", default_tools=["save", "hover"], hooks=[name_models(name)] if name else [])
    if kind == "image":
        image = dict(xaxis=None, yaxis=None, data_aspect=1, **common)
        return [hv.opts.Image(cmap="gray", colorbar=True, **image), hv.opts.RGB(**image)]
    if kind == "series":
        return [hv.opts.Curve(line_width=1.5, color=hv.Cycle(list(PALETTE)), framewise=True),
                hv.opts.NdOverlay(legend_position="right", framewise=True, **common)]
    if kind == "probabilities":
        return [hv.opts.Bars(ylim=(0, 1), color="#1f77b4", **common)]
    return [hv.opts.Bars(color="#1f77b4", framewise=True, **common),
            hv.opts.Image(cmap="RdBu_r", symmetric=True, yaxis=None, colorbar=True, framewise=True, **common)]


def custom_view(project, spec):
    """The project's own drawing for ``spec.kind``: ``hooks.views[kind](sample)`` from its ``hooks.py`` (loaded by
    the engine), or None."""
    hooks = project.hooks() if hasattr(project, "hooks") else None
    views = getattr(hooks, "views", None) or {}
    draw = views.get(getattr(spec, "kind", None))
    return draw if callable(draw) else None


def thumbnail(array, spec, class_names=None, *, width: int = 110, height: int = 110) -> bytes:
    """A small PNG of one sample, cheap enough to make on every hover and for every history entry: the image
    itself (scaled to bytes by the engine's :func:`engine.render.to_rgb_array`), the series' lines or the bars."""
    from PIL import Image, ImageDraw

    from engine.render import to_rgb_array

    array = np.asarray(array, dtype=np.float32)
    kind, shape = kind_and_shape(spec, array)
    data = array.reshape(shape)
    if kind == "image":
        img = Image.fromarray(to_rgb_array(data))
        scale = min(width / img.width, height / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
    else:
        img = Image.new("RGB", (width, height), "white")
        pen = ImageDraw.Draw(img)
        finite = data[np.isfinite(data)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if kind == "probabilities":
            lo, hi = 0.0, 1.0
        span = hi - lo if hi > lo else 1.0

        def y_of(v):
            return (height - 3) - (np.nan_to_num(v, nan=lo) - lo) / span * (height - 6)

        if kind == "series":
            t = np.linspace(2, width - 3, shape[0])
            for c in range(shape[1]):
                pen.line(list(zip(t, y_of(data[:, c]))), fill=PALETTE[c % len(PALETTE)], width=1)
        else:
            flat = data.reshape(-1)
            step = (width - 4) / len(flat)
            base = y_of(max(lo, min(0.0, hi)))
            for i, v in enumerate(flat):
                x0 = 2 + i * step
                pen.rectangle([x0, min(base, y_of(v)), x0 + max(step - 1, 1), max(base, y_of(v))], fill="#1f77b4")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def draw(project, spec, array, class_names=None, *, width: int = 110, height: int = 110):
    """A small Panel object drawing one sample: the project's hook for the kind, else a :func:`thumbnail`."""
    import panel as pn

    custom = custom_view(project, spec)
    if custom is not None:
        return pn.panel(custom(np.asarray(array)), width=width, height=height, margin=(5, 5))
    return pn.pane.PNG(thumbnail(array, spec, class_names, width=width, height=height), width=width,
                       height=height, margin=(5, 5), fixed_aspect=False)


def blank(spec, shape, *, transparent: bool = False) -> np.ndarray:
    """A sample of ``shape`` to draw before the first decode: zeros (a hidden view), or for an image shown empty,
    NaN (grey: drawn transparent) or zero alpha (RGB)."""
    if not transparent:
        return np.zeros(shape, dtype=np.float32)
    kind, dims = kind_and_shape(spec, np.zeros(shape))
    if kind == "image" and len(dims) == 3 and dims[2] in (3, 4):
        return np.zeros((*dims[:2], 4), dtype=np.float32)  # RGBA, alpha 0
    return np.full(shape, np.nan, dtype=np.float32)
