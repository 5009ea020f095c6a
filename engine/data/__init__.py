"""Data: the files users bring (arrays in many formats, chunked stores), project folders, generated datasets.

* :mod:`engine.data.formats`: read and write arrays (``.npy``, ``.npz``, ``.csv``, ``.json``, ``.mat``, ``.h5``);
* :mod:`engine.data.chunked`: datasets larger than memory, as Dask arrays read by whichever worker needs a chunk;
* :mod:`engine.data.store`: Zarr stores of activations and embeddings, written whole or not at all;
* :mod:`engine.data.project`: a project folder resolved (model, inputs, labels, views, hooks);
* :mod:`engine.data.generated`: datasets of decoded points the user labelled and saved;
* :mod:`engine.data.labels`: class codes checked once, for every table and frame;
* :mod:`engine.data.files`: atomic writes and content hashes.
"""

from engine.lazy import lazy_exports

_EXPORTS = {
    "GeneratedDataset": "engine.data.generated",
    "Project": "engine.data.project",
    "ViewSpec": "engine.data.project",
    "list_datasets": "engine.data.generated",
    "list_projects": "engine.data.project",
    "load_project": "engine.data.project",
    "open_chunked": "engine.data.chunked",
    "open_store": "engine.data.store",
    "read_array": "engine.data.formats",
    "write_array": "engine.data.formats",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
