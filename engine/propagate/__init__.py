"""Propagate: a dataset through the prefix of a split model, to the activations at the cut.

:func:`propagate` is one function whatever the data: in this process, batch by batch, for NumPy arrays and memory
maps; on the workers of a Dask cluster, into a Zarr store, for a Dask array (:func:`engine.data.open_chunked`).
:func:`activations` is a project's activations at a layer, cached on disk by content.

Example
-------
>>> from engine.propagate import activations
>>> z = activations(load_project("mnist"), "bottleneck")          # doctest: +SKIP
>>> z.shape                                                       # doctest: +SKIP
(10000, 10)
"""

from __future__ import annotations

from engine import backends
from engine.progress import ProgressFn
from engine.propagate.batches import DEFAULT_BATCH, conform, propagate_batches, throughput
from engine.propagate.cache import activations, cache_path

__all__ = ["DEFAULT_BATCH", "activations", "cache_path", "conform", "propagate", "throughput"]


def propagate(model, inputs, *, batch_size: int = DEFAULT_BATCH, progress: ProgressFn | None = None, out=None,
              preprocess=None, **backend_options):
    """Activations of ``inputs`` at the cut of ``model``, computed in batches by one compiled function.

    Parameters
    ----------
    model : Split or ModelRef
        The model split at a layer (:func:`engine.model.split`); for a Dask array, a
        :class:`~engine.backends.dask.ModelRef`, which the workers load from its file.
    inputs : array-like of shape (n, *input_shape), or dask.array.Array
        A memory map is read one batch at a time; a Dask array is propagated chunk by chunk on the workers.
    batch_size : int
        Rows per compiled call.
    progress : callable(stage, done, total), optional
        Stage ``"propagate"``, rows done.
    out : array-like or path, optional
        Where to write: an array of shape (n, *latent_shape) (a writable memory map, say); for a Dask array, the Zarr
        store to write (required).
    preprocess : callable(batch) -> batch, optional
        Applied to each input batch before the model (a project's hook); in this process only.
    **backend_options
        For a Dask array: ``key`` and ``source`` (see :func:`engine.backends.dask.propagate_on_dask`).

    Returns
    -------
    numpy.ndarray, numpy.memmap, or Stored
        float32 activations, shape (n, *latent_shape).

    Raises
    ------
    ModelError
        Inputs whose per-sample shape the model does not take.

    Example
    -------
    >>> z = propagate(split(model, "bottleneck"), x, progress=lambda stage, d, t: print(stage, d, t))  # doctest: +SKIP
    """
    if backends.is_chunked(inputs):
        from engine.backends.dask import propagate_on_dask

        return propagate_on_dask(model, inputs, out=out, batch_size=batch_size, progress=progress,
                                 preprocess=preprocess, **backend_options)
    if backend_options:
        from engine.errors import DataError

        raise DataError(f"{', '.join(sorted(backend_options))}: only for a Dask array's propagation")
    return propagate_batches(model, inputs, batch_size=batch_size, progress=progress, out=out, preprocess=preprocess)
