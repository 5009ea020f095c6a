"""Propagation on the workers: the model travels as a :class:`ModelRef` (its file, content hash and layer), each worker
process loads and compiles it once, and every chunk's activations go straight into the store."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends.dask.stores import write_rows
from engine.backends.dask.tasks import current_client, row_chunked
from engine.data.chunked import data_key, open_chunked
from engine.data.files import file_hash
from engine.data.store import Stored, reusable
from engine.errors import ClusterError, DataError, ModelError, StorageError
from engine.memo import Memo
from engine.progress import ProgressFn, report

__all__ = ["WORKER_MODELS", "ModelRef", "loaded_models", "preload", "project_activations", "propagate_on_dask"]


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
        ``(projects root, name)`` of a project whose ``hooks.py`` applies: ``preprocess`` to each batch,
        ``custom_objects`` and ``lambdas`` to load the model.
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
    """Around a model's load in a worker: as many intra-op threads as the worker has task threads (TensorFlow's
    settings before it starts, PyTorch's thread count once it is imported; never imported here for a worker whose
    model does not need it: PyTorch beside TensorFlow takes a worker past the memory at which its nanny pauses it)."""
    try:
        if worker is None:  # inside a task; client.run passes its worker instead
            from distributed import get_worker

            worker = get_worker()
        n = worker.state.nthreads
    except (ImportError, ValueError, AttributeError):
        return
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(n))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(n))
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


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
    preprocess = objects = None
    if ref.project is not None:
        project = load_project(ref.project[1], root=ref.project[0])
        preprocess, objects = project.preprocess(), project.model_objects()
    loaded = (split(load_model(ref.model_path, trust=ref.trust, objects=objects), ref.layer), preprocess)
    _limit_threads(worker)  # a PyTorch model imported torch just now
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
    x = row_chunked(inputs)
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
    except StorageError as exc:
        raise StorageError(f"{out}: the store was not written: {exc}; nothing was left there") from None
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

    layer = project.choose_layer(layer)
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
