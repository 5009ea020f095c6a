"""Pictures of a latent space: a datashader pipeline, and a PNG with a legend and a grid of decodes.

The stages stay visible, as in datashader's own pipeline::

    frame = points_frame(embedding, labels, class_names)          # the data: x, y, categorical label
    agg = aggregate(frame, canvas=make_canvas(embedding))         # Canvas -> points(count_cat("label"))
    img = shade(agg)                                              # shade -> dynspread -> background
    pil = img.to_pil()

:func:`latent_image` runs them in one call; :func:`write_png` adds a legend and, given ``decode_fn`` and
``draw_fn``, a grid of what the model decodes at regularly sampled 2-D positions. The PNG is composed with
matplotlib when it is installed and with PIL otherwise.

The dashboard redraws on every pan and zoom, so it takes a faster path to the same picture::

    index = index_frame(frame, "label")                           # once per data set: points in grid order
    agg = aggregate_colors(index, canvas=canvas, colors=key)      # per view: count, summed r, g, b per pixel
    img = shade_colors(agg, min_alpha=90)                         # the pixels tf.shade gives for count_cat

``count_cat`` keeps one count plane per category (800 x 800 x 10 cells) and ``tf.shade`` then reduces those planes
to a colour and an alpha per pixel; at ten million points both stages are memory-bound (about 120 ms each on
2 cores). Shading only ever needs each pixel's point count and the sum of its points' category colours, so
:func:`aggregate_colors` accumulates exactly those four numbers, and :func:`shade_colors` applies datashader's
colour mixing (mean category colour, truncated to 8 bits) and alpha scaling (``eq_hist`` of the counts between
``min_alpha`` and ``alpha``) to them. Points are binned with datashader's own formula, so the images are the same
pixel for pixel (``tests/test_render.py`` compares them with ``tf.shade`` of ``count_cat``). One case needs the
category counts themselves: when every pixel of the view holds every category, ``tf.shade`` mixes only the counts
above the smallest one (its ``color_baseline``); :func:`aggregate_colors` then finds it in a second pass. The
:class:`PointIndex` orders the points by a coarse grid over their bounds: the aggregation then writes the image in
memory order, and a zoomed view reads only the grid cells it overlaps.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

__all__ = [
    "PointIndex",
    "aggregate",
    "aggregate_colors",
    "color_key",
    "grid_positions",
    "index_frame",
    "index_points",
    "latent_image",
    "make_canvas",
    "padded_range",
    "points_frame",
    "shade",
    "shade_colors",
    "to_rgb_array",
    "write_png",
]

_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def color_key(categories) -> dict[str, str]:
    """One colour per category: category10 for up to 10, colorcet's Glasbey palette beyond.

    Examples
    --------
    >>> color_key(["a", "b"])
    {'a': '#1f77b4', 'b': '#ff7f0e'}
    """
    categories = [str(c) for c in categories]
    palette = list(_PALETTE)
    if len(categories) > len(palette):
        import colorcet

        palette = list(colorcet.glasbey_category10)
    return {c: palette[i % len(palette)] for i, c in enumerate(categories)}


def padded_range(values, pad: float = 0.05) -> tuple[float, float]:
    """``(min, max)`` of ``values`` widened by ``pad`` of the span on each side (never empty)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    return lo - pad * span, hi + pad * span


def points_frame(embedding, labels=None, class_names=None):
    """Stage 0: a DataFrame with float columns ``x``, ``y`` and, with labels, a categorical ``label``.

    Parameters
    ----------
    embedding : array of shape (n, 2)
    labels : array of shape (n,), optional
        Integer codes (named by ``class_names``) or any values (named by ``str``).
    class_names : sequence of str, optional

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    E = np.asarray(embedding)
    if E.ndim != 2 or E.shape[1] != 2:
        raise ValueError(f"points_frame needs an (n, 2) embedding, got shape {E.shape}.")
    frame = pd.DataFrame({"x": E[:, 0].astype(np.float64), "y": E[:, 1].astype(np.float64)})
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != len(E):
            raise ValueError(f"points_frame: {len(labels)} labels for {len(E)} points.")
        if class_names is not None and labels.dtype.kind in "iu":
            names = [str(c) for c in class_names]
            codes = np.unique(labels)
            if codes.min() < 0 or codes.max() >= len(names):
                raise ValueError(
                    f"points_frame: labels range {codes.min()}..{codes.max()} but there are {len(names)} class names."
                )
            frame["label"] = pd.Categorical.from_codes(labels, categories=names)
        else:
            frame["label"] = pd.Categorical([str(v) for v in labels])
    return frame


def make_canvas(embedding=None, *, width: int = 600, height: int = 600, x_range=None, y_range=None):
    """A :class:`datashader.Canvas` framing ``embedding`` (5% padding) unless ranges are given."""
    import datashader as ds

    if embedding is not None:
        E = np.asarray(embedding)
        x_range = x_range or padded_range(E[:, 0])
        y_range = y_range or padded_range(E[:, 1])
    return ds.Canvas(plot_width=int(width), plot_height=int(height), x_range=x_range, y_range=y_range)


def aggregate(frame, *, canvas, reduction=None):
    """Stage 1: bin the points into pixels.

    Parameters
    ----------
    frame : DataFrame from :func:`points_frame`
    canvas : datashader.Canvas
    reduction : datashader reduction, optional
        Default ``ds.count_cat("label")`` when ``frame`` has labels, else ``ds.count()``.

    Returns
    -------
    xarray.DataArray
    """
    import datashader as ds

    if reduction is None:
        reduction = ds.count_cat("label") if "label" in frame else ds.count()
    return canvas.points(frame, "x", "y", agg=reduction)


def shade(
    agg,
    *,
    colors=None,
    cmap=("#9ecae1", "#08306b"),
    how: str = "eq_hist",
    spread: bool = True,
    background: str | None = "white",
):
    """Stage 2: colour the aggregate, spread sparse pixels, set the background.

    Parameters
    ----------
    agg : xarray.DataArray from :func:`aggregate`
    colors : dict, optional
        Category -> colour for a categorical aggregate (default :func:`color_key` of its categories).
    cmap : colour sequence
        For an uncategorised count.
    how : str
        Datashader's scaling (``"eq_hist"``, ``"log"``, ``"linear"``, ``"cbrt"``).
    spread : bool
        Apply ``tf.dynspread`` so isolated points stay visible.
    background : str or None

    Returns
    -------
    datashader.transfer_functions.Image
    """
    import datashader.transfer_functions as tf

    if agg.ndim == 3:
        categories = [str(c) for c in agg.coords[agg.dims[-1]].values]
        img = tf.shade(agg, color_key=colors or color_key(categories), how=how, min_alpha=200)
    else:
        img = tf.shade(agg, cmap=list(cmap), how=how)
    if spread:
        img = tf.dynspread(img, threshold=0.8, max_px=3)
    if background is not None:
        img = tf.set_background(img, background)
    return img


# -- the per-view path: points indexed once, each view aggregated to colour and shaded -----------------------------

#: Cells per side of the :class:`PointIndex` grid.
GRID = 1024


@dataclass(frozen=True, eq=False)
class PointIndex:
    """Points sorted by the cell of a ``grid x grid`` lattice over their bounds, with their category codes.

    Built once per data set by :func:`index_points` or :func:`index_frame`; read by :func:`aggregate_colors`.
    Points with a non-finite coordinate or without a category are left out (datashader draws neither).

    Attributes
    ----------
    x, y : ndarray of shape (m,)
        Coordinates in cell order (row by row from the bottom), dtype of the input.
    codes : ndarray of shape (m,)
        Category code of each point (uint8 up to 256 categories).
    categories : tuple of str
    offsets : ndarray of shape (grid * grid + 1,), int64
        The points of cell ``(row, col)`` are ``offsets[row * grid + col] : offsets[row * grid + col + 1]``.
    bounds : tuple of float
        ``(x0, x1, y0, y1)`` of the points.
    grid : int
    """

    x: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    categories: tuple[str, ...]
    offsets: np.ndarray
    bounds: tuple[float, float, float, float]
    grid: int

    def __len__(self) -> int:
        return len(self.x)

    @property
    def nbytes(self) -> int:
        return self.x.nbytes + self.y.nbytes + self.codes.nbytes + self.offsets.nbytes

    @property
    def cell_scale(self) -> tuple[float, float]:
        """Cells per unit along x and y (0 along an axis where every point has the same coordinate)."""
        x0, x1, y0, y1 = self.bounds
        return (self.grid / (x1 - x0) if x1 > x0 else 0.0), (self.grid / (y1 - y0) if y1 > y0 else 0.0)


@numba.njit(cache=True, nogil=True)
def _cell(v, v0, k, grid):
    """Grid cell of coordinate ``v`` (monotone in ``v``, clipped to the grid): shared by index and queries."""
    c = (v - v0) * k
    if c < 0.0:
        return 0
    if c >= grid:
        return grid - 1
    return int(c)


@numba.njit(cache=True, nogil=True)
def _bounds(x, y, codes, ncat):
    """``(x0, x1, y0, y1)`` of the points that are drawn (finite, with a category); zeros when there are none."""
    x0, x1, y0, y1 = np.inf, -np.inf, np.inf, -np.inf
    for i in range(x.shape[0]):
        if np.isfinite(x[i]) and np.isfinite(y[i]) and codes[i] >= 0 and codes[i] < ncat:
            x0, x1 = min(x0, x[i]), max(x1, x[i])
            y0, y1 = min(y0, y[i]), max(y1, y[i])
    if x0 > x1:
        return 0.0, 0.0, 0.0, 0.0
    return float(x0), float(x1), float(y0), float(y1)


@numba.njit(cache=True, nogil=True)
def _count_cells(x, y, codes, ncat, x0, kx, y0, ky, grid):
    """Cell of each point (-1: left out) and the cells' start offsets (the first pass of a counting sort)."""
    n = x.shape[0]
    cell = np.empty(n, np.int32)  # grid * grid < 2**31
    offsets = np.zeros(grid * grid + 1, np.int64)
    for i in range(n):
        c = codes[i]
        if np.isfinite(x[i]) and np.isfinite(y[i]) and c >= 0 and c < ncat:
            cell[i] = _cell(y[i], y0, ky, grid) * grid + _cell(x[i], x0, kx, grid)
            offsets[cell[i] + 1] += 1
        else:
            cell[i] = -1
    for j in range(grid * grid):
        offsets[j + 1] += offsets[j]
    return cell, offsets


@numba.njit(cache=True, nogil=True)
def _scatter_cells(x, y, codes, cell, offsets, xs, ys, cs):
    """Second pass: each point to the next free place of its cell (stable within a cell)."""
    fill = offsets[:-1].copy()
    for i in range(x.shape[0]):
        c = cell[i]
        if c >= 0:
            j = fill[c]
            fill[c] = j + 1
            xs[j], ys[j], cs[j] = x[i], y[i], codes[i]


@numba.njit(cache=True, nogil=True)
def _accumulate(xs, ys, codes, offsets, grid, gx0, kx, gy0, ky, table, x0, x1, y0, y1, out, per_category):
    """Bin each point in ``[x0, x1] x [y0, y1]`` into its pixel of ``out``.

    ``per_category`` False: ``out`` is (H, W, 4) and a point adds 1, then its colour's r, g, b (``table[code]``).
    True: ``out`` is (H, W, categories) and a point adds 1 to its category, ``count_cat`` itself (``table``
    unused). Pixels as datashader's ``Canvas.points`` bins them (``int(x * sx + tx)``; the upper edge belongs to the
    last pixel); only the grid cells overlapping the view are read.
    """
    height, width = out.shape[0], out.shape[1]
    sx = width / (x1 - x0)
    tx = -x0 * sx
    sy = height / (y1 - y0)
    ty = -y0 * sy
    c0, c1 = _cell(x0, gx0, kx, grid), _cell(x1, gx0, kx, grid)
    for row in range(_cell(y0, gy0, ky, grid), _cell(y1, gy0, ky, grid) + 1):
        for i in range(offsets[row * grid + c0], offsets[row * grid + c1 + 1]):
            x, y = xs[i], ys[i]
            if x0 <= x <= x1 and y0 <= y <= y1:
                xi = int(x * sx + tx)
                yi = int(y * sy + ty)
                if x == x1:
                    xi -= 1
                if y == y1:
                    yi -= 1
                c = codes[i]
                if per_category:
                    out[yi, xi, c] += 1
                else:
                    out[yi, xi, 0] += 1
                    out[yi, xi, 1] += table[c, 0]
                    out[yi, xi, 2] += table[c, 1]
                    out[yi, xi, 3] += table[c, 2]


def index_points(x, y, codes, categories, *, grid: int = GRID) -> PointIndex:
    """Stage 0 of the per-view path: order the points by grid cell, once per data set.

    A counting sort (linear in the number of points; about 0.3 s for ten million).

    Parameters
    ----------
    x, y : array of shape (n,)
        Coordinates (float32 or float64; kept as given, so the pixels are those datashader computes from them).
    codes : array of shape (n,), integer
        Category of each point, ``0 <= code < len(categories)``; other codes (pandas' -1 for missing) are left out.
    categories : sequence of str
    grid : int, default=1024

    Returns
    -------
    PointIndex

    Raises
    ------
    ValueError
        Arrays of different lengths, or no categories.

    Examples
    --------
    >>> index = index_points(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0, 1]), ["a", "b"])
    >>> len(index), index.bounds
    (2, (0.0, 1.0, 0.0, 1.0))
    """
    x, y, codes = np.asarray(x), np.asarray(y), np.asarray(codes)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if y.dtype.kind != "f":
        y = y.astype(np.float64)
    if not (x.ndim == y.ndim == codes.ndim == 1 and len(x) == len(y) == len(codes)):
        raise ValueError(f"index_points needs x, y and codes of one length, got shapes {x.shape}, {y.shape}, "
                         f"{codes.shape}.")
    categories = tuple(str(c) for c in categories)
    if not categories:
        raise ValueError("index_points needs at least one category.")
    if not 1 <= grid <= 46_340:
        raise ValueError(f"index_points: grid must be between 1 and 46,340 (cells fit 32 bits), got {grid}.")
    if codes.dtype.kind not in "iu":
        raise ValueError(f"index_points needs integer category codes, got dtype {codes.dtype}.")
    bounds = _bounds(x, y, codes, len(categories))
    x0, x1, y0, y1 = bounds
    kx = grid / (x1 - x0) if x1 > x0 else 0.0
    ky = grid / (y1 - y0) if y1 > y0 else 0.0
    cell, offsets = _count_cells(x, y, codes, len(categories), x0, kx, y0, ky, int(grid))
    m = int(offsets[-1])
    xs, ys = np.empty(m, x.dtype), np.empty(m, y.dtype)
    cs = np.empty(m, np.uint8 if len(categories) <= 256 else np.uint16 if len(categories) <= 65536 else np.int64)
    _scatter_cells(x, y, codes, cell, offsets, xs, ys, cs)
    return PointIndex(xs, ys, cs, categories, offsets, bounds, int(grid))


def index_frame(frame, by: str = "label", *, grid: int = GRID) -> PointIndex:
    """:func:`index_points` of a :func:`points_frame` (columns ``x``, ``y`` and the categorical column ``by``).

    Raises
    ------
    ValueError
        ``by`` is not a categorical column of ``frame``.
    """
    column = frame[by] if by in frame else None
    if column is None or not hasattr(column, "cat"):
        raise ValueError(f"index_frame: {by!r} is not a categorical column (columns: {', '.join(frame.columns)}).")
    return index_points(frame["x"].to_numpy(), frame["y"].to_numpy(), column.cat.codes.to_numpy(),
                        [str(c) for c in column.cat.categories], grid=grid)


def aggregate_colors(index: PointIndex, *, canvas, colors=None):
    """Stage 1 of the per-view path: per pixel, the number of points and the sum of their category colours.

    Parameters
    ----------
    index : PointIndex
    canvas : datashader.Canvas
        Size and ranges of the view (:func:`make_canvas`).
    colors : dict, optional
        Category -> colour (default :func:`color_key` of the index's categories).

    Returns
    -------
    xarray.DataArray of shape (height, width, 4)
        Channels ``count``, ``r``, ``g``, ``b`` (uint32; uint64 above 16.8 million points, where a pixel's colour
        sum could overflow 32 bits); rows from the bottom of the view, as datashader's aggregates. ``attrs``: the
        view's ranges, the colour of each category (``colors``, RGB) and ``category_min``, the smallest count of
        any category in any pixel: not 0 only when every pixel holds every category, where ``tf.shade`` mixes the
        counts above it (its ``color_baseline``); found by a second pass over the view, then only.

    Raises
    ------
    ValueError
        A category without a colour.
    """
    import xarray as xr
    from datashader.colors import rgb

    colors = colors or color_key(index.categories)
    missing = [c for c in index.categories if c not in colors]
    if missing:
        raise ValueError(f"aggregate_colors: no colour for categories {missing} (colors has {list(colors)}).")
    table = np.array([rgb(colors[c]) for c in index.categories], np.uint32)
    width, height = int(canvas.plot_width), int(canvas.plot_height)
    dtype = np.uint32 if len(index) * 255 < 2**32 else np.uint64
    out = np.zeros((height, width, 4), dtype)
    (x0, x1), (y0, y1) = _view_ranges(index, canvas)
    category_min = 0
    if len(index) and width and height and x1 > x0 and y1 > y0:
        kx, ky = index.cell_scale
        args = (index.x, index.y, index.codes, index.offsets, index.grid, index.bounds[0], kx, index.bounds[2], ky)
        view = (float(x0), float(x1), float(y0), float(y1))
        table = table.astype(dtype)
        _accumulate(*args, table, *view, out, False)
        if out[..., 0].min() >= len(index.categories):  # every pixel may hold every category
            counts = np.zeros((height, width, len(index.categories)), np.uint32)
            _accumulate(*args, table, *view, counts, True)
            category_min = int(counts.min())
    xs = x0 + (np.arange(width) + 0.5) * ((x1 - x0) / width) if width else np.zeros(0)
    ys = y0 + (np.arange(height) + 0.5) * ((y1 - y0) / height) if height else np.zeros(0)
    return xr.DataArray(out, dims=("y", "x", "channel"),
                        coords={"x": xs, "y": ys, "channel": ["count", "r", "g", "b"]},
                        attrs={"x_range": (x0, x1), "y_range": (y0, y1), "colors": table.tolist(),
                               "category_min": category_min})


def _view_ranges(index, canvas):
    x_range = canvas.x_range or (index.bounds[0], index.bounds[1])
    y_range = canvas.y_range or (index.bounds[2], index.bounds[3])
    return tuple(map(float, x_range)), tuple(map(float, y_range))


def _rescale_discrete_levels(discrete_levels: int, span):
    # datashader.transfer_functions._rescale_discrete_levels: with few distinct counts, lower the span's start so
    # that the lowest counts are not washed out.
    m = -0.5 / 98.0
    multiple = m * discrete_levels + 1.5 - 2 * m
    if multiple > 1:
        return max(span[1] - multiple * (span[1] - span[0]), 0), 1
    return span


@numba.njit(cache=True, nogil=True)
def _mean_colors(flat, rgba, base_count, base_color, fallback):
    """Mean category colour of each non-empty pixel, in float32 and truncated to 8 bits (as ``tf.shade``), of the
    counts above the baseline: ``base_count`` points and ``base_color`` colour sum off every pixel; ``fallback``
    where nothing is left (the mean colour of all categories)."""
    for p in range(flat.shape[0]):
        n = flat[p, 0]
        if n:
            n = n - base_count
            for k in range(3):
                if n:
                    rgba[p, k] = np.uint8(np.float32(flat[p, k + 1] - base_color[k]) / np.float32(n))
                else:
                    rgba[p, k] = fallback[k]


@numba.njit(cache=True, nogil=True)
def _set_alpha(total, offset, lut, rgba):
    for p in range(total.shape[0]):
        if total[p]:
            rgba[p, 3] = lut[total[p] - offset]


def _eq_hist(values, weights, integer: bool, nbins: int = 256 * 256):
    """``tf.eq_hist`` of the counts, computed once per distinct count: ``values`` (sorted, distinct) occur
    ``weights`` times. The same histogram, bin centres and interpolation, so the same numbers per pixel."""
    if integer and values[-1] - values[0] < nbins:  # exact counting of the integer levels
        cdf = np.cumsum(weights)
        return cdf / float(cdf[-1]), len(values)
    hist, edges = np.histogram(values.astype(np.float64), bins=nbins, weights=weights)
    centers = (edges[:-1] + edges[1:]) / 2
    keep = hist > 0
    cdf = np.cumsum(hist[keep])
    return np.interp(values, centers[keep], cdf / float(cdf[-1])), int(keep.sum())


def shade_colors(agg, *, how: str = "eq_hist", min_alpha: float = 40, alpha: int = 255,
                 rescale_discrete_levels: bool = True):
    """Stage 2 of the per-view path: colour and alpha of each pixel, as ``tf.shade`` gives them for ``count_cat``.

    The colour is the mean of the pixel's points' category colours, truncated to 8 bits (when every pixel holds
    every category, of the counts above the smallest, as ``tf.shade``); the alpha scales the pixel's count by
    ``how`` between ``min_alpha`` and ``alpha`` (empty pixels are transparent). The scaling is computed once per
    distinct count, not once per pixel.

    Parameters
    ----------
    agg : xarray.DataArray from :func:`aggregate_colors`
    how : {"eq_hist", "log", "cbrt", "linear"}
    min_alpha : float
        Alpha of the least dense non-empty pixels.
    alpha : int
        Alpha of the densest.
    rescale_discrete_levels : bool
        With ``eq_hist`` and few distinct counts, keep the low counts visible (HoloViews' default, True).

    Returns
    -------
    datashader.transfer_functions.Image
        Packed RGBA (uint32) with the aggregate's coordinates: ``tf.dynspread``, ``tf.set_background`` and
        ``to_pil`` apply.

    Raises
    ------
    ValueError
        An unknown ``how``.

    Examples
    --------
    >>> import datashader as ds
    >>> index = index_points(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0, 1]), ["a", "b"])
    >>> img = shade_colors(aggregate_colors(index, canvas=ds.Canvas(4, 4, (0, 1), (0, 1))))
    >>> img.shape
    (4, 4)
    """
    import datashader.transfer_functions as tf

    scale = {"eq_hist": None, "log": np.log1p, "cbrt": lambda v: v ** (1 / 3.0), "linear": lambda v: v}
    if how not in scale:
        raise ValueError(f"shade_colors: how must be one of {', '.join(scale)}, got {how!r}.")
    a = np.ascontiguousarray(agg.data)
    height, width = a.shape[:2]
    flat = a.reshape(-1, 4)
    rgba = np.zeros((height * width, 4), np.uint8)
    total = flat[:, 0]
    inked = total[total > 0].astype(np.int64)
    if len(inked):
        table = np.asarray(agg.attrs.get("colors", np.zeros((1, 3))), np.float64)
        base = int(agg.attrs.get("category_min", 0))
        base_color = (base * table.sum(axis=0)).astype(flat.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):  # as tf.shade: float32 mean of the category colours
            fallback = (table.astype(np.float32).sum(axis=0) / np.float32(len(table))).astype(np.uint8)
        _mean_colors(flat, rgba, flat.dtype.type(base * len(table)), base_color, fallback)
        offset = int(inked.min())
        d = inked - offset
        if d.max() < 4 * len(d) + 65536:  # the counts' multiplicities, indexed by count - offset
            mult = np.bincount(d)
            values = np.flatnonzero(mult)
            weights = mult[values]
        else:  # a few very dense pixels: sort the counts instead
            values, weights = np.unique(d, return_counts=True)
        # as tf.shade: the counts are integers only when no pixel is empty (datashader then skips its float mask)
        integer = len(inked) == len(total)
        levels = None
        if how == "eq_hist":
            scaled, levels = _eq_hist(values, weights, integer)
        else:
            scaled = scale[how](values.astype(np.float64))
        span = (float(np.min(scaled)), float(np.max(scaled)))
        if rescale_discrete_levels and levels is not None:
            span = _rescale_discrete_levels(levels, span)
        a_float = np.interp(scaled, np.hstack(span), np.array([min_alpha, alpha]), left=0, right=255)
        alphas = np.nan_to_num(a_float, copy=False).astype(np.uint8)
        if len(values) and values[-1] < 4 * len(d) + 65536:
            lut = np.zeros(int(values[-1]) + 1, np.uint8)
            lut[values] = alphas
            _set_alpha(total, offset, lut, rgba)
        else:
            lut_index = np.searchsorted(values, d)
            rgba[np.flatnonzero(total), 3] = alphas[lut_index]
    values = rgba.view(np.uint32).reshape(height, width)
    return tf.Image(values, coords={"x": agg.coords["x"].values, "y": agg.coords["y"].values}, dims=("y", "x"))


def latent_image(
    embedding,
    labels=None,
    *,
    class_names=None,
    width: int = 600,
    height: int = 600,
    x_range=None,
    y_range=None,
    how: str = "eq_hist",
    spread: bool = True,
    background: str | None = "white",
):
    """Run the whole pipeline and return a PIL image (y grows upwards, like the plot).

    Examples
    --------
    >>> E = np.random.default_rng(0).normal(size=(1000, 2))
    >>> latent_image(E, np.arange(1000) % 3, width=64, height=48).size
    (64, 48)
    """
    frame = points_frame(embedding, labels, class_names)
    canvas = make_canvas(embedding, width=width, height=height, x_range=x_range, y_range=y_range)
    agg = aggregate(frame, canvas=canvas)
    return shade(agg, how=how, spread=spread, background=background).to_pil()


def grid_positions(x_range, y_range, n: int = 6, margin: float = 0.1) -> np.ndarray:
    """``n * n`` regularly spaced 2-D points, row by row from the top (high y) left, inside the ranges.

    Returns
    -------
    ndarray of shape (n * n, 2), float32
    """
    (x0, x1), (y0, y1) = x_range, y_range
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    xs = np.linspace(x0 + mx, x1 - mx, n)
    ys = np.linspace(y1 - my, y0 + my, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.c_[gx.ravel(), gy.ravel()].astype(np.float32)


def to_rgb_array(image) -> np.ndarray:
    """A drawn output (2-D grey, (H, W, 1), RGB or RGBA; any numeric range) as an (H, W, 3) uint8 array.

    Floats in [0, 1] are scaled by 255, other ranges are min-max normalized.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"draw_fn must return a 2-D or (H, W, 3|4) image array, got shape {a.shape}.")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        if not (lo >= 0.0 and hi <= 1.0):
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return a[..., :3]


def _decode_tiles(positions, decode_fn, draw_fn, tile: int) -> list:
    from PIL import Image

    outputs = decode_fn(positions)
    tiles = []
    for out in outputs:
        img = Image.fromarray(to_rgb_array(draw_fn(out)))
        img.thumbnail((tile, tile), Image.Resampling.NEAREST if max(img.size) < tile else Image.Resampling.LANCZOS)
        if max(img.size) < tile:
            scale = tile / max(img.size)
            img = img.resize(
                (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.NEAREST
            )
        tiles.append(img)
    return tiles


def _compose_pil(latent, legend, tiles, n, marks, title, tile):
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    pad, swatch, line = 12, 12, 18
    legend_w = 0
    if legend:
        legend_w = pad + swatch + 6 + max(int(font.getlength(name)) for name, _ in legend) + pad
    grid_w = (n * (tile + 4) + pad) if tiles else 0
    title_h = line + pad if title else 0
    height = title_h + pad + max(latent.height, len(legend) * line, (n * (tile + 4)) if tiles else 0) + pad
    width = pad + latent.width + legend_w + grid_w + pad
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    if title:
        draw.text((pad, pad), title, fill="black", font=font)
    top = title_h + pad
    page.paste(latent.convert("RGB"), (pad, top))
    draw.rectangle([pad - 1, top - 1, pad + latent.width, top + latent.height], outline="#888888")
    for px, py in marks:  # where the decodes were taken
        x, y = pad + px, top + py
        draw.line([x - 4, y, x + 4, y], fill="black", width=1)
        draw.line([x, y - 4, x, y + 4], fill="black", width=1)
    lx = pad + latent.width + pad
    for j, (name, color) in enumerate(legend):
        y = top + j * line
        draw.rectangle([lx, y + 3, lx + swatch, y + 3 + swatch], fill=color)
        draw.text((lx + swatch + 6, y), name, fill="black", font=font)
    gx = pad + latent.width + legend_w
    for i, img in enumerate(tiles):
        r, c = divmod(i, n)
        x0, y0 = gx + c * (tile + 4), top + r * (tile + 4)
        page.paste(img, (x0 + (tile - img.width) // 2, y0 + (tile - img.height) // 2))
        draw.rectangle([x0 - 1, y0 - 1, x0 + tile, y0 + tile], outline="#cccccc")
    return page


def _compose_matplotlib(latent, legend, tiles, n, extent, positions, title, path, dpi=100):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ncols = 2 if tiles else 1
    fig = Figure(figsize=(6.5 * ncols, 6.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    ax = axes[0]
    ax.imshow(np.asarray(latent.convert("RGB")), extent=extent, origin="upper", aspect="auto")
    ax.set_xlabel("dim 1")
    ax.set_ylabel("dim 2")
    if positions is not None:
        ax.plot(positions[:, 0], positions[:, 1], "k+", markersize=6)
    if legend:
        ax.legend(
            handles=[Patch(color=c, label=name) for name, c in legend],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize="small",
        )
    if tiles:
        tile = max(max(t.size) for t in tiles)
        mosaic = np.full((n * (tile + 2), n * (tile + 2), 3), 255, np.uint8)
        for i, img in enumerate(tiles):
            r, c = divmod(i, n)
            a = np.asarray(img)
            mosaic[r * (tile + 2) : r * (tile + 2) + a.shape[0], c * (tile + 2) : c * (tile + 2) + a.shape[1]] = a
        axes[1].imshow(mosaic)
        axes[1].set_axis_off()
        axes[1].set_title("decoded at the + marks", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.savefig(path)


def write_png(
    path,
    embedding,
    labels=None,
    *,
    class_names=None,
    decode_fn: Callable[[np.ndarray], object] | None = None,
    draw_fn: Callable[[object], np.ndarray] | None = None,
    grid: int = 6,
    size: int = 600,
    tile: int = 64,
    title: str | None = None,
    how: str = "eq_hist",
    compositor: str = "auto",
) -> Path:
    """Write a PNG of the latent space coloured by label, with a legend and an optional grid of decodes.

    Parameters
    ----------
    path : str or Path
    embedding : array of shape (n, 2)
    labels : array of shape (n,), optional
    class_names : sequence of str, optional
        Names of integer labels (legend text).
    decode_fn : callable, optional
        ``decode_fn(xy (k, 2)) -> outputs`` (k items): the inverse map plus the rest of the model.
    draw_fn : callable, optional
        ``draw_fn(output) -> image array`` (2-D grey or (H, W, 3|4)); required with ``decode_fn``.
    grid : int, default=6
        The decodes are taken on a ``grid x grid`` lattice over the embedding (marked with + on the map).
    size : int, default=600
        Pixel size of the latent-space panel.
    tile : int, default=64
        Pixel size of one decode.
    title : str, optional
    how : str, default="eq_hist"
        Datashader scaling.
    compositor : {"auto", "matplotlib", "pil"}, default="auto"
        ``"auto"`` uses matplotlib when it is installed, else PIL.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        Bad shapes, ``decode_fn`` without ``draw_fn``, or an unknown compositor.
    ImportError
        ``compositor="matplotlib"`` without matplotlib (``pip install matplotlib``).

    Examples
    --------
    >>> write_png("latent.png", embedding, labels, decode_fn=lambda xy: model_decode(xy),   # doctest: +SKIP
    ...           draw_fn=lambda out: out.reshape(28, 28))
    """
    if decode_fn is not None and draw_fn is None:
        raise ValueError("write_png: decode_fn needs a draw_fn(output) -> image array to draw each decode.")
    if compositor not in ("auto", "matplotlib", "pil"):
        raise ValueError(f"write_png: compositor must be 'auto', 'matplotlib' or 'pil', got {compositor!r}.")
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if compositor == "matplotlib" and not has_mpl:
        raise ImportError("write_png(compositor='matplotlib') needs matplotlib: pip install matplotlib.")
    use_mpl = compositor == "matplotlib" or (compositor == "auto" and has_mpl)

    E = np.asarray(embedding)
    x_range, y_range = padded_range(E[:, 0]), padded_range(E[:, 1])
    frame = points_frame(E, labels, class_names)
    canvas = make_canvas(width=size, height=size, x_range=x_range, y_range=y_range)
    agg = aggregate(frame, canvas=canvas)
    img = shade(agg, how=how)
    latent = img.to_pil()

    legend = []
    if "label" in frame:
        categories = [str(c) for c in frame["label"].cat.categories]
        present = set(frame["label"].astype(str).unique())
        keys = color_key(categories)
        legend = [(c, keys[c]) for c in categories if c in present]

    tiles, positions, marks = [], None, []
    if decode_fn is not None:
        positions = grid_positions(x_range, y_range, n=grid)
        tiles = _decode_tiles(positions, decode_fn, draw_fn, tile)
        sx = size / (x_range[1] - x_range[0])
        sy = size / (y_range[1] - y_range[0])
        marks = [((x - x_range[0]) * sx, (y_range[1] - y) * sy) for x, y in positions]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if use_mpl:
        extent = (x_range[0], x_range[1], y_range[0], y_range[1])
        _compose_matplotlib(latent, legend, tiles, grid, extent, positions, title, path)
    else:
        _compose_pil(latent, legend, tiles, grid, marks, title, tile).save(path, format="PNG")
    return path
