"""How one sample (an input, or a decoded output) is shown, as the project's manifest says.

``[input_view]`` and ``[output_view]`` name a kind: ``image`` (grayscale or RGB, any size), ``series``
(multichannel lines), ``probabilities`` (bars with class names) or ``vector`` (bars, or a heatmap when long). A
project can draw its own: its ``hooks.py`` maps a kind to ``draw(sample)`` returning anything Panel can show
(``views = {"spectrogram": draw}``; the engine loads the hooks; see :func:`custom_view`).

Two ways to show one: a HoloViews element (:func:`element`, styled by :func:`options`) for the decoded output,
which the user zooms into; a small PNG (:func:`thumbnail`) for the cursor, the history and the strips, which is the
engine's picture (:func:`engine.render.samples.sample_picture`) encoded. The values and their shape are the
engine's (:func:`engine.render.samples.view_shape`); nothing here scales or draws pixels of its own.
"""

from __future__ import annotations

import base64
import io

import holoviews as hv
import numpy as np

from .widgets import name_models

__all__ = ["MAX_BARS", "blank", "custom_view", "draw", "element", "image_data", "options", "thumbnail",
           "thumbnail_src"]

#: Vectors longer than this are drawn as a one-row heatmap instead of bars.
MAX_BARS = 96


def element(array, spec, class_names=None):
    """A HoloViews element holding ``array`` as ``spec`` (an ``engine.data.project.ViewSpec``) says to draw it,
    without options: :func:`options` styles them once, on the DynamicMap that yields one per decode (options set per
    element cost more than the rest of the update)."""
    from engine.render.samples import view_shape

    array = np.asarray(array)
    kind, shape = view_shape(spec, array)
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
        if kind != "probabilities" and len(names) != len(flat):  # not one value per class: the units by number
            names = []
        labels = [names[i] if i < len(names) else str(i) for i in range(len(flat))]
        return hv.Bars((labels, flat), "class" if kind == "probabilities" else "unit", "value")
    return hv.Image(flat[None, :], bounds=(0, 0, len(flat), 1), kdims=["unit", "row"], vdims=["value"])


def image_data(array, spec) -> dict:
    """The columns of a Bokeh ``image`` (grey, colour-mapped in the browser) or ``image_rgba`` source drawing one
    image sample, as HoloViews lays them out (Bokeh's first row is the bottom one): what
    :class:`dashboard.inspector.views.OutputView` pushes on every decode."""
    from engine.render.samples import to_rgb_array, view_shape

    array = np.asarray(array)
    _, shape = view_shape(spec, array)
    data = array.reshape(shape)
    h, w = shape[:2]
    if len(shape) == 3 and shape[2] in (3, 4):
        rgb = to_rgb_array(data)
        rgba = np.dstack([rgb, np.full((h, w), 255, np.uint8)])
        image = np.ascontiguousarray(np.flipud(rgba)).view(np.uint32).reshape(h, w)
    else:
        image = np.ascontiguousarray(np.flipud(data.reshape(h, w)), dtype=np.float32)
    return {"image": [image], "x": [0.0], "y": [0.0], "dw": [float(w)], "dh": [float(h)]}


#: Pixels right of a plot with a colour bar: the bar, its ticks and labels of up to about six characters.
COLORBAR_ROOM = 100


def options(spec, array, *, name: str | None = None) -> list:
    """The options drawing :func:`element`'s output for ``spec``: grey images with a colour bar, coloured series
    with a legend, bars (probabilities on [0, 1]), long vectors as a diverging one-row heatmap. ``name`` names the
    Bokeh figure (see :func:`dashboard.widgets.name_models`)."""
    from engine.render.samples import PALETTE, view_shape

    kind, shape = view_shape(spec, np.asarray(array))
    # Room for the colour bar's labels whatever the data: Bokeh sizes the colour bar once, when the plot is laid out,
    # from the ticks of the data it has then (none in the empty image the decoded output starts with, see
    # dashboard.inspector.views.OutputView), and does not lay it out again when later data bring labels.
    colorbar = dict(colorbar=True, backend_opts={"plot.min_border_right": COLORBAR_ROOM})
    common = dict(toolbar="above", default_tools=["save", "hover"], hooks=[name_models(name)] if name else [])
    if kind == "image":
        image = dict(xaxis=None, yaxis=None, data_aspect=1, **common)
        return [hv.opts.Image(cmap="gray", **colorbar, **image), hv.opts.RGB(**image)]
    if kind == "series":
        return [hv.opts.Curve(line_width=1.5, color=hv.Cycle(list(PALETTE)), framewise=True),
                hv.opts.NdOverlay(legend_position="right", framewise=True, **common)]
    if kind == "probabilities":
        return [hv.opts.Bars(ylim=(0, 1), color=PALETTE[0], **common)]
    return [hv.opts.Bars(color=PALETTE[0], framewise=True, **common),
            hv.opts.Image(cmap="RdBu_r", symmetric=True, yaxis=None, framewise=True, **colorbar, **common)]


def custom_view(project, spec):
    """The project's own drawing for ``spec.kind``: ``hooks.views[kind](sample)`` from its ``hooks.py`` (loaded by
    the engine), or None."""
    hooks = project.hooks() if hasattr(project, "hooks") else None
    views = getattr(hooks, "views", None) or {}
    draw = views.get(getattr(spec, "kind", None))
    return draw if callable(draw) else None


def thumbnail(array, spec, *, width: int = 110, height: int = 110) -> bytes:
    """A small PNG of one sample, cheap enough to make on every hover and for every history entry: the engine's
    :func:`~engine.render.samples.sample_picture` (an image keeps its aspect ratio; series as lines; bars)."""
    from PIL import Image

    from engine.render.samples import sample_picture

    out = io.BytesIO()
    Image.fromarray(sample_picture(array, spec, width, height)).save(out, format="PNG")
    return out.getvalue()


def thumbnail_src(array, spec, *, width: int = 110, height: int = 110) -> str:
    """:func:`thumbnail` as a ``data:`` URL, for an ``<img>`` of the page."""
    return "data:image/png;base64," + base64.b64encode(thumbnail(array, spec, width=width, height=height)).decode()


def draw(project, spec, array, *, width: int = 110, height: int = 110):
    """A small Panel object drawing one sample: the project's hook for the kind, else a :func:`thumbnail`."""
    import panel as pn

    custom = custom_view(project, spec)
    if custom is not None:
        return pn.panel(custom(np.asarray(array)), width=width, height=height, margin=(5, 5))
    return pn.pane.PNG(thumbnail(array, spec, width=width, height=height), width=width, height=height,
                       margin=(5, 5), fixed_aspect=False)


def blank(spec, shape, *, transparent: bool = False) -> np.ndarray:
    """A sample of ``shape`` to draw before the first decode: zeros (a hidden view), or for an image shown empty,
    NaN (grey: drawn transparent) or zero alpha (RGB)."""
    from engine.render.samples import view_shape

    if not transparent:
        return np.zeros(shape, dtype=np.float32)
    kind, dims = view_shape(spec, np.zeros(shape))
    if kind == "image" and len(dims) == 3 and dims[2] in (3, 4):
        return np.zeros((*dims[:2], 4), dtype=np.float32)  # RGBA, alpha 0
    return np.full(shape, np.nan, dtype=np.float32)
