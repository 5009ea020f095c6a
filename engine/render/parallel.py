"""Parallel coordinates of a layer: one polyline per sample across the layer's units (or top principal
directions), rendered with Datashader so that 100,000+ samples stay readable.

The stages stay visible, as in :mod:`engine.render`::

    axes = parallel_axes(activations, max_axes=16)                  # the axes: units, or top principal directions
    frame = lines_frame(axes, labels, class_names)                  # wide frame: a0..a{m-1} in [0, 1], label
    canvas = make_parallel_canvas(axes.n_axes)                      # x = axis number, y = position on the axis
    agg = aggregate_lines(frame, canvas=canvas)                     # Canvas.line(axis=1) -> count_cat("label")
    img = shade_lines(agg, highlight=aggregate_lines(frame.iloc[ids], canvas=canvas))

:func:`parallel_image` runs them in one call. Each axis is scaled to ``[0, 1]`` by its observed range
(``axes.ranges``), so axis ``j`` of the image runs from ``ranges[j, 0]`` at ``y = 0`` to ``ranges[j, 1]`` at
``y = 1``; :meth:`ParallelAxes.to_data` maps a range drawn on the plot back to the axis' own values, for
:func:`engine.explore.selection.select_axis_range` on ``axes.values[:, j]``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from engine.data.labels import label_column
from engine.errors import RenderError
from engine.reduce.pca import PrincipalDirections
from engine.render.frame import color_key

__all__ = [
    "HIGHLIGHT",
    "ParallelAxes",
    "ParallelCoordinates",
    "aggregate_lines",
    "lines_frame",
    "make_parallel_canvas",
    "parallel_axes",
    "parallel_image",
    "shade_lines",
]

#: Colour of highlighted (selected) lines.
HIGHLIGHT = "#000000"
#: Margin around the axes, in axis units (x) and in the [0, 1] axis scale (y).
X_PAD, Y_PAD = 0.05, 0.02


@dataclass(frozen=True)
class ParallelAxes:
    """The axes of a parallel-coordinates plot and every sample's value on them.

    Attributes
    ----------
    basis : {"units", "principal"}
    names : tuple of str
        ``"unit 3"`` or ``"PC 1"``, one per axis.
    values : ndarray of shape (n, m), float32
        Every sample's value on every axis (the unit's activation, or the coordinate along the direction).
    ranges : ndarray of shape (m, 2), float64
        Observed ``(min, max)`` of each axis: the axis' ends in the image.
    explained_variance_ratio : ndarray of shape (m,) or None
        Principal basis: the share of the layer's variance along each direction.
    """

    basis: str
    names: tuple[str, ...]
    values: np.ndarray
    ranges: np.ndarray
    explained_variance_ratio: np.ndarray | None = None

    @property
    def n_axes(self) -> int:
        return len(self.names)

    @property
    def explained_share(self) -> float | None:
        """Principal basis: the share of the layer's variance the axes hold together (None for units)."""
        return None if self.explained_variance_ratio is None else float(np.sum(self.explained_variance_ratio))

    def describe(self) -> str:
        """The axes in words: ``"16 units"``, or ``"top 16 principal directions (83% of the variance)"``."""
        if self.basis == "units":
            return f"{self.n_axes} units"
        return f"top {self.n_axes} principal directions ({self.explained_share:.0%} of the variance)"

    def _span(self, axis: int):
        if not 0 <= int(axis) < self.n_axes:
            raise RenderError(f"parallel coordinates: axis {axis} is outside 0..{self.n_axes - 1}")
        lo, hi = self.ranges[int(axis)]
        return float(lo), float(hi - lo) if hi > lo else 1.0

    def to_unit(self, axis: int, value):
        """A value of axis ``axis`` as its position on the plot's ``[0, 1]`` scale.

        Example
        -------
        >>> axes.to_unit(0, axes.ranges[0, 1])   # doctest: +SKIP
        1.0
        """
        lo, span = self._span(axis)
        return (np.asarray(value, dtype=np.float64) - lo) / span

    def to_data(self, axis: int, y):
        """A position ``y`` on the plot's ``[0, 1]`` scale of axis ``axis`` as that axis' value.

        Example
        -------
        >>> lo, hi = axes.to_data(2, 0.25), axes.to_data(2, 0.75)            # doctest: +SKIP
        >>> ids = select_axis_range(axes.values[:, 2], lo, hi)               # doctest: +SKIP
        """
        lo, span = self._span(axis)
        return lo + np.asarray(y, dtype=np.float64) * span


def parallel_axes(activations, max_axes: int = 16, *, fit_sample: int | None = 20_000, random_state: int = 0,
                  chunk_size: int = 4096) -> ParallelAxes:
    """The axes for a layer: its units when there are at most ``max_axes``, else its top principal directions.

    Parameters
    ----------
    activations : array of shape (n, d)
        Flattened activations (a memmap is read in chunks).
    max_axes : int, default=16
    fit_sample : int or None, default=20_000
        Rows the principal directions are fitted on.
    random_state : int, default=0
    chunk_size : int, default=4096

    Returns
    -------
    ParallelAxes

    Raises
    ------
    RenderError
        Activations not of shape (n >= 2, d), or ``max_axes < 2``.

    Example
    -------
    >>> X = np.random.default_rng(0).normal(size=(500, 40)).astype(np.float32)
    >>> parallel_axes(X, max_axes=8).names[:2]
    ('PC 1', 'PC 2')
    """
    X = activations if getattr(activations, "ndim", None) == 2 else np.asarray(activations)
    if X.ndim != 2 or len(X) < 2:
        raise RenderError(f"parallel coordinates need activations of shape (samples >= 2, units), got {X.shape}")
    if not isinstance(max_axes, (int, np.integer)) or max_axes < 2:
        raise RenderError(f"parallel coordinates: max_axes must be an integer >= 2, got {max_axes!r}")
    d = X.shape[1]
    ratio = None
    if d <= max_axes:
        basis, names = "units", tuple(f"unit {i}" for i in range(d))
        values = np.asarray(X, dtype=np.float32)
    else:
        pd_ = PrincipalDirections(n_components=int(max_axes), fit_sample=fit_sample, chunk_size=chunk_size,
                                  random_state=random_state).fit(X)
        values = pd_.transform(X)
        basis, names = "principal", tuple(f"PC {i + 1}" for i in range(values.shape[1]))
        ratio = pd_.explained_variance_ratio_
    ranges = np.c_[values.min(axis=0), values.max(axis=0)].astype(np.float64)
    return ParallelAxes(basis, names, values, ranges, ratio)


def lines_frame(axes: ParallelAxes, labels=None, class_names=None):
    """Stage 0: a wide DataFrame, one row per sample: float32 columns ``a0..a{m-1}`` scaled to ``[0, 1]`` by each
    axis' range and, with labels, a categorical ``label``.

    Parameters
    ----------
    axes : ParallelAxes
    labels : array of shape (n,), optional
        Integer codes (named by ``class_names``) or any values (named by ``str``).
    class_names : sequence of str, optional

    Returns
    -------
    pandas.DataFrame

    Example
    -------
    >>> lines_frame(axes, labels, ["a", "b", "c"]).columns[:2].tolist()   # doctest: +SKIP
    ['a0', 'a1']
    """
    import pandas as pd

    lo = axes.ranges[:, 0]
    span = np.where(axes.ranges[:, 1] > lo, axes.ranges[:, 1] - lo, 1.0)
    unit = ((axes.values - lo) / span).astype(np.float32)
    frame = pd.DataFrame(unit, columns=[f"a{j}" for j in range(axes.n_axes)], copy=False)
    if labels is not None:
        frame["label"] = label_column(labels, len(frame), class_names, where="parallel coordinates",
                                      error=RenderError)
    return frame


def make_parallel_canvas(n_axes: int, *, width: int = 800, height: int = 400):
    """A :class:`datashader.Canvas` with axis ``j`` at ``x = j`` and the axes' ``[0, 1]`` scale on y (small margins:
    ``x_range = (-X_PAD * (m - 1), (m - 1) * (1 + X_PAD))``, ``y_range = (-Y_PAD, 1 + Y_PAD)``).

    Example
    -------
    >>> make_parallel_canvas(16, width=400, height=200).x_range
    (-0.75, 15.75)
    """
    import datashader as ds

    last = max(int(n_axes) - 1, 1)
    return ds.Canvas(plot_width=int(width), plot_height=int(height),
                     x_range=(-X_PAD * last, last * (1 + X_PAD)), y_range=(-Y_PAD, 1 + Y_PAD))


def aggregate_lines(frame, *, canvas, reduction=None):
    """Stage 1: bin every sample's polyline into pixels with ``Canvas.line(..., axis=1)``.

    Parameters
    ----------
    frame : DataFrame from :func:`lines_frame` (or rows of it, such as a selection)
    canvas : datashader.Canvas from :func:`make_parallel_canvas`
    reduction : datashader reduction, optional
        Default ``ds.count_cat("label")`` when ``frame`` has labels, else ``ds.count()``.

    Returns
    -------
    xarray.DataArray
        ``(y, x, label)`` counts with labels, ``(y, x)`` without.

    Example
    -------
    >>> agg = aggregate_lines(lines_frame(axes, labels), canvas=make_parallel_canvas(axes.n_axes))   # doctest: +SKIP
    """
    import datashader as ds

    columns = [c for c in frame.columns if c != "label"]
    if reduction is None:
        reduction = ds.count_cat("label") if "label" in frame else ds.count()
    return canvas.line(frame, x=np.arange(len(columns), dtype=np.float64), y=columns, axis=1, agg=reduction)


def shade_lines(agg, *, highlight=None, colors=None, cmap=("#9ecae1", "#08306b"), highlight_color: str = HIGHLIGHT,
                how: str = "eq_hist", faded_alpha: int = 70, background: str | None = "white"):
    """Stage 2: colour the lines by label; with a highlight aggregate, fade the rest and draw it on top.

    Parameters
    ----------
    agg : xarray.DataArray from :func:`aggregate_lines`
    highlight : xarray.DataArray, optional
        Aggregate of the highlighted samples' lines (any reduction; non-zero pixels are drawn).
    colors : dict, optional
        Category -> colour (default :func:`engine.render.color_key` of the aggregate's categories, as on the
        latent plot).
    cmap : colour sequence
        For an aggregate without labels.
    highlight_color : str
        ``#rrggbb``; dense parts of the highlight in this colour, sparse ones in a lighter tint of it.
    how : str
        Datashader's scaling.
    faded_alpha : int
        Largest alpha (0..255) of the other lines while a highlight is shown.
    background : str or None

    Returns
    -------
    datashader.transfer_functions.Image

    Example
    -------
    >>> shade_lines(agg, highlight=aggregate_lines(frame.iloc[ids], canvas=canvas)).to_pil()   # doctest: +SKIP
    """
    import datashader.transfer_functions as tf

    alpha = 255 if highlight is None else int(faded_alpha)
    min_alpha = min(40, alpha)
    if agg.ndim == 3:
        categories = [str(c) for c in agg.coords[agg.dims[-1]].values]
        img = tf.shade(agg, color_key=colors or color_key(categories), how=how, alpha=alpha, min_alpha=min_alpha)
    else:
        img = tf.shade(agg, cmap=list(cmap), how=how, alpha=alpha, min_alpha=min_alpha)
    if highlight is not None:
        hl = highlight.sum(dim=highlight.dims[-1]) if highlight.ndim == 3 else highlight
        if bool((hl > 0).any()):  # density as opacity, so a large selection keeps its structure
            top = tf.shade(hl.where(hl > 0), cmap=[_tint(highlight_color, 0.35), highlight_color], how=how,
                           min_alpha=220)
            img = tf.stack(img, top)
    if background is not None:
        img = tf.set_background(img, background)
    return img


def parallel_image(axes: ParallelAxes, labels=None, *, class_names=None, selected=None, width: int = 800,
                   height: int = 400, how: str = "eq_hist", highlight_color: str = HIGHLIGHT, faded_alpha: int = 70,
                   background: str | None = "white", frame=None):
    """Run the whole pipeline: the parallel-coordinates image, optionally with ``selected`` samples highlighted.

    Parameters
    ----------
    axes : ParallelAxes
    labels : array of shape (n,), optional
    class_names : sequence of str, optional
    selected : array of int, optional
        Sample ids drawn on top in ``highlight_color``, the others faded. ``None``: no highlight; an empty array
        fades every line.
    width, height : int
    how : str
    highlight_color : str
    faded_alpha : int
    background : str or None
    frame : DataFrame, optional
        A :func:`lines_frame` of the same axes and labels, to skip rebuilding it on every selection.

    Returns
    -------
    datashader.transfer_functions.Image
        ``img.to_pil()`` for a picture, ``img.data`` for the packed RGBA; its ``x`` coordinates are axis numbers
        (axis ``j`` at ``x = j``) and its ``y`` coordinates the ``[0, 1]`` axis scale.

    Raises
    ------
    RenderError
        Labels or selected ids that do not fit the samples.

    Example
    -------
    >>> axes = parallel_axes(insp.activations)                                              # doctest: +SKIP
    >>> parallel_image(axes, insp.labels, selected=[3, 17, 42]).to_pil().save("pc.png")     # doctest: +SKIP
    """
    frame = lines_frame(axes, labels, class_names) if frame is None else frame
    canvas = make_parallel_canvas(axes.n_axes, width=width, height=height)
    agg = aggregate_lines(frame, canvas=canvas)
    highlight = None
    if selected is not None:
        ids = np.asarray(selected, dtype=np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(frame)):
            raise RenderError(
                f"parallel coordinates: selected ids must lie in 0..{len(frame) - 1}, got {ids.min()}..{ids.max()}"
            )
        highlight = aggregate_lines(frame.iloc[np.unique(ids)], canvas=canvas, reduction=_count())
    return shade_lines(agg, highlight=highlight, how=how, highlight_color=highlight_color, faded_alpha=faded_alpha,
                       background=background)


def _tint(color: str, amount: float) -> str:
    """``color`` (``#rrggbb``) mixed with ``amount`` of white."""
    rgb = [int(color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def _count():
    import datashader as ds

    return ds.count()


@dataclass(eq=False, repr=False)
class ParallelCoordinates:
    """Parallel coordinates of one set of activations, drawn again and again: its axes, their line table, and every
    line's aggregate kept per picture size (binning every line takes seconds at a million samples; a selection then
    only bins its own lines).

    Build one with :meth:`of`; :meth:`picture` gives the image :func:`parallel_image` gives.
    """

    axes: ParallelAxes
    frame: object
    keep_sizes: int = 2
    aggregates: dict = field(default_factory=dict)  # (width, height) -> the aggregate of every line
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, activations, labels=None, class_names=None, *, max_axes: int = 16) -> ParallelCoordinates:
        """The axes of ``activations`` (:func:`parallel_axes`) and their line table (:func:`lines_frame`)."""
        axes = parallel_axes(activations, max_axes=max_axes)
        return cls(axes, lines_frame(axes, labels, class_names))

    def canvas(self, width: int, height: int):
        return make_parallel_canvas(self.axes.n_axes, width=width, height=height)

    def aggregate(self, width: int, height: int):
        """Every line binned at this size (once per size; the ``keep_sizes`` last sizes are kept)."""
        key = (int(width), int(height))
        with self.lock:
            agg = self.aggregates.get(key)
            if agg is None:
                agg = aggregate_lines(self.frame, canvas=self.canvas(*key))
                self.aggregates[key] = agg
                while len(self.aggregates) > self.keep_sizes:
                    self.aggregates.pop(next(iter(self.aggregates)))
            return agg

    def picture(self, width: int, height: int, selected=None):
        """The picture of :func:`parallel_image` (``selected`` ids drawn over the faded rest), without binning every
        line again."""
        highlight = None
        if selected is not None:
            ids = np.unique(np.asarray(selected, dtype=np.int64).reshape(-1))
            if len(ids) and (ids.min() < 0 or ids.max() >= len(self.frame)):
                raise RenderError(f"parallel coordinates: selected ids must lie in 0..{len(self.frame) - 1}, got "
                                  f"{ids.min()}..{ids.max()}")
            highlight = aggregate_lines(self.frame.iloc[ids], canvas=self.canvas(width, height), reduction=_count())
        return shade_lines(self.aggregate(width, height), highlight=highlight)
