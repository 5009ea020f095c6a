"""The latent plot of a small table: every point a Bokeh glyph drawn by the browser, so pan and zoom need no server.

A datashaded plot (:func:`dashboard.latent.embedding_raster`) costs the same few hundred milliseconds per pan
whatever the number of points: the server aggregates and shades the new view, sends one image, the browser paints it.
Drawn by the browser, a pan costs nothing on the server and grows with the number of points. Below
:data:`GLYPH_LIMIT` points the browser is the faster of the two, and the Inspect tab's plot is :func:`embedding_glyphs`
(:meth:`dashboard.inspector.views.LatentView._plot` chooses, by :func:`draws_glyphs`): an ``hv.Points`` element
coloured by the category column in the raster's colours (:func:`dashboard.latent.category_colors`), with its legend
(the plot hook :func:`glyph_legend`).

What the browser receives is what Bokeh draws fastest: float32 coordinates and the categories' integer codes, binary,
mapped to the colours by a linear colour mapper, as the benchmarks' raw Bokeh scatter has them. The categories' names
as a column (HoloViews' own categorical colouring, and its legend by field, whose labels the browser finds by a
search of that column) made the first paint of 10,000 points 125-300 ms later in Chromium (2 cores, load 3-6).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd

from .latent import category_colors

__all__ = ["GLYPH_LIMIT", "draws_glyphs", "embedding_glyphs", "glyph_legend", "glyph_size"]

#: Tables of fewer points than this are drawn as glyphs by the browser, larger ones datashaded on the server. Set where
#: a pan of the glyph plot (its full redraw, growing with the points) cost as much as a pan of the datashaded plot (a
#: server image, ~200-300 ms whatever the points), when the glyphs were drawn with WebGL: 11-13k points on 2 cores
#: with headless Chromium's software WebGL (pan to painted, median / p95, glyphs vs datashaded: 10k points 236 / 259
#: vs 260 / 455 ms, 20k 444 / 485 vs 295 / 426 ms). Drawn on a canvas (dashboard.latent.OUTPUT_BACKEND, 2026-12-07,
#: benchmarks/cases/browser.py's pages, the same machine, 5 loads and 10 pans each): pans took 59 / 92 ms against
#: 214 / 227 at 10k, 83 / 92 against 188 / 209 at 20k, 121 / 134 against 193 / 207 at 30k, 179 / 187 against
#: 205 / 217 at 50k; the first paint 1.1 s against 1.06 at 10k, 1.35 s against 0.93 at 50k. So the limit could rise to
#: some 30k; it has not been moved yet (a browser drawing on a GPU was not measured).
GLYPH_LIMIT = 12_000
#: Opacity of a glyph: overlapping points of a dense cluster darken, as the raster's alpha grows with the count.
GLYPH_ALPHA = 0.7
#: The column of the categories' codes in the glyphs' data (its label is the category column's name).
CODE = "code"


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
    in the engine's colours.

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
        x, y (float32) and the category codes (the dimension :data:`CODE`, labelled ``color_by``, its ``values`` the
        category names), styled: each code mapped to its category's :func:`dashboard.latent.category_colors`, no
        outline. Its legend is the plot hook :func:`glyph_legend`: give it among the plot's ``hooks`` (HoloViews
        keeps one list of hooks per element, which the caller's own replace).

    Raises
    ------
    ValueError
        ``color_by`` is not a categorical column of ``points``.

    Example
    -------
    >>> element = embedding_glyphs(table, "label").opts(hooks=[glyph_legend])  # doctest: +SKIP
    """
    column = points[color_by] if color_by in points.columns else None
    if column is None or not isinstance(column.dtype, pd.CategoricalDtype):
        raise ValueError(f"embedding_glyphs colours by a categorical column of the table: {color_by!r} is "
                         f"{'not one' if column is None else f'of type {column.dtype}'} (its columns: "
                         f"{', '.join(map(str, points.columns))})")
    names = [str(name) for name in column.cat.categories]
    table = pd.DataFrame({"x": points["x"].to_numpy(np.float32), "y": points["y"].to_numpy(np.float32),
                          CODE: column.cat.codes.to_numpy()})
    code = hv.Dimension(CODE, label=str(color_by), values=names)
    return hv.Points(table, ["x", "y"], [code]).opts(
        color=CODE, cmap=category_colors(names), clim=(-0.5, len(names) - 0.5), colorbar=False,
        clipping_colors={"min": "transparent"},  # (code -1: no category, not drawn, as on the raster)
        line_color=None, size=glyph_size(spread), fill_alpha=GLYPH_ALPHA)


def glyph_legend(plot, element):
    """Plot hook of :func:`embedding_glyphs`: the legend at the right of the figure, one entry per category present,
    drawn in the colour of that category's first point."""
    from bokeh.models import Legend, LegendItem

    figure = plot.state
    if any(getattr(r, "name", None) == "glyph-legend" for r in figure.right):
        return
    codes = element.dimension_values(CODE)
    names = element.get_dimension(CODE).values
    present, first = np.unique(codes, return_index=True)
    renderer = plot.handles["glyph_renderer"]
    items = [LegendItem(label=str(names[c]), renderers=[renderer], index=int(i))
             for c, i in zip(present, first) if 0 <= c < len(names)]
    # (at the foot of the right-hand side, where HoloViews puts the raster's legend_position="right")
    figure.add_layout(Legend(items=items, name="glyph-legend", location=(0, 0), label_text_font_size="9pt"), "right")
