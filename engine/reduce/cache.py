"""On-disk cache of fitted projections, keyed by an activations fingerprint and the reducer's parameters.

A fitted reducer (embedding, backend model, inverse map, trust model, tuning report) is written with joblib to
``<cache_dir>/<Reducer>-<key>.joblib``. The key hashes

* the data's :func:`engine.backends.fingerprint`: shape, dtype and a strided sample of rows, so that fingerprinting a
  1M-row memory-mapped array reads ~1,000 rows, not gigabytes (a Zarr store: its identity key);
* the estimator's parameters (``get_params``) except those that cannot change the result
  (``cache_dir``, ``progress``);
* the resolved backend and the versions of the libraries that compute the projection.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import joblib
import numpy as np

from engine.data.files import atomic_path

__all__ = ["CACHE_FORMAT", "ProjectionCache", "array_digest", "projection_key"]

CACHE_FORMAT = 2  # 2: inverse_index_, PCAReducer.model_ is a PrincipalDirections
_VERSIONED = ("numpy", "scikit-learn", "umap-learn", "openTSNE", "keras")
_IGNORED_PARAMS = frozenset({"cache_dir", "progress", "snapshot"})


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
    """JSON-able stand-in for a parameter value (estimators by class and parameters)."""
    if hasattr(value, "get_params"):
        return {type(value).__name__: {k: _param_token(v) for k, v in sorted(value.get_params().items())}}
    if isinstance(value, (list, tuple)):
        return [_param_token(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def projection_key(estimator, data_hash: str, backend: str) -> str:
    """Cache key of fitting ``estimator`` (its current parameters) on data with fingerprint ``data_hash``."""
    params = {k: _param_token(v) for k, v in sorted(estimator.get_params().items()) if k not in _IGNORED_PARAMS}
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "estimator": type(estimator).__name__,
            "params": params,
            "data": data_hash,
            "backend": backend,
            "versions": {dist: _version(dist) for dist in _VERSIONED},
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


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
        try:
            state = joblib.load(path)
        except Exception:  # a truncated or foreign file is a miss, and is overwritten by the next save
            return None
        return state if isinstance(state, dict) else None

    def save(self, name: str, key: str, state: dict) -> Path:
        """Write atomically (temporary file + rename), so a reader never sees half a file."""
        path = self.path(name, key)
        with atomic_path(path) as tmp:
            joblib.dump(state, tmp)
        return path
