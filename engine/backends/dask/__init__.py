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

from engine.backends.dask import frames, stores, tasks, workers  # noqa: F401 (registers the Dask implementations)
from engine.backends.dask.frames import embedding_frame, embedding_ranges
from engine.backends.dask.stores import embed, write_rows
from engine.backends.dask.tasks import current_client, fold_chunks
from engine.backends.dask.workers import (
    ModelRef,
    loaded_models,
    preload,
    project_activations,
    propagate_on_dask,
)

__all__ = [
    "ModelRef",
    "current_client",
    "embed",
    "embedding_frame",
    "embedding_ranges",
    "fold_chunks",
    "loaded_models",
    "preload",
    "project_activations",
    "propagate_on_dask",
    "write_rows",
]
