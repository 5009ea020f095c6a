"""Writing a Zarr store from every chunk of rows on the workers, whole or not at all: the activations of a
propagation, the embedding of a reducer (:func:`embed`)."""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path

import numpy as np

from engine.backends.dask.tasks import key_name, row_blocks, row_chunked, run
from engine.data.files import atomic_path
from engine.data.store import FORMAT, Stored, open_store
from engine.errors import ClusterError
from engine.progress import ProgressFn

__all__ = ["embed", "write_rows"]


# -- writing a store ---------------------------------------------------------------------------------------------------


def _executing(names, dask_worker=None) -> list:
    """On a worker: the tasks of the graphs ``names`` its threads still run. A cancelled task leaves the scheduler's
    books at once, but its thread runs on (Python cannot stop it) and may still write its chunk. Graph optimisation
    renames tasks (``write-…`` runs as ``rows-write-…``), hence the match on the name."""
    return [ts.key for ts in dask_worker.state.executing if any(n in key_name(ts.key) for n in names)]


def _abandon(tmp: Path, client, futures, timeout: float = 15) -> None:
    """Cancel ``futures``, wait (boundedly) until no worker thread still runs one of them, delete ``tmp``."""
    import shutil

    names = sorted({key_name(f.key) for f in futures})
    deadline = time.monotonic() + timeout
    try:
        client.cancel(futures, force=True)
        while time.monotonic() < deadline:
            running = [k for ks in client.processing().values() for k in ks if any(n in key_name(k) for n in names)]
            if not running and not any(client.run(_executing, names).values()):
                break
            time.sleep(0.1)
    except Exception:  # the scheduler may be gone: nothing runs for us any more
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    while tmp.exists() and time.monotonic() < deadline:  # a write that was under way while the folder went
        time.sleep(0.1)
        shutil.rmtree(tmp, ignore_errors=True)


def _write_block(block, fn, store: str, block_info=None):
    """One task: ``fn`` of one chunk of rows, written at its rows of the (temporary) store; returns the row count and
    each column's min and max."""
    import zarr

    lo, hi = block_info[0]["array-location"][0]
    out = np.asarray(fn(block, lo))
    zarr.open_array(store, mode="r+")[lo:hi] = out
    flat = out.reshape(len(out), -1)
    stats = np.c_[flat.min(axis=0), flat.max(axis=0)].ravel() if len(flat) else np.zeros(2 * flat.shape[1])
    return np.concatenate([[hi - lo], stats]).astype(np.float64)[None, :]


def write_rows(fn, X, out, *, row_shape: tuple, attrs: dict, progress: ProgressFn | None, stage: str,
               what: str) -> tuple[Stored, np.ndarray]:
    """Store ``fn(rows, first_row_index)`` of every chunk of rows of ``X`` as a float32 Zarr array at ``out``,
    written whole or not at all. Returns the store and, per chunk, its row count and each column's min and max."""
    import zarr

    X = row_chunked(X)
    n, chunk_rows = int(X.shape[0]), int(X.chunks[0][0])
    blocks, bounds = row_blocks(X)
    width = int(np.prod(row_shape, dtype=np.int64))
    out = Path(out).resolve()
    name = f"write-{uuid.uuid4().hex[:8]}"
    with atomic_path(out) as tmp:
        # uncompressed: float activations barely compress (zstd saves ~7 %) and compressing costs 3-4x the time
        zarr.create_array(str(tmp), shape=(n, *row_shape), chunks=(chunk_rows, *row_shape), dtype="float32",
                          compressors=None, attributes={**attrs, "format": FORMAT, "complete": False, "rows": 0})
        stats = X.map_blocks(_write_block, fn, str(tmp), dtype=np.float64,
                             chunks=((1,) * len(bounds), (1 + 2 * width,)),
                             drop_axis=list(range(1, X.ndim)), new_axis=1, name=name)
        tasks = list(stats.to_delayed().reshape(-1))
        rows = run(tasks, bounds, progress=progress, stage=stage, what=what,
                    on_failure=lambda client, futures: _abandon(tmp, client, futures))
        rows = np.concatenate(rows)
        if int(rows[:, 0].sum()) != n:
            raise ClusterError(f"{what}: {int(rows[:, 0].sum()):,} of {n:,} rows were written; the store was "
                               "discarded")
        zarr.open_array(str(tmp), mode="r+").attrs.update(
            {"complete": True, "rows": n, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return open_store(out), rows


# -- embedding every chunk --------------------------------------------------------------------------------------------


def _for_workers(estimator):
    """A shallow copy without what workers do not need to embed rows (the inverse map, a progress callback)."""
    shipped = copy.copy(estimator)
    if getattr(shipped, "inverse_", None) is not None:
        shipped.inverse_ = None
    if getattr(shipped, "progress", None) is not None:
        shipped.progress = None
    return shipped


class _Transform:
    def __init__(self, estimator):
        self.estimator = estimator

    def __call__(self, block, lo: int):
        return np.asarray(self.estimator.transform(block.reshape(len(block), -1)), dtype=np.float32)


def embed(estimator, X, out, *, progress: ProgressFn | None = None, attrs: dict | None = None) -> Stored:
    """Embed every chunk of ``X`` with a fitted reducer and write the embedding to a Zarr store at ``out``.

    Parameters
    ----------
    estimator : fitted reducer
        Any :mod:`engine.reduce` reducer (PCA fitted over every row, or any reducer fitted on a sample); it is sent
        to the workers without its inverse map.
    X : Stored or dask.array.Array
    out : str or Path
    progress : callable(stage, done_rows, total_rows), optional
        Stage ``"embed"``.
    attrs : dict, optional
        More attributes for the store; the reducer's method and how it was fitted are recorded.

    Returns
    -------
    Stored
        float32 embedding of shape (n, k); ``attrs["ranges"]`` holds each column's ``[min, max]``.

    Example
    -------
    >>> emb = embed(PCAReducer().fit(acts), acts, "emb.zarr")       # doctest: +SKIP
    """
    import zarr

    source = X
    X = X.array() if isinstance(X, Stored) else X
    X = X.reshape((X.shape[0], -1)) if X.ndim > 2 else X
    first = np.asarray(X[: min(2, X.shape[0])].compute())
    k = int(np.asarray(estimator.transform(first.reshape(len(first), -1))).shape[1])
    meta = {"kind": "embedding", "activations": str(getattr(source, "path", "")), "estimator": type(estimator).__name__,
            "method": getattr(estimator, "method", type(estimator).__name__),
            "fit": getattr(estimator, "fit_description_", ""), **(attrs or {})}
    stored, stats = write_rows(_Transform(_for_workers(estimator)), X, out, row_shape=(k,), attrs=meta,
                               progress=progress, stage="embed", what=f"embedding {getattr(source, 'path', 'rows')}")
    ranges = [[float(stats[:, 1 + 2 * j].min()), float(stats[:, 2 + 2 * j].max())] for j in range(k)]
    zarr.open_array(str(stored.path), mode="r+").attrs["ranges"] = ranges
    return open_store(stored.path)
