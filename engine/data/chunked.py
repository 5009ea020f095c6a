"""Datasets larger than memory: a data file as a :class:`dask.array.Array` whose chunks of rows are read by whichever
worker (or thread) computes them.

* ``.npy`` files are read with plain file reads at an offset (:class:`NpyRows`; no memory map: a mapped file counts in
  a worker's resident memory, and the nanny would restart a worker that merely read a large file);
* HDF5 datasets through h5py (:class:`H5Rows`; each process opens the file once);
* Zarr arrays through Zarr;
* other formats (``.npz``, ``.csv``, ...) are small by nature: they are read here, whole, and sent with the graph.

Every pipeline stage takes the array :func:`open_chunked` returns as it takes a NumPy array (see
:mod:`engine.backends`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from engine.data.files import file_hash
from engine.errors import DataError
from engine.memo import Memo

__all__ = ["CHUNK_BYTES", "H5Rows", "NpyRows", "data_key", "is_zarr", "open_chunked"]

#: Size of one input chunk when no row count is given: large enough that a task's overhead (about a millisecond of
#: scheduling) is noise, small enough that a worker holds one chunk and its activations beside TensorFlow.
CHUNK_BYTES = 64 * 2**20


def _row_slice(key, n: int) -> tuple[int, int, int]:
    if isinstance(key, (int, np.integer)):
        i = int(key) + (n if key < 0 else 0)
        return i, i + 1, 1
    if isinstance(key, slice):
        return key.indices(n)
    raise TypeError(f"rows must be selected by a slice or an integer, got {type(key).__name__}")


class NpyRows:
    """Rows of a C-ordered ``.npy`` file, read with plain file reads: an array-like for :func:`dask.array.from_array`.

    It pickles as its path, shape, dtype and data offset, so a task graph stays small; every read opens the file,
    reads the rows asked for and closes it. Nothing is memory-mapped, so a worker's resident memory holds only the
    rows it is working on.

    Parameters
    ----------
    path : str or Path

    Raises
    ------
    DataError
        Missing, unreadable or Fortran-ordered file, or one holding Python objects.

    Example
    -------
    >>> rows = NpyRows("inputs.npy"); rows.shape, rows[10:12].shape      # doctest: +SKIP
    ((100000000, 16), (2, 16))
    """

    def __init__(self, path):
        self.path = str(Path(path).resolve())
        if not os.path.isfile(self.path):
            raise DataError(f"{path}: no such file")
        try:
            m = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: cannot read .npy file ({type(exc).__name__}: {exc})") from None
        try:
            if m.ndim >= 2 and m.flags.f_contiguous and not m.flags.c_contiguous:
                raise DataError(f"{path}: the array is stored in Fortran order; rows cannot be streamed from it. "
                                "Save it with np.save(path, np.ascontiguousarray(x))")
            self.shape, self.dtype, self.offset = tuple(m.shape), m.dtype, int(m.offset)
        finally:
            del m
        self.ndim = len(self.shape)
        self._row_items = int(np.prod(self.shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) * (self.ndim - len(key) + 1) + key[1:]
        start, stop, step = _row_slice(key[0] if key else slice(None), self.shape[0])
        lo, hi = (start, stop) if step > 0 else (stop + 1, start + 1)
        count = max(hi - lo, 0)
        if count == 0:
            rows = np.empty((0, *self.shape[1:]), dtype=self.dtype)
        else:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + lo * self._row_items * self.dtype.itemsize)
                flat = np.fromfile(fh, dtype=self.dtype, count=count * self._row_items)
            if flat.size != count * self._row_items:
                raise DataError(f"{self.path}: file truncated: rows {lo}..{hi - 1} are not all there")
            rows = flat.reshape((count, *self.shape[1:]))
        if step != 1:
            rows = rows[:: step] if step > 0 else rows[::-1][:: -step]
        if isinstance(key[0], (int, np.integer)):
            rows = rows[0]
            return rows[key[1:]] if len(key) > 1 else rows
        return rows[(slice(None), *key[1:])] if len(key) > 1 else rows


#: HDF5 files this process has open for reading, by path (a worker reads many chunks of one file).
OPEN_HDF5 = Memo(max_items=16, name="HDF5 files open for reading")
_h5_lock = threading.Lock()


class H5Rows:
    """Rows of an HDF5 dataset: an array-like for :func:`dask.array.from_array` that pickles as (path, dataset).

    Each process opens the file once, read-only, on its first read.

    Parameters
    ----------
    path : str or Path
    key : str, optional
        The dataset's name; needed when the file holds more than one.

    Raises
    ------
    DataError
        Missing or unreadable file, no such dataset, or several datasets and no key.
    """

    def __init__(self, path, key: str | None = None):
        import h5py

        self.path = str(Path(path).resolve())
        if not os.path.isfile(self.path):
            raise DataError(f"{path}: no such file")
        try:
            with h5py.File(self.path, "r") as f:
                names = []
                f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
                key = _member(path, key, names, "dataset")
                ds = f[key]
                self.shape, self.dtype = tuple(ds.shape), ds.dtype
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: cannot read HDF5 file ({type(exc).__name__}: {exc})") from None
        self.key, self.ndim = key, len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        import h5py

        with _h5_lock:
            f = OPEN_HDF5.get(self.path, lambda: h5py.File(self.path, "r"))
            if not f.id.valid:  # closed meanwhile (by h5py, or the file was replaced)
                f = h5py.File(self.path, "r")
                OPEN_HDF5.put(self.path, f)
            return f[self.key][key]


def _member(where, key, names: list, kind: str) -> str:
    """The member ``key`` of a container holding ``names`` (the only one when ``key`` is None), or DataError."""
    listed = ", ".join(names[:10]) or "none"
    if key is None:
        if len(names) != 1:
            raise DataError(f"{where}: holds {len(names)} {kind}s ({listed}); name one (inputs_key in project.toml, "
                            "or --inputs-key)")
        return names[0]
    if key not in names:
        raise DataError(f"{where}: no {kind} {key!r}; {kind}s: {listed}")
    return key


def is_zarr(path: Path) -> bool:
    """True for a folder holding a Zarr array or group."""
    return path.is_dir() and any((path / m).exists() for m in ("zarr.json", ".zarray", ".zgroup"))


def _zarr_array(path: Path, key):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise DataError(f"{path}: cannot open Zarr store ({type(exc).__name__}: {exc})") from None
    if isinstance(node, zarr.Array):
        if key is not None:
            raise DataError(f"{path}: a single Zarr array; it has no member {key!r}")
        return node, None
    key = _member(f"{path} (a Zarr group)", key, sorted(name for name, _ in node.arrays()), "array")
    return node[key], key


def _check_chunk_rows(chunk_rows):
    if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise DataError(f"chunk rows must be a positive integer, got {chunk_rows!r}")


def open_chunked(path, key: str | None = None, *, chunk_rows: int | None = None):
    """A :class:`dask.array.Array` over the rows of a data file, read by whichever worker computes each chunk.

    Parameters
    ----------
    path : str or Path
        ``.npy`` (streamed with file reads), ``.h5``/``.hdf5`` (an HDF5 dataset), a Zarr store (a folder), or any
        other format :func:`engine.formats.read_array` reads (read whole on the client: meant for small files).
    key : str, optional
        Dataset of an HDF5 file, array of a Zarr group or member of an ``.npz``.
    chunk_rows : int, optional
        Rows per chunk; default about :data:`CHUNK_BYTES` of input per chunk.

    Returns
    -------
    dask.array.Array
        Shape (n, ...), chunked along the rows only.

    Raises
    ------
    DataError
        A missing or unreadable file, a non-numeric array, fewer than 2 dimensions or no rows.
        Also: ``chunk_rows`` is not a positive integer.

    Example
    -------
    >>> x = open_chunked("big.npy", chunk_rows=100_000); x.numblocks      # doctest: +SKIP
    (1000, 1)
    """
    import dask.array as da

    from engine.data import formats

    _check_chunk_rows(chunk_rows)
    path = Path(path)
    where = f"{path}" + (f" [{key}]" if key else "")
    if is_zarr(path):
        source, key = _zarr_array(path, key)
        where = f"{path}" + (f" [{key}]" if key else "")
    elif path.is_dir():
        raise DataError(f"{path}: a folder but not a Zarr store (no zarr.json or .zarray)")
    elif not path.is_file():
        raise DataError(f"{path}: no such file")
    elif path.suffix.lower() == ".npy":
        source = NpyRows(path)
    elif path.suffix.lower() in (".h5", ".hdf5"):
        source = H5Rows(path, key)
    else:
        source = formats.read_array(path, key)
    shape, dtype = tuple(source.shape), np.dtype(source.dtype)
    if dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {dtype} values; expected numbers")
    if len(shape) < 2:
        raise DataError(f"{where}: inputs have shape {shape}; expected (samples, features...)")
    if shape[0] == 0:
        raise DataError(f"{where}: holds zero samples; expected at least one")
    row_bytes = max(int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize, 1)
    rows = int(chunk_rows) if chunk_rows is not None else max(1, CHUNK_BYTES // row_bytes)
    chunks = (min(rows, shape[0]), *shape[1:])
    name = "rows-" + hashlib.sha256(f"{where}:{shape}:{dtype}:{rows}:{data_key(path, key)}".encode()).hexdigest()[:16]
    if isinstance(source, np.ndarray):
        return da.from_array(source, chunks=chunks, name=name)
    return da.from_array(source, chunks=chunks, asarray=True, lock=False, inline_array=True, name=name,
                         meta=np.empty((0,) * len(shape), dtype=dtype))


def data_key(path: Path, key) -> str:
    """Content key of an input (file hash; for a Zarr folder, the sizes and times of its files)."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for root, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                digest.update(f"{os.path.relpath(os.path.join(root, name), path)}:{st.st_size}:{st.st_mtime_ns};"
                              .encode())
        text = digest.hexdigest()[:16]
    elif path.is_file():
        text = file_hash(path)
    else:
        text = "missing"
    return text + (f"-{key}" if key else "")
