"""Stage 2: colour, spread and background of an aggregate.

:func:`shade` is datashader's ``tf.shade`` -> ``tf.dynspread`` -> ``tf.set_background``. :func:`shade_colors` gives the
pixels ``tf.shade`` gives for ``count_cat``, from :func:`engine.render.bins.aggregate_colors`' four numbers per
pixel: datashader's colour mixing (mean category colour, truncated to 8 bits) and alpha scaling (``eq_hist`` of the
counts between ``min_alpha`` and ``alpha``), computed once per distinct count rather than once per pixel.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.errors import RenderError
from engine.render.frame import color_key

__all__ = ["shade", "shade_colors"]


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
    RenderError
        An unknown ``how``.

    Examples
    --------
    >>> import datashader as ds
    >>> from engine.render.bins import aggregate_colors, index_points
    >>> index = index_points(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0, 1]), ["a", "b"])
    >>> img = shade_colors(aggregate_colors(index, canvas=ds.Canvas(4, 4, (0, 1), (0, 1))))
    >>> img.shape
    (4, 4)
    """
    import datashader.transfer_functions as tf

    scale = {"eq_hist": None, "log": np.log1p, "cbrt": lambda v: v ** (1 / 3.0), "linear": lambda v: v}
    if how not in scale:
        raise RenderError(f"shade_colors: how must be one of {', '.join(scale)}, got {how!r}.")
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


