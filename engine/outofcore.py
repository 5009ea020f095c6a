"""Datasets larger than memory, on a Dask cluster: propagate in chunks, reduce, render one frame.

The stages stay visible, each a Dask graph run by a :class:`distributed.Client` (see :func:`engine.cluster.connect`)::

    x = open_chunked("inputs.npy", chunk_rows=65_536)                    # dask.array over the file: workers read it
    acts = propagate_chunked(client, x, ModelRef.from_file("m.keras", "bottleneck"), "acts.zarr")
    pca = fit_pca(client, acts)                                           # every chunk, on the workers
    emb = transform_chunked(client, acts, pca, "embedding.zarr")         # each worker embeds its own chunks
    img = render_embedding(emb, labels="labels.npy", class_names=names)   # datashader on a dask.dataframe

:func:`propagate_project` does the first two for a project (its model, its inputs or a larger file, its hooks), and
:func:`reduce_chunked` the next two, with any reducer fitted on a sample instead of an incremental PCA.

How the work is shared:

* Inputs are read by the workers, one chunk of rows per task: ``.npy`` files with plain reads at an offset (no
  memory map: a mapped file counts in a worker's resident memory, and the nanny would restart a worker that merely
  read a large file), HDF5 datasets through h5py (each worker opens the file once), Zarr arrays through Zarr. Other
  formats (``.npz``, ``.csv``, ...) are small by nature: they are read on the client and sent with the graph.
* The task graph carries a :class:`ModelRef` (the model's path, content hash and layer), never the Keras object.
  Each worker process loads the model and compiles the split once, before the first chunk, and keeps it for every
  later chunk and job (:func:`loaded_models` says what a process holds).
* Each task writes its chunk's activations straight into a Zarr store and returns only its row count, so nothing
  large travels back to the client. The store is written into a hidden temporary folder beside the target and
  renamed into place once every chunk is written; its attributes say ``complete``. A run that fails, or whose
  client is killed, leaves no store at the target (an older complete one stays as it was).
* PCA reads every row. For layers of up to 2,048 units each worker reduces its chunks to their count, mean and
  scatter matrix, a tree of tasks adds them up and the client takes the eigenvectors: exact PCA, in parallel. Wider
  layers use incremental PCA, a chain of ``partial_fit`` tasks passing the small fitted state from one chunk to the
  next. Any other reducer is fitted on a random sample on the client; the fitted estimator is sent to every worker
  once and each worker embeds its own chunks.
* Rendering builds a :class:`dask.dataframe.DataFrame` over the embedding's chunks; datashader aggregates each
  partition on the workers and adds the aggregates up.

Workers and client must see the same files at the same paths (one machine, or a shared file system): inputs,
model, the project's hooks and the output folder.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cache_dir as default_cache_dir
from .cluster import ClusterError
from .errors import DataError, InspectorError, ModelError
from .propagate import DEFAULT_BATCH

__all__ = [
    "CHUNK_BYTES",
    "ChunkedPCA",
    "H5Rows",
    "ModelRef",
    "NpyRows",
    "Stored",
    "embedding_frame",
    "fit_incremental_pca",
    "fit_pca",
    "loaded_models",
    "open_chunked",
    "open_store",
    "preload",
    "propagate_chunked",
    "propagate_project",
    "reduce_chunked",
    "render_embedding",
    "sample_rows",
    "transform_chunked",
]

#: Size of one input chunk when no row count is given: large enough that a task's overhead (about a millisecond of
#: scheduling) is noise, small enough that a worker holds one chunk and its activations beside TensorFlow.
CHUNK_BYTES = 64 * 2**20

_FORMAT = "latent-inspector chunked store 1"


# -- chunked inputs -------------------------------------------------------------------------------------------------


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


_h5_files: dict = {}
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
                if key is None:
                    if len(names) != 1:
                        raise DataError(f"{path}: holds {len(names)} datasets ({', '.join(names[:10]) or 'none'}); "
                                        "name one (inputs_key in project.toml, or --inputs-key)")
                    key = names[0]
                if key not in names:
                    raise DataError(f"{path}: no dataset {key!r}; datasets: {', '.join(names[:10]) or 'none'}")
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
            f = _h5_files.get(self.path)
            if f is None or not f.id.valid:
                f = _h5_files[self.path] = h5py.File(self.path, "r")
            return f[self.key][key]


def _is_zarr(path: Path) -> bool:
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
    names = sorted(name for name, _ in node.arrays())
    if key is None:
        if len(names) != 1:
            raise DataError(f"{path}: Zarr group with {len(names)} arrays ({', '.join(names[:10]) or 'none'}); "
                            "name one (--inputs-key)")
        key = names[0]
    if key not in names:
        raise DataError(f"{path}: no array {key!r} in the Zarr group; arrays: {', '.join(names[:10]) or 'none'}")
    return node[key], key


def _check_chunk_rows(chunk_rows):
    if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise InspectorError(f"chunk rows must be a positive integer, got {chunk_rows!r}")


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
    InspectorError
        ``chunk_rows`` is not a positive integer.

    Example
    -------
    >>> x = open_chunked("big.npy", chunk_rows=100_000); x.numblocks      # doctest: +SKIP
    (1000, 1)
    """
    import dask.array as da

    from . import formats

    _check_chunk_rows(chunk_rows)
    path = Path(path)
    where = f"{path}" + (f" [{key}]" if key else "")
    if _is_zarr(path):
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
    name = "rows-" + hashlib.sha256(f"{where}:{shape}:{dtype}:{rows}:{_data_key(path, key)}".encode()).hexdigest()[:16]
    if isinstance(source, np.ndarray):
        return da.from_array(source, chunks=chunks, name=name)
    return da.from_array(source, chunks=chunks, asarray=True, lock=False, inline_array=True, name=name,
                         meta=np.empty((0,) * len(shape), dtype=dtype))


def _data_key(path: Path, key) -> str:
    """Content key of an input (file hash; for a Zarr folder, the sizes and times of its files)."""
    from .model import file_hash

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


# -- the model on the workers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to find the model on a worker: the file, its content hash, the layer, the project's hooks.

    Parameters
    ----------
    model_path : str
        Absolute path, seen by every worker.
    layer : str
    model_hash : str
        :func:`engine.model.model_hash` of the file; a worker whose file differs refuses to run.
    trust : bool, default=False
        Load layers that deserialize code (the project's ``trust_model``).
    project : tuple of (str, str) or None
        ``(projects root, name)`` of a project whose ``hooks.py`` ``preprocess`` applies to each batch.
    """

    model_path: str
    layer: str
    model_hash: str
    trust: bool = False
    project: tuple[str, str] | None = None

    @classmethod
    def from_file(cls, path, layer: str, *, trust: bool = False) -> ModelRef:
        """A reference to a model file (hashed here, once).

        Raises
        ------
        ModelError
            No such file.
        """
        from .model import model_hash

        path = Path(path).resolve()
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return cls(str(path), str(layer), model_hash(path), bool(trust))

    @classmethod
    def from_project(cls, project, layer: str) -> ModelRef:
        """A reference to a project's model, with its trust setting and hooks."""
        hooks = (str(project.path.parent.resolve()), project.name) if project.hooks_path is not None else None
        return cls(str(Path(project.model_path).resolve()), str(layer), project.model_hash(), project.trust_model,
                   hooks)


_models: dict = {}
_model_loads: Counter = Counter()
_models_lock = threading.Lock()


def _limit_threads(worker=None) -> None:
    """Before TensorFlow starts in a worker: as many intra-op threads as the worker has task threads."""
    if "tensorflow" in sys.modules:
        return
    try:
        if worker is None:  # inside a task; client.run passes its worker instead
            from distributed import get_worker

            worker = get_worker()
        n = worker.state.nthreads
    except (ImportError, ValueError, AttributeError):
        return
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(n))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(n))


def _worker_model(ref: ModelRef, worker=None):
    """``(Split, preprocess)`` for ``ref``, loaded once per process (the first chunk a worker computes)."""
    with _models_lock:
        hit = _models.get(ref)
        if hit is not None:
            return hit
        _limit_threads(worker)
        from .model import load_model, model_hash
        from .split import split

        if not os.path.isfile(ref.model_path):
            raise ModelError(f"{ref.model_path}: no such model file on this worker; workers must see the same "
                             "files as the client")
        found = model_hash(ref.model_path)
        if found != ref.model_hash:
            raise ModelError(f"{ref.model_path}: the model file changed since the job started (content hash "
                             f"{found}, expected {ref.model_hash}); run it again")
        preprocess = None
        if ref.project is not None:
            from .project import load_project

            preprocess = load_project(ref.project[1], root=ref.project[0]).preprocess()
        hit = _models[ref] = (split(load_model(ref.model_path, trust=ref.trust), ref.layer), preprocess)
        _model_loads[ref] += 1
        return hit


def loaded_models() -> dict[str, int]:
    """Models this process has loaded for chunked propagation: ``"path@hash:layer" -> times loaded``.

    Run it on the workers with ``client.run(loaded_models)``; each count stays 1 however many chunks ran.
    """
    with _models_lock:
        return {f"{r.model_path}@{r.model_hash}:{r.layer}": n for r, n in _model_loads.items()}


def _preload(ref: ModelRef, dask_worker=None) -> int:
    _worker_model(ref, dask_worker)
    return os.getpid()


def preload(client, model: ModelRef) -> dict[str, int]:
    """Load the model and compile its split on every worker now, rather than on each worker's first chunk.

    Useful before timing a run, or to fail early on a worker that cannot load the model.

    Returns
    -------
    dict
        Worker address -> process id.

    Example
    -------
    >>> preload(client, ModelRef.from_file("model.keras", "bottleneck"))          # doctest: +SKIP
    {'tcp://127.0.0.1:40411': 81234, 'tcp://127.0.0.1:35571': 81236}
    """
    return client.run(_preload, model)


def _describe(ref: ModelRef, first):
    """On a worker: the latent shape, after propagating ``first`` rows (so a wrong input shape fails here)."""
    from .propagate import propagate

    split_, preprocess = _worker_model(ref)
    z = propagate(split_, np.asarray(first), preprocess=preprocess)
    return tuple(int(d) for d in z.shape[1:])


def _check_finite(block, where: str, lo: int) -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        bad = np.argwhere(~np.isfinite(block))[0]
        kind = "NaN" if np.isnan(block[tuple(bad)]) else "inf"
        raise DataError(f"{where}: inputs contain {kind} (first at sample {lo + int(bad[0])}); expected finite "
                        "numbers")


def _encode_block(block, ref, store, batch_size, where, block_info=None):
    """One task: propagate one chunk of rows and write its activations into the (temporary) store."""
    import zarr

    from .propagate import propagate

    lo, hi = block_info[0]["array-location"][0]
    _check_finite(block, where, lo)
    split_, preprocess = _worker_model(ref)
    z = propagate(split_, block, batch_size=batch_size, preprocess=preprocess)
    zarr.open_array(store, mode="r+")[lo:hi] = z
    return np.array([hi - lo], dtype=np.float64)


# -- stores -----------------------------------------------------------------------------------------------------------


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
    if not _is_zarr(path):
        raise DataError(f"{path}: no chunked store there (expected a Zarr folder written by latent-inspector)")
    try:
        arr = zarr.open_array(str(path), mode="r")
    except Exception as exc:
        raise DataError(f"{path}: cannot open the Zarr array ({type(exc).__name__}: {exc})") from None
    attrs = dict(arr.attrs)
    if attrs.get("format") != _FORMAT or not attrs.get("complete") or attrs.get("rows") != arr.shape[0]:
        raise DataError(f"{path}: not a complete latent-inspector store (an interrupted run, or another writer's "
                        "array); compute it again")
    return Stored(path, tuple(arr.shape), int(arr.chunks[0]), attrs)


def _reusable(path: Path, key: str | None) -> Stored | None:
    if key is None or not path.exists():
        return None
    try:
        stored = open_store(path)
    except DataError:
        return None
    return stored if stored.attrs.get("key") == key else None


def _key_name(key) -> str:
    return str(key[0] if isinstance(key, tuple) else key)


def _executing(names, dask_worker=None) -> list:
    """On a worker: the tasks of the graphs ``names`` its threads still run. A cancelled task leaves the scheduler's
    books at once, but its thread runs on (Python cannot stop it) and may still write its chunk. Graph optimisation
    renames tasks (``propagate-…`` runs as ``rows-propagate-…``), hence the match on the name."""
    return [ts.key for ts in dask_worker.state.executing if any(n in _key_name(ts.key) for n in names)]


def _abandon(client, futures, tmp: Path, timeout: float = 15) -> None:
    """Cancel ``futures``, wait (boundedly) until no worker thread still runs one of them, delete ``tmp``."""
    names = sorted({_key_name(f.key) for f in futures})
    deadline = time.monotonic() + timeout
    try:
        client.cancel(futures, force=True)
        while time.monotonic() < deadline:
            running = [k for ks in client.processing().values() for k in ks if any(n in _key_name(k) for n in names)]
            if not running and not any(client.run(_executing, names).values()):
                break
            time.sleep(0.1)
    except Exception:  # the scheduler may be gone: nothing runs for us any more
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    while tmp.exists() and time.monotonic() < deadline:  # a write that was under way while the folder went
        time.sleep(0.1)
        shutil.rmtree(tmp, ignore_errors=True)


def _death_hint(client) -> str:
    """Why workers died, as far as their nannies' logs tell: the memory limit, or something else."""
    try:
        logs = client.get_worker_logs(nanny=True)
        lines = [line for entries in logs.values() for _, line in entries]
    except Exception:
        lines = []
    if any("exceeded 95% memory budget" in line for line in lines):
        return ("a worker exceeded its memory limit: use smaller chunks (--input-chunks) or give each worker more "
                "memory (--worker-memory)")
    return "no memory limit was exceeded: a crash in the model, a hook or the process itself?"


def _block_rows(key, bounds) -> str:
    try:
        lo, hi = bounds[int(key[1])]
        return f"rows {lo:,}..{hi - 1:,}"
    except (TypeError, IndexError, ValueError):
        return f"task {key!r}"


def _write_store(client, out: Path, shape: tuple, chunk_rows: int, attrs: dict, build, *, progress, what: str):
    """Run ``build(tmp_path)`` (a dask array of one stats row per chunk, rows first) into a temporary store, then
    rename it to ``out``. Returns the stats rows in chunk order."""
    import zarr
    from distributed import as_completed, futures_of
    from distributed.scheduler import KilledWorker

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:12]}")
    # uncompressed: float activations barely compress (zstd saves ~7 %) and compressing costs 3-4x the time
    zarr.create_array(str(tmp), shape=shape, chunks=(chunk_rows, *shape[1:]), dtype="float32", compressors=None,
                      attributes={**attrs, "format": _FORMAT, "complete": False, "rows": 0})
    n = shape[0]
    bounds = [(lo, min(lo + chunk_rows, n)) for lo in range(0, n, chunk_rows)]
    futures = []
    try:
        stats = build(str(tmp))
        futures = futures_of(client.persist(stats))
        index = {f.key: i for i, f in enumerate(sorted(futures, key=lambda f: f.key[1]))}
        rows_of = [None] * len(futures)
        done = 0
        for fut in as_completed(futures):
            row = np.asarray(fut.result()).reshape(-1)
            rows_of[index[fut.key]] = row
            done += int(row[0])
            if progress is not None:
                progress(done, n)
        if done != n:
            raise ClusterError(f"{what}: {done:,} of {n:,} rows were written; the store was discarded")
    except KilledWorker as exc:
        _abandon(client, futures, tmp)
        raise ClusterError(
            f"{what}: workers died {exc.allowed_failures + 1} times while computing {_block_rows(exc.task, bounds)} "
            f"(last on {getattr(exc.last_worker, 'address', exc.last_worker)}); {_death_hint(client)}. Nothing was "
            f"written at {out}"
        ) from None
    except (OSError, TimeoutError) as exc:  # the connection to the scheduler was lost
        _abandon(client, futures, tmp)
        raise ClusterError(f"{what}: lost the Dask cluster ({type(exc).__name__}: {exc}); nothing was written at "
                           f"{out}") from None
    except BaseException:
        _abandon(client, futures, tmp)
        raise
    finally:
        del futures
    arr = zarr.open_array(str(tmp), mode="r+")
    arr.attrs.update({"complete": True, "rows": n, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if out.exists():  # replace an older store in two renames: it is complete until the new one is in place
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:12]}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return np.stack(rows_of)


# -- propagation ----------------------------------------------------------------------------------------------------


def _row_chunked(x):
    """``x`` chunked along rows only, in equal chunks (the last may be shorter): Zarr chunks align with tasks."""
    ndim = x.ndim
    if any(len(c) > 1 for c in x.chunks[1:]):
        x = x.rechunk({i: -1 for i in range(1, ndim)})
    rows = x.chunks[0]
    if any(c != rows[0] for c in rows[:-1]) or rows[-1] > rows[0]:
        x = x.rechunk({0: max(rows)})
    return x


def propagate_chunked(client, inputs, model: ModelRef, out, *, key: str | None = None,
                      batch_size: int = DEFAULT_BATCH, progress=None, source: str = "") -> Stored:
    """Propagate a chunked dataset through the model's prefix on the workers; write the activations to Zarr.

    Parameters
    ----------
    client : distributed.Client
    inputs : dask.array.Array of shape (n, ...)
        From :func:`open_chunked` (or any dask array; it is rechunked along rows only).
    model : ModelRef
    out : str or Path
        The Zarr store to write (a folder). It appears only once complete.
    key : str, optional
        Identity of this computation (model, layer, data). A complete store at ``out`` with the same key is reused
        instead of recomputed; ``None`` always recomputes.
    batch_size : int
        Rows per compiled call inside each chunk.
    progress : callable(done_rows, total_rows), optional
        Called on the client as chunks complete.
    source : str
        Where the inputs came from, recorded in the store's attributes and named in errors.

    Returns
    -------
    Stored
        float32 activations of shape (n, *latent_shape), chunked like the inputs.

    Raises
    ------
    CutError, ModelError
        From the first worker that loads the model (bad layer, inputs of the wrong shape).
    DataError
        Unreadable inputs, or NaN/inf in them (naming the first sample found).
    ClusterError
        Workers kept dying on a chunk, or the cluster was lost. In every failure nothing is left at ``out``.

    Example
    -------
    >>> ref = ModelRef.from_file("model.keras", "bottleneck")                             # doctest: +SKIP
    >>> acts = propagate_chunked(client, open_chunked("x.npy"), ref, "acts.zarr")        # doctest: +SKIP
    """
    t0 = time.perf_counter()
    out = Path(out).resolve()
    hit = _reusable(out, key)
    if hit is not None:
        if progress is not None:
            progress(hit.shape[0], hit.shape[0])
        return Stored(hit.path, hit.shape, hit.chunk_rows, hit.attrs, True, time.perf_counter() - t0)
    x = _row_chunked(inputs)
    n = int(x.shape[0])
    where = source or "inputs"
    from distributed.scheduler import KilledWorker

    try:  # one worker checks the model on the first rows, then every worker loads it, in parallel
        first = client.compute(x[: min(2, n)]).result()
        latent = tuple(client.submit(_describe, model, first, pure=False).result())
        preload(client, model)
    except KilledWorker as exc:
        raise ClusterError(f"loading {model.model_path} on the workers: they died {exc.allowed_failures + 1} times "
                           "(out of memory, or a crash in the model or a hook?); nothing was written") from None
    loaded = time.perf_counter() - t0
    chunk_rows = int(x.chunks[0][0])
    attrs = {"kind": "activations", "layer": model.layer, "model": model.model_path, "model_hash": model.model_hash,
             "source": source, "key": key, "latent_shape": list(latent)}

    def build(store):
        return x.map_blocks(_encode_block, model, store, int(batch_size), where, dtype=np.float64,
                            chunks=(tuple(1 for _ in x.chunks[0]),), drop_axis=list(range(1, x.ndim)),
                            name=f"propagate-{uuid.uuid4().hex[:8]}")

    _write_store(client, out, (n, *latent), chunk_rows, attrs, build, progress=progress,
                 what=f"propagating {where} to layer {model.layer!r}")
    stored = open_store(out)
    return Stored(stored.path, stored.shape, stored.chunk_rows, stored.attrs, False,
                  time.perf_counter() - t0 - loaded, loaded)


def propagate_project(client, project, layer: str | None = None, *, out=None, inputs=None, inputs_key=None,
                      chunk_rows: int | None = None, cache_dir=None, batch_size: int = DEFAULT_BATCH,
                      progress=None) -> Stored:
    """Propagate a project's inputs (or a larger file for the same model) on the cluster; cached by content.

    Parameters
    ----------
    client : distributed.Client
    project : Project
    layer : str, optional
        Default: the project's ``default_layer``.
    out : str or Path, optional
        Default ``<cache>/activations/<project>-<model hash>-<layer>-<data hash>.zarr``.
    inputs : str or Path, optional
        A data file or Zarr store to propagate instead of the project's inputs (same model, hooks and layer).
    inputs_key : str, optional
        Dataset or array inside ``inputs``.
    chunk_rows : int, optional
        Rows per chunk (default: about 64 MiB of input per chunk, and at least two chunks per worker thread).
    cache_dir : str or Path, optional
    batch_size : int
    progress : callable(done_rows, total_rows), optional

    Returns
    -------
    Stored

    Raises
    ------
    InspectorError
        No layer given and no default layer; see also :func:`propagate_chunked`.

    Example
    -------
    >>> with connect("local:2") as client:                                          # doctest: +SKIP
    ...     acts = propagate_project(client, load_project("mnist"))
    """
    layer = layer or project.default_layer
    if layer is None:
        raise InspectorError(f"project {project.name!r} has no default_layer; pass a layer")
    if inputs is None:
        path, key = project.inputs_path, project.inputs_key if inputs_key is None else inputs_key
    else:
        path, key = Path(inputs), inputs_key
    x = open_chunked(path, key, chunk_rows=chunk_rows)
    if chunk_rows is None:  # a small dataset in one 64 MiB chunk would keep all but one worker idle
        threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
        spread = max(1, -(-int(x.shape[0]) // (2 * max(threads, 1))))
        if spread < x.chunks[0][0]:
            x = open_chunked(path, key, chunk_rows=spread)
    data = _data_key(path, key)
    if project.hooks_path is not None:
        from .model import file_hash

        data += "-h" + file_hash(project.hooks_path, 8)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)
    ident = f"{project.name}-{project.model_hash()}-{safe}-{data}"
    if out is None:
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        out = base / "activations" / f"{ident}.zarr"
    source = f"{path}" + (f" [{key}]" if key else "")
    return propagate_chunked(client, x, ModelRef.from_project(project, layer), out, key=ident,
                             batch_size=batch_size, progress=progress, source=source)


# -- reduction ------------------------------------------------------------------------------------------------------


def _as_stored(acts) -> Stored:
    return acts if isinstance(acts, Stored) else open_store(acts)


def _read_rows(path: str, lo: int, hi: int, local=None):
    import zarr

    rows = zarr.open_array(path, mode="r")[lo:hi]
    rows = rows if local is None else rows[local]
    return rows.reshape(len(rows), -1)


def sample_rows(client, acts, n: int, *, random_state=0):
    """``(index, rows)``: ``n`` distinct rows drawn at random (sorted), flattened to (n, d), read by the workers.

    Example
    -------
    >>> idx, X = sample_rows(client, acts, 100_000, random_state=0)      # doctest: +SKIP
    """
    from sklearn.utils import check_random_state

    stored = _as_stored(acts)
    total = stored.shape[0]
    n = min(int(n), total)
    rng = check_random_state(random_state)
    idx = np.arange(total) if n == total else np.sort(rng.choice(total, size=n, replace=False))
    futures = []
    for lo, hi in stored.bounds():
        a, b = np.searchsorted(idx, [lo, hi])
        if b > a:
            local = None if b - a == hi - lo else idx[a:b] - lo
            futures.append(client.submit(_read_rows, str(stored.path), lo, hi, local, pure=False))
    rows = client.gather(futures)
    return idx, np.concatenate(rows).astype(np.float32, copy=False)


class ChunkedPCA:
    """PCA fitted one chunk of rows at a time, with :class:`sklearn.decomposition.IncrementalPCA`.

    Between chunks the incremental SVD keeps ``keep`` directions. Keeping them all (the default for layers of up to
    ``exact_up_to`` units) makes the fit exact: the same mean, components and explained variance as a PCA of all
    rows at once, up to rounding. Keeping fewer is the classic approximate IncrementalPCA: its error grows as the
    next eigenvalue approaches the last one kept.

    Parameters
    ----------
    n_components : int, default=2
    whiten : bool, default=False
    keep : int or None, default=None
        Directions kept between chunks; ``None``: all units when the layer has at most ``exact_up_to``, else
        ``max(64, 4 * n_components)``. Never more than the first chunk's rows.
    exact_up_to : int, default=2048

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float32
    mean_ : ndarray of shape (n_features,), float32
    explained_variance_ : ndarray of shape (n_components,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Of the total variance of all rows seen.
    n_samples_seen_ : int
    model_ : IncrementalPCA
        Keeping ``keep_`` directions.

    Example
    -------
    >>> X = np.random.default_rng(0).normal(size=(1000, 8))
    >>> pca = ChunkedPCA(2)
    >>> for lo in range(0, 1000, 250):
    ...     pca = pca.partial_fit(X[lo : lo + 250])
    >>> pca.transform(X[:3]).shape
    (3, 2)
    """

    def __init__(self, n_components: int = 2, *, whiten: bool = False, keep: int | None = None,
                 exact_up_to: int = 2048):
        self.n_components = n_components
        self.whiten = whiten
        self.keep = keep
        self.exact_up_to = exact_up_to

    def partial_fit(self, X):
        """Update the fit with the rows of ``X`` (n, d); returns ``self``."""
        from sklearn.decomposition import IncrementalPCA

        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        k = self.n_components
        if not hasattr(self, "model_"):
            d = X.shape[1]
            if not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
                raise InspectorError(f"incremental PCA: n_components must be an integer in 1..{d} (the layer's "
                                     f"size), got {k!r}")
            keep = self.keep if self.keep is not None else (d if d <= self.exact_up_to else max(64, 4 * k))
            self.keep_ = int(min(max(keep, k), d, len(X)))
            if self.keep_ < k:
                raise InspectorError(f"incremental PCA: the first chunk has {len(X)} rows; it needs at least {k}")
            self.model_ = IncrementalPCA(n_components=self.keep_)
        self.model_.partial_fit(X)
        m = self.model_
        self.components_ = m.components_[:k].astype(np.float32)
        self.mean_ = m.mean_.astype(np.float32)
        self.explained_variance_ = m.explained_variance_[:k].astype(np.float64)
        self.explained_variance_ratio_ = m.explained_variance_ratio_[:k].astype(np.float64)
        self.n_samples_seen_ = int(m.n_samples_seen_)
        return self

    def fit_moments(self, n: int, mean, scatter):
        """Fit from the moments of all rows: their count, mean and scatter matrix ``sum((x - mean)(x - mean)^T)``.

        Exact PCA (the eigenvectors of the covariance, as scikit-learn's ``covariance_eigh`` solver finds them,
        with its sign convention); :func:`fit_pca` computes the moments chunk by chunk on the workers.

        Returns
        -------
        self
        """
        from sklearn.utils.extmath import svd_flip

        k = self.n_components
        mean, scatter = np.asarray(mean, np.float64), np.asarray(scatter, np.float64)
        d = len(mean)
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
            raise InspectorError(f"PCA: n_components must be an integer in 1..{d} (the layer's size), got {k!r}")
        if n < 2:
            raise InspectorError(f"PCA needs at least 2 rows, got {n}")
        variance, vectors = np.linalg.eigh(scatter / (n - 1))
        order = np.argsort(variance)[::-1]
        variance, vectors = np.clip(variance[order], 0, None), vectors[:, order]
        _, components = svd_flip(None, vectors.T, u_based_decision=False)
        total = float(np.trace(scatter)) / (n - 1)
        self.keep_ = d
        self.components_ = components[:k].astype(np.float32)
        self.mean_ = mean.astype(np.float32)
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = variance[:k] / total if total > 0 else np.zeros(k)
        self.n_samples_seen_ = int(n)
        return self

    def transform(self, X) -> np.ndarray:
        """``(X - mean_) @ components_.T`` in float64 (whitened if asked), as float32: the formula of
        :class:`engine.reducers.PCAReducer`, so both place a row at the same point."""
        if not hasattr(self, "components_"):
            raise InspectorError("ChunkedPCA is not fitted yet; call partial_fit first")
        X = np.asarray(X).reshape(len(X), -1)
        Y = (X.astype(np.float64) - self.mean_) @ self.components_.T.astype(np.float64)
        if self.whiten:
            Y /= np.sqrt(self.explained_variance_)
        return Y.astype(np.float32)


def _moments(path: str, lo: int, hi: int):
    """On a worker: ``(count, mean, scatter)`` of one chunk of rows, in float64."""
    X = _read_rows(path, lo, hi).astype(np.float64)
    mean = X.mean(axis=0)
    X -= mean
    return len(X), mean, X.T @ X


def _combine_moments(a, b):
    """The moments of two sets of rows together (Chan, Golub and LeVeque's pairwise update)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + np.outer(delta, delta) * (na * nb / n)


def fit_pca(client, acts, n_components: int = 2, *, whiten: bool = False, method: str = "auto",
            keep: int | None = None, progress=None) -> ChunkedPCA:
    """PCA of every row of chunked activations, computed on the workers.

    ``method="exact"``: each worker reduces its chunks to their count, mean and scatter matrix (d x d), a tree of
    tasks adds those up, and the client takes the eigenvectors: exact PCA, all chunks in parallel.
    ``method="incremental"``: :func:`fit_incremental_pca`, a chain of ``partial_fit`` tasks, one chunk after the
    other. ``"auto"`` is exact for layers of up to 2,048 units (a scatter matrix of at most 32 MiB) and incremental
    beyond.

    Parameters
    ----------
    client : distributed.Client
    acts : Stored or path
    n_components : int, default=2
    whiten : bool, default=False
    method : {"auto", "exact", "incremental"}, default="auto"
    keep : int, optional
        Incremental method only: see :class:`ChunkedPCA`.
    progress : callable(done_rows, total_rows), optional

    Returns
    -------
    ChunkedPCA

    Raises
    ------
    InspectorError
        A bad ``method`` or ``n_components``.
    ClusterError
        Workers kept dying, or the cluster was lost.

    Example
    -------
    >>> pca = fit_pca(client, acts); emb = transform_chunked(client, acts, pca, "emb.zarr")     # doctest: +SKIP
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    stored = _as_stored(acts)
    d = int(np.prod(stored.shape[1:], dtype=np.int64))
    if method not in ("auto", "exact", "incremental"):
        raise InspectorError(f"PCA: method must be 'auto', 'exact' or 'incremental', got {method!r}")
    if method == "incremental" or (method == "auto" and d > ChunkedPCA().exact_up_to):
        return fit_incremental_pca(client, stored, n_components, whiten=whiten, keep=keep, progress=progress)
    if not isinstance(n_components, (int, np.integer)) or not 1 <= n_components <= d:
        raise InspectorError(f"PCA: n_components must be an integer in 1..{d} (the layer's size), got "
                             f"{n_components!r}")
    leaves = [client.submit(_moments, str(stored.path), lo, hi, pure=False) for lo, hi in stored.bounds()]
    sizes = {f.key: hi - lo for f, (lo, hi) in zip(leaves, stored.bounds())}
    level, futures = leaves, list(leaves)
    while len(level) > 1:  # pairwise: a tree of depth log2(chunks)
        nxt = [client.submit(_combine_moments, a, b, pure=False) for a, b in zip(level[::2], level[1::2])]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
        futures += nxt
    try:
        done = 0
        for fut in as_completed(leaves):
            fut.exception()
            done += sizes[fut.key]
            if progress is not None and fut.status == "finished":
                progress(done, stored.shape[0])
        n, mean, scatter = level[0].result()
    except KilledWorker as exc:
        raise ClusterError(f"PCA of {stored.path}: workers died {exc.allowed_failures + 1} times on one chunk "
                           "(out of memory?)") from None
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"PCA of {stored.path}: lost the Dask cluster ({type(exc).__name__}: {exc})") from None
    finally:
        client.cancel(futures)
    return ChunkedPCA(n_components, whiten=whiten).fit_moments(n, mean, scatter)


def _partial_fit(state, params: dict, path: str, lo: int, hi: int):
    state = ChunkedPCA(**params) if state is None else state
    return state.partial_fit(_read_rows(path, lo, hi))


def _rows_ranges(bounds, minimum: int):
    ranges = [list(b) for b in bounds]
    while len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] < minimum:  # a last chunk too short joins the previous
        ranges[-2][1] = ranges.pop()[1]
    return [tuple(r) for r in ranges]


def fit_incremental_pca(client, acts, n_components: int = 2, *, whiten: bool = False, keep: int | None = None,
                        progress=None) -> ChunkedPCA:
    """Fit a :class:`ChunkedPCA` over every chunk of the activations, in order.

    The fit is a chain of tasks, one ``partial_fit`` per stored chunk (each read by the worker that runs it); the
    fitted state, a few vectors, passes from one task to the next.

    Parameters
    ----------
    client : distributed.Client
    acts : Stored or path
    n_components : int, default=2
    whiten : bool, default=False
    keep : int, optional
        See :class:`ChunkedPCA` (default: exact for layers of up to 2048 units).
    progress : callable(done_rows, total_rows), optional

    Returns
    -------
    ChunkedPCA

    Raises
    ------
    InspectorError
        ``n_components`` larger than the layer, or than the first chunk.
    ClusterError
        Workers kept dying, or the cluster was lost.

    Example
    -------
    >>> pca = fit_incremental_pca(client, acts); pca.explained_variance_ratio_     # doctest: +SKIP
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    stored = _as_stored(acts)
    d = int(np.prod(stored.shape[1:], dtype=np.int64))
    if not isinstance(n_components, (int, np.integer)) or not 1 <= n_components <= d:
        raise InspectorError(f"incremental PCA: n_components must be an integer in 1..{d} (the layer's size), got "
                             f"{n_components!r}")
    ranges = _rows_ranges(stored.bounds(), n_components)
    params = {"n_components": int(n_components), "whiten": bool(whiten), "keep": keep}
    state, futures = None, []
    for lo, hi in ranges:
        state = client.submit(_partial_fit, state, params, str(stored.path), lo, hi, pure=False)
        futures.append(state)
    sizes = {f.key: hi - lo for f, (lo, hi) in zip(futures, ranges)}
    done = 0
    try:
        for fut in as_completed(futures):
            fut.exception()  # wait; errors are raised by result() below, in chain order
            done += sizes[fut.key]
            if progress is not None and fut.status == "finished":
                progress(done, stored.shape[0])
        return futures[-1].result()
    except KilledWorker as exc:
        raise ClusterError(f"incremental PCA of {stored.path}: workers died {exc.allowed_failures + 1} times on one "
                           "chunk (out of memory?)") from None
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"incremental PCA of {stored.path}: lost the Dask cluster ({type(exc).__name__}: "
                           f"{exc})") from None
    finally:
        client.cancel(futures)


def _for_workers(estimator):
    """A shallow copy without what workers do not need to embed rows (the inverse map, a progress callback)."""
    shipped = copy.copy(estimator)
    if getattr(shipped, "inverse_", None) is not None:
        shipped.inverse_ = None
    if getattr(shipped, "progress", None) is not None:
        shipped.progress = None
    return shipped


def _transform_block(block, estimator, store, block_info=None):
    """One task: embed one chunk of activations and write it; return rows and each column's min and max."""
    import zarr

    lo, hi = block_info[0]["array-location"][0]
    Y = np.asarray(estimator.transform(block.reshape(len(block), -1)), dtype=np.float32)
    zarr.open_array(store, mode="r+")[lo:hi] = Y
    return np.concatenate([[hi - lo], np.c_[Y.min(axis=0), Y.max(axis=0)].ravel()]).astype(np.float64)[None, :]


def transform_chunked(client, acts, estimator, out, *, progress=None, attrs: dict | None = None) -> Stored:
    """Embed every chunk of the activations on the workers with a fitted estimator; write the embedding to Zarr.

    Parameters
    ----------
    client : distributed.Client
    acts : Stored or path
    estimator : fitted object with ``transform(X) -> (n, k)``
        An incremental PCA, or any :mod:`engine.reducers` reducer fitted on a sample. It is sent to each worker
        once (its inverse map left behind).
    out : str or Path
        The Zarr store to write; it appears only once complete.
    progress : callable(done_rows, total_rows), optional
    attrs : dict, optional
        More attributes for the store (e.g. the method).

    Returns
    -------
    Stored
        float32 embedding of shape (n, k); ``attrs["ranges"]`` holds each column's ``[min, max]``.

    Example
    -------
    >>> emb = transform_chunked(client, acts, fit_pca(client, acts), "emb.zarr")    # doctest: +SKIP
    """
    t0 = time.perf_counter()
    stored = _as_stored(acts)
    out = Path(out).resolve()
    x = stored.array()
    x = x.reshape((x.shape[0], -1)) if x.ndim > 2 else x
    k = int(np.asarray(estimator.transform(stored.read(0, min(2, stored.shape[0])).reshape(
        min(2, stored.shape[0]), -1))).shape[1])
    shipped = client.scatter(_for_workers(estimator), broadcast=True, hash=False)
    meta = {"kind": "embedding", "activations": str(stored.path), "estimator": type(estimator).__name__,
            **(attrs or {})}

    def build(store):
        return x.map_blocks(_transform_block, shipped, store, dtype=np.float64,
                            chunks=(tuple(1 for _ in x.chunks[0]), (1 + 2 * k,)),
                            name=f"transform-{uuid.uuid4().hex[:8]}")

    try:
        stats = _write_store(client, out, (stored.shape[0], k), stored.chunk_rows, meta, build, progress=progress,
                             what=f"embedding {stored.path}")
    finally:
        client.cancel([shipped])
    ranges = [[float(stats[:, 1 + 2 * j].min()), float(stats[:, 2 + 2 * j].max())] for j in range(k)]
    import zarr

    zarr.open_array(str(out), mode="r+").attrs["ranges"] = ranges
    result = open_store(out)
    return Stored(result.path, result.shape, result.chunk_rows, result.attrs, False, time.perf_counter() - t0)


def reduce_chunked(client, acts, out, *, method: str = "pca", incremental: bool = True, n_components: int = 2,
                   fit_sample: int = 100_000, random_state=0, progress=None, **params):
    """Reduce chunked activations to 2-D on the workers: fit, then embed every chunk.

    Parameters
    ----------
    client : distributed.Client
    acts : Stored or path
    out : str or Path
        The embedding's Zarr store.
    method : {"pca", "umap", "tsne"}, default="pca"
    incremental : bool, default=True
        For PCA: fit over every row, chunk by chunk, on the workers (:func:`fit_pca`). Otherwise (and for the other
        methods) the :mod:`engine.reducers` reducer is fitted on ``fit_sample`` random rows, on the client.
    n_components : int, default=2
    fit_sample : int, default=100_000
    random_state : int, default=0
    progress : callable(stage, done, total), optional
        ``stage`` is ``"fit"`` or ``"embed"``.
    **params
        More parameters of the reducer (e.g. ``n_neighbors=30``, ``inverse=None``).

    Returns
    -------
    (Stored, estimator)
        The embedding and the fitted estimator (the reducer keeps its inverse map for decoding).

    Example
    -------
    >>> emb, pca = reduce_chunked(client, acts, "emb.zarr")                         # doctest: +SKIP
    >>> emb, umap = reduce_chunked(client, acts, "emb.zarr", method="umap")          # doctest: +SKIP
    """
    from .reducers import make_reducer

    stored = _as_stored(acts)

    def stage(name):
        return None if progress is None else (lambda done, total: progress(name, done, total))

    if method == "pca" and incremental:
        estimator = fit_pca(client, stored, n_components, progress=stage("fit"))
        what = {"method": "pca", "fit": f"over all {stored.shape[0]} rows, "
                + ("exact" if estimator.keep_ == estimator.components_.shape[1] else f"keeping {estimator.keep_}")}
    else:
        _, X = sample_rows(client, stored, fit_sample, random_state=random_state)
        estimator = make_reducer(method, n_components=n_components, random_state=random_state, **params).fit(X)
        if progress is not None:
            progress("fit", len(X), len(X))
        what = {"method": method, "fit": f"sample of {len(X)} rows"}
    return transform_chunked(client, stored, estimator, out, progress=stage("embed"), attrs=what), estimator


# -- rendering ------------------------------------------------------------------------------------------------------


def _frame_part(path: str, lo: int, hi: int, labels, categories):
    import pandas as pd
    import zarr

    E = zarr.open_array(path, mode="r")[lo:hi]
    frame = pd.DataFrame({"x": E[:, 0].astype(np.float64), "y": E[:, 1].astype(np.float64)})
    if categories is not None:
        codes = np.asarray(labels if isinstance(labels, np.ndarray) else labels[lo:hi]).reshape(-1)
        if len(codes) != hi - lo:
            raise DataError(f"labels: {len(codes)} for rows {lo}..{hi - 1} of the embedding")
        if len(codes) and (codes.min() < 0 or codes.max() >= len(categories)):
            raise DataError(f"labels of rows {lo}..{hi - 1} range {codes.min()}..{codes.max()}; there are "
                            f"{len(categories)} class names")
        frame["label"] = pd.Categorical.from_codes(codes.astype(np.int64), categories=list(categories))
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

    Example
    -------
    >>> ddf = embedding_frame(emb, "labels.npy", CLASSES); ddf.npartitions        # doctest: +SKIP
    100
    """
    import dask.dataframe as dd
    import pandas as pd

    stored = _as_stored(emb)
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
                import dask.array as da

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


def render_embedding(emb, labels=None, *, class_names=None, width: int = 600, height: int = 600, x_range=None,
                     y_range=None, how: str = "eq_hist", spread: bool = True, background: str | None = "white"):
    """One frame of the latent view from an embedding store: :mod:`engine.render`'s stages on a Dask DataFrame.

    The aggregation runs on the Dask scheduler in use (the workers, when a :class:`distributed.Client` is the
    default); the canvas frames the stored ranges, padded as :func:`engine.render.make_canvas` pads in memory, so
    the picture is the one the single-process path draws.

    Parameters
    ----------
    emb : Stored or path
    labels, class_names
        See :func:`embedding_frame`.
    width, height : int
    x_range, y_range : (float, float), optional
    how, spread, background
        See :func:`engine.render.shade`.

    Returns
    -------
    datashader.transfer_functions.Image

    Example
    -------
    >>> render_embedding(emb, "labels.npy", class_names=CLASSES).to_pil().save("latent.png")   # doctest: +SKIP
    """
    from .render import aggregate, make_canvas, padded_range, shade

    stored = _as_stored(emb)
    ranges = stored.attrs.get("ranges")
    if ranges is None:  # not written by transform_chunked: one pass for the bounds
        E = stored.array()
        ranges = [[float(E[:, j].min().compute()), float(E[:, j].max().compute())] for j in range(2)]
    x_range = x_range or padded_range(ranges[0])
    y_range = y_range or padded_range(ranges[1])
    frame = embedding_frame(stored, labels, class_names)
    canvas = make_canvas(width=width, height=height, x_range=x_range, y_range=y_range)
    return shade(aggregate(frame, canvas=canvas), how=how, spread=spread, background=background)
