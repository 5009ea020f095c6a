"""Zarr stores of activations and embeddings, as the engine writes them: complete, or not there at all.

A store is written by the Dask backend (:mod:`engine.backends.dask`) into a hidden temporary folder beside the target
and renamed into place once every chunk is written; its attributes say ``complete`` and what wrote it (layer, model
hash, source, the identity ``key`` of the computation). :func:`open_store` refuses anything else. A :class:`Stored`
is an array of the pipeline like any other: the stages read it through :meth:`Stored.array` (see
:mod:`engine.backends`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import backends
from engine.data.chunked import is_zarr
from engine.errors import DataError

__all__ = ["FORMAT", "Stored", "open_store", "reusable"]

FORMAT = "latent-inspector chunked store 1"


@dataclass(frozen=True)
class Stored:
    """A complete chunked store (activations or an embedding) on disk.

    Attributes
    ----------
    path : Path
    shape : tuple
    chunk_rows : int
    attrs : dict
        What wrote it: ``layer``, ``model_hash``, ``source``, ``key``, ``ranges`` (an embedding's per-column
        ``[min, max]``) ...
    cache_hit : bool
        True when the store was already complete and was reused rather than computed.
    seconds : float
        Wall time of the computation (after ``load_seconds``), or of reading the store back.
    load_seconds : float
        Propagation: wall time to load and compile the model on every worker, before the first chunk.
    """

    path: Path
    shape: tuple
    chunk_rows: int
    attrs: dict = field(default_factory=dict)
    cache_hit: bool = False
    seconds: float = 0.0
    load_seconds: float = 0.0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("float32")

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        """The whole store read into memory (``np.asarray(stored)``): for stores that fit."""
        rows = self.read()
        return rows if dtype is None else rows.astype(dtype)

    def __getitem__(self, key):
        """Rows of the store, read from its chunks (a slice, an index, or sorted indices), as a memory map reads."""
        import zarr

        array = zarr.open_array(str(self.path), mode="r")
        if isinstance(key, np.ndarray) or isinstance(key, list):
            return array.oindex[np.asarray(key)]
        return array[key]

    def array(self):
        """The stored rows as a :class:`dask.array.Array`, one chunk per stored chunk."""
        import dask.array as da

        return da.from_zarr(str(self.path))

    def read(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Rows ``lo:hi`` as a NumPy array (read here, by the caller's process)."""
        import zarr

        return zarr.open_array(str(self.path), mode="r")[lo:hi]

    def bounds(self) -> list[tuple[int, int]]:
        """``(lo, hi)`` of every stored chunk of rows."""
        n, c = self.shape[0], self.chunk_rows
        return [(lo, min(lo + c, n)) for lo in range(0, n, c)]


def open_store(path) -> Stored:
    """A store written by :func:`propagate_chunked` or :func:`transform_chunked`, checked complete.

    Raises
    ------
    DataError
        No store there, not a Zarr array, or one that was not completed.

    Example
    -------
    >>> open_store(".cache/activations/mnist-...-bottleneck-....zarr").shape      # doctest: +SKIP
    (10000, 10)
    """
    import zarr

    path = Path(path)
    if not is_zarr(path):
        raise DataError(f"{path}: no chunked store there (expected a Zarr folder written by latent-inspector)")
    try:
        arr = zarr.open_array(str(path), mode="r")
    except Exception as exc:
        raise DataError(f"{path}: cannot open the Zarr array ({type(exc).__name__}: {exc})") from None
    attrs = dict(arr.attrs)
    if attrs.get("format") != FORMAT or not attrs.get("complete") or attrs.get("rows") != arr.shape[0]:
        raise DataError(f"{path}: not a complete latent-inspector store (an interrupted run, or another writer's "
                        "array); compute it again")
    return Stored(path, tuple(arr.shape), int(arr.chunks[0]), attrs)


def reusable(path: Path, key: str | None) -> Stored | None:
    """The complete store at ``path`` when it was written for the computation ``key``, else None."""
    if key is None or not path.exists():
        return None
    try:
        stored = open_store(path)
    except DataError:
        return None
    return stored if stored.attrs.get("key") == key else None




def _through_array(op):
    """``op`` of a store: ``op`` of its Dask array, in the argument position ``op`` chooses by."""

    def run(*args, **kwargs):
        args = list(args)
        args[op.on] = args[op.on].array()
        return op(*args, **kwargs)

    return run


# A store is read through its Dask array by every operation of the pipeline.
for _op in (backends.take_rows, backends.map_chunks, backends.reduce_chunks, backends.chunk_bounds):
    _op.register(Stored, _through_array(_op))
backends.is_chunked.register(Stored, lambda stored: True)
backends.fingerprint.register(Stored, lambda stored: f"{stored.path}:{stored.attrs.get('key')}:"
                              f"{stored.attrs.get('written')}:{stored.shape}")
