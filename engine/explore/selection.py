"""Selections of samples, and linking them across views.

A selection is an array of sample ids (sorted, unique, int64). Every view of one dataset -- the latent plot of a
layer, its parallel coordinates, the latent plot of another layer or of another model over the same inputs --
indexes its rows by the same sample id, so linking is by id: a box on one latent plot selects ids, and the same ids
are highlighted everywhere else (:func:`map_selection` gives their coordinates in another view).

* :func:`select_box`, :func:`select_lasso`: on a 2-D embedding (bounds included; a lasso by the even-odd rule);
* :func:`select_axis_range`: on one axis of parallel coordinates (bounds included);
* :func:`intersect`, :func:`union`: combine selections;
* :func:`export_ids` / :func:`load_ids`: ``.npy``, ``.csv`` or ``.txt``, written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import numpy as np

from engine.data.files import atomic_write
from engine.errors import SelectionError

__all__ = [
    "ID_FORMATS",
    "MappedSelection",
    "export_ids",
    "intersect",
    "load_ids",
    "map_selection",
    "points_in_polygon",
    "select_axis_range",
    "select_box",
    "select_lasso",
    "union",
]

#: File suffixes :func:`export_ids` writes and :func:`load_ids` reads.
ID_FORMATS = (".npy", ".csv", ".txt")


def _points(embedding) -> np.ndarray:
    E = np.asarray(embedding)
    if E.ndim != 2 or E.shape[1] != 2:
        raise SelectionError(f"selection: the embedding must have shape (samples, 2), got {E.shape}")
    return E


def select_box(embedding, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Ids of the points inside the box ``[x0, x1] x [y0, y1]`` (bounds in any order, included).

    Example
    -------
    >>> select_box([[0, 0], [1, 1], [2, 2]], 0.5, 2.0, 0.0, 1.5)
    array([1])
    """
    E = _points(embedding)
    (xa, xb), (ya, yb) = sorted((float(x0), float(x1))), sorted((float(y0), float(y1)))
    x, y = E[:, 0], E[:, 1]
    return np.flatnonzero((x >= xa) & (x <= xb) & (y >= ya) & (y <= yb)).astype(np.int64)


def points_in_polygon(points, polygon) -> np.ndarray:
    """Boolean mask of the ``points`` (k, 2) inside ``polygon`` (m, 2) by the even-odd rule (ray casting).

    The polygon is closed implicitly; self-intersecting lassos alternate inside / outside. Points exactly on an
    edge may fall either way.

    Example
    -------
    >>> points_in_polygon([[0.5, 0.5], [2, 2]], [[0, 0], [1, 0], [1, 1], [0, 1]])
    array([ True, False])
    """
    P = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    V = np.asarray(polygon, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != 2 or len(V) < 3:
        raise SelectionError(f"lasso: the polygon must have shape (vertices >= 3, 2), got {V.shape}")
    inside = np.zeros(len(P), dtype=bool)
    lo, hi = V.min(axis=0), V.max(axis=0)
    box = np.flatnonzero((P[:, 0] >= lo[0]) & (P[:, 0] <= hi[0]) & (P[:, 1] >= lo[1]) & (P[:, 1] <= hi[1]))
    if not len(box):
        return inside
    x, y = P[box, 0], P[box, 1]
    odd = np.zeros(len(box), dtype=bool)
    xj, yj = V[-1]
    for xi, yi in V:
        straddles = (yi > y) != (yj > y)  # the edge crosses the horizontal line through the point
        if straddles.any():
            s = np.flatnonzero(straddles)
            cross = xi + (xj - xi) * (y[s] - yi) / (yj - yi)
            odd[s] ^= x[s] < cross
        xj, yj = xi, yi
    inside[box] = odd
    return inside


def select_lasso(embedding, polygon_xy) -> np.ndarray:
    """Ids of the points inside the lasso ``polygon_xy`` (vertices (m, 2), closed implicitly, even-odd rule).

    Example
    -------
    >>> select_lasso([[0.5, 0.5], [2, 2]], [[0, 0], [1, 0], [1, 1], [0, 1]])
    array([0])
    """
    E = _points(embedding)
    return np.flatnonzero(points_in_polygon(E, polygon_xy)).astype(np.int64)


def select_axis_range(values, lo: float, hi: float) -> np.ndarray:
    """Ids of the samples whose value on one axis lies in ``[lo, hi]`` (bounds in any order, included).

    Parameters
    ----------
    values : array of shape (n,)
        The samples' values on the axis (``ParallelAxes.values[:, j]``).

    Example
    -------
    >>> select_axis_range([0.1, 0.5, 0.9], 0.4, 1.0)
    array([1, 2])
    """
    v = np.asarray(values)
    if v.ndim != 1:
        raise SelectionError(f"axis range: expected one value per sample (shape (n,)), got {v.shape}")
    a, b = sorted((float(lo), float(hi)))
    return np.flatnonzero((v >= a) & (v <= b)).astype(np.int64)


def intersect(*selections) -> np.ndarray:
    """Ids in every selection (sorted). With no selection, an empty one.

    Example
    -------
    >>> intersect([1, 2, 3], [2, 3, 4], [3, 2])
    array([2, 3])
    """
    if not selections:
        return np.empty(0, dtype=np.int64)
    return reduce(np.intersect1d, [np.asarray(s, dtype=np.int64) for s in selections]).astype(np.int64)


def union(*selections) -> np.ndarray:
    """Ids in any selection (sorted, unique).

    Example
    -------
    >>> union([3, 1], [2])
    array([1, 2, 3])
    """
    if not selections:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate([np.asarray(s, dtype=np.int64).reshape(-1) for s in selections]))


def _check_ids(ids, n: int | None = None, where: str = "selection") -> np.ndarray:
    a = np.asarray(ids)
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise SelectionError(f"{where}: sample ids must be whole numbers, got dtype {a.dtype}")
    a = a.reshape(-1).astype(np.int64)
    if a.min() < 0 or (n is not None and a.max() >= n):
        bound = f"0..{n - 1}" if n is not None else ">= 0"
        raise SelectionError(f"{where}: sample ids must lie in {bound}, got {a.min()}..{a.max()}")
    return a


def export_ids(ids, path) -> Path:
    """Write sample ids to ``path``, atomically (a reader never sees half a file).

    Parameters
    ----------
    ids : array-like of int
        Written in the order given.
    path : str or Path
        ``.npy`` (int64 array), ``.csv`` (a ``sample_id`` header, one id a line) or ``.txt`` (one id a line).

    Returns
    -------
    Path

    Raises
    ------
    SelectionError
        Another suffix, or ids that are not non-negative whole numbers.

    Example
    -------
    >>> export_ids(select_box(insp.embedding, 0, 1, 0, 1), "cluster.csv")   # doctest: +SKIP
    PosixPath('cluster.csv')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ID_FORMATS:
        raise SelectionError(f"{path}: cannot write ids as {suffix or 'a file without suffix'!r}; "
                             f"use one of {', '.join(ID_FORMATS)}")
    a = _check_ids(ids, where=str(path))

    def write(fh):
        if suffix == ".npy":
            np.save(fh, a)
        else:
            header = "sample_id\n" if suffix == ".csv" else ""
            fh.write((header + "".join(f"{int(i)}\n" for i in a)).encode())

    return atomic_write(path, write)


def load_ids(path) -> np.ndarray:
    """Read ids written by :func:`export_ids` (int64, in file order).

    Example
    -------
    >>> load_ids("cluster.csv")   # doctest: +SKIP
    array([ 3, 17, 42])
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ID_FORMATS:
        raise SelectionError(f"{path}: cannot read ids from {suffix!r}; expected one of {', '.join(ID_FORMATS)}")
    try:
        if suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        else:
            lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
            if lines and suffix == ".csv" and lines[0] == "sample_id":
                lines = lines[1:]
            a = np.array([int(s) for s in lines], dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise SelectionError(f"{path}: not a list of sample ids ({exc})") from None
    return _check_ids(a, where=str(path))


@dataclass(frozen=True)
class MappedSelection:
    """A selection carried into another view.

    Attributes
    ----------
    ids : ndarray of int64
        The same ids (linking is by sample id).
    xy : ndarray of shape (len(ids), 2)
        Where those samples sit in the other view's embedding.
    """

    ids: np.ndarray
    xy: np.ndarray


def _view_size(view) -> tuple[int, str]:
    E = getattr(view, "embedding", view)
    E = _points(E)
    project = getattr(getattr(view, "project", None), "name", None)
    layer = getattr(view, "layer", None)
    name = "a view" if layer is None else f"layer {layer!r}" + (f" of project {project!r}" if project else "")
    return len(E), name


def map_selection(ids, from_view, to_view) -> MappedSelection:
    """Carry a selection from one view to another of the same samples.

    Parameters
    ----------
    ids : array-like of int
    from_view, to_view : Inspection, or any object with an ``embedding`` (n, 2), or an (n, 2) array
        Both must hold the same samples, hence the same number of rows.

    Returns
    -------
    MappedSelection
        The ids unchanged and their coordinates in ``to_view``.

    Raises
    ------
    SelectionError
        The views hold different numbers of samples, or an id is out of range.

    Example
    -------
    >>> m = map_selection(select_box(a.embedding, 0, 1, 0, 1), a, b); m.xy.shape   # doctest: +SKIP
    (57, 2)
    """
    n_from, from_name = _view_size(from_view)
    n_to, to_name = _view_size(to_view)
    if n_from != n_to:
        raise SelectionError(
            f"cannot link {from_name} ({n_from} samples) with {to_name} ({n_to} samples): linked views must show "
            "the same samples"
        )
    a = _check_ids(ids, n_from, where=f"selection in {from_name}")
    E = np.asarray(getattr(to_view, "embedding", to_view))
    return MappedSelection(a, E[a])
