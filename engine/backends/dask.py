"""The Dask backend of the pipeline's stages: datasets larger than memory, chunk by chunk on a Dask scheduler.

The stages are the same functions as for NumPy arrays; given a :class:`dask.array.Array`
(:func:`engine.data.open_chunked`) or a Zarr store the engine wrote (:class:`engine.data.store.Stored`), they run
here, one task per chunk of rows, on the workers of the current :class:`distributed.Client` (see
:func:`engine.backends.cluster.connect`), or on Dask's threads in this process when there is none::

    with connect("local:2"):
        acts = activations(project, "bottleneck", client=client)          # propagate: chunks on the workers -> Zarr
        pca = PCAReducer().fit(acts)                                       # exact PCA from every chunk's moments
        emb = embed(pca, acts, out="embedding.zarr")                      # each worker embeds its own chunks
        img = shade(aggregate(points_frame(emb, "labels.npy"), canvas=make_canvas(emb)))   # a Dask DataFrame

What is registered here: the generic operations of :mod:`engine.backends` (read rows, map and reduce over chunks)
for Dask arrays, propagation of a Dask array (:func:`propagate_on_dask`), writing an embedding store (:func:`embed`),
and the render frame of an embedding store (:func:`embedding_frame`).

How the work is shared:

* The task graph carries a :class:`ModelRef` (the model's path, content hash and layer), never the Keras object.
  Each worker process loads the model and compiles the split once, before the first chunk, and keeps it for every
  later chunk and job (:func:`loaded_models` says what a process holds).
* Each task writes its chunk's result straight into a Zarr store and returns only a few numbers, so nothing large
  travels back to the client. The store is written into a hidden temporary folder beside the target and renamed into
  place once every chunk is written (:func:`engine.data.files.atomic_path`). A run that fails, or whose client is
  killed, leaves no store at the target (an older complete one stays as it was).
* Reductions over every row (the PCA's moments) are a tree of tasks; a chain of tasks passes a small state from one
  chunk to the next (incremental PCA of a wide layer).

Workers and client must see the same files at the same paths (one machine, or a shared file system): inputs,
model, the project's hooks and the output folder.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from engine import backends
from engine.data.chunked import data_key, open_chunked
from engine.data.files import atomic_path, file_hash
from engine.data.store import FORMAT, Stored, open_store, reusable
from engine.errors import ClusterError, DataError, ModelError, ProjectError
from engine.memo import Memo
from engine.progress import ProgressFn, report

__all__ = [
    "ModelRef",
    "embed",
    "embedding_frame",
    "loaded_models",
    "preload",
    "project_activations",
    "propagate_on_dask",
]


# -- running tasks --------------------------------------------------------------------------------------------------


def current_client():
    """The :class:`distributed.Client` in use (the one :func:`engine.backends.cluster.connect` opened), or None."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _key_name(key) -> str:
    return str(key[0] if isinstance(key, tuple) else key)


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


def _rows_text(bounds, i) -> str:
    try:
        lo, hi = bounds[int(i)]
        return f"rows {lo:,}..{hi - 1:,}"
    except (TypeError, IndexError, ValueError):
        return f"task {i!r}"


def _run(tasks: list, bounds: list, *, progress: ProgressFn | None, stage: str, what: str, on_failure=None,
         wait: list | None = None) -> list:
    """Compute ``tasks`` (Dask delayed objects, one per chunk of ``bounds``, in order) and return their results.

    On a :class:`distributed.Client`: as futures, reporting ``progress(stage, rows_done, n)`` as chunks complete,
    with workers that keep dying (or a lost cluster) turned into a :class:`~engine.errors.ClusterError` naming the
    rows; ``on_failure(client, futures)`` runs first. Without a client: chunk after chunk on Dask's threads here.
    ``wait`` lists further delayed objects computed with them (the nodes of a reduction tree), whose results follow.
    """
    n = bounds[-1][1] if bounds else 0
    wait = list(wait or [])
    client = current_client()
    if client is None:
        results, done = [], 0
        for task, (lo, hi) in zip(tasks, bounds):
            results.append(dask.compute(task, scheduler="threads")[0])
            done += hi - lo
            report(progress, stage, done, n)
        return results + list(dask.compute(*wait, scheduler="threads")) if wait else results
    from distributed import wait as wait_for
    from distributed.scheduler import KilledWorker

    futures = client.compute(tasks + wait)
    leaves = futures[: len(tasks)]
    position = {f.key: i for i, f in enumerate(leaves)}
    current = None
    try:
        done, pending, stalled = 0, set(leaves), _Stall(client)
        while pending:
            try:
                finished, pending = wait_for(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                stalled.check(what)  # raises when every worker has sat paused at its memory limit too long
                continue
            for fut in sorted(finished, key=lambda f: position[f.key]):
                current = position[fut.key]
                fut.result()  # raises the task's error
                done += bounds[current][1] - bounds[current][0]
                report(progress, stage, done, n)
        return [f.result() for f in futures]
    except KilledWorker as exc:
        if on_failure is not None:
            on_failure(client, futures)
        raise ClusterError(
            f"{what}: workers died {exc.allowed_failures + 1} times while computing {_rows_text(bounds, current)} "
            f"(last on {getattr(exc.last_worker, 'address', exc.last_worker)}); {_death_hint(client)}"
        ) from None
    except ClusterError:
        if on_failure is not None:
            on_failure(client, futures)
        raise
    except (OSError, TimeoutError) as exc:  # the connection to the scheduler was lost
        if on_failure is not None:
            on_failure(client, futures)
        raise ClusterError(f"{what}: lost the Dask cluster ({type(exc).__name__}: {exc})") from None
    except BaseException:
        if on_failure is not None:
            on_failure(client, futures)
        raise
    finally:
        client.cancel(futures)


#: Seconds between looks at a running job's futures (and at whether its workers can run at all).
POLL_S = 2.0
#: A job whose every worker has been paused at its memory limit this long fails rather than waiting forever.
PAUSED_S = 120.0


class _Stall:
    """Whether the workers of a job can run at all: a worker that reaches 80 % of its memory limit is paused by its
    nanny and runs nothing until memory is freed, which, for the memory its own modules hold, is never."""

    def __init__(self, client, patience: float | None = None):
        self.client, self.since = client, None
        self.patience = PAUSED_S if patience is None else patience

    def check(self, what: str) -> None:
        try:
            workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        except Exception:  # the scheduler did not answer: the next wait says whether it is gone
            return
        paused = bool(workers) and all(w.get("status") == "paused" for w in workers)
        if not paused:
            self.since = None
            return
        self.since = self.since or time.monotonic()
        if time.monotonic() - self.since > self.patience:
            memory = sorted({w.get("memory_limit") or 0 for w in workers})
            from dask.utils import format_bytes

            raise ClusterError(
                f"{what}: every worker has been paused at its memory limit ({'/'.join(map(format_bytes, memory))}) for "
                f"{self.patience:.0f} s, so nothing can run: give each worker more memory (--worker-memory), or use "
                "fewer rows per chunk (--input-chunks)"
            )


def _row_chunked(x):
    """``x`` chunked along rows only, in equal chunks (the last may be shorter): Zarr chunks align with tasks."""
    if any(len(c) > 1 for c in x.chunks[1:]):
        x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    rows = x.chunks[0]
    if any(c != rows[0] for c in rows[:-1]) or rows[-1] > rows[0]:
        x = x.rechunk({0: max(rows)})
    return x


def _blocks(X) -> tuple[list, list]:
    """The row blocks of ``X`` (a Dask array or store; delayed NumPy arrays) and their ``(lo, hi)``."""
    X = _row_chunked(X.array() if isinstance(X, Stored) else X)
    blocks = list(X.to_delayed().reshape(-1))
    edges = np.cumsum((0,) + X.chunks[0])
    return blocks, [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _flat(block) -> np.ndarray:
    block = np.asarray(block)
    return block.reshape(len(block), -1)


def _apply(fn, block):
    return fn(_flat(block))


# -- the generic operations, for Dask arrays --------------------------------------------------------------------------


@backends.take_rows.register(da.Array)
def _take_rows(X, index) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    blocks, bounds = _blocks(X)
    parts = []
    for block, (lo, hi) in zip(blocks, bounds):
        a, b = np.searchsorted(index, [lo, hi])
        if b > a:
            parts.append(dask.delayed(_select, pure=False)(block, index[a:b] - lo))
    if not parts:
        return np.empty((0, int(np.prod(X.shape[1:], dtype=np.int64))), dtype=X.dtype)
    client = current_client()
    rows = client.gather(client.compute(parts)) if client is not None else dask.compute(*parts, scheduler="threads")
    return np.concatenate(rows)


def _select(block, local):
    return _flat(block)[local]


@backends.chunk_bounds.register(da.Array)
def _chunk_bounds(X, chunk_rows=None) -> list:
    return _blocks(X)[1]


@backends.map_chunks.register(da.Array)
def _map_chunks(fn, X, chunk_rows=None, progress=None, stage: str = "") -> list:
    blocks, bounds = _blocks(X)
    tasks = [dask.delayed(_apply, pure=False)(fn, block) for block in blocks]
    return _run(tasks, bounds, progress=progress, stage=stage, what=stage or "a Dask job")


@backends.reduce_chunks.register(da.Array)
def _reduce_chunks(fn, combine, X, chunk_rows=None, progress=None, stage: str = ""):
    blocks, bounds = _blocks(X)
    leaves = [dask.delayed(_apply, pure=False)(fn, block) for block in blocks]
    level, nodes = leaves, []
    while len(level) > 1:  # pairwise, in chunk order: a tree of depth log2(chunks)
        nxt = [dask.delayed(combine, pure=False)(a, b) for a, b in zip(level[::2], level[1::2])]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
        nodes += nxt
    # every node is asked for: cancelling a task cancels its dependents, which must be wanted by the client
    results = _run(leaves, bounds, progress=progress, stage=stage, what=stage or "a Dask job", wait=nodes)
    return results[-1]  # the root, the last node made (or the only leaf)


@backends.fingerprint.register(da.Array)
def _fingerprint(X) -> str:
    return f"dask:{X.name}:{X.shape}:{X.dtype.str}"


backends.is_chunked.register(da.Array, lambda X: True)


def fold_chunks(step, X, *, progress: ProgressFn | None = None, stage: str = "", minimum_rows: int = 1):
    """``state = step(state, rows)`` over the chunks of ``X`` in order (``state`` is None at first), as a chain of
    tasks; a last chunk shorter than ``minimum_rows`` joins the previous one. Returns the final state."""
    blocks, bounds = _blocks(X)
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < minimum_rows:
        blocks = blocks[:-2] + [dask.delayed(np.concatenate, pure=False)([blocks[-2], blocks[-1]])]
        bounds = bounds[:-2] + [(bounds[-2][0], bounds[-1][1])]
    state, chain = None, []
    for block in blocks:
        state = dask.delayed(_fold, pure=False)(step, state, block)
        chain.append(state)
    return _run(chain, bounds, progress=progress, stage=stage, what=stage or "a Dask job")[-1]


def _fold(step, state, block):
    return step(state, _flat(block))


# -- writing a store ---------------------------------------------------------------------------------------------------


def _executing(names, dask_worker=None) -> list:
    """On a worker: the tasks of the graphs ``names`` its threads still run. A cancelled task leaves the scheduler's
    books at once, but its thread runs on (Python cannot stop it) and may still write its chunk. Graph optimisation
    renames tasks (``write-…`` runs as ``rows-write-…``), hence the match on the name."""
    return [ts.key for ts in dask_worker.state.executing if any(n in _key_name(ts.key) for n in names)]


def _abandon(tmp: Path, client, futures, timeout: float = 15) -> None:
    """Cancel ``futures``, wait (boundedly) until no worker thread still runs one of them, delete ``tmp``."""
    import shutil

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

    X = _row_chunked(X)
    n, chunk_rows = int(X.shape[0]), int(X.chunks[0][0])
    blocks, bounds = _blocks(X)
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
        rows = _run(tasks, bounds, progress=progress, stage=stage, what=what,
                    on_failure=lambda client, futures: _abandon(tmp, client, futures))
        rows = np.concatenate(rows)
        if int(rows[:, 0].sum()) != n:
            raise ClusterError(f"{what}: {int(rows[:, 0].sum()):,} of {n:,} rows were written; the store was "
                               "discarded")
        zarr.open_array(str(tmp), mode="r+").attrs.update(
            {"complete": True, "rows": n, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return open_store(out), rows


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
        path = Path(path).resolve()
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return cls(str(path), str(layer), file_hash(path), bool(trust))

    @classmethod
    def from_project(cls, project, layer: str) -> ModelRef:
        """A reference to a project's model, with its trust setting and hooks."""
        hooks = (str(project.path.parent.resolve()), project.name) if project.hooks_path is not None else None
        return cls(str(Path(project.model_path).resolve()), str(layer), project.model_hash(), project.trust_model,
                   hooks)


#: The models this process loaded for chunked propagation (a worker keeps a few, for a few jobs).
WORKER_MODELS = Memo(max_items=4, name="models loaded on this Dask worker")
_model_loads: Counter = Counter()
_loads_lock = threading.Lock()


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


def _load_worker_model(ref: ModelRef, worker=None):
    from engine.data.project import load_project
    from engine.model import load_model, model_hash, split

    _limit_threads(worker)
    if not os.path.isfile(ref.model_path):
        raise ModelError(f"{ref.model_path}: no such model file on this worker; workers must see the same files as "
                         "the client")
    found = model_hash(ref.model_path)
    if found != ref.model_hash:
        raise ModelError(f"{ref.model_path}: the model file changed since the job started (content hash {found}, "
                         f"expected {ref.model_hash}); run it again")
    preprocess = None
    if ref.project is not None:
        preprocess = load_project(ref.project[1], root=ref.project[0]).preprocess()
    loaded = (split(load_model(ref.model_path, trust=ref.trust), ref.layer), preprocess)
    with _loads_lock:
        _model_loads[ref] += 1
    return loaded


def _worker_model(ref: ModelRef, worker=None):
    """``(Split, preprocess)`` for ``ref``, loaded once per process (the first chunk a worker computes)."""
    return WORKER_MODELS.get(ref, lambda: _load_worker_model(ref, worker))


def loaded_models() -> dict[str, int]:
    """Models this process has loaded for chunked propagation: ``"path@hash:layer" -> times loaded``.

    Run it on the workers with ``client.run(loaded_models)``; each count stays 1 however many chunks ran.
    """
    with _loads_lock:
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


# -- propagation -------------------------------------------------------------------------------------------------------


def _describe(ref: ModelRef, first):
    """On a worker: the latent shape, after propagating ``first`` rows (so a wrong input shape fails here)."""
    from engine.propagate import propagate

    split_, preprocess = _worker_model(ref)
    z = propagate(split_, np.asarray(first), preprocess=preprocess)
    return tuple(int(d) for d in z.shape[1:])


def _check_finite(block, where: str, lo: int) -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        bad = np.argwhere(~np.isfinite(block))[0]
        kind = "NaN" if np.isnan(block[tuple(bad)]) else "inf"
        raise DataError(f"{where}: inputs contain {kind} (first at sample {lo + int(bad[0])}); expected finite "
                        "numbers")


class _Encode:
    """The task of propagating one chunk on a worker (a picklable callable: the model reference, not the model)."""

    def __init__(self, ref: ModelRef, batch_size: int, where: str):
        self.ref, self.batch_size, self.where = ref, batch_size, where

    def __call__(self, block, lo: int):
        from engine.propagate import propagate

        _check_finite(block, self.where, lo)
        split_, preprocess = _worker_model(self.ref)
        return propagate(split_, block, batch_size=self.batch_size, preprocess=preprocess)


def propagate_on_dask(model, inputs, *, out=None, key: str | None = None, batch_size: int = 2048,
                      progress: ProgressFn | None = None, source: str = "", preprocess=None) -> Stored:
    """:func:`engine.propagate.propagate` of a Dask array: chunks on the workers, activations into a Zarr store.

    Parameters
    ----------
    model : ModelRef
        The workers load the model from its file (a Keras object does not travel).
    inputs : dask.array.Array of shape (n, ...)
        From :func:`engine.data.open_chunked` (or any Dask array; it is rechunked along rows only).
    out : str or Path
        The Zarr store to write (a folder). It appears only once complete.
    key : str, optional
        Identity of this computation (model, layer, data). A complete store at ``out`` with the same key is reused
        instead of recomputed; ``None`` always recomputes.
    batch_size : int
        Rows per compiled call inside each chunk.
    progress : callable(stage, done_rows, total_rows), optional
        Called on the client as chunks complete (stage ``"propagate"``).
    source : str
        Where the inputs came from, recorded in the store's attributes and named in errors.
    preprocess : None
        A hook cannot travel to the workers as a function: give the :class:`ModelRef` of the project
        (:meth:`ModelRef.from_project`), whose workers load its ``hooks.py``.

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
    """
    t0 = time.perf_counter()
    if not isinstance(model, ModelRef):
        raise ModelError("propagating a Dask array: pass a ModelRef (ModelRef.from_file or ModelRef.from_project) as "
                         "the model; the workers load it from its file")
    if preprocess is not None:
        raise ModelError("propagating a Dask array: a preprocess function cannot travel to the workers; use "
                         "ModelRef.from_project, whose workers load the project's hooks.py")
    if out is None:
        raise DataError("propagating a Dask array: give out=, the Zarr store the workers write the activations to")
    out = Path(out).resolve()
    hit = reusable(out, key)
    if hit is not None:
        report(progress, "propagate", hit.shape[0], hit.shape[0])
        return Stored(hit.path, hit.shape, hit.chunk_rows, hit.attrs, True, time.perf_counter() - t0)
    x = _row_chunked(inputs)
    n = int(x.shape[0])
    where = source or "inputs"
    client = current_client()
    from distributed.scheduler import KilledWorker

    try:  # one worker checks the model on the first rows, then every worker loads it, in parallel
        first = x[: min(2, n)].compute()
        if client is not None:
            latent = tuple(client.submit(_describe, model, first, pure=False).result())
            preload(client, model)
        else:
            latent = _describe(model, first)
    except KilledWorker as exc:
        raise ClusterError(f"loading {model.model_path} on the workers: they died {exc.allowed_failures + 1} times "
                           "(out of memory, or a crash in the model or a hook?); nothing was written") from None
    loaded = time.perf_counter() - t0
    attrs = {"kind": "activations", "layer": model.layer, "model": model.model_path, "model_hash": model.model_hash,
             "source": source, "key": key, "latent_shape": list(latent)}
    what = f"propagating {where} to layer {model.layer!r}"
    try:
        stored, _ = write_rows(_Encode(model, int(batch_size), where), x, out, row_shape=latent, attrs=attrs,
                               progress=progress, stage="propagate", what=what)
    except ClusterError as exc:
        raise ClusterError(f"{exc}. Nothing was written at {out}") from None
    return Stored(stored.path, stored.shape, stored.chunk_rows, stored.attrs, False,
                  time.perf_counter() - t0 - loaded, loaded)


def project_activations(client, project, layer: str | None = None, *, out=None, inputs=None, inputs_key=None,
                        chunk_rows: int | None = None, cache_dir=None, batch_size: int = 2048,
                        progress: ProgressFn | None = None) -> Stored:
    """A project's activations on a Dask cluster (:func:`engine.propagate.activations` with a client): its inputs,
    or a larger file for the same model, propagated by the workers into a Zarr store cached by content.

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
    progress : callable(stage, done_rows, total_rows), optional

    Returns
    -------
    Stored

    Raises
    ------
    ProjectError
        No layer given and no default layer; see also :func:`propagate_on_dask`.
    """
    from engine.settings import cache_dir as default_cache_dir

    layer = layer or project.default_layer
    if layer is None:
        raise ProjectError(f"project {project.name!r} has no default_layer; pass a layer")
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
    data = data_key(path, key)
    if project.hooks_path is not None:
        data += "-h" + file_hash(project.hooks_path, 8)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)
    ident = f"{project.name}-{project.model_hash()}-{safe}-{data}"
    if out is None:
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        out = base / "activations" / f"{ident}.zarr"
    source = f"{path}" + (f" [{key}]" if key else "")
    return propagate_on_dask(ModelRef.from_project(project, layer), x, out=out, key=ident, batch_size=batch_size,
                             progress=progress, source=source)


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
