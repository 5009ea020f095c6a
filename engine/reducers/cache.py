"""On-disk cache of fitted projections, keyed by an activations fingerprint and the reducer's parameters.

A fitted reducer (embedding, backend model, inverse map, trust model, tuning report) is written with joblib to
``<cache_dir>/<Reducer>-<key>.joblib``. The key hashes

* :func:`activations_hash` of the data: shape, dtype and a strided sample of rows, so that fingerprinting a
  1M-row memory-mapped array reads ~1,000 rows, not gigabytes;
* the estimator's parameters (``get_params``) except those that cannot change the result
  (``cache_dir``, ``progress``);
* the resolved backend and the versions of the libraries that compute the projection.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

import joblib
import numpy as np

__all__ = ["CACHE_FORMAT", "ProjectionCache", "activations_hash", "array_digest", "projection_key"]

CACHE_FORMAT = 1
_VERSIONED = ("numpy", "scikit-learn", "umap-learn", "openTSNE", "keras")
_IGNORED_PARAMS = frozenset({"cache_dir", "progress"})


def activations_hash(X, n_rows: int = 1024) -> str:
    """Fast fingerprint of an (n, d) array: shape, dtype and ``n_rows`` rows taken at an even stride.

    Parameters
    ----------
    X : ndarray or np.memmap of shape (n, d)
    n_rows : int
        How many rows to read (the first and the last always among them).

    Returns
    -------
    str
        32 hex characters.

    Examples
    --------
    >>> activations_hash(np.zeros((3, 2), np.float32)) == activations_hash(np.zeros((3, 2), np.float32))
    True
    """
    X = np.asanyarray(X)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((X.shape, X.dtype.str)).encode())
    n = X.shape[0] if X.ndim else 0
    if n:
        rows = np.unique(np.linspace(0, n - 1, num=min(n, n_rows)).astype(np.int64))
        h.update(np.ascontiguousarray(X[rows]).tobytes())
    return h.hexdigest()


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
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(name, key)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            joblib.dump(state, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path
