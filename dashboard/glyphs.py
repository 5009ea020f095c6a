"""The latent plot of a small table: every point a Bokeh glyph drawn by the browser, so pan and zoom need no server.

A datashaded plot (:func:`dashboard.latent.embedding_raster`) costs the same few hundred milliseconds per pan
whatever the number of points: the server aggregates and shades the new view, sends one image, the browser paints it.
Drawn by the browser, a pan costs nothing on the server and grows with the number of points. Below
:data:`GLYPH_LIMIT` points the browser is the faster of the two, and the Inspect tab's plot is :func:`embedding_glyphs`
(:meth:`dashboard.inspector.views.LatentView._plot` chooses, by :func:`draws_glyphs`): an ``hv.Points`` element
coloured by the category column in the raster's colours (:func:`dashboard.latent.category_colors`), with its legend.
"""

from __future__ import annotations

import holoviews as hv

from .latent import category_colors

__all__ = ["GLYPH_LIMIT", "draws_glyphs", "embedding_glyphs", "glyph_size"]

#: Tables of fewer points than this are drawn as glyphs by the browser, larger ones datashaded on the server: where
#: a pan of the glyph plot (its full redraw, growing with the points) costs as much as a pan of the datashaded plot
#: (a server image, ~250 ms whatever the points). Measured with benchmarks/cases/browser.py (pages of
#: benchmarks/pages.py; 2 cores, headless Chromium with software WebGL): pan to painted, medians, glyphs vs
#: datashaded: 10k points 129 vs 222 ms, 20k 230-260 vs 266 ms, 30k 354 vs 259 ms.
GLYPH_LIMIT = 20_000
#: Opacity of a glyph: overlapping points of a dense cluster darken, as the raster's alpha grows with the count.
GLYPH_ALPHA = 0.7


def glyph_size(spread: int) -> int:
    """Diameter in pixels of a glyph for the plot's point size ``spread``: ``spread + 1``. The raster grows an isolated
    point by up to ``spread`` pixels on each side, but stops where half the pixels touch (``dynspread``): its points
    look about that size, a glyph of ``2 * spread + 1`` hides a cluster's structure under overlapping discs."""
    return int(spread) + 1


def draws_glyphs(points, color_by: str) -> bool:
    """Whether the latent plot of the table ``points`` coloured by ``color_by`` is drawn as glyphs: fewer than
    :data:`GLYPH_LIMIT` points, coloured by one of its category columns (density stays datashaded)."""
    return points is not None and len(points) < GLYPH_LIMIT and color_by in points.columns


def embedding_glyphs(points, color_by: str = "label", spread: int = 3):
    """The embedding table ``points`` (columns x, y and categories) as glyphs, coloured by the category ``color_by``
    in the engine's colours, with a legend.

    Parameters
    ----------
    points : pandas.DataFrame
        Columns ``x``, ``y`` and the categorical column ``color_by`` (the dashboard's plot table,
        :func:`dashboard.shared.plot_table`).
    color_by : str
        The category column colouring the points.
    spread : int
        The plot's point size (:func:`glyph_size`).

    Returns
    -------
    holoviews.Points
        Styled: ``color_by`` mapped to :func:`dashboard.latent.category_colors`, no outline, the legend on the right
        as the raster has it.

    Raises
    ------
    ValueError
        ``color_by`` is not a categorical column of ``points``.

    Example
    -------
    >>> from engine.render import points_frame
    >>> element = embedding_glyphs(points_frame(np.zeros((3, 2)), np.array([0, 1, 1]), ["a", "b"]))  # doctest: +SKIP
    """
    column = points[color_by] if color_by in points.columns else None
    if column is None or not hasattr(column, "cat"):
        raise ValueError(f"embedding_glyphs colours by a categorical column of the table: {color_by!r} is "
                         f"{'not one' if column is None else f'of type {column.dtype}'} (its columns: "
                         f"{', '.join(map(str, points.columns))})")
    names = list(column.cat.categories)
    element = hv.Points(points, ["x", "y"], [color_by])
    return element.opts(color=color_by, cmap=dict(zip(map(str, names), category_colors(names))), line_color=None,
                        size=glyph_size(spread), fill_alpha=GLYPH_ALPHA, show_legend=True, legend_position="right",
                        legend_opts={"label_text_font_size": "9pt"})
