"""A project's activations at a layer, computed once and cached on disk by content.

The cache key is (model content hash, layer, input data hash, hooks hash), so a second run of the same inspection
reads the activations back instantly, from any process. In this process the activations are written to a temporary
memory-mapped ``.npy`` beside the cache entry, its blocks reserved first, renamed into place only once complete and
flushed: a crash or kill mid-run leaves no entry that looks valid, and a cache disk too full for the entry leaves
none either (the activations are then computed in memory, with a warning). On a Dask cluster (``client=``) they go to
a Zarr store, the same way (:func:`engine.backends.dask.project_activations`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

import numpy as np

from engine.data.files import atomic_path, cannot_write, remove_dead_temporaries
from engine.memo import KeyedLocks
from engine.model import split
from engine.progress import ProgressFn, report
from engine.propagate.batches import DEFAULT_BATCH, propagate_batches
from engine.settings import cache_dir as default_cache_dir

__all__ = ["activations", "cache_path", "stored_activations"]

#: One build of a cache entry at a time (two sessions asking for the same layer compute it once).
_BUILDING = KeyedLocks()


def cache_path(project, layer: str, cache_dir=None) -> Path:
    """Where the activations of ``project`` at ``layer`` are cached."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)
    key = f"{project.name}-{project.model_hash()}-{safe}-{project.data_hash()}"
    return cache_dir / "activations" / f"{key}.npy"


def stored_activations(project, layer: str, cache_dir=None):
    """The complete Zarr store of the project's activations at ``layer`` in the cache, written on a Dask cluster
    (``latent-inspector propagate --dask``) for the same model, data and hooks; or None."""
    from engine.data.store import reusable

    path = cache_path(project, layer, cache_dir)
    return reusable(path.with_suffix(".zarr"), path.stem)


def activations(project, layer: str, *, cache_dir=None, progress: ProgressFn | None = None,
                batch_size: int = DEFAULT_BATCH, client=None, out=None, inputs=None, inputs_key=None,
                chunk_rows: int | None = None):
    """The project's activations at ``layer``, from the disk cache or computed and cached.

    In this process by default (a memory-mapped ``.npy``); on the workers of a Dask cluster with ``client``, into
    a Zarr store (and then of ``inputs``, a larger file for the same model, when given). A complete store for the
    project's own inputs in the cache is read, chunk by chunk, rather than computed again in this process.

    Parameters
    ----------
    project : Project
    layer : str
    cache_dir : str or Path, optional
        Default: :func:`engine.cache_dir`.
    progress : callable(stage, done, total), optional
        Stage ``"propagate"``; not called on a cache hit in this process.
    batch_size : int
    client : distributed.Client, optional
        Propagate on this Dask cluster (:func:`engine.backends.cluster.connect`).
    out, inputs, inputs_key, chunk_rows
        With ``client``: see :func:`engine.backends.dask.project_activations`.

    Returns
    -------
    numpy.memmap or Stored
        Read-only float32 array of shape (n, *latent_shape); with ``client``, the Zarr store.

    Raises
    ------
    CutError, ModelError, DataError
    """
    if client is not None:
        from engine.backends.dask import project_activations

        return project_activations(client, project, layer, out=out, inputs=inputs, inputs_key=inputs_key,
                                   chunk_rows=chunk_rows, cache_dir=cache_dir, batch_size=batch_size,
                                   progress=progress)
    extra = [name for name, value in (("out", out), ("inputs", inputs), ("inputs_key", inputs_key),
                                      ("chunk_rows", chunk_rows)) if value is not None]
    if extra:
        from engine.errors import DataError

        raise DataError(f"{', '.join(extra)}: only for a Dask run; pass client= (see engine.backends.cluster.connect)")
    path = cache_path(project, layer, cache_dir)
    with _BUILDING(str(path)):
        if path.is_file():
            try:
                return np.load(path, mmap_mode="r")
            except (ValueError, OSError):  # an entry damaged by something else: recompute it
                path.unlink(missing_ok=True)
        stored = stored_activations(project, layer, cache_dir)
        if stored is not None:  # propagated on a Dask cluster: read it there, chunk by chunk
            report(progress, "propagate", stored.shape[0], stored.shape[0])
            return stored
        s = split(project.model(), layer)
        x = project.inputs()
        shape = (len(x), *s.latent_shape)
        remove_dead_temporaries(path)  # a killed build's map, as large as the entry
        try:
            with atomic_path(path) as tmp:
                z = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
                _reserve(tmp)
                propagate_batches(s, x, batch_size=batch_size, progress=progress, out=z,
                                  preprocess=project.preprocess())
                z.flush()
                del z
        except OSError as exc:
            if not cannot_write(exc):
                raise
            logging.getLogger(__name__).warning("%s: the activations are not cached (%s); computed in memory",
                                                path, exc.strerror or exc)
            z = np.empty(shape, np.float32)
            propagate_batches(s, x, batch_size=batch_size, progress=progress, out=z, preprocess=project.preprocess())
            z.flags.writeable = False
            return z
        return np.load(path, mmap_mode="r")


def _reserve(path: Path) -> None:
    """Allocate the disk blocks of the memory-mapped file at ``path`` now, so that a disk too full for it fails here
    with ``ENOSPC`` (and the activations are computed in memory) instead of killing the process with ``SIGBUS`` when
    a page of the map is first written."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system that cannot reserve
            raise
    finally:
        os.close(fd)
