"""Compute backends: where an array that is not a NumPy array in memory plugs into the pipeline's stages.

Each stage of the pipeline (propagate, the PCA, the reducers' embedding of every row, the render frame) is written
once, against a few operations on a table of rows: read some rows, apply a function to every chunk of rows, add up
per-chunk results. Those operations are chosen by the type of the array, as Datashader chooses its pipeline by the
type of the data frame:

* a NumPy array, a memory map, an HDF5 dataset (the default): chunk after chunk, in this process;
* a :class:`dask.array.Array` or a Zarr store written by the engine (:mod:`engine.backends.dask`): one task per
  chunk on the Dask scheduler in use, the workers of a :class:`distributed.Client` when there is one;
* CuPy arrays (:mod:`engine.backends.cupy`): the GPU, for the reducers and the inverse maps.

A backend registers its implementations with :meth:`Dispatch.register`; the Dask one is imported the first time a
Dask array is seen (:meth:`Dispatch.register_lazy`), so nothing here imports Dask, CuPy or cuML up front.

Example
-------
>>> import numpy as np
>>> X = np.arange(10.0).reshape(5, 2)
>>> map_chunks(lambda block: float(block.sum()), X, chunk_rows=2)
[6.0, 22.0, 17.0]
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable

import numpy as np

from engine.progress import ProgressFn, report

__all__ = [
    "Dispatch",
    "chunk_bounds",
    "fingerprint",
    "is_chunked",
    "load_dask_backend",
    "map_chunks",
    "n_rows",
    "reduce_chunks",
    "take_rows",
]

#: Rows per chunk where an in-memory array is processed chunk by chunk.
CHUNK_ROWS = 65_536


class Dispatch:
    """A function chosen by the type of its first argument (the most specific registered class of its MRO).

    Parameters
    ----------
    name : str
        For error messages.
    on : int, default=0
        Position of the argument whose type chooses (``map_chunks(fn, X)`` chooses by ``X``).

    Example
    -------
    >>> size = Dispatch("size")
    >>> _ = size.register(object, len); _ = size.register(str, lambda s: -1)
    >>> size([1, 2]), size("ab")
    (2, -1)
    """

    def __init__(self, name: str, on: int = 0):
        self.__name__ = name
        self.on = on
        self._lookup: dict[type, Callable] = {}
        self._lazy: dict[str, Callable[[], None]] = {}

    def register(self, cls: type, func: Callable | None = None):
        """Register ``func`` for instances of ``cls`` (usable as a decorator when ``func`` is omitted)."""

        def add(f):
            self._lookup[cls] = f
            return f

        return add(func) if func is not None else add

    def register_lazy(self, toplevel: str, loader: Callable[[], None]) -> None:
        """Call ``loader()`` (which registers implementations) the first time a type of package ``toplevel`` is seen."""
        self._lazy[toplevel] = loader

    def dispatch(self, cls: type) -> Callable:
        """The implementation for instances of ``cls`` (loading a lazy backend of its package first)."""
        for base in cls.__mro__:
            loader = self._lazy.pop(base.__module__.partition(".")[0], None)
            if loader is not None:
                loader()
                return self.dispatch(cls)
            if base in self._lookup:
                return self._lookup[base]
        raise TypeError(f"{self.__name__}: no implementation for {cls.__name__}")

    def __call__(self, *args, **kwargs):
        return self.dispatch(type(args[self.on]))(*args, **kwargs)


def load_dask_backend() -> None:
    """Import the Dask backend, which registers its implementations (a lazy loader of :class:`Dispatch`)."""
    importlib.import_module("engine.backends.dask")


# -- the operations every stage is written with ---------------------------------------------------------------------

#: ``take_rows(X, index)``: rows ``index`` (sorted, distinct) of ``X`` as a NumPy array, flattened to (k, features).
take_rows = Dispatch("take_rows")
#: ``map_chunks(fn, X, chunk_rows=None, progress=None, stage="")``: ``[fn(rows) for each chunk of rows]`` in order,
#: each chunk flattened to (rows, features); ``progress(stage, rows_done, n)`` as chunks complete.
map_chunks = Dispatch("map_chunks", on=1)
#: ``reduce_chunks(fn, combine, X, chunk_rows=None, progress=None, stage="")``: ``fn`` of every chunk of rows, added up
#: pairwise with ``combine(a, b)`` (in chunk order, so a tree of tasks on Dask gives the sequential result).
reduce_chunks = Dispatch("reduce_chunks", on=2)
#: ``fingerprint(X)``: a short text identifying the array's content, for cache keys (cheap: it need not read it all).
fingerprint = Dispatch("fingerprint")
#: ``is_chunked(X)``: True for arrays whose rows live in chunks outside this process's memory (Dask, Zarr).
is_chunked = Dispatch("is_chunked")
#: ``chunk_bounds(X, chunk_rows=None)``: ``[(lo, hi), ...]`` of the chunks of rows the operations use.
chunk_bounds = Dispatch("chunk_bounds")

for _op in (take_rows, map_chunks, reduce_chunks, fingerprint, is_chunked, chunk_bounds):
    _op.register_lazy("dask", load_dask_backend)


def n_rows(X) -> int:
    """Number of rows of any backend's array."""
    return int(X.shape[0])


# -- the in-process implementations (NumPy arrays, memory maps, anything indexable by rows) --------------------------


def _flat(block) -> np.ndarray:
    block = np.asarray(block)
    return block.reshape(len(block), -1)


@take_rows.register(object)
def _take_rows(X, index) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    return _flat(X[index] if len(index) else X[:0])


@chunk_bounds.register(object)
def _chunk_bounds(X, chunk_rows: int | None = None) -> list[tuple[int, int]]:
    n, step = n_rows(X), int(chunk_rows or CHUNK_ROWS)
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


@map_chunks.register(object)
def _map_chunks(fn, X, chunk_rows: int | None = None, progress: ProgressFn | None = None, stage: str = "") -> list:
    out, n = [], n_rows(X)
    for lo, hi in chunk_bounds(X, chunk_rows):
        out.append(fn(_flat(X[lo:hi])))
        report(progress, stage, hi, n)
    return out


@reduce_chunks.register(object)
def _reduce_chunks(fn, combine, X, chunk_rows: int | None = None, progress: ProgressFn | None = None,
                   stage: str = ""):
    total = None
    for part in map_chunks(fn, X, chunk_rows, progress, stage):
        total = part if total is None else combine(total, part)
    return total


@fingerprint.register(object)
def _fingerprint(X, n_rows_read: int = 1024) -> str:
    """Shape, dtype and ``n_rows_read`` rows taken at an even stride (the first and the last among them), so that
    fingerprinting a 1M-row memory map reads ~1,000 rows, not gigabytes."""
    X = np.asanyarray(X)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((X.shape, X.dtype.str)).encode())
    n = X.shape[0] if X.ndim else 0
    if n:
        rows = np.unique(np.linspace(0, n - 1, num=min(n, n_rows_read)).astype(np.int64))
        h.update(np.ascontiguousarray(X[rows]).tobytes())
    return h.hexdigest()


@is_chunked.register(object)
def _is_chunked(X) -> bool:
    return False
