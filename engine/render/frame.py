"""Stage 0 of every picture of an embedding: the points as a table, and the canvas that frames them.

:func:`points_frame` turns an embedding and its labels into what datashader aggregates: a pandas DataFrame for an
embedding in memory, a Dask DataFrame (one partition per stored chunk) for a Zarr store of the engine. Each class
has one colour everywhere (:func:`color_key`), on the dashboard and in the PNGs alike.
"""

from __future__ import annotations

import numpy as np

from engine import backends
from engine.data.labels import label_column
from engine.errors import RenderError

__all__ = ["color_key", "data_ranges", "make_canvas", "padded_range", "points_frame"]

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


def _points_frame(embedding, labels=None, class_names=None):
    import pandas as pd

    E = np.asarray(embedding)
    if E.ndim != 2 or E.shape[1] != 2:
        raise RenderError(f"points_frame needs an (n, 2) embedding, got shape {E.shape}.")
    if E.dtype.kind != "f":
        E = E.astype(np.float64)
    # the columns are views of the embedding (a memory map stays one: the table of 100 million points then holds its
    # labels alone); pandas' copy-on-write keeps the embedding from any change made to the table
    frame = pd.DataFrame({"x": E[:, 0], "y": E[:, 1]}, copy=False)
    if labels is not None:
        frame["label"] = label_column(labels, len(E), class_names, where="points_frame", error=RenderError)
    return frame


#: Stage 0 for each backend of the embedding (NumPy here; a Zarr store or Dask array in engine.backends.dask).
_points_frame_of = backends.Dispatch("points_frame")
_points_frame_of.register(object, _points_frame)
for _top in ("dask", "engine"):  # a Dask array, or the engine's own Zarr store
    _points_frame_of.register_lazy(_top, backends.load_dask_backend)


def points_frame(embedding, labels=None, class_names=None):
    """Stage 0: a DataFrame with float columns ``x``, ``y`` (views of a float embedding, float32 as the reducers
    give it; float64 for others) and, with labels, a categorical ``label``.

    Parameters
    ----------
    embedding : array of shape (n, 2), or an embedding store (:func:`engine.reduce.embed`)
        A store gives a :class:`dask.dataframe.DataFrame`, one partition per stored chunk, which datashader
        aggregates on the Dask scheduler in use.
    labels : array of shape (n,), optional
        Integer codes (named by ``class_names``) or any values (named by ``str``); for a store, also the path of a
        ``.npy`` or ``.h5`` file of codes, read by the workers.
    class_names : sequence of str, optional

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame

    Raises
    ------
    RenderError
        An embedding that is not (n, 2), labels of another length, or codes without a class name.
    """
    return _points_frame_of(embedding, labels, class_names)


def _data_ranges(embedding) -> list[tuple[float, float]]:
    E = np.asarray(embedding)
    return [(float(np.nanmin(E[:, j])), float(np.nanmax(E[:, j]))) for j in range(E.shape[1])]


#: ``data_ranges(embedding)``: each column's ``(min, max)`` (a store's are recorded when it is written).
data_ranges = backends.Dispatch("data_ranges")
data_ranges.register(object, _data_ranges)
for _top in ("dask", "engine"):
    data_ranges.register_lazy(_top, backends.load_dask_backend)


def make_canvas(embedding=None, *, width: int = 600, height: int = 600, x_range=None, y_range=None):
    """A :class:`datashader.Canvas` framing ``embedding`` (5% padding) unless ranges are given."""
    import datashader as ds

    if embedding is not None:
        (x0, x1), (y0, y1) = data_ranges(embedding)[:2]
        x_range = x_range or padded_range((x0, x1))
        y_range = y_range or padded_range((y0, y1))
    return ds.Canvas(plot_width=int(width), plot_height=int(height), x_range=x_range, y_range=y_range)
