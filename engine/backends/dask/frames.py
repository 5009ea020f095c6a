"""The render frame of an embedding store: a Dask DataFrame whose partitions the workers read and datashader
aggregates on them; registered as :func:`engine.render.points_frame` (and ``data_ranges``) of a store."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np

from engine.data.store import Stored, open_store
from engine.errors import DataError

__all__ = ["embedding_frame", "embedding_ranges"]


# -- rendering ---------------------------------------------------------------------------------------------------------


def _frame_part(path: str, lo: int, hi: int, labels, categories):
    import pandas as pd
    import zarr

    from engine.data.labels import label_column

    E = zarr.open_array(path, mode="r")[lo:hi]
    frame = pd.DataFrame({"x": E[:, 0].astype(np.float64), "y": E[:, 1].astype(np.float64)})
    if categories is not None:
        codes = np.asarray(labels if isinstance(labels, np.ndarray) else labels[lo:hi]).reshape(-1)
        frame["label"] = label_column(codes, hi - lo, categories, where=f"labels of rows {lo}..{hi - 1}")
    return frame


def embedding_frame(emb, labels=None, class_names=None):
    """A :class:`dask.dataframe.DataFrame` over an embedding store: float64 ``x``, ``y`` and a categorical
    ``label``, one partition per stored chunk, each read by the worker that needs it.

    Parameters
    ----------
    emb : Stored or path
    labels : array of int, path of a ``.npy`` or ``.h5`` file, or None
        One class code per row. A file is read by the workers, a chunk per partition.
    class_names : sequence of str, optional
        Default: the codes as text (``"0"``, ``"1"``...).

    Returns
    -------
    dask.dataframe.DataFrame

    Raises
    ------
    DataError
        Labels of the wrong length, or codes without a name.
    """
    import dask.dataframe as dd
    import pandas as pd

    from engine.data.chunked import H5Rows, NpyRows

    stored = emb if isinstance(emb, Stored) else open_store(emb)
    if stored.shape[1] != 2:
        raise DataError(f"{stored.path}: an embedding of shape {stored.shape}; a frame needs 2 columns")
    n = stored.shape[0]
    reader, categories = None, None
    if labels is not None:
        if isinstance(labels, (str, Path)):
            lp = Path(labels)
            reader = NpyRows(lp) if lp.suffix.lower() == ".npy" else H5Rows(lp)
        else:
            reader = np.asarray(labels).reshape(-1)
        if len(reader) != n:
            raise DataError(f"labels: {len(reader)} for {n} embedded rows; expected one per row")
        if class_names is None:
            if isinstance(reader, np.ndarray):
                top = int(reader.max())
            else:  # one pass over the file, a chunk per task
                top = int(da.from_array(reader, chunks=(stored.chunk_rows, *reader.shape[1:]), asarray=True,
                                        lock=False, inline_array=True,
                                        meta=np.empty((0,) * reader.ndim, reader.dtype)).max().compute())
            class_names = [str(i) for i in range(top + 1)]
        categories = tuple(str(c) for c in class_names)
    parts = [(lo, hi, reader[lo:hi] if isinstance(reader, np.ndarray) else reader) for lo, hi in stored.bounds()]
    meta = pd.DataFrame({"x": np.empty(0, np.float64), "y": np.empty(0, np.float64)})
    if categories is not None:
        meta["label"] = pd.Categorical.from_codes(np.empty(0, np.int64), categories=list(categories))
    return dd.from_map(_frame_part, [str(stored.path)] * len(parts), [p[0] for p in parts], [p[1] for p in parts],
                       [p[2] for p in parts], args=(categories,), meta=meta, enforce_metadata=False,
                       label="embedding-frame")


def embedding_ranges(emb) -> list[list[float]]:
    """Each column's ``[min, max]`` of an embedding store (from its attributes, else one pass over it)."""
    stored = emb if isinstance(emb, Stored) else open_store(emb)
    ranges = stored.attrs.get("ranges")
    if ranges is None:
        E = stored.array()
        ranges = [[float(v) for v in dask.compute(E[:, j].min(), E[:, j].max())] for j in range(E.shape[1])]
    return ranges


def _register_render() -> None:
    from engine.render.frame import _points_frame_of, data_ranges

    _points_frame_of.register(Stored, embedding_frame)
    _points_frame_of.register(da.Array, lambda E, labels=None, class_names=None: embedding_frame(
        _as_store(E), labels, class_names))
    data_ranges.register(Stored, lambda emb: [tuple(r) for r in embedding_ranges(emb)])
    data_ranges.register(da.Array, lambda E: [tuple(float(v) for v in dask.compute(E[:, j].min(), E[:, j].max()))
                                              for j in range(E.shape[1])])


def _as_store(E):
    raise DataError("a frame of a Dask array: write it to a store first (engine.reduce.embed(..., out=...)), whose "
                    "chunks the workers read")


_register_render()
