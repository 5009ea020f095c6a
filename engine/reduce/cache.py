"""On-disk cache of fitted projections, keyed by an activations fingerprint and the reducer's parameters.

A fitted reducer (embedding, backend model, inverse map, trust model, tuning report) is written with joblib to
``<cache_dir>/<Reducer>-<key>.joblib``. The key hashes

* the data's :func:`engine.backends.fingerprint`: shape, dtype and a strided sample of rows, so that fingerprinting a
  1M-row memory-mapped array reads ~1,000 rows, not gigabytes (a Zarr store: its identity key);
* the estimator's parameters (``get_params``) except those that cannot change the result
  (``cache_dir``, ``progress``, ``snapshot``, and the same in a nested estimator such as an inverse map);
* the resolved backend and the versions of the libraries that compute the projection.

Beside these full states, ``<cache_dir>/models/`` keeps the backend model alone (:func:`model_key`): the fitted
UMAP or t-SNE model and the embedding, keyed by what determines the embedding only, with the self-tuned parameter
resolved to the value used. A fit that asks for another inverse map, or self-tunes and chooses a value fitted before
(the staged plan of :mod:`engine.explore.stages`: a first picture at the default value, then the self-tuned one),
reads the model there instead of fitting it again, so the map does not move and only the inverse map is trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path

import joblib
import numpy as np

from engine.data.files import atomic_path, cannot_write

__all__ = ["CACHE_FORMAT", "MODEL_IGNORED_PARAMS", "ProjectionCache", "array_digest", "model_key", "projection_key"]

CACHE_FORMAT = 3  # 2: inverse_index_, PCAReducer.model_ is a PrincipalDirections; 3: model_source_, models/ entries
_VERSIONED = ("numpy", "scikit-learn", "umap-learn", "openTSNE", "keras")
#: Parameters that cannot change a fitted projection: callbacks, and where the cache is.
_IGNORED_PARAMS = frozenset({"cache_dir", "progress", "snapshot"})
#: Parameters that cannot change the backend model and its embedding once the self-tuned value is resolved: the
#: inverse map and the self-tuning's knobs.
MODEL_IGNORED_PARAMS = _IGNORED_PARAMS | {"inverse", "tune_grid", "tune_sample", "tune_seconds"}


def array_digest(X, chunk_rows: int = 65_536) -> str:
    """Exact digest of every byte of ``X`` (read in chunks, so a memmap is never loaded whole)."""
    X = np.asanyarray(X)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((X.shape, X.dtype.str)).encode())
    for start in range(0, X.shape[0], chunk_rows):
        h.update(np.ascontiguousarray(X[start : start + chunk_rows]).tobytes())
    return h.hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _param_token(value):
    """JSON-able stand-in for a parameter value (estimators by class and parameters, callbacks left out)."""
    if hasattr(value, "get_params"):
        return {type(value).__name__: {k: _param_token(v) for k, v in sorted(value.get_params().items())
                                       if k not in _IGNORED_PARAMS}}
    if isinstance(value, (list, tuple)):
        return [_param_token(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _key(kind: str, estimator, params: dict, data_hash: str, backend: str) -> str:
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "kind": kind,
            "estimator": type(estimator).__name__,
            "params": {k: _param_token(v) for k, v in sorted(params.items())},
            "data": data_hash,
            "backend": backend,
            "versions": {dist: _version(dist) for dist in _VERSIONED},
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def projection_key(estimator, data_hash: str, backend: str) -> str:
    """Cache key of fitting ``estimator`` (its current parameters) on data with fingerprint ``data_hash``."""
    params = {k: v for k, v in estimator.get_params().items() if k not in _IGNORED_PARAMS}
    return _key("projection", estimator, params, data_hash, backend)


def model_key(estimator, data_hash: str, backend: str, resolved: dict) -> str:
    """Cache key of the backend model alone: the parameters that determine the embedding, ``resolved`` replacing
    some (the self-tuned one by the value used), the inverse map and the tuning's knobs left out
    (:data:`MODEL_IGNORED_PARAMS`).

    Example
    -------
    >>> from engine.reduce import UMAPReducer
    >>> a = model_key(UMAPReducer(inverse="knn"), "data", "cpu", {"n_neighbors": 15})
    >>> a == model_key(UMAPReducer(n_neighbors=15, tune_grid=(15,)), "data", "cpu", {"n_neighbors": 15})
    True
    """
    params = {k: v for k, v in estimator.get_params().items() if k not in MODEL_IGNORED_PARAMS}
    params.update(resolved)
    return _key("model", estimator, params, data_hash, backend)


#: A cached state stored in a file larger than this is opened memory-mapped (``joblib.load(mmap_mode="r")``): its
#: arrays (the embedding: 800 MB at 100 million points) are then pages of the file, which the system can drop,
#: rather than memory of the process; read-only, as the engine treats them.
MAP_BYTES = 64 * 2**20


class ProjectionCache:
    """A folder of fitted projections; ``load`` returns ``None`` on a miss or an unreadable file.

    Parameters
    ----------
    directory : str or Path
        Created on the first ``save``.
    """

    def __init__(self, directory):
        self.directory = Path(directory)


    def path(self, name: str, key: str) -> Path:
        return self.directory / f"{name}-{key}.joblib"

    def load(self, name: str, key: str) -> dict | None:
        path = self.path(name, key)
        if not path.is_file():
            return None
        try:  # a large state (the embedding of millions of points) is mapped, read-only, not read into memory
            state = joblib.load(path, mmap_mode="r" if path.stat().st_size > MAP_BYTES else None)
        except Exception:  # a truncated or foreign file is a miss, and is overwritten by the next save
            return None
        return state if isinstance(state, dict) else None

    def save(self, name: str, key: str, state: dict) -> Path | None:
        """Write atomically (temporary file + rename), so a reader never sees half a file. A write the disk refuses
        (full, over quota, read-only) is logged and skipped: the fit stands, uncached, and no file is left; returns
        None then."""
        path = self.path(name, key)
        try:
            with atomic_path(path) as tmp:
                joblib.dump(state, tmp)
        except OSError as exc:
            if not cannot_write(exc):
                raise
            logging.getLogger(__name__).warning("%s: the fitted projection is not cached (%s); it is fitted again "
                                                "next time", path, exc.strerror or exc)
            return None
        return path
